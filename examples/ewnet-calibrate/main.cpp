// ewnet-calibrate: rejection thresholds for a trained checkpoint, from its validation split, and
// (optionally) how well they separate known classes from devices no class covers.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <cli.hpp>
#include <image_files.hpp>
#include <ewnet/data/dataset.hpp>
#include <ewnet/data/loader.hpp>
#include <ewnet/deploy/classifier.hpp>
#include <ewnet/io/files.hpp>
#include <ewnet/text.hpp>

namespace {
const char* kUsage = "ewnet-calibrate CHECKPOINT DATA_DIR [--split-file CSV] [--seed N] [--rate R] [--out FILE] "
                     "[--unknown DIR] [--json]";
const char* kHelp =
    "Scores the validation images of DATA_DIR (the folder the checkpoint was trained on, split as in training)\n"
    "with two rejection scores, the maximum softmax probability and the energy score log(sum exp(logits)),\n"
    "and stores for each the threshold below which a fraction R of those known images falls, in the\n"
    "checkpoint's metadata (ewnet.rejection). ewnet-classify --reject then answers 'unknown' below it.\n"
    "The data must be what the checkpoint was trained on: its class names and, when the checkpoint records\n"
    "them (ewnet.train.settings), the split's seed and files; otherwise calibrating on training images, or\n"
    "other classes, would set thresholds that mean nothing. The checkpoint is read once: the thresholds\n"
    "are stored with the very weights that were measured. See docs/deployment.md.\n\n"
    "  --split-file CSV   the training run's split file: rows 'val' calibrate, rows 'test' measure\n"
    "  --seed N           without a split file: the seed of the training run's 80/20 split (default 0)\n"
    "  --rate R           wrongly rejected known images to allow (default 0.05)\n"
    "  --out FILE         write the calibrated checkpoint here (default: update CHECKPOINT in place); not a\n"
    "                     file of the data\n"
    "  --unknown DIR      images of classes the model was not trained on (any depth under DIR): report\n"
    "                     the AUROC of known against unknown and the rate of unknowns accepted, on the\n"
    "                     split file's 'test' rows (or the validation images without one)\n"
    "  --json             the report as JSON on stdout\n";

struct Scores {
  std::vector<double> msp, energy;
};

/// Both scores of images already at the model's input size (the cache's, or load()ed).
Scores score(ewnet::Classifier& c, const std::vector<ewnet::data::Image>& images) {
  Scores s;
  for (size_t first = 0; first < images.size(); first += 32) {
    const std::vector<ewnet::data::Image> batch(images.begin() + long(first),
                                                images.begin() + long(std::min(images.size(), first + 32)));
    for (const ewnet::ClassifierResult& r : c.classify_prepared(batch, 1)) {
      s.msp.push_back(r.max_probability);
      s.energy.push_back(r.energy_score);
    }
  }
  return s;
}

Scores score(ewnet::Classifier& c, const ewnet::data::ImageCache& cache, const std::vector<size_t>& indices) {
  std::vector<ewnet::data::Image> images;
  for (size_t i : indices) images.push_back(cache.image(i));
  return score(c, images);
}

/// Every readable image under `dir`, at any depth, hidden entries passed over, each resized to the
/// model's input as it is decoded (unreadable ones are skipped with a warning).
std::vector<ewnet::data::Image> images_under(const std::string& dir, const ewnet::Classifier& c) {
  namespace fs = std::filesystem;
  EWNET_CHECK_AS(ewnet::IoError, fs::is_directory(dir), dir, ": not a folder");
  std::error_code ec;  // a folder only partly listed: its readable images are scored
  const std::vector<std::string> files = cli::image_files_under(dir, ec);
  std::vector<ewnet::data::Image> images;
  for (const std::string& f : files) {
    try {
      images.push_back(c.load(f));
    } catch (const ewnet::Error& e) {
      std::fprintf(stderr, "warning: skipping bad image: %s\n", e.what());
    }
  }
  EWNET_CHECK_AS(ewnet::IoError, !images.empty(), dir, ": no readable images");
  return images;
}

/// Refuses data that is not what `ckpt` was trained on: other class names, or (when the checkpoint
/// records its run's settings) another split seed or other files, labels or split.
void check_same_data(const ewnet::CheckpointFile& ckpt, const ewnet::Classifier& c, const ewnet::data::Dataset& ds,
                     const std::string& dir, const std::string& split_file, bool seed_given, std::uint64_t seed) {
  EWNET_CHECK_AS(ewnet::IoError, ds.class_count() == c.classes(), dir, " has ", ds.class_count(),
                 " classes but the checkpoint has ", c.classes());
  if (c.names_from_checkpoint()) {
    std::string differ;
    int count = 0;
    for (size_t i = 0; i < ds.classes.size(); ++i)
      // Both in UTF-8: a checkpoint of an older ewnet may hold a name's raw bytes.
      if (ewnet::text::to_utf8(ds.classes[i]) != ewnet::text::to_utf8(c.class_names()[i]) && ++count <= 3)
        differ += ewnet::str(count > 1 ? "; " : "", "class ", i, " is '", ds.classes[i], "' in the data, '",
                             c.class_names()[i], "' in the checkpoint");
    EWNET_CHECK_AS(ewnet::IoError, count == 0, dir, ": not the classes ", ckpt.path, " was trained on (", differ,
                   count > 3 ? ewnet::str(" and ", count - 3, " more") : std::string(),
                   "); calibrate with the data folder of the training run");
  }
  const std::string* settings_text = ckpt.find("ewnet.train.settings");
  if (!settings_text) {
    std::fprintf(stderr, "warning: %s does not record its run's split; make sure %s the one it was trained with\n",
                 ckpt.path.c_str(), split_file.empty() ? "--seed is" : "--split-file is");
    return;
  }
  const ewnet::json::Value settings = ewnet::json::parse(*settings_text, ckpt.path + " (ewnet.train.settings)");
  if (split_file.empty()) {
    if (const ewnet::json::Value* s = settings.find("seed"); s && s->is_string()) {
      const std::string given = std::to_string(seed);
      EWNET_CHECK_AS(ewnet::IoError, s->as_string() == given, ckpt.path, " was trained on the split of seed ",
                     s->as_string(), " but ", seed_given ? "--seed " + given + " was given" : "the default seed 0 is used",
                     ": its validation images would include training images; give --seed ", s->as_string(),
                     " (or the run's --split-file)");
    }
  }
  // The split the run trained on, as the run made it, against the digest it recorded.
  const ewnet::data::Split run_split = split_file.empty() ? ewnet::data::split_each_label(ds, 0.8, seed)
                                                          : ewnet::data::split_from_file(ds, split_file);
  if (const ewnet::json::Value* d = settings.find("files_digest"); d && d->is_string()) {
    const std::string now = ewnet::data::split_digest(ds, run_split);
    EWNET_CHECK_AS(ewnet::IoError, d->as_string() == now, dir, ", split ",
                   split_file.empty() ? "with seed " + std::to_string(seed) : "by " + split_file,
                   ", is not the data ", ckpt.path, " was trained on (other files, labels or split: digest ", now,
                   ", the checkpoint's ", d->as_string(), "); calibrate with the training run's data and split");
  }
}
}  // namespace

