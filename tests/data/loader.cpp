// The image cache (bad files skipped and counted) and the batch loader.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <ewnet/data/loader.hpp>

#include "test_files.hpp"

namespace fs = std::filesystem;
using namespace ewnet::data;

namespace {
Image test_image(int w, int h, int seed) {
  Image img;
  img.width = w;
  img.height = h;
  img.rgb.resize(size_t(w) * h * 3);
  for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = std::uint8_t((i * 7 + size_t(seed) * 31) % 251);
  return img;
}

/// ROOT/a with 3 good images and the three kinds of bad file, ROOT/b with 3 good ones.
fs::path make_folder_with_bad_files() {
  const fs::path root = fs::temp_directory_path() / "ewnet_test_bad_files";
  fs::remove_all(root);
  fs::create_directories(root / "a");
  fs::create_directories(root / "b");
  for (int i = 0; i < 3; ++i) {
    write_png((root / "a" / ("good" + std::to_string(i) + ".png")).string(), test_image(20, 16, i));
    write_png((root / "b" / ("good" + std::to_string(i) + ".png")).string(), test_image(16, 20, 10 + i));
  }
  // A real JPEG cut in half.
  const Image src = test_image(40, 40, 3);
  std::vector<std::uint8_t> jpeg;
  stbi_write_jpg_to_func(
      [](void* ctx, void* data, int size) {
        auto* v = static_cast<std::vector<std::uint8_t>*>(ctx);
        v->insert(v->end(), static_cast<std::uint8_t*>(data), static_cast<std::uint8_t*>(data) + size);
      },
      &jpeg, 40, 40, 3, src.rgb.data(), 90);
  REQUIRE(jpeg.size() > 200);
  std::ofstream(root / "a" / "truncated.jpg", std::ios::binary)
      .write(reinterpret_cast<const char*>(jpeg.data()), std::streamsize(jpeg.size() / 2));
  std::ofstream(root / "a" / "empty.jpg", std::ios::binary);
  std::ofstream(root / "a" / "text.jpg") << "this is not an image\n";
  return root;
}
}  // namespace

TEST_CASE("bad files are skipped with one warning each, naming the file and the reason, and counted") {
  const fs::path root = make_folder_with_bad_files();
  const Dataset d = scan_image_folder(root.string());
  REQUIRE(d.size() == 9);
  std::ostringstream warnings;
  const ImageCache cache(d, 24, &warnings);
  REQUIRE(cache.size() == 6);
  REQUIRE(cache.skipped().size() == 3);
  REQUIRE(cache.dataset().class_counts() == std::vector<int>{3, 3});
  const std::string w = warnings.str();
  REQUIRE(std::count(w.begin(), w.end(), '\n') == 3);
  REQUIRE_THAT(w, Catch::Contains("truncated.jpg") && Catch::Contains("truncated"));
  REQUIRE_THAT(w, Catch::Contains("empty.jpg") && Catch::Contains("empty"));
  REQUIRE_THAT(w, Catch::Contains("text.jpg") && Catch::Contains("not a readable image"));
  fs::remove_all(root);
}

TEST_CASE("a class left with no readable image is an error") {
  const fs::path root = fs::temp_directory_path() / "ewnet_test_all_bad";
  fs::remove_all(root);
  fs::create_directories(root / "a");
  fs::create_directories(root / "b");
  write_png((root / "a" / "ok.png").string(), test_image(8, 8, 1));
  std::ofstream(root / "b" / "zero.png", std::ios::binary);
  REQUIRE_THROWS_WITH(ImageCache(scan_image_folder(root.string()), 8), Catch::Contains("'b'"));
  fs::remove_all(root);
}

