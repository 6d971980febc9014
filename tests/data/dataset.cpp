// Image-folder scanning and splits, on the shared Caltech set and on folders made here.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>

#include <ewnet/data/dataset.hpp>
#include <ewnet/data/loader.hpp>

namespace fs = std::filesystem;
using namespace ewnet::data;

namespace {
/// The shared Caltech target set. Without it the case is skipped (exit code 77, which CTest reports
/// as skipped: tests/CMakeLists.txt), or fails when CI is set: CI always has ../shared.
std::string handheld4() {
  const std::string dir = std::string(EWNET_SHARED_DATASETS) + "/caltech101_handheld4";
  if (!fs::is_directory(dir)) {
    if (std::getenv("CI"))
      FAIL("the shared data set " << dir << " is missing: these tests need ../shared/datasets beside the checkout");
    std::printf("skipped: the shared data set %s is missing (../shared/datasets beside the checkout)\n", dir.c_str());
    std::exit(77);
  }
  return dir;
}
}  // namespace

TEST_CASE("scan_image_folder reads caltech101_handheld4: classes sorted, every image labelled") {
  const Dataset d = scan_image_folder(handheld4());
  REQUIRE(d.classes == std::vector<std::string>{"binocular", "scissors", "stapler", "wrench"});
  REQUIRE(d.size() == 156);
  REQUIRE(d.class_counts() == std::vector<int>{33, 39, 45, 39});
  for (const Sample& s : d.samples) REQUIRE(s.relative.rfind(d.classes[size_t(s.label)] + "/", 0) == 0);
}

TEST_CASE("grayscale Caltech images are expanded to three equal channels") {
  const std::string dir = handheld4();
  // The manifest lists each file's mode; "L" is 8-bit grey.
  std::ifstream manifest(dir + "/manifest.csv");
  std::string line, grey;
  while (std::getline(manifest, line))
    if (line.find(",L,") != std::string::npos) {
      grey = line.substr(0, line.find(','));
      break;
    }
  REQUIRE(!grey.empty());
  const Image img = load_image(dir + "/" + grey);
  REQUIRE(img.rgb.size() == size_t(img.width) * img.height * 3);
  bool varied = false;
  for (size_t i = 0; i < size_t(img.width) * img.height; ++i) {
    REQUIRE(img.rgb[3 * i] == img.rgb[3 * i + 1]);
    REQUIRE(img.rgb[3 * i] == img.rgb[3 * i + 2]);
    varied = varied || img.rgb[3 * i] != img.rgb[0];
  }
  REQUIRE(varied);
  // The whole set decodes, none skipped, and the cache holds it at the asked size.
  const ImageCache cache(scan_image_folder(dir), 32);
  REQUIRE(cache.size() == 156);
  REQUIRE(cache.skipped().empty());
  REQUIRE(cache.image(0).width == 32);
}

TEST_CASE("split_each_label is stratified 80/20 per class and reproducible from its seed") {
  const Dataset d = scan_image_folder(handheld4());
  const Split s = split_each_label(d, 0.8, 7);
  std::map<int, int> train, val;
  for (size_t i : s.train) ++train[d.samples[i].label];
  for (size_t i : s.validation) ++val[d.samples[i].label];
  // round(0.8 * n) of each class: 33 -> 26, 39 -> 31, 45 -> 36.
  REQUIRE(train == std::map<int, int>{{0, 26}, {1, 31}, {2, 36}, {3, 31}});
  REQUIRE(val == std::map<int, int>{{0, 7}, {1, 8}, {2, 9}, {3, 8}});
  REQUIRE(split_each_label(d, 0.8, 7).train == s.train);
  REQUIRE(split_each_label(d, 0.8, 8).train != s.train);
}

TEST_CASE("split_from_file follows splits.csv: train rows train, val and test rows validate") {
  const std::string dir = handheld4();
  const Dataset d = scan_image_folder(dir);
  const Split s = split_from_file(d, dir + "/splits.csv");
  const auto rows = read_split_file(dir + "/splits.csv");
  size_t train_rows = 0;
  for (const auto& [file, row] : rows) train_rows += row.split == "train";
  REQUIRE(s.train.size() == train_rows);
  REQUIRE(s.train.size() + s.validation.size() == d.size());
  for (size_t i : s.train) REQUIRE(rows.at(d.samples[i].relative).split == "train");
}

TEST_CASE("a missing folder and an empty class are errors that name them") {
  const fs::path root = fs::temp_directory_path() / "ewnet_test_empty_class";
  fs::remove_all(root);
  REQUIRE_THROWS_WITH(scan_image_folder((root / "nowhere").string()), Catch::Contains("not found"));
  fs::create_directories(root / "a");
  fs::create_directories(root / "b");
  Image img;
  img.width = img.height = 4;
  img.rgb.assign(48, 100);
  write_png((root / "a" / "x.png").string(), img);
  REQUIRE_THROWS_WITH(scan_image_folder(root.string()), Catch::Contains("'b'") && Catch::Contains("no images"));
  fs::remove_all(root);
}