int main(int argc, char** argv) {
  return cli::run("ewnet-calibrate", kUsage, [&] {
    const cli::Args a(argc, argv, {"split-file", "seed", "rate", "out", "unknown"}, {"json"});
    if (a.help()) return cli::print_help(kUsage, kHelp);
    if (a.positional().size() != 2) throw cli::UsageError("give a checkpoint and the data folder it was trained on");
    const std::string checkpoint = a.positional()[0], dir = a.positional()[1];
    const double rate = a.get_double("rate", 0.05);
    if (rate >= 1) throw cli::UsageError("--rate must be below 1");
    const std::string split_file = a.get("split-file", ""), out = a.get("out", checkpoint);
    const std::uint64_t seed = a.get_seed("seed", 0);
    // The calibrated checkpoint may replace CHECKPOINT (the default) but no file of the data.
    ewnet::io::check_output_file(out, {dir, split_file, a.get("unknown", "")}, "--out");
    cli::report_cpu_engine();

    // Read once: the model measured and the file written back come from the same bytes.
    const ewnet::CheckpointFile ckpt = ewnet::read_checkpoint(checkpoint);
    ewnet::Classifier c(ckpt);
    const int size = c.input_height();
    const ewnet::data::ImageCache cache(ewnet::data::scan_image_folder(dir), size, &std::cerr,
                                        ewnet::data::default_threads(), c.resize_mode());
    const ewnet::data::Dataset& ds = cache.dataset();
    check_same_data(ckpt, c, ds, dir, split_file, a.has("seed"), seed);
    std::vector<size_t> calibrate_on, measure_on;
    if (split_file.empty()) {
      calibrate_on = ewnet::data::split_each_label(ds, 0.8, seed).validation;
      measure_on = calibrate_on;
    } else {
      calibrate_on = ewnet::data::split_from_file(ds, split_file, {"train"}, {"val", "validation"}, {"test"}).validation;
      measure_on = ewnet::data::split_from_file(ds, split_file, {"train"}, {"test"}, {"val", "validation"}).validation;
      if (measure_on.empty()) measure_on = calibrate_on;
    }
    const Scores known = score(c, cache, calibrate_on);
    const ewnet::RejectionThresholds t = ewnet::calibrate_rejection(known.msp, known.energy, rate);
    const std::filesystem::path out_dir = std::filesystem::path(out).parent_path();
    ewnet::io::remove_stale_temporaries(out_dir.empty() ? "." : out_dir.string());  // a killed calibration's, in a run folder
    ewnet::store_rejection(ckpt.contents, t, out);

    ewnet::json::Value report = ewnet::json::Value::object();
    report["checkpoint"] = out;
    report["thresholds"] = t.to_json();
    if (!a.flag("json"))
      std::printf("%zu validation images: reject below max probability %.4f or energy score %.4f "
                  "(%.1f%% of known images rejected at most); written to %s\n",
                  calibrate_on.size(), t.max_probability, t.energy, 100 * rate, out.c_str());
    if (a.has("unknown")) {
      const Scores k = score(c, cache, measure_on), u = score(c, images_under(a.get("unknown", ""), c));
      ewnet::json::Value m = ewnet::json::Value::object();
      m["known_images"] = k.msp.size();
      m["unknown_images"] = u.msp.size();
      for (auto [name, ks, us, th] : {std::make_tuple("max_probability", &k.msp, &u.msp, t.max_probability),
                                       std::make_tuple("energy", &k.energy, &u.energy, t.energy)}) {
        ewnet::json::Value e = ewnet::json::Value::object();
        e["auroc"] = ewnet::rejection_auroc(*ks, *us);
        e["unknown_accepted"] = ewnet::accepted_fraction(*us, th);
        e["known_rejected"] = 1 - ewnet::accepted_fraction(*ks, th);
        if (!a.flag("json"))
          std::printf("%-16s AUROC %.3f; at its threshold %.1f%% of %zu unknown images accepted, %.1f%% of %zu "
                      "known images rejected\n",
                      name, e.at("auroc").as_number(), 100 * e.at("unknown_accepted").as_number(), us->size(),
                      100 * e.at("known_rejected").as_number(), ks->size());
        m[name] = e;
      }
      report["measured"] = m;
    }
    if (a.flag("json")) std::printf("%s\n", report.dump(2).c_str());
    return 0;
  });
}
