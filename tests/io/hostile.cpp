// Checkpoints and JSON nobody vetted: NaN weights, sizes that overflow or would allocate
// gigabytes, forged architectures, files that are not regular files, hostile JSON, the C locale.
#include "test_files.hpp"
#include "test_util.hpp"

#include <clocale>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>

#include <sys/stat.h>

using namespace ewnet;
using namespace ewnet::test;
namespace fs = std::filesystem;

namespace {

Model<float> small(int classes) {
  Model<float> m(1);
  m.add(std::make_unique<ImageInput<float>>("input", 3, 6, 6));
  Conv2dOptions o;
  o.filters = 4;
  o.same = true;
  m.add(std::make_unique<Conv2d<float>>("conv", o));
  m.add(std::make_unique<BatchNorm<float>>("bn"));
  m.add(std::make_unique<GlobalAvgPool<float>>("gap"));
  m.add(std::make_unique<FullyConnected<float>>("fc", classes));
  m.add(std::make_unique<Softmax<float>>("softmax"));
  m.add(std::make_unique<Classification<float>>("output"));
  return m;
}

/// A file of raw bytes: an 8-byte header length, the header, then `data` bytes of zeros.
void write_raw(const std::string& path, const std::string& header, size_t data = 0) {
  std::ofstream out(path, std::ios::binary);
  const std::uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.put(char(n >> (8 * i)));
  out << header << std::string(data, '\0');
}

/// Rewrites the architecture in `path`'s metadata through `edit` (text replacement).
void edit_architecture(const std::string& path, const std::string& from, const std::string& to) {
  io::SafetensorsFile f = io::read_safetensors(path);
  std::string& a = f.metadata.at("ewnet.architecture");
  const size_t at = a.find(from);
  REQUIRE(at != std::string::npos);
  a.replace(at, from.size(), to);
  io::write_safetensors(path, f);
}
}  // namespace

TEST_CASE("a checkpoint holding NaN or Inf is refused naming the tensor", "[checkpoint][hostile]") {
  TempDir dir;
  Model<float> a = small(3);
  save_checkpoint(a, dir.file("good.safetensors"));
  for (float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity()}) {
    io::SafetensorsFile f = io::read_safetensors(dir.file("good.safetensors"));
    std::memcpy(f.tensors.at("fc.weight").bytes.data() + 4, &bad, 4);
    io::write_safetensors(dir.file("bad.safetensors"), f);
    Model<float> b = small(3);
    b.build();
    const auto before = b.layer_as<FullyConnected<float>>("fc").weight().value.clone();
    REQUIRE_THROWS_WITH(load_checkpoint(b, dir.file("bad.safetensors")),
                        Catch::Contains("bad.safetensors") && Catch::Contains("'fc.weight'") &&
                            Catch::Contains("element 1"));
    REQUIRE(bitwise_equal(b.layer_as<FullyConnected<float>>("fc").weight().value, before));
    REQUIRE_THROWS_WITH(model_from_checkpoint<float>(dir.file("bad.safetensors")), Catch::Contains("'fc.weight'"));
  }
}

