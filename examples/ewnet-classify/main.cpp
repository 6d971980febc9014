// ewnet-classify: top-k classes of images with a trained checkpoint, as text, JSON or CSV; with
// rejection of unknown devices and Grad-CAM heat maps on request.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <unistd.h>

#include <cli.hpp>
#include <ewnet/data/dataset.hpp>
#include <ewnet/deploy/classifier.hpp>

namespace {
const char* kUsage = "ewnet-classify CHECKPOINT IMAGE_OR_FOLDER... [--top K] [--json] [--csv FILE] [--reject] "
                     "[--explain DIR] [--device cpu|cuda]";
const char* kHelp =
    "Classifies images with a checkpoint written by ewnet-train or ewnet-finetune. Folders are searched\n"
    "recursively for images. Each image is resized to the model's input size and normalised as in training.\n"
    "A file that is not a readable image is skipped with a warning.\n\n"
    "  --top K              classes shown for each image (default 3)\n"
    "  --json               one JSON document on stdout instead of text\n"
    "  --csv FILE           also write FILE: file,class,probability,top_k (top_k as class:probability;...)\n"
    "  --batch N            images per forward pass (default 32)\n"
    "  --reject             answer 'unknown' when the rejection score is below the checkpoint's calibrated\n"
    "                       threshold (see ewnet-calibrate)\n"
    "  --reject-score S     max_probability (default) or energy\n"
    "  --explain DIR        write DIR/<image name>.gradcam.png: a Grad-CAM heat map of the top class over\n"
    "                       the image (red: what the decision rested on)\n"
    "  --no-progress        no progress bar on stderr (shown when stderr is a terminal)\n"
    "  --device cpu|cuda    where to run (default cpu)\n";

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

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

void progress(size_t done, size_t total) {
  const int width = 30, filled = total ? int(width * done / total) : width;
  std::fprintf(stderr, "\rclassifying [%s%s] %zu/%zu ", std::string(size_t(filled), '#').c_str(),
               std::string(size_t(width - filled), '.').c_str(), done, total);
  if (done == total) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}
}  // namespace

int main(int argc, char** argv) {
  return cli::run("ewnet-classify", kUsage, [&] {
    const cli::Args a(argc, argv, {"top", "device", "batch", "csv", "reject-score", "explain"},
                      {"json", "reject", "no-progress"});
    if (a.help()) return cli::print_help(kUsage, kHelp);
    if (a.positional().size() < 2) throw cli::UsageError("give a checkpoint and at least one image or folder");
    const int top = a.get_int("top", 3), batch = a.get_int("batch", 32);
    const bool as_json = a.flag("json");
    const std::string checkpoint = a.positional()[0];
    ewnet::RejectionScore reject_score = ewnet::RejectionScore::max_probability;
    try {
      reject_score = ewnet::parse_rejection_score(a.get("reject-score", "max_probability"));
    } catch (const ewnet::Error& e) {
      throw cli::UsageError(std::string("--reject-score: ") + e.what());
    }

    ewnet::ClassifierOptions co;
    co.device = a.get_device();
    cli::report_cpu_engine();
    co.top_k = top;
    ewnet::Classifier classifier(checkpoint, co);
    if (!classifier.names_from_checkpoint())
      std::fprintf(stderr, "warning: %s names no classes; showing class_0 ... class_%d\n", checkpoint.c_str(),
                   classifier.classes() - 1);
    if (a.flag("reject")) classifier.set_reject(true, reject_score);
    const std::string explain_dir = a.get("explain", "");
    if (!explain_dir.empty()) std::filesystem::create_directories(explain_dir);
    std::ofstream csv;
    if (a.has("csv")) {
      csv.open(a.get("csv", ""));
      if (!csv) throw ewnet::IoError(a.get("csv", "") + ": cannot open for writing");
      csv << "file,class,probability,top_k\n";
    }
    const bool show_progress = !a.flag("no-progress") && ::isatty(STDERR_FILENO);

    const std::vector<std::string> files =
        collect(std::vector<std::string>(a.positional().begin() + 1, a.positional().end()));
    ewnet::json::Value results = ewnet::json::Value::array();
    std::set<std::string> heat_map_names;
    size_t skipped = 0, done = 0;
    for (size_t first = 0; first < files.size(); first += size_t(batch)) {
      std::vector<std::string> names;
      std::vector<ewnet::data::Image> images;
      for (size_t i = first; i < std::min(files.size(), first + size_t(batch)); ++i) {
        try {
          images.push_back(ewnet::data::load_image(files[i]));
          names.push_back(files[i]);
        } catch (const ewnet::Error& e) {
          std::fprintf(stderr, "%swarning: skipping bad image: %s\n", show_progress ? "\n" : "", e.what());
          ++skipped;
        }
      }
      if (images.empty()) continue;
      const std::vector<ewnet::ClassifierResult> rs = classifier.classify_batch(images);
      for (size_t i = 0; i < rs.size(); ++i, ++done) {
        const ewnet::ClassifierResult& r = rs[i];
        const std::string label = r.known ? r.top[0].name : "unknown";
        ewnet::json::Value preds = ewnet::json::Value::array();
        std::string line = names[i] + ":" + (r.known ? "" : " unknown (rejected);"), topk;
        for (size_t j = 0; j < r.top.size(); ++j) {
          ewnet::json::Value e = ewnet::json::Value::object();
          e["class"] = r.top[j].name;
          e["probability"] = double(r.top[j].probability);
          preds.push_back(e);
          char b[64];
          std::snprintf(b, sizeof b, " %.1f%%", 100.0 * r.top[j].probability);
          line += (j ? ", " : " ") + r.top[j].name + b;
          std::snprintf(b, sizeof b, ":%.6f", r.top[j].probability);
          topk += (j ? ";" : "") + r.top[j].name + b;
        }
        if (as_json) {
          ewnet::json::Value o = ewnet::json::Value::object();
          o["file"] = names[i];
          o["top"] = preds;
          if (a.flag("reject")) {
            o["known"] = r.known;
            o["class"] = label;
            o["max_probability"] = double(r.max_probability);
            o["energy_score"] = double(r.energy_score);
          }
          results.push_back(o);
        } else {
          std::printf("%s\n", line.c_str());
        }
        if (csv.is_open()) {
          char b[32];
          std::snprintf(b, sizeof b, "%.6f", r.top[0].probability);
          csv << csv_field(names[i]) << ',' << csv_field(label) << ',' << b << ',' << csv_field(topk) << '\n';
        }
        if (!explain_dir.empty()) {
          const ewnet::HeatMap m = classifier.explain(images[i], r.top[0].index);
          std::string stem = std::filesystem::path(names[i]).stem().string(), name = stem + ".gradcam.png";
          for (int n = 2; heat_map_names.count(name); ++n) name = stem + "-" + std::to_string(n) + ".gradcam.png";
          heat_map_names.insert(name);
          ewnet::data::write_png((std::filesystem::path(explain_dir) / name).string(),
                                 ewnet::overlay_heat_map(images[i], m));
        }
      }
      if (show_progress) progress(done + skipped, files.size());
    }
    if (csv.is_open()) {
      csv.close();
      if (!csv) throw ewnet::IoError(a.get("csv", "") + ": write failed");
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
