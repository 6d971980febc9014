// Unlabelled images: the folder scan, the labelled/unlabelled cut, the check that keeps validation
// images (and so their labels) out of training, and the loader's reproducible weak and strong views.
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include <ewnet/data/unlabeled.hpp>

#include "test_files.hpp"

namespace fs = std::filesystem;
using namespace ewnet::data;
using ewnet::test::TempDir;

namespace {
Image test_image(int w, int h, int seed) {
  Image img;
  img.width = w;
  img.height = h;
  img.rgb.resize(size_t(w) * size_t(h) * 3);
  for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = std::uint8_t((i * 7 + size_t(seed) * 31 + i * i * size_t(seed)) % 251);
  return img;
}

/// ROOT/<class>/<image>: two classes of five 16x16 images each, every image different.
void make_labelled_folder(const fs::path& root) {
  for (int c = 0; c < 2; ++c) {
    fs::create_directories(root / ("class" + std::to_string(c)));
    for (int i = 0; i < 5; ++i)
      write_png((root / ("class" + std::to_string(c)) / ("img" + std::to_string(i) + ".png")).string(),
                test_image(16, 16, 10 * c + i + 1));
  }
}
}  // namespace

TEST_CASE("the unlabelled scan finds images at any depth, passes over hidden entries, reads no labels") {
  TempDir dir("ewnet-unlabeled-scan");
  const fs::path root = dir.path / "pool";
  fs::create_directories(root / "a" / "deeper");
  fs::create_directories(root / ".hidden");
  fs::create_directories(root / "_private");
  write_png((root / "top.png").string(), test_image(8, 8, 1));
  write_png((root / "a" / "x.png").string(), test_image(8, 8, 2));
  write_png((root / "a" / "deeper" / "y.png").string(), test_image(8, 8, 3));
  write_png((root / ".hidden" / "h.png").string(), test_image(8, 8, 4));
  write_png((root / "_private" / "p.png").string(), test_image(8, 8, 5));
  write_png((root / "a" / ".dot.png").string(), test_image(8, 8, 6));
  std::ofstream(root / "notes.txt") << "not an image\n";
  fs::create_directory_symlink(root / "a", root / "a" / "deeper" / "loop");  // not followed
  fs::create_symlink(root / "gone.png", root / "a" / "dangling.png");
  std::vector<std::string> skipped;
  const std::vector<std::string> files = scan_unlabeled_folder(root.string(), &skipped);
  REQUIRE(files == std::vector<std::string>{(root / "a" / "deeper" / "y.png").string(), (root / "a" / "x.png").string(),
                                            (root / "top.png").string()});
  REQUIRE(skipped.size() == 1);
  REQUIRE(skipped[0].find("dangling symbolic link") != std::string::npos);

  std::ostringstream warn;
  std::ofstream(root / "a" / "broken.png") << "this is not a png";
  const UnlabeledImages u(root.string(), 12, &warn, 2);
  REQUIRE(u.size() == 3);
  REQUIRE(u.image(0).width == 12);
  REQUIRE(warn.str().find("broken.png") != std::string::npos);
  REQUIRE(u.skipped().size() == 1);

  fs::create_directories(dir.path / "empty" / "sub");
  REQUIRE_THROWS_WITH(scan_unlabeled_folder((dir.path / "empty").string()), Catch::Contains("no image files"));
  REQUIRE_THROWS_WITH(scan_unlabeled_folder((dir.path / "missing").string()), Catch::Contains("not found"));
  fs::create_directories(dir.path / "bad");
  std::ofstream(dir.path / "bad" / "a.png") << "x";
  REQUIRE_THROWS_WITH(UnlabeledImages((dir.path / "bad").string(), 8), Catch::Contains("none of the 1 image files"));
}

TEST_CASE("the labelled cut keeps N images a class of the training split and sets the rest apart") {
  Dataset d;
  d.classes = {"a", "b", "c"};
  for (int i = 0; i < 30; ++i) d.samples.push_back({"f" + std::to_string(i), "", i % 3});
  std::vector<size_t> train;
  for (size_t i = 0; i < 30; i += 1)
    if (i % 5 != 0) train.push_back(i);  // every fifth image is a validation image
  const LabelCut cut = cut_labels_per_class(d, train, 3, 7);
  std::vector<int> per(3, 0);
  for (size_t i : cut.labeled) ++per[size_t(d.samples[i].label)];
  REQUIRE(per == std::vector<int>{3, 3, 3});
  std::vector<size_t> both = cut.labeled;
  both.insert(both.end(), cut.rest.begin(), cut.rest.end());
  std::sort(both.begin(), both.end());
  REQUIRE(both == train);  // disjoint, nothing lost, no validation image added
  const LabelCut again = cut_labels_per_class(d, train, 3, 7), other = cut_labels_per_class(d, train, 3, 8);
  REQUIRE(again.labeled == cut.labeled);
  REQUIRE(other.labeled != cut.labeled);
  const LabelCut all = cut_labels_per_class(d, train, 100, 7);
  REQUIRE(all.labeled == train);
  REQUIRE(all.rest.empty());
}

