// The C++ programs the documentation shows, compiled from the documents as written
// (extract_example.py) and run here on small data: docs/architecture.md's transfer from C++.
#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include <ewnet/data/generated.hpp>
#include <ewnet/io/checkpoint.hpp>
#include <ewnet/models/paper_model.hpp>

#include "test_files.hpp"

// docs/architecture.md's program, its main renamed by the build.
int transfer_from_cpp_main(int argc, char** argv);

namespace fs = std::filesystem;

TEST_CASE("docs/architecture.md: a recipe run from C++ with a reporter of one's own", "[docs]") {
  const ewnet::test::TempDir dir("ewnet-test-doc-transfer");
  ewnet::data::GeneratedOptions g;
  g.image_size = 32;
  g.source_per_class = 1;
  g.target_per_class = 10;
  const std::string target = ewnet::data::write_generated_dataset(dir.file("data"), g).second;
  // A source model at 32x32 for 8 classes; its weights need not be trained for the program to run.
  ewnet::Model<float> source = ewnet::build_paper_model<float>({8, 32, 1});
  ewnet::save_checkpoint(source, dir.file("source.safetensors"));

  std::vector<std::string> args{"transfer", dir.file("source.safetensors"), target, dir.file("run")};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  std::fflush(stdout);
  REQUIRE(transfer_from_cpp_main(int(argv.size()), argv.data()) == 0);
  // The run saved its checkpoints; the reporter, not the standard one, showed it: no run files.
  CHECK(fs::exists(dir.path / "run" / "best.safetensors"));
  CHECK(fs::exists(dir.path / "run" / "last.safetensors"));
  CHECK_FALSE(fs::exists(dir.path / "run" / "log.csv"));
  ewnet::Model<float> tuned = ewnet::model_from_checkpoint<float>(dir.file("run/last.safetensors"));
  CHECK(tuned.classes() == 4);
}
