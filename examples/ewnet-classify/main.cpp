// ewnet-classify: top-k classes of images with a trained checkpoint, as text or JSON.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <numeric>

#include <cli.hpp>
#include <ewnet/data/augment.hpp>
#include <ewnet/data/dataset.hpp>
#include <ewnet/data/image.hpp>
#include <ewnet/model.hpp>

namespace {
const char* kUsage = "ewnet-classify CHECKPOINT IMAGE_OR_FOLDER... [--top K] [--json] [--device cpu|cuda]";
const char* kHelp =
    "Classifies images with a checkpoint written by ewnet-train or ewnet-finetune. Folders are searched\n"
    "recursively for images. Each image is resized to the model's input size and normalised as in training.\n"
    "A file that is not a readable image is skipped with a warning.\n\n"
    "  --top K            classes shown for each image (default 3)\n"
    "  --json             one JSON document on stdout instead of text\n"
    "  --batch N          images per forward pass (default 32)\n"
    "  --device cpu|cuda  where to run (default cpu)\n";

std::vector<std::string> collect(const std::vector<std::string>& args) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  for (const std::string& a : args) {
    if (fs::is_directory(a)) {
      std::vector<std::string> found;
      for (const auto& e : fs::recursive_directory_iterator(a)) {
        // Hidden files (macOS's "._x.jpg" resource forks) are not images of the data.
        const std::string name = e.path().filename().string();
        if (e.is_regular_file() && name[0] != '.' && ewnet::data::has_image_extension(e.path()))
          found.push_back(e.path().string());
      }
      std::sort(found.begin(), found.end());
      if (found.empty()) std::fprintf(stderr, "warning: %s: no image files in this folder\n", a.c_str());
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::exists(a)) {
      files.push_back(a);
    } else {
      throw ewnet::IoError(a + ": no such file or folder");
    }
  }
  return files;
}
}  // namespace

int main(int argc, char** argv) {
  return cli::run("ewnet-classify", kUsage, [&] {
    const cli::Args a(argc, argv, {"top", "device", "batch"}, {"json"});
    if (a.help()) return cli::print_help(kUsage, kHelp);
    if (a.positional().size() < 2) throw cli::UsageError("give a checkpoint and at least one image or folder");
    const int top = a.get_int("top", 3), batch = a.get_int("batch", 32);
    const bool as_json = a.flag("json");
    const ewnet::Device device = a.get_device();
    const std::string checkpoint = a.positional()[0];

    ewnet::Model<float> model = ewnet::model_from_checkpoint<float>(checkpoint);
    model.to(device);
    const int k = model.classes(), size = model.input_shape().h;
    std::vector<std::string> classes;
    const auto meta = ewnet::read_checkpoint_metadata(checkpoint);
    if (auto it = meta.find("ewnet.classes"); it != meta.end()) {
      const ewnet::json::Value names = ewnet::json::parse(it->second, checkpoint);  // outlives the loop
      for (const auto& c : names.as_array()) classes.push_back(c.as_string());
    }
    if (!classes.empty() && int(classes.size()) != k)
      throw ewnet::IoError(checkpoint + ": its metadata names " + std::to_string(classes.size()) +
                           " classes but the model has " + std::to_string(k) + " outputs");
    if (classes.empty()) {
      std::fprintf(stderr, "warning: %s names no classes; showing class_0 ... class_%d\n", checkpoint.c_str(), k - 1);
      for (int c = 0; c < k; ++c) classes.push_back("class_" + std::to_string(c));
    }

    const std::vector<std::string> files =
        collect(std::vector<std::string>(a.positional().begin() + 1, a.positional().end()));
    ewnet::json::Value results = ewnet::json::Value::array();
    size_t skipped = 0, done = 0;
    for (size_t first = 0; first < files.size(); first += size_t(batch)) {
      std::vector<std::string> names;
      std::vector<ewnet::data::Image> images;
      for (size_t i = first; i < std::min(files.size(), first + size_t(batch)); ++i) {
        try {
          images.push_back(ewnet::data::resize_bilinear(ewnet::data::load_image(files[i]), size, size));
          names.push_back(files[i]);
        } catch (const ewnet::Error& e) {
          std::fprintf(stderr, "warning: skipping bad image: %s\n", e.what());
          ++skipped;
        }
      }
      if (images.empty()) continue;
      ewnet::Tensor<float> x = ewnet::Tensor<float>::empty({int(images.size()), 3, size, size});
      for (size_t i = 0; i < images.size(); ++i)
        ewnet::data::image_to_chw(images[i], x.data() + i * size_t(3 * size * size));
      const std::vector<float> p =
          model.forward(device == ewnet::Device::cpu ? x : x.to(device), ewnet::Mode::inference).to_vector();
      for (size_t i = 0; i < p.size(); ++i)
        if (!std::isfinite(p[i]))
          throw ewnet::Error(names[i / size_t(k)] + ": the model's output is not a number (" + std::to_string(p[i]) +
                             "); " + checkpoint + " is unusable (trained into divergence?)");
      for (size_t i = 0; i < images.size(); ++i, ++done) {
        std::vector<int> order(static_cast<size_t>(k));
        std::iota(order.begin(), order.end(), 0);
        const float* pi = p.data() + i * size_t(k);
        std::stable_sort(order.begin(), order.end(), [&](int l, int r) { return pi[l] > pi[r]; });
        ewnet::json::Value preds = ewnet::json::Value::array();
        std::string line = names[i] + ":";
        for (int j = 0; j < std::min(top, k); ++j) {
          ewnet::json::Value e = ewnet::json::Value::object();
          e["class"] = classes[size_t(order[size_t(j)])];
          e["probability"] = double(pi[order[size_t(j)]]);
          preds.push_back(e);
          char b[64];
          std::snprintf(b, sizeof b, " %.1f%%", 100.0 * pi[order[size_t(j)]]);
          line += (j ? ", " : " ") + classes[size_t(order[size_t(j)])] + b;
        }
        if (as_json) {
          ewnet::json::Value r = ewnet::json::Value::object();
          r["file"] = names[i];
          r["top"] = preds;
          results.push_back(r);
        } else {
          std::printf("%s\n", line.c_str());
        }
      }
    }
    if (as_json) {
      ewnet::json::Value doc = ewnet::json::Value::object();
      doc["checkpoint"] = checkpoint;
      doc["results"] = results;
      doc["skipped_files"] = skipped;
      std::printf("%s\n", doc.dump(2).c_str());
    }
    if (skipped) std::fprintf(stderr, "%zu of %zu files skipped\n", skipped, files.size());
    if (done == 0)
      std::fprintf(stderr, "ewnet-classify: error: %s\n",
                   files.empty() ? "no image files found in what was given" : "no readable image among the files");
    return done > 0 ? 0 : 1;
  });
}