TEST_CASE("a validation image among the unlabelled ones is refused, whatever its name or folder") {
  TempDir dir("ewnet-unlabeled-honest");
  make_labelled_folder(dir.path / "labelled");
  const Dataset d = scan_image_folder((dir.path / "labelled").string());
  const ImageCache cache(d, 16, nullptr, 2);
  const Split split = split_each_label(cache.dataset(), 0.6, 3);
  REQUIRE(split.validation.size() == 4);
  const size_t held_out = split.validation[1];

  // An unlabelled folder of new images, and one validation image copied under another name, in a
  // folder named after the other class.
  const fs::path pool = dir.path / "pool";
  fs::create_directories(pool / "class0");
  for (int i = 0; i < 4; ++i) write_png((pool / ("new" + std::to_string(i) + ".png")).string(), test_image(16, 16, 50 + i));
  const std::string copy = (pool / "class0" / "renamed.png").string();
  fs::copy_file(cache.dataset().samples[held_out].path, copy);
  const UnlabeledImages u(pool.string(), 16);
  REQUIRE(u.size() == 5);

  REQUIRE_THROWS_WITH(check_unlabeled_images(pool_of(u), cache, split.validation, false),
                      Catch::Contains("1 of the 5 unlabelled images are validation images") &&
                          Catch::Contains(copy + " is " + cache.dataset().samples[held_out].path));
  // Asked for explicitly, the transductive setting runs, and says so.
  const UnlabeledSetting t = check_unlabeled_images(pool_of(u), cache, split.validation, true);
  REQUIRE(t.validation_images == 1);
  REQUIRE(t.line().find("transductive (asked for): 5 unlabelled images, 1 of them validation images") == 0);
  // Without the copy, the inductive setting.
  fs::remove(copy);
  const UnlabeledImages clean(pool.string(), 16);
  const UnlabeledSetting s = check_unlabeled_images(pool_of(clean), cache, split.validation, false);
  REQUIRE(s.validation_images == 0);
  REQUIRE(s.line().find("inductive: 4 unlabelled images, none of them a validation image") == 0);

  // The study's pool, the training images whose labels are put aside: fine; a pool taken from the
  // validation split by mistake is refused, every image of it.
  REQUIRE_NOTHROW(check_unlabeled_images(pool_of(cache, split.train), cache, split.validation, false));
  REQUIRE_THROWS_WITH(check_unlabeled_images(pool_of(cache, split.validation), cache, split.validation, false),
                      Catch::Contains("4 of the 4 unlabelled images are validation images"));
  // A digest collision alone refuses nothing: the pixels are compared.
  REQUIRE(validation_overlap(pool_of(clean), cache, split.validation).empty());
}

TEST_CASE("the unlabelled loader gives weak and strong views of the same images, step by step reproducibly") {
  std::vector<Image> images;
  for (int i = 0; i < 7; ++i) images.push_back(test_image(12, 12, i + 1));
  UnlabeledPool pool;
  for (size_t i = 0; i < images.size(); ++i) {
    pool.images.push_back(&images[i]);
    pool.names.push_back("image" + std::to_string(i));
  }
  UnlabeledLoaderOptions o;
  o.batch = 3;
  o.seed = 11;
  o.threads = 1;
  UnlabeledLoader<float> one(pool, o);
  o.threads = 3;
  UnlabeledLoader<float> three(pool, o);
  UnlabeledBatch<float> a, b;
  // Seven steps of three are three passes over the seven images: each pass visits every image once.
  std::vector<size_t> stream;
  for (std::uint64_t step = 0; step < 7; ++step) {
    one.batch(step, a);
    three.batch(step, b);
    REQUIRE(a.weak.shape() == ewnet::Shape{3, 3, 12, 12});
    REQUIRE(a.strong.shape() == ewnet::Shape{3, 3, 12, 12});
    REQUIRE(a.indices == b.indices);
    REQUIRE(a.weak.to_vector() == b.weak.to_vector());
    REQUIRE(a.strong.to_vector() == b.strong.to_vector());
    REQUIRE(a.weak.to_vector() != a.strong.to_vector());
    stream.insert(stream.end(), a.indices.begin(), a.indices.end());
  }
  for (size_t pass = 0; pass < 3; ++pass) {
    const std::set<size_t> seen(stream.begin() + std::ptrdiff_t(7 * pass), stream.begin() + std::ptrdiff_t(7 * pass + 7));
    REQUIRE(seen.size() == 7);
  }
  REQUIRE(std::vector<size_t>(stream.begin(), stream.begin() + 7) != std::vector<size_t>(stream.begin() + 7, stream.begin() + 14));
  // A step asked for again (a resumed run) is the same batch; views can be left out.
  UnlabeledLoader<float> fresh(pool, o);
  fresh.batch(4, b);
  one.batch(4, a);
  REQUIRE(a.indices == b.indices);
  REQUIRE(a.strong.to_vector() == b.strong.to_vector());
  o.weak_view = false;
  UnlabeledLoader<float> strong_only(pool, o);
  strong_only.batch(4, b);
  REQUIRE(b.weak.empty());
  REQUIRE(a.strong.to_vector() == b.strong.to_vector());
  images.push_back(test_image(10, 12, 9));
  pool.images.push_back(&images.back());
  pool.names.push_back("odd");
  // (the vector may have moved: the views are rebuilt)
  for (size_t i = 0; i < images.size(); ++i) pool.images[i] = &images[i];
  REQUIRE_THROWS_WITH(UnlabeledLoader<float>(pool, o), Catch::Contains("odd is 10x12"));
}
