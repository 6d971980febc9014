// ewnet-export: a checkpoint as an ONNX file for inference runtimes (see ewnet/io/onnx.hpp).
#include <cstdio>

#include <cli.hpp>
#include <ewnet/deploy/classifier.hpp>
#include <ewnet/deploy/rejection.hpp>
#include <ewnet/io/checkpoint.hpp>
#include <ewnet/io/files.hpp>
#include <ewnet/io/onnx.hpp>

namespace {
const char* kUsage = "ewnet-export CHECKPOINT MODEL.onnx";
const char* kHelp =
    "Writes the model of CHECKPOINT as an ONNX graph (opset 13) in inference form: dropout removed, batch\n"
    "normalization with its running statistics, the input normalisation inside the graph, the softmax as\n"
    "output 'probabilities' and its input as output 'logits'. The input 'image' is float [N, 3, H, W],\n"
    "RGB 0..255, resized to the model's input size in the geometry the checkpoint records (ewnet.resize:\n"
    "squash or crop, see docs/deployment.md). The class names (ewnet.classes), the geometry and a calibrated\n"
    "rejection threshold (ewnet.rejection) go into the ONNX metadata; a class list of the wrong length or a\n"
    "threshold that is not a finite number is refused, not copied. MODEL.onnx may not be the checkpoint.\n";
}  // namespace

int main(int argc, char** argv) {
  return cli::run("ewnet-export", kUsage, [&] {
    const cli::Args a(argc, argv, {}, {});
    if (a.help()) return cli::print_help(kUsage, kHelp);
    if (a.positional().size() != 2) throw cli::UsageError("give a checkpoint and the ONNX file to write");
    const std::string checkpoint = a.positional()[0], out = a.positional()[1];
    ewnet::io::check_output_file(out, {checkpoint}, "MODEL.onnx");
    // Read once: the graph and its metadata come from the same bytes.
    const ewnet::CheckpointFile ckpt = ewnet::read_checkpoint(checkpoint);
    ewnet::Model<float> model = ewnet::model_from_checkpoint<float>(ckpt);
    ewnet::OnnxExportOptions o;
    o.class_names = ewnet::checkpoint_class_names(ckpt, model.classes());
    o.resize = ewnet::checkpoint_resize_mode(ckpt);
    if (const std::string* r = ckpt.find(ewnet::kRejectionMetadataKey)) {
      ewnet::RejectionThresholds::from_metadata(*r, checkpoint);  // refuses null, NaN or a missing member
      o.metadata[ewnet::kRejectionMetadataKey] = *r;
    }
    ewnet::export_onnx(model, out, o);
    std::printf("%s: %d classes, input %dx%dx3, opset %d\n", out.c_str(), model.classes(), model.input_shape().h,
                model.input_shape().w, ewnet::kOnnxOpset);
    return 0;
  });
}
