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
#include <image_files.hpp>
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
std::vector<std::string> image_files(const std::vector<std::string>& args) {
  namespace fs = std::filesystem;
  std::vector<std::string> files;
  for (const std::string& a : args) {
    std::error_code ec;
    if (fs::is_directory(a, ec)) {
      const std::vector<std::string> found = cli::image_files_under(a, ec);
      if (ec) std::fprintf(stderr, "warning: %s: cannot search all of it (%s)\n", a.c_str(), ec.message().c_str());
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

/// What the command line asks for. The device is read where the model is loaded, after the
/// inputs are listed, so a run's first complaint is the one it always was.
struct Request {
  std::string checkpoint;
  std::vector<std::string> given;  // image files and folders, as given
  int top = 3, batch = 32;
  bool as_json = false, reject = false, show_progress = false;
  ewnet::RejectionScore reject_score = ewnet::RejectionScore::max_probability;
  bool csv = false;
  std::string csv_path, explain_dir;  // explain_dir empty: no heat maps
};

Request parse_request(const cli::Args& a) {
  if (a.positional().size() < 2) throw cli::UsageError("give a checkpoint and at least one image or folder");
  Request r;
  r.top = a.get_int("top", 3);
  r.batch = a.get_int("batch", 32);
  r.as_json = a.flag("json");
  r.reject = a.flag("reject");
  r.checkpoint = a.positional()[0];
  try {
    r.reject_score = ewnet::parse_rejection_score(a.get("reject-score", "max_probability"));
  } catch (const ewnet::Error& e) {
    throw cli::UsageError(std::string("--reject-score: ") + e.what());
  }
  r.given.assign(a.positional().begin() + 1, a.positional().end());
  r.csv = a.has("csv");
  r.csv_path = a.get("csv", "");
  r.explain_dir = a.get("explain", "");
  r.show_progress = !a.flag("no-progress") && ::isatty(STDERR_FILENO);
  return r;
}

/// The images to classify, and what this run reads (the checkpoint, the arguments, the images):
/// no output may replace any of it.
struct Inputs {
  std::vector<std::string> files;
  std::set<std::string> read;  // resolved paths
};

Inputs list_inputs(const Request& req) {
  Inputs in;
  in.files = image_files(req.given);
  std::vector<std::string> read = {req.checkpoint};
  read.insert(read.end(), req.given.begin(), req.given.end());
  read.insert(read.end(), in.files.begin(), in.files.end());
  for (const std::string& f : read) in.read.insert(ewnet::io::resolved_path(f).string());
  if (req.csv) ewnet::io::check_output_file(req.csv_path, read, "--csv");
  return in;
}

ewnet::ClassifierOptions classifier_options(const cli::Args& a, int top) {
  ewnet::ClassifierOptions co;
  co.device = a.get_device();
  cli::report_cpu_engine();
  co.top_k = top;
  return co;
}

/// Sets up rejection and returns the images a forward pass takes, saying where either differs
/// from what was asked.
int prepare(ewnet::Classifier& classifier, const Request& req) {
  if (!classifier.names_from_checkpoint())
    std::fprintf(stderr, "warning: %s names no classes; showing class_0 ... class_%d\n", req.checkpoint.c_str(),
                 classifier.classes() - 1);
  if (req.reject) classifier.set_reject(true, req.reject_score);
  const int per_pass = std::min(req.batch, classifier.batch_limit());
  if (per_pass < req.batch)
    std::fprintf(stderr, "%s: %d images a pass instead of %d: more would not fit in the memory available\n",
                 req.checkpoint.c_str(), per_pass, req.batch);
  return per_pass;
}

/// "file: class 97.5%, other 1.2%", with " unknown (rejected);" after the colon for a rejection.
std::string text_line(const std::string& file, const ewnet::ClassifierResult& r) {
  std::string line = file + ":" + (r.known ? "" : " unknown (rejected);");
  for (size_t j = 0; j < r.top.size(); ++j) {
    char b[64];
    std::snprintf(b, sizeof b, " %.1f%%", 100.0 * r.top[j].probability);
    line += (j ? ", " : " ") + r.top[j].name + b;
  }
  return line;
}

ewnet::json::Value json_result(const std::string& file, const ewnet::ClassifierResult& r, bool reject) {
  ewnet::json::Value preds = ewnet::json::Value::array();
  for (const auto& t : r.top) {
    ewnet::json::Value e = ewnet::json::Value::object();
    e["class"] = t.name;
    e["probability"] = double(t.probability);
    preds.push_back(e);
  }
  ewnet::json::Value o = ewnet::json::Value::object();
  o["file"] = file;
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
  return o;
}

/// file,class,probability,top_k[,rejected]; top_k as class:probability;...
std::string csv_row(const std::string& file, const ewnet::ClassifierResult& r, bool reject) {
  std::string topk;
  for (size_t j = 0; j < r.top.size(); ++j) {
    char b[64];
    std::snprintf(b, sizeof b, ":%.6f", r.top[j].probability);
    topk += (j ? ";" : "") + r.top[j].name + b;
  }
  char b[32];
  std::snprintf(b, sizeof b, "%.6f", r.top[0].probability);
  std::string row = ewnet::text::csv_field(file) + ',' + ewnet::text::csv_field(r.known ? r.top[0].name : std::string()) +
                    ',' + b + ',' + ewnet::text::csv_field(topk);
  if (reject) row += r.known ? ",false" : ",true";
  return row + '\n';
}

/// Where each result goes: a text line or a JSON entry on stdout, a CSV row, a heat map.
class ResultOutputs {
 public:
  ResultOutputs(const Request& req, const std::set<std::string>& inputs, ewnet::Classifier& classifier)
      : req_(req), inputs_(inputs), classifier_(classifier) {
    if (!req.explain_dir.empty()) std::filesystem::create_directories(req.explain_dir);
    if (req.csv) {
      csv_ = std::make_unique<ewnet::io::AtomicFile>(req.csv_path);
      csv_->write(req.reject ? "file,class,probability,top_k,rejected\n" : "file,class,probability,top_k\n");
    }
  }

  /// `image` is `file` as the model saw it.
  void add(const std::string& file, const ewnet::data::Image& image, const ewnet::ClassifierResult& r) {
    if (req_.as_json) results_.push_back(json_result(file, r, req_.reject));
    else std::printf("%s\n", text_line(file, r).c_str());
    if (csv_) csv_->write(csv_row(file, r, req_.reject));
    if (!req_.explain_dir.empty()) write_heat_map(file, image, r);
  }

  /// Puts the CSV file in place and prints the JSON document.
  void finish(size_t skipped) {
    if (csv_) csv_->commit();
    if (!req_.as_json) return;
    ewnet::json::Value doc = ewnet::json::Value::object();
    doc["checkpoint"] = req_.checkpoint;
    doc["results"] = results_;
    doc["skipped_files"] = skipped;
    std::printf("%s\n", doc.dump(2).c_str());
  }

 private:
  void write_heat_map(const std::string& file, const ewnet::data::Image& image, const ewnet::ClassifierResult& r) {
    const ewnet::HeatMap m = classifier_.explain_prepared(image, r.top[0].index);
    // Over the whole photo when the model saw all of it (squash, decoded again: one at a time);
    // over what it saw otherwise (the central crop).
    const ewnet::data::Image base =
        classifier_.resize_mode() == ewnet::data::ResizeMode::squash ? ewnet::data::load_image(file) : image;
    ewnet::data::write_png(heat_map_path(req_.explain_dir, file, heat_map_names_, inputs_),
                           ewnet::overlay_heat_map(base, m));
  }

  const Request& req_;
  const std::set<std::string>& inputs_;
  ewnet::Classifier& classifier_;
  std::unique_ptr<ewnet::io::AtomicFile> csv_;
  ewnet::json::Value results_ = ewnet::json::Value::array();
  std::set<std::string> heat_map_names_;
};

struct Counts {
  size_t done = 0, skipped = 0;
};

/// Classifies `files` `per_pass` at a time, each image decoded and resized as it is loaded (no full
/// photo is kept); a file that is not a readable image is skipped with a warning.
Counts classify_all(const std::vector<std::string>& files, int per_pass, ewnet::Classifier& classifier,
                    ResultOutputs& out, bool show_progress) {
  Counts n;
  for (size_t first = 0; first < files.size(); first += size_t(per_pass)) {
    std::vector<std::string> names;
    std::vector<ewnet::data::Image> images;
    for (size_t i = first; i < std::min(files.size(), first + size_t(per_pass)); ++i) {
      try {
        images.push_back(classifier.load(files[i]));
        names.push_back(files[i]);
      } catch (const ewnet::Error& e) {
        std::fprintf(stderr, "%swarning: skipping bad image: %s\n", show_progress ? "\n" : "", e.what());
        ++n.skipped;
      }
    }
    if (images.empty()) continue;
    const std::vector<ewnet::ClassifierResult> rs = classifier.classify_prepared(images);
    for (size_t i = 0; i < rs.size(); ++i, ++n.done) out.add(names[i], images[i], rs[i]);
    if (show_progress) progress(n.done + n.skipped, files.size());
  }
  return n;
}

/// 0 when at least one image was classified; says what was skipped or why nothing was.
int exit_status(const Counts& n, size_t files) {
  if (n.skipped) std::fprintf(stderr, "%zu of %zu files skipped\n", n.skipped, files);
  if (n.done == 0)
    std::fprintf(stderr, "ewnet-classify: error: %s\n",
                 files == 0 ? "no image files found in what was given" : "no readable image among the files");
  return n.done > 0 ? 0 : 1;
}
}  // namespace

int main(int argc, char** argv) {
  return cli::run("ewnet-classify", kUsage, [&] {
    const cli::Args a(argc, argv, {"top", "device", "batch", "csv", "reject-score", "explain"},
                      {"json", "reject", "no-progress"});
    if (a.help()) return cli::print_help(kUsage, kHelp);
    const Request req = parse_request(a);
    const Inputs in = list_inputs(req);
    ewnet::Classifier classifier(req.checkpoint, classifier_options(a, req.top));
    const int per_pass = prepare(classifier, req);
    ResultOutputs out(req, in.read, classifier);
    const Counts n = classify_all(in.files, per_pass, classifier, out, req.show_progress);
    out.finish(n.skipped);
    return exit_status(n, in.files.size());
  });
}
