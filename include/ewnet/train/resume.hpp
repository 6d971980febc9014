// ewnet/train/resume.hpp: a run's identity and its continuation. Its checkpoints record the settings
// that decide its numbers and the identity of its data (run_settings) beside its history; --resume
// checks them against the run asked for (each difference named), checks the network, and continues
// from OUT/last.safetensors exactly where it stopped: on the CPU a resumed run equals an
// uninterrupted one bitwise (the loader draws every shuffle and augmentation from (seed, epoch),
// dropout draws from the model's step counter, and momentum and the counter come back from the
// checkpoint).
#pragma once

#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <ewnet/data/dataset.hpp>
#include <ewnet/data/loader.hpp>
#include <ewnet/graph.hpp>
#include <ewnet/io/checkpoint.hpp>
#include <ewnet/json.hpp>
#include <ewnet/train/history.hpp>
#include <ewnet/train/options.hpp>
#include <ewnet/train/report.hpp>
#include <ewnet/train/unlabeled_batches.hpp>

namespace ewnet::train {

/// What a run must keep to be resumed as the same run, saved in its checkpoints: the settings that
/// decide its numbers (the geometry its images were cached in among them) and the identity of its
/// data (the class list and data::split_digest of every file's name, label and split). The epoch
/// count is not among them: extending a run is what resuming is for.
inline json::Value run_settings(const TrainOptions& o, const data::ImageCache& cache, const data::Split& split) {
  json::Value v = json::Value::object();
  v["seed"] = std::to_string(o.seed);  // as text: a 64-bit seed does not fit a double
  v["batch"] = o.batch;
  v["schedule"] = o.schedule.to_json();
  v["image_size"] = cache.image_size();
  v["resize"] = data::resize_mode_name(cache.resize_mode());
  v["augment"] = o.augment.enabled;
  v["feature_cache"] = o.feature_cache;
  // Only when not the default, so that runs saved before precision was a setting resume as before.
  if (o.precision != Precision::fp32) v["compute_precision"] = precision_name(o.precision);
  v["classes"] = json::string_array(o.classes);
  v["files"] = int(split.train.size() + split.validation.size());
  v["files_digest"] = data::split_digest(cache.dataset(), split);
  // Only when used: a run without them keeps the settings (and resumes) it had.
  if (o.strong_augment.enabled) v["strong_augment"] = data::describe(o.strong_augment);
  if (o.unlabeled) v["semi_supervised"] = settings_json(*o.unlabeled);
  return v;
}

/// Why the model saved in a checkpoint's architecture is not `model` (empty when both have the same
/// layers by name): the layers only the checkpoint has and those only the model has, a few named.
template <class T>
std::string architecture_difference(Model<T>& model, const std::map<std::string, std::string>& meta,
                                    const std::string& path) {
  const auto it = meta.find("ewnet.architecture");
  if (it == meta.end()) return "";
  std::set<std::string> saved, now;
  const json::Value arch = json::parse(it->second, path);
  for (const json::Value& e : arch.at("layers").as_array()) saved.insert(e.at("name").as_string());
  for (Layer<T>* l : model.layers()) now.insert(l->name());
  auto list = [](const std::set<std::string>& a, const std::set<std::string>& b) {
    std::string text;
    size_t count = 0;
    for (const std::string& n : a)
      if (!b.count(n) && ++count <= 4) text += (text.empty() ? "'" : ", '") + n + "'";
    if (count > 4) text += str(" and ", count - 4, " more");
    return text;
  };
  const std::string only_saved = list(saved, now), only_now = list(now, saved);
  if (only_saved.empty() && only_now.empty()) return "";
  return str(only_saved.empty() ? "" : "layers only in the checkpoint: " + only_saved,
             !only_saved.empty() && !only_now.empty() ? "; " : "",
             only_now.empty() ? "" : "layers only in this model: " + only_now);
}

/// The fields in which `now` differs from `saved`, as "name (checkpoint X, now Y)"; a field only one
/// of them has is one too (a semi-supervised run resumed without its unlabelled images: "now
/// absent", or the other way round: "checkpoint absent").
inline std::vector<std::string> settings_differences(const json::Value& saved, const json::Value& now) {
  std::vector<std::string> out;
  for (const auto& [key, value] : now.as_object()) {
    const json::Value* before = saved.is_object() ? saved.find(key) : nullptr;
    const std::string was = before ? before->dump() : "absent";
    if (was != value.dump()) out.push_back(str(key, " (checkpoint ", was, ", now ", value.dump(), ")"));
  }
  if (saved.is_object())
    for (const auto& [key, value] : saved.as_object())
      if (!now.find(key)) out.push_back(str(key, " (checkpoint ", value.dump(), ", now absent)"));
  return out;
}

inline std::string last_checkpoint(const std::string& out_dir) { return out_dir + "/last.safetensors"; }
inline std::string best_checkpoint(const std::string& out_dir) { return out_dir + "/best.safetensors"; }

/// Where `fit` resumes: an empty history unless o.resume and OUT/last.safetensors exists; then the
/// run saved there, its settings checked against `settings` before its tensors touch `model`
/// (each difference refused, or a warning with o.allow_changed_settings), its network against
/// `model`'s, and its weights, momentum and step counter loaded into `model`. Tells `report` what it
/// found.
template <class T>
History resume(Model<T>& model, const TrainOptions& o, const json::Value& settings, Reporter& report) {
  const std::string last = last_checkpoint(o.out_dir);
  if (!o.resume) return {};
  if (!std::filesystem::exists(last)) {
    report.note(str("nothing to resume in ", o.out_dir, "; starting from the beginning"));
    return {};
  }
  const auto saved = read_checkpoint_metadata(last);
  const auto st = saved.find("ewnet.train.settings");
  if (st == saved.end()) {
    report.note(str("warning: ", last, " does not record its run's settings; resuming without checking them"));
  } else {
    json::Value recorded = json::parse(st->second, last);
    // A run saved before the geometry was recorded cached its images squashed (data/resize.hpp).
    if (recorded.is_object() && !recorded.contains("resize"))
      recorded["resize"] = data::resize_mode_name(data::ResizeMode::squash);
    const std::vector<std::string> diff = settings_differences(recorded, settings);
    std::string list;
    for (const std::string& d : diff) list += "\n  " + d;
    EWNET_CHECK(diff.empty() || o.allow_changed_settings, "train: cannot resume ", last,
                ": this run's settings or data differ from the checkpoint's:", list,
                "\n(resume with the same settings and data, or allow the change explicitly)");
    for (const std::string& d : diff) report.note("warning: resuming with a changed setting: " + d);
  }
  const std::string arch = architecture_difference(model, saved, last);
  EWNET_CHECK(arch.empty(), "train: cannot resume ", last, ": it holds another network than this run's (", arch,
              "); resume with the network the run started with (the same model and auxiliary classifiers)");
  const auto meta = load_checkpoint(model, last);
  const auto it = meta.find("ewnet.train.history");
  EWNET_CHECK_AS(IoError, it != meta.end(), last, ": no training history in the metadata, cannot resume");
  History h = History::from_json(json::parse(it->second, last));
  report.note(str("resuming from ", last, " after epoch ", h.epochs.size(), " (iteration ", model.iteration(), ")"));
  return h;
}

/// Saves the run after its latest epoch: OUT/last.safetensors with the momentum (what resume
/// reads), and OUT/best.safetensors without when that epoch is the best so far (or nothing
/// validates). Each records the class names, the schedule, the history, the run's settings and the
/// geometry of its images.
template <class T>
void save_epoch(Model<T>& model, const TrainOptions& o, const json::Value& settings, const History& h) {
  auto save = [&](const std::string& path, bool momentum) {
    SaveOptions so;
    so.include_momentum = momentum;
    so.metadata = o.metadata;
    so.metadata["ewnet.classes"] = json::string_array(o.classes).dump();
    so.metadata["ewnet.train.epoch"] = std::to_string(h.epochs.size());
    so.metadata["ewnet.train.schedule"] = o.schedule.to_json().dump();
    so.metadata["ewnet.train.history"] = h.to_json(o.classes).dump();
    so.metadata["ewnet.train.settings"] = settings.dump();
    // What Classifier, ewnet-classify and the ONNX metadata resize new images by.
    so.metadata[data::kResizeMetadataKey] = settings.at("resize").as_string();
    save_checkpoint(model, path, so);
  };
  if (h.best_epoch == h.epochs.back().epoch || !std::isfinite(h.epochs.back().val_accuracy))
    save(best_checkpoint(o.out_dir), false);
  save(last_checkpoint(o.out_dir), true);
}

/// Loads the best checkpoint of a finished run into `model` (weights and normalisation only).
template <class T>
void load_best(Model<T>& model, const std::string& out_dir) {
  LoadOptions lo;
  lo.load_momentum = false;
  load_checkpoint(model, best_checkpoint(out_dir), lo);
}

}  // namespace ewnet::train
