// Writes the cases tests/deploy/onnx_check.py runs in ONNX Runtime: for each model an ONNX file,
// a batch of images and ewnet's CPU probabilities and logits for it.
//   onnx_cases DIR  ->  DIR/<case>/{model.onnx, case.json, input.f32, probabilities.f32, logits.f32}
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <ewnet/data/augment.hpp>
#include <ewnet/io/onnx.hpp>
#include <ewnet/models/build.hpp>

#include "deploy_util.hpp"

namespace {
void write_floats(const std::filesystem::path& p, const std::vector<float>& v) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * sizeof(float)));
  if (!f) throw ewnet::IoError(p.string() + ": write failed");
}

/// ewnet's cross-channel normalization on random [2, 7, 3, 3] input for windows 3 to 6, for the
/// check of ONNX's LRN window placement (ONNX Runtime refuses even windows: the check evaluates
/// the operator's documented formula).
void write_lrn_case(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  ewnet::Random rng(17);
  std::vector<float> x(2 * 7 * 3 * 3);
  for (float& v : x) v = float(rng.uniform(-2, 2));
  ewnet::json::Value windows = ewnet::json::Value::array();
  for (int n = 3; n <= 6; ++n) {
    ewnet::Model<float> m;
    m.add(std::make_unique<ewnet::ImageInput<float>>("input", 7, 3, 3));
    ewnet::CrossChannelNormParams p;
    p.window = n;
    p.alpha = 0.8;
    p.beta = 0.75;
    p.k = 1.5;
    m.add(std::make_unique<ewnet::CrossChannelNorm<float>>("lrn", p));
    write_floats(dir / ("output_" + std::to_string(n) + ".f32"),
                 m.forward(ewnet::Tensor<float>::from_vector({2, 7, 3, 3}, x), ewnet::Mode::inference).to_vector());
    windows.push_back(n);
  }
  write_floats(dir / "input.f32", x);
  ewnet::json::Value c = ewnet::json::Value::object();
  c["kind"] = "lrn";
  c["input_shape"] = ewnet::json::Value::Array{2, 7, 3, 3};
  c["windows"] = windows;
  c["alpha"] = 0.8;
  c["beta"] = 0.75;
  c["k"] = 1.5;
  std::ofstream(dir / "case.json") << c.dump(2) << "\n";
}

void write_case(const std::filesystem::path& dir, ewnet::Model<float>& model, int batch, std::uint64_t seed) {
  std::filesystem::create_directories(dir);
  const ewnet::Shape s = model.input_shape();
  ewnet::Tensor<float> x = ewnet::Tensor<float>::empty({batch, 3, s.h, s.w});
  for (int i = 0; i < batch; ++i)
    ewnet::data::image_to_chw(ewnet::test::random_image(s.w, s.h, seed + std::uint64_t(i)),
                              x.data() + size_t(i) * size_t(3 * s.h * s.w));
  const std::vector<float> p = model.forward(x, ewnet::Mode::inference).to_vector();
  const std::string pred = model.prediction_layer();
  const std::vector<float> z = model.activation(model.inputs_of(pred)[0]).to_vector();
  ewnet::OnnxExportOptions o;
  for (int c = 0; c < model.classes(); ++c) o.class_names.push_back("device_" + std::to_string(c));
  ewnet::export_onnx(model, (dir / "model.onnx").string(), o);
  write_floats(dir / "input.f32", x.to_vector());
  write_floats(dir / "probabilities.f32", p);
  write_floats(dir / "logits.f32", z);
  ewnet::json::Value c = ewnet::json::Value::object();
  c["input_shape"] = ewnet::json::Value::Array{batch, 3, s.h, s.w};
  c["kind"] = "model";
  c["classes"] = model.classes();
  std::ofstream(dir / "case.json") << c.dump(2) << "\n";
}
}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: onnx_cases DIR\n");
    return 2;
  }
  try {
    const std::filesystem::path dir = argv[1];
    ewnet::Model<float> every = ewnet::test::every_layer_model();
    write_case(dir / "every_layer", every, 4, 10);
    write_lrn_case(dir / "lrn_window");
    // The paper's 67-layer model at 32x32 (its smallest input), with a normalisation as training sets one.
    ewnet::Model<float> paper = ewnet::build_paper_model<float>({4, 32, 7});
    paper.input_layer().set_normalization({125.f, 120.f, 110.f}, {64.f, 60.f, 66.f});
    write_case(dir / "paper_model", paper, 3, 20);
    // The torchvision networks: GoogLeNet's ceil-mode max pools (with its auxiliary classifiers,
    // which the export leaves out), Inception-v3's 1x7 and 7x1 convolutions, ResNet-18; batch
    // norms with running statistics away from their initial values.
    for (const auto& [name, size] : {std::pair<std::string, int>{"googlenet", 64}, {"inception-v3", 75}, {"resnet18", 64}}) {
      ewnet::ModelOptions mo;
      mo.auxiliary_classifiers = name == "googlenet";
      ewnet::Model<float> net = ewnet::build_model<float>(name, 5, size, 3, mo);
      ewnet::Random rng(5);
      for (auto& [layer, st] : net.state_tensors()) {
        if (st.name != "running_mean" && st.name != "running_var") continue;
        std::vector<float> v = st.tensor->to_vector();
        for (float& e : v) e = st.name == "running_mean" ? float(rng.uniform(-0.2, 0.2)) : float(rng.uniform(0.5, 1.5));
        st.tensor->copy_from(ewnet::Tensor<float>::from_vector(st.tensor->shape(), v));
      }
      net.input_layer().set_normalization({125.f, 120.f, 110.f}, {64.f, 60.f, 66.f});
      write_case(dir / name, net, 2, 30);
    }
    std::printf("wrote ONNX cases to %s\n", dir.string().c_str());
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "onnx_cases: %s\n", e.what());
    return 1;
  }
}
