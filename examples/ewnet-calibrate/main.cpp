// ewnet-calibrate: rejection thresholds for a trained checkpoint, from its validation split, and
// (optionally) how well they separate known classes from devices no class covers.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>

#include <cli.hpp>
#include <ewnet/data/dataset.hpp>
#include <ewnet/data/loader.hpp>
#include <ewnet/deploy/classifier.hpp>

namespace {
const char* kUsage = "ewnet-calibrate CHECKPOINT DATA_DIR [--split-file CSV] [--seed N] [--rate R] [--out FILE] "
                     "[--unknown DIR] [--json]";
const char* kHelp =
    "Scores the validation images of DATA_DIR (the folder the checkpoint was trained on, split as in training)\n"
    "with two rejection scores, the maximum softmax probability and the energy score log(sum exp(logits)),\n"
    "and stores for each the threshold below which a fraction R of those known images falls, in the\n"
    "checkpoint's metadata (ewnet.rejection). ewnet-classify --reject then answers 'unknown' below it.\n"
    "See docs/deployment.md.\n\n"
    "  --split-file CSV   the training run's split file: rows 'val' calibrate, rows 'test' measure\n"
    "  --seed N           without a split file: the seed of the training run's 80/20 split (default 0)\n"
    "  --rate R           wrongly rejected known images to allow (default 0.05)\n"
    "  --out FILE         write the calibrated checkpoint here (default: update CHECKPOINT in place)\n"
    "  --unknown DIR      images of classes the model was not trained on (any depth under DIR): report\n"
    "                     the AUROC of known against unknown and the rate of unknowns accepted, on the\n"
    "                     split file's 'test' rows (or the validation images without one)\n"
    "  --json             the report as JSON on stdout\n";

struct Scores {
  std::vector<double> msp, energy;
};

Scores score(ewnet::Classifier& c, const std::vector<ewnet::data::Image>& images) {
  Scores s;
  for (size_t first = 0; first < images.size(); first += 32) {
    const std::vector<ewnet::data::Image> batch(images.begin() + long(first),
                                                images.begin() + long(std::min(images.size(), first + 32)));
    for (const ewnet::ClassifierResult& r : c.classify_batch(batch, 1)) {
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

/// Every readable image under `dir`, at any depth (unreadable ones are skipped with a warning).
std::vector<ewnet::data::Image> images_under(const std::string& dir, int size) {
  namespace fs = std::filesystem;
  EWNET_CHECK_AS(ewnet::IoError, fs::is_directory(dir), dir, ": not a folder");
  std::vector<std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && ewnet::data::has_image_extension(e.path())) files.push_back(e.path().string());
  std::sort(files.begin(), files.end());
  std::vector<ewnet::data::Image> images;
  for (const std::string& f : files) {
    try {
      images.push_back(ewnet::data::resize_bilinear(ewnet::data::load_image(f), size, size));
    } catch (const ewnet::Error& e) {
      std::fprintf(stderr, "warning: skipping bad image: %s\n", e.what());
    }
  }
  EWNET_CHECK_AS(ewnet::IoError, !images.empty(), dir, ": no readable images");
  return images;
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
    cli::report_cpu_engine();

    ewnet::Classifier c(checkpoint);
    const int size = c.input_height();
    const ewnet::data::ImageCache cache(ewnet::data::scan_image_folder(dir), size, &std::cerr);
    const ewnet::data::Dataset& ds = cache.dataset();
    EWNET_CHECK_AS(ewnet::IoError, ds.class_count() == c.classes(), dir, " has ", ds.class_count(),
                   " classes but the checkpoint has ", c.classes());
    std::vector<size_t> calibrate_on, measure_on;
    if (split_file.empty()) {
      calibrate_on = ewnet::data::split_each_label(ds, 0.8, a.get_seed("seed", 0)).validation;
      measure_on = calibrate_on;
    } else {
      calibrate_on = ewnet::data::split_from_file(ds, split_file, {"train"}, {"val", "validation"}, {"test"}).validation;
      measure_on = ewnet::data::split_from_file(ds, split_file, {"train"}, {"test"}, {"val", "validation"}).validation;
      if (measure_on.empty()) measure_on = calibrate_on;
    }
    const Scores known = score(c, cache, calibrate_on);
    const ewnet::RejectionThresholds t = ewnet::calibrate_rejection(known.msp, known.energy, rate);
    ewnet::store_rejection(checkpoint, t, out);

    ewnet::json::Value report = ewnet::json::Value::object();
    report["checkpoint"] = out;
    report["thresholds"] = t.to_json();
    if (!a.flag("json"))
      std::printf("%zu validation images: reject below max probability %.4f or energy score %.4f "
                  "(%.1f%% of known images rejected at most); written to %s\n",
                  calibrate_on.size(), t.max_probability, t.energy, 100 * rate, out.c_str());
    if (a.has("unknown")) {
      const Scores k = score(c, cache, measure_on), u = score(c, images_under(a.get("unknown", ""), size));
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