TEST_CASE("the loader visits every image once an epoch, reshuffles each epoch, and ignores the thread count") {
  const fs::path root = make_folder_with_bad_files();
  const ImageCache cache(scan_image_folder(root.string()), 16);
  std::vector<size_t> all(cache.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  auto epoch = [&](int e, int threads) {
    LoaderOptions o;
    o.batch = 4;
    o.seed = 5;
    o.threads = threads;
    BatchLoader<float> loader(cache, all, o);
    REQUIRE(loader.batches() == 2);
    loader.start_epoch(e);
    std::vector<size_t> seen;
    std::vector<float> pixels;
    Batch<float> b;
    while (loader.next(b)) {
      REQUIRE(b.images.n() == int(b.labels.size()));
      REQUIRE(b.images.c() == 3);
      REQUIRE(b.images.h() == 16);
      for (size_t k = 0; k < b.indices.size(); ++k) REQUIRE(b.labels[k] == cache.label(b.indices[k]));
      seen.insert(seen.end(), b.indices.begin(), b.indices.end());
      const auto v = b.images.to_vector();
      pixels.insert(pixels.end(), v.begin(), v.end());
    }
    return std::make_pair(seen, pixels);
  };
  const auto e0 = epoch(0, 1), e0_threads = epoch(0, 3), e1 = epoch(1, 2);
  std::vector<size_t> sorted = e0.first;
  std::sort(sorted.begin(), sorted.end());
  REQUIRE(sorted == all);
  REQUIRE(e0.first == e0_threads.first);
  REQUIRE(e0.second == e0_threads.second);  // the same augmentation whatever the thread count
  REQUIRE(e0.first != e1.first);
  for (float v : e0.second) REQUIRE((v >= 0 && v <= 255));
  fs::remove_all(root);
}

TEST_CASE("channel statistics are the mean and deviation of the chosen images' pixels") {
  const fs::path root = fs::temp_directory_path() / "ewnet_test_stats";
  fs::remove_all(root);
  fs::create_directories(root / "a");
  Image img;
  img.width = img.height = 2;
  img.rgb = {0, 10, 200, 0, 10, 200, 100, 10, 200, 100, 10, 200};  // R: 0,0,100,100; G: 10; B: 200
  write_png((root / "a" / "x.png").string(), img);
  const ImageCache cache(scan_image_folder(root.string()), 2);
  const ChannelStats s = channel_stats(cache, {0});
  REQUIRE(s.mean[0] == Approx(50));
  REQUIRE(s.std[0] == Approx(50));
  REQUIRE(s.mean[1] == Approx(10));
  REQUIRE(s.std[1] == Approx(1e-3));  // a constant channel gets the floor, not zero
  REQUIRE(s.mean[2] == Approx(200));
  fs::remove_all(root);
}

TEST_CASE("augmentation off is the identity; on, it keeps the size and the value range") {
  const Image img = test_image(12, 12, 4);
  std::vector<float> plain(3 * 144), identity(3 * 144), augmented(3 * 144);
  image_to_chw(img, plain.data());
  ewnet::Random rng(1);
  AugmentOptions off;
  off.enabled = false;
  augment_to_chw(img, identity.data(), off, rng);
  REQUIRE(identity == plain);
  AugmentOptions on;
  augment_to_chw(img, augmented.data(), on, rng);
  REQUIRE(augmented != plain);
  for (float v : augmented) REQUIRE((v >= 0 && v <= 255));
}

TEST_CASE("strong augmentation in the loader: RandAugment then the usual augmentation, drawn per sample") {
  ewnet::test::TempDir dir("ewnet-loader-strong");
  for (int c = 0; c < 2; ++c) {
    fs::create_directories(dir.path / ("c" + std::to_string(c)));
    for (int i = 0; i < 3; ++i)
      write_png((dir.path / ("c" + std::to_string(c)) / (std::to_string(i) + ".png")).string(), test_image(16, 16, 3 * c + i));
  }
  const ImageCache cache(scan_image_folder(dir.path.string()), 16);
  std::vector<size_t> all(cache.size());
  for (size_t i = 0; i < all.size(); ++i) all[i] = i;
  auto first_batch = [&](bool strong) {
    LoaderOptions o;
    o.batch = 3;
    o.seed = 9;
    o.strong.enabled = strong;
    BatchLoader<float> loader(cache, all, o);
    loader.start_epoch(2);
    Batch<float> b;
    REQUIRE(loader.next(b));
    return b;
  };
  const Batch<float> plain = first_batch(false), strong = first_batch(true);
  REQUIRE(plain.indices == strong.indices);
  REQUIRE(plain.images.to_vector() != strong.images.to_vector());
  // Sample k of epoch e draws from (seed, e, k): strong_view_to_chw with that generator.
  const size_t sample = 3 * 16 * 16;
  for (size_t k = 0; k < 3; ++k) {
    std::vector<float> expect(sample);
    ewnet::Random rng(9 ^ 0xa06e57ull, (std::uint64_t(2) << 32) + k);
    strong_view_to_chw(cache.image(strong.indices[k]), expect.data(), AugmentOptions{}, StrongAugmentOptions{}, rng);
    REQUIRE(std::vector<float>(strong.images.data() + k * sample, strong.images.data() + (k + 1) * sample) == expect);
  }
}
