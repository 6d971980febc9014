// ewnet-classify: top-k classes of images with a trained checkpoint, as text, JSON or CSV; with
// rejection of unknown devices and Grad-CAM heat maps on request.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <set>
#include <unistd.h>

#include <cli.hpp>
#include <ewnet/data/dataset.hpp>
#include <ewnet/deploy/classifier.hpp>
#include <ewnet/io/files.hpp>
#include <ewnet/text.hpp>

namespace {
const char* kUsage = "ewnet-classify CHECKPOINT IMAGE_OR_FOLDER... [--top K] [--json] [--csv FILE] [--reject] "
                     "[--explain DIR] [--device cpu|cuda]";
const char* kHelp =
    "Classifies images with a checkpoint written by ewnet-train or ewnet-finetune. Folders are searched\n"
    "recursively for images (hidden files and folders, '.x', are passed over, as training does). Each image\n"
    "is resized to the model's input as soon as it is decoded, in the geometry the checkpoint records\n"
    "(squash or crop), and normalised as in training. A file that is not a readable image is skipped with a\n"
    "warning.\n\n"
    "  --top K              classes shown for each image (default 3)\n"
    "  --json               one JSON document on stdout instead of text\n"
    "  --csv FILE           also write FILE: file,class,probability,top_k (top_k as class:probability;...);\n"
    "                       with --reject a column 'rejected' too, and an empty class where the image was\n"
    "                       rejected. FILE may not be one of the inputs.\n"
    "  --batch N            images per forward pass (default 32; fewer when the model's activations for N\n"
    "                       images would not fit in the memory available)\n"
    "  --reject             answer 'unknown (rejected)' when the rejection score is below the checkpoint's\n"
    "                       calibrated threshold (see ewnet-calibrate)\n"
    "  --reject-score S     max_probability (default) or energy\n"
    "  --explain DIR        write DIR/<image name>.gradcam.png: a Grad-CAM heat map of the top class over\n"
    "                       what the model saw (red: what the decision rested on)\n"
    "  --no-progress        no progress bar on stderr (shown when stderr is a terminal)\n"
    "  --device cpu|cuda    where to run (default cpu)\n";

/// Every image file under the arguments: files as given, folders searched at any depth, hidden
/// entries ('.x': macOS's "._x.jpg", ".thumbs/") passed over as training's scan passes them over.
std::vector<std::string> collect(const std::vector<std::string>& args) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  for (const std::string& a : args) {
    std::error_code ec;
    if (fs::is_directory(a, ec)) {
      std::vector<std::string> found;
      fs::recursive_directory_iterator it(a, fs::directory_options::skip_permission_denied, ec), end;
      for (; !ec && it != end; it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (name.empty() || name[0] == '.') {
          if (it->is_directory(ec)) it.disable_recursion_pending();
          continue;
        }
        if (it->is_regular_file(ec) && ewnet::data::has_image_extension(it->path())) found.push_back(it->path().string());
      }
      if (ec) std::fprintf(stderr, "warning: %s: cannot search all of it (%s)\n", a.c_str(), ec.message().c_str());
      std::sort(found.begin(), found.end());
      if (found.empty()) std::fprintf(stderr, "warning: %s: no image files in this folder\n", a.c_str());
      files.insert(files.end(), found.begin(), found.end());
    } else if (fs::exists(a, ec)) {
      files.push_back(a);
    } else {
      throw ewnet::IoError(a + ": no such file or folder");
    }
  }
  return files;
}

void progress(size_t done, size_t total) {
  const int width = 30, filled = total ? int(width * done / total) : width;
  std::fprintf(stderr, "\rclassifying [%s%s] %zu/%zu ", std::string(size_t(filled), '#').c_str(),
               std::string(size_t(width - filled), '.').c_str(), done, total);
  if (done == total) std::fprintf(stderr, "\n");
  std::fflush(stderr);
}

/// DIR/<stem>.gradcam.png, or <stem>-2... when taken or when it would replace an input; the stem
/// cut (on a character boundary) so the name fits the file system's 255 bytes.
std::string heat_map_path(const std::string& dir, const std::string& image, std::set<std::string>& taken,
                          const std::set<std::string>& inputs) {
  namespace fs = std::filesystem;
  const std::string stem = ewnet::text::utf8_prefix(fs::path(image).stem().string(), 255 - 24);
  for (int n = 1;; ++n) {
    const std::string name = stem + (n > 1 ? "-" + std::to_string(n) : std::string()) + ".gradcam.png";
    const std::string path = (fs::path(dir) / name).string();
    if (taken.count(name) || inputs.count(ewnet::io::resolved_path(path).string())) continue;
    taken.insert(name);
    return path;
  }
}
}  // namespace

