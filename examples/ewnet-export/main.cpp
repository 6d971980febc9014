// ewnet-export: a checkpoint as an ONNX file for inference runtimes (see ewnet/io/onnx.hpp).
#include <cstdio>

#include <cli.hpp>
#include <ewnet/io/checkpoint.hpp>
#include <ewnet/io/onnx.hpp>

namespace {
const char* kUsage = "ewnet-export CHECKPOINT MODEL.onnx";
const char* kHelp =
    "Writes the model of CHECKPOINT as an ONNX graph (opset 13) in inference form: dropout removed, batch\n"
    "normalization with its running statistics, the input normalisation inside the graph, the softmax as\n"
    "output 'probabilities' and its input as output 'logits'. The input 'image' is float [N, 3, H, W],\n"
    "RGB 0..255, resized to the model's input size. The class names (ewnet.classes) and a calibrated\n"
    "rejection threshold (ewnet.rejection) go into the ONNX metadata.\n";
}  // namespace

int main(int argc, char** argv) {
  return cli::run("ewnet-export", kUsage, [&] {
    const cli::Args a(argc, argv, {}, {});
    if (a.help()) return cli::print_help(kUsage, kHelp);
    if (a.positional().size() != 2) throw cli::UsageError("give a checkpoint and the ONNX file to write");
    const std::string checkpoint = a.positional()[0], out = a.positional()[1];
    ewnet::Model<float> model = ewnet::model_from_checkpoint<float>(checkpoint);
    ewnet::OnnxExportOptions o;
    const auto meta = ewnet::read_checkpoint_metadata(checkpoint);
    if (auto it = meta.find("ewnet.classes"); it != meta.end()) {
      const ewnet::json::Value names = ewnet::json::parse(it->second, checkpoint);
      for (const auto& c : names.as_array()) o.class_names.push_back(c.as_string());
      if (int(o.class_names.size()) != model.classes()) o.class_names.clear();
    }
    if (auto it = meta.find("ewnet.rejection"); it != meta.end()) o.metadata["ewnet.rejection"] = it->second;
    ewnet::export_onnx(model, out, o);
    std::printf("%s: %d classes, input %dx%dx3, opset %d\n", out.c_str(), model.classes(), model.input_shape().h,
                model.input_shape().w, ewnet::kOnnxOpset);
    return 0;
  });
}
