// The structure of the exported ONNX graph (ONNX Runtime checks the numbers: onnx_check.py).
#include <catch2/catch.hpp>

#include <fstream>
#include <set>

#include <ewnet/io/onnx.hpp>

#include "deploy_util.hpp"

using namespace ewnet;

TEST_CASE("ONNX export writes every layer type in inference form with the class names", "[onnx]") {
  Model<float> m = test::every_layer_model();
  const auto dir = test::fresh_dir("ewnet_test_onnx");
  const std::string path = (dir / "every.onnx").string();
  OnnxExportOptions o;
  o.class_names = {"a", "b", "c", "d", "e"};
  o.metadata["ewnet.rejection"] = "{}";
  export_onnx(m, path, o);

  onnx::ModelProto p;
  std::ifstream f(path, std::ios::binary);
  REQUIRE(p.ParseFromIstream(&f));
  REQUIRE(p.opset_import_size() == 1);
  REQUIRE(p.opset_import(0).version() == kOnnxOpset);
  std::multiset<std::string> ops;
  for (const auto& n : p.graph().node()) ops.insert(n.op_type());
  for (const char* op : {"Sub", "Mul", "Conv", "BatchNormalization", "Relu", "LRN", "MaxPool", "AveragePool",
                         "Concat", "Sum", "GlobalAveragePool", "Gemm", "Softmax", "Flatten"})
    REQUIRE(ops.count(op) > 0);
  REQUIRE(ops.count("Dropout") == 0);
  // The odd window as LRN; the even one (which ONNX Runtime's LRN refuses) in elementary operators.
  REQUIRE(ops.count("LRN") == 1);
  REQUIRE(ops.count("Pow") == 1);
  REQUIRE(p.graph().input_size() == 1);
  REQUIRE(p.graph().input(0).name() == "image");
  REQUIRE(p.graph().output_size() == 2);
  REQUIRE(p.graph().output(0).name() == "probabilities");
  std::map<std::string, std::string> meta;
  for (const auto& e : p.metadata_props()) meta[e.key()] = e.value();
  REQUIRE(meta.at("ewnet.classes") == R"(["a","b","c","d","e"])");
  REQUIRE(meta.count("ewnet.rejection") == 1);

  // On request, LRN for the even window too (ONNX's specification places it as ewnet does).
  o.even_lrn_as_elementary_ops = false;
  const onnx::ModelProto q = to_onnx(m, o);
  int lrn = 0;
  for (const auto& n : q.graph().node())
    if (n.op_type() == "LRN") {
      ++lrn;
      for (const auto& a : n.attribute()) {
        if (n.name() == "lrn_even" && a.name() == "size") REQUIRE(a.i() == 4);
        if (n.name() == "lrn_even" && a.name() == "bias") REQUIRE(a.f() == Approx(1.5));
      }
    }
  REQUIRE(lrn == 2);

  o.class_names = {"too", "few"};
  REQUIRE_THROWS_WITH(export_onnx(m, path, o), Catch::Contains("2 class names for 5 classes"));
  REQUIRE_THROWS_WITH(export_onnx(m, (dir / "no" / "such" / "dir.onnx").string()), Catch::Contains("dir.onnx"));
}