TEST_CASE("sizes that overflow are refused, not wrapped", "[checkpoint][hostile]") {
  TempDir dir;
  // 2^33 * 2^31 elements wrap to 0 in 64 bits: with 0 bytes of data this passed as an empty tensor.
  write_raw(dir.file("wrap.safetensors"),
            R"({"x":{"dtype":"F32","shape":[8589934592,2147483648],"data_offsets":[0,0]}})");
  REQUIRE_THROWS_WITH(io::read_safetensors(dir.file("wrap.safetensors")),
                      Catch::Contains("wrap.safetensors") && Catch::Contains("'x'") && Catch::Contains("overflow"));
  // The element count fits but the byte count does not.
  write_raw(dir.file("bytes.safetensors"),
            R"({"x":{"dtype":"F64","shape":[4503599627370496, 1024],"data_offsets":[0,0]}})");
  REQUIRE_THROWS_WITH(io::read_safetensors(dir.file("bytes.safetensors")), Catch::Contains("overflow"));
  write_raw(dir.file("neg.safetensors"), R"({"x":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 8);
  REQUIRE_THROWS_AS(io::read_safetensors(dir.file("neg.safetensors")), IoError);
  // A header of a million-plus values is refused before it takes gigabytes.
  std::string big = R"({"__metadata__":{},"x":{"dtype":"F32","shape":[)";
  for (int i = 0; i < (1 << 20); ++i) big += "1,";
  big += R"(1],"data_offsets":[0,4]}})";
  write_raw(dir.file("big.safetensors"), big, 8);
  REQUIRE_THROWS_WITH(io::read_safetensors(dir.file("big.safetensors")), Catch::Contains("more than"));
  // Metadata that is not string to string names the file.
  write_raw(dir.file("meta.safetensors"), R"({"__metadata__":{"a":1}})");
  REQUIRE_THROWS_WITH(io::read_safetensors(dir.file("meta.safetensors")),
                      Catch::Contains("meta.safetensors") && Catch::Contains("__metadata__"));
}

TEST_CASE("a forged architecture is refused before the model is built", "[checkpoint][hostile]") {
  TempDir dir;
  Model<float> a = small(3);
  const std::string path = dir.file("forged.safetensors");
  SECTION("a classifier of 2^20 outputs: out of range") {
    save_checkpoint(a, path);
    edit_architecture(path, R"("outputs":3)", R"("outputs":1048576)");
    REQUIRE_THROWS_WITH(model_from_checkpoint<float>(path),
                        Catch::Contains("forged.safetensors") && Catch::Contains("1048576") &&
                            Catch::Contains("out of range"));
  }
  SECTION("a classifier within range but larger than the file's tensors: no allocation") {
    save_checkpoint(a, path);
    edit_architecture(path, R"("outputs":3)", R"("outputs":60000)");
    REQUIRE_THROWS_WITH(model_from_checkpoint<float>(path),
                        Catch::Contains("forged.safetensors") && Catch::Contains("does not match the tensors"));
  }
  SECTION("an input of 8192x8192") {
    save_checkpoint(a, path);
    edit_architecture(path, R"("size":[6,6,3])", R"("size":[8192,8192,3])");
    REQUIRE_THROWS_WITH(model_from_checkpoint<float>(path), Catch::Contains("input size 8192"));
  }
}

TEST_CASE("a checkpoint path must name a regular file", "[checkpoint][hostile]") {
  TempDir dir;
  Model<float> m = small(3);
  m.build();
  fs::create_directories(dir.path / "folder.safetensors");
  REQUIRE_THROWS_WITH(load_checkpoint(m, dir.file("folder.safetensors")),
                      Catch::Contains("folder.safetensors") && Catch::Contains("a directory"));
  REQUIRE(::mkfifo(dir.file("fifo.safetensors").c_str(), 0600) == 0);
  // Opening a FIFO for reading would block until a writer came: it must be refused first.
  REQUIRE_THROWS_WITH(model_from_checkpoint<float>(dir.file("fifo.safetensors")),
                      Catch::Contains("fifo.safetensors") && Catch::Contains("not a regular file"));
}

TEST_CASE("JSON: nesting and value count are bounded, surrogates are checked", "[json][hostile]") {
  REQUIRE_THROWS_WITH(json::parse(std::string(100000, '[')), Catch::Contains("nesting"));
  json::Limits small;
  small.max_values = 10;
  REQUIRE_NOTHROW(json::parse("[1,2,3,4,5,6,7,8,9]", "x", small));
  REQUIRE_THROWS_WITH(json::parse("[1,2,3,4,5,6,7,8,9,10]", "x", small), Catch::Contains("more than 10 values"));
  // Lone surrogates have no UTF-8 form.
  REQUIRE_THROWS_WITH(json::parse(R"("\ud800")"), Catch::Contains("lone high surrogate"));
  REQUIRE_THROWS_WITH(json::parse(R"("\ud800x")"), Catch::Contains("lone high surrogate"));
  REQUIRE_THROWS_WITH(json::parse(R"("\udc00")"), Catch::Contains("lone low surrogate"));
  REQUIRE_THROWS_WITH(json::parse(R"("\ud800\u0041")"), Catch::Contains("surrogate"));
  REQUIRE(json::parse(R"("\ud83d\ude00")").as_string() == "\xF0\x9F\x98\x80");
  // Numbers outside double's range are errors, not infinities.
  REQUIRE_THROWS_WITH(json::parse("1e400"), Catch::Contains("out of range"));
  REQUIRE(json::parse("-0.25e1").as_number() == -2.5);
}

TEST_CASE("JSON numbers do not depend on the C locale", "[json][hostile]") {
  // A locale whose decimal point is a comma, compiled into a temporary folder (glibc reads
  // LOCPATH at each setlocale), so the test runs where no such locale is installed.
  TempDir dir;
  const std::string command = "localedef -i de_DE -f UTF-8 \"" + dir.file("de_DE.UTF-8") + "\" >/dev/null 2>&1";
  REQUIRE(std::system(command.c_str()) == 0);
  const char* old_locpath = std::getenv("LOCPATH");
  const std::string saved_locpath = old_locpath ? old_locpath : "";
  ::setenv("LOCPATH", dir.path.c_str(), 1);
  REQUIRE(std::setlocale(LC_NUMERIC, "de_DE.UTF-8") != nullptr);
  char probe[16];
  std::snprintf(probe, sizeof probe, "%.1f", 0.5);
  const std::string seen = probe;
  json::Value v = json::Value::object();
  v["x"] = 0.5;
  v["y"] = 1.25e-7;
  const std::string text = v.dump();
  const double back = json::parse(R"({"x": 0.5})").at("x").as_number();
  std::setlocale(LC_NUMERIC, "C");
  if (old_locpath) ::setenv("LOCPATH", saved_locpath.c_str(), 1);
  else ::unsetenv("LOCPATH");
  REQUIRE(seen == "0,5");  // the locale is in effect
  REQUIRE(text == R"({"x":0.5,"y":1.25e-07})");
  REQUIRE(back == 0.5);
}