int main(int argc, char** argv) {
  return cli::run("ewnet-classify", kUsage, [&] {
    const cli::Args a(argc, argv, {"top", "device", "batch", "csv", "reject-score", "explain"},
                      {"json", "reject", "no-progress"});
    if (a.help()) return cli::print_help(kUsage, kHelp);
    if (a.positional().size() < 2) throw cli::UsageError("give a checkpoint and at least one image or folder");
    const int top = a.get_int("top", 3), batch = a.get_int("batch", 32);
    const bool as_json = a.flag("json"), reject = a.flag("reject");
    const std::string checkpoint = a.positional()[0];
    ewnet::RejectionScore reject_score = ewnet::RejectionScore::max_probability;
    try {
      reject_score = ewnet::parse_rejection_score(a.get("reject-score", "max_probability"));
    } catch (const ewnet::Error& e) {
      throw cli::UsageError(std::string("--reject-score: ") + e.what());
    }
    const std::vector<std::string> given(a.positional().begin() + 1, a.positional().end());
    const std::vector<std::string> files = collect(given);
    // What this run reads: no output may replace any of it.
    std::vector<std::string> inputs = {checkpoint};
    inputs.insert(inputs.end(), given.begin(), given.end());
    inputs.insert(inputs.end(), files.begin(), files.end());
    std::set<std::string> input_paths;
    for (const std::string& f : inputs) input_paths.insert(ewnet::io::resolved_path(f).string());
    const std::string csv_path = a.get("csv", "");
    if (a.has("csv")) ewnet::io::check_output_file(csv_path, inputs, "--csv");

    ewnet::ClassifierOptions co;
    co.device = a.get_device();
    cli::report_cpu_engine();
    co.top_k = top;
    ewnet::Classifier classifier(checkpoint, co);
    if (!classifier.names_from_checkpoint())
      std::fprintf(stderr, "warning: %s names no classes; showing class_0 ... class_%d\n", checkpoint.c_str(),
                   classifier.classes() - 1);
    if (reject) classifier.set_reject(true, reject_score);
    const int per_pass = std::min(batch, classifier.batch_limit());
    if (per_pass < batch)
      std::fprintf(stderr, "%s: %d images a pass instead of %d: more would not fit in the memory available\n",
                   checkpoint.c_str(), per_pass, batch);
    const std::string explain_dir = a.get("explain", "");
    if (!explain_dir.empty()) std::filesystem::create_directories(explain_dir);
    std::unique_ptr<ewnet::io::AtomicFile> csv;
    if (a.has("csv")) {
      csv = std::make_unique<ewnet::io::AtomicFile>(csv_path);
      csv->write(reject ? "file,class,probability,top_k,rejected\n" : "file,class,probability,top_k\n");
    }
    const bool show_progress = !a.flag("no-progress") && ::isatty(STDERR_FILENO);

    ewnet::json::Value results = ewnet::json::Value::array();
    std::set<std::string> heat_map_names;
    size_t skipped = 0, done = 0;
    for (size_t first = 0; first < files.size(); first += size_t(per_pass)) {
      std::vector<std::string> names;
      std::vector<ewnet::data::Image> inputs_now;  // each decoded and resized at once: no full photo is kept
      for (size_t i = first; i < std::min(files.size(), first + size_t(per_pass)); ++i) {
        try {
          inputs_now.push_back(classifier.load(files[i]));
          names.push_back(files[i]);
        } catch (const ewnet::Error& e) {
          std::fprintf(stderr, "%swarning: skipping bad image: %s\n", show_progress ? "\n" : "", e.what());
          ++skipped;
        }
      }
      if (inputs_now.empty()) continue;
      const std::vector<ewnet::ClassifierResult> rs = classifier.classify_prepared(inputs_now);
      for (size_t i = 0; i < rs.size(); ++i, ++done) {
        const ewnet::ClassifierResult& r = rs[i];
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
          if (reject) {
            // A rejection has no class (null), whatever the classes are named: a class called
            // "unknown" is a class, with rejected false.
            o["known"] = r.known;
            o["rejected"] = !r.known;
            o["class"] = r.known ? ewnet::json::Value(r.top[0].name) : ewnet::json::Value();
            o["max_probability"] = double(r.max_probability);
            o["energy_score"] = double(r.energy_score);
          }
          results.push_back(o);
        } else {
          std::printf("%s\n", line.c_str());
        }
        if (csv) {
          char b[32];
          std::snprintf(b, sizeof b, "%.6f", r.top[0].probability);
          std::string row = ewnet::text::csv_field(names[i]) + ',' +
                            ewnet::text::csv_field(r.known ? r.top[0].name : std::string()) + ',' + b + ',' +
                            ewnet::text::csv_field(topk);
          if (reject) row += r.known ? ",false" : ",true";
          csv->write(row + '\n');
        }
        if (!explain_dir.empty()) {
          const ewnet::HeatMap m = classifier.explain_prepared(inputs_now[i], r.top[0].index);
          // Over the whole photo when the model saw all of it (squash, decoded again: one at a time);
          // over what it saw otherwise (the central crop).
          const ewnet::data::Image base = classifier.resize_mode() == ewnet::data::ResizeMode::squash
                                              ? ewnet::data::load_image(names[i])
                                              : inputs_now[i];
          ewnet::data::write_png(heat_map_path(explain_dir, names[i], heat_map_names, input_paths),
                                 ewnet::overlay_heat_map(base, m));
        }
      }
      if (show_progress) progress(done + skipped, files.size());
    }
    if (csv) csv->commit();
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
