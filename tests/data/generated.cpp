// The generated default data set.
#include <catch2/catch.hpp>

#include <filesystem>

#include <ewnet/data/dataset.hpp>
#include <fstream>

#include <ewnet/data/generated.hpp>

namespace fs = std::filesystem;
using namespace ewnet::data;

TEST_CASE("the generated data set is two labelled image folders, reproducible from its seed") {
  const fs::path root = fs::temp_directory_path() / "ewnet_test_generated";
  fs::remove_all(root);
  GeneratedOptions o;
  o.image_size = 32;
  o.source_per_class = 3;
  o.target_per_class = 2;
  const auto [source, target] = write_generated_dataset(root.string(), o);
  const Dataset s = scan_image_folder(source), t = scan_image_folder(target);
  REQUIRE(s.classes == generated_source_classes());
  REQUIRE(t.classes == generated_target_classes());
  REQUIRE(s.size() == 24);
  REQUIRE(t.size() == 8);
  REQUIRE(fs::exists(fs::path(source) / "GENERATED.txt"));
  const Image a = load_image(s.samples[5].path);
  REQUIRE(a.width == 32);
  REQUIRE(generate_image(o, 0, s.samples[5].label, 2).rgb == a.rgb);
  GeneratedOptions other = o;
  other.seed = 99;
  REQUIRE(generate_image(other, 0, s.samples[5].label, 2).rgb != a.rgb);
  REQUIRE(generate_image(o, 0, 0, 0).rgb != generate_image(o, 0, 0, 1).rgb);

  // Other options replace the set whole (no file of the old one is left), and nothing is left
  // half-written beside it; a folder ewnet did not write is never replaced.
  GeneratedOptions fewer = o;
  fewer.target_per_class = 1;
  const auto [source2, target2] = write_generated_dataset(root.string(), fewer);
  REQUIRE(scan_image_folder(target2).size() == 4);
  size_t entries = 0;
  for (const auto& e : fs::directory_iterator(root)) {
    (void)e;
    ++entries;
  }
  REQUIRE(entries == 2);  // source and target, no staging folder
  const fs::path mine = fs::temp_directory_path() / "ewnet_test_generated_user";
  fs::remove_all(mine);
  fs::create_directories(mine / "target" / "my_class");
  { std::ofstream(mine / "target" / "my_class" / "photo.txt") << "a user's file"; }
  REQUIRE_THROWS_WITH(write_generated_dataset(mine.string(), o), Catch::Contains("did not write"));
  REQUIRE(fs::exists(mine / "target" / "my_class" / "photo.txt"));
  fs::remove_all(mine);
  fs::remove_all(root);
}
