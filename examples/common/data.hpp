// data.hpp: a program's data set: an image folder scanned, checked against the memory the machine
// has, decoded and cached once, split (seeded 80/20 per class, or a split file), and said in one
// line; what a run's report and checkpoints record about it; and a folder of unlabelled images.
#pragma once

#include <algorithm>
#include <cstdint>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include <ewnet/data/dataset.hpp>
#include <ewnet/data/loader.hpp>
#include <ewnet/data/unlabeled.hpp>
#include <ewnet/io/checkpoint.hpp>
#include <ewnet/memory.hpp>
#include <ewnet/models/build.hpp>
#include <ewnet/train/options.hpp>

namespace pipeline {

using Real = float;

struct Data {
  std::unique_ptr<ewnet::data::ImageCache> cache;
  ewnet::data::Split split;
  std::vector<std::string> classes;
  size_t files = 0;  // image files found, bad ones included
};

/// What training a network costs in memory besides the images: ewnet::model_memory of the network
/// built at a side of `size` pixels (the estimate ewnet::Classifier checks too: activations, their
/// gradients and the input per image, the im2col scratch), which scales with the pixels, and its
/// parameters.
struct Footprint {
  int size = 0;
  ewnet::ModelMemory memory;
  std::uint64_t parameters = 0;
};

/// The footprint of a built model, at its own input size.
template <class T>
Footprint footprint(ewnet::Model<T>& m) {
  Footprint f;
  f.size = m.input_shape().h;
  f.memory = ewnet::model_memory(m);
  for (auto& [layer, p] : m.parameters()) f.parameters += p->count();
  return f;
}

/// The footprint of a network by name (ewnet::build_model's), measured once a process on a copy
/// built at the smallest size it runs at.
inline Footprint footprint(const std::string& model, bool auxiliary_classifiers = false) {
  static std::map<std::pair<std::string, bool>, Footprint> measured;
  auto it = measured.find({model, auxiliary_classifiers});
  if (it != measured.end()) return it->second;
  ewnet::ModelOptions o;
  o.auxiliary_classifiers = auxiliary_classifiers;
  ewnet::Model<Real> m = ewnet::build_model<Real>(model, 2, std::max(32, ewnet::min_image_size(model)), 0, o);
  m.build();
  return measured[{model, auxiliary_classifiers}] = footprint(m);
}

struct DataOptions {
  std::string dir;
  std::string split_file;        // empty: stratified split
  double train_fraction = 0.8;   // the paper's 80/20
  int image_size = 64;
  ewnet::data::ResizeMode resize = ewnet::data::ResizeMode::squash;  // the geometry (data/resize.hpp)
  std::uint64_t seed = 0;
  int threads = ewnet::data::default_threads();
  int batch = 0;                 // the run's mini-batch, for the memory estimate (0: the cache only)
  Footprint network;             // the network the run trains (none measured: the paper's model)
};

/// What a run on `images` images of `size` pixels a side with mini-batches of `batch` needs at its
/// peak, estimated before anything is loaded: the 8-bit image cache, the decoders' shared
/// allowance, and for training the network's memory for a batch (its footprint scaled by the pixel
/// count) with its parameters, their gradients and momentum. A batch holds at most every image
/// (the training split is smaller still), so no more than `images` are charged however large
/// `batch` is.
struct MemoryEstimate {
  std::uint64_t cache = 0, decoding = 0, training = 0;
  std::uint64_t total() const { return cache + decoding + training; }
};
inline MemoryEstimate estimate_memory(size_t images, int size, int batch, Footprint network = {}) {
  MemoryEstimate m;
  const std::uint64_t pixels = std::uint64_t(size) * std::uint64_t(size);
  m.cache = std::uint64_t(images) * pixels * 3;
  m.decoding = ewnet::data::kDecodeBudgetBytes;
  if (batch > 0) {
    if (network.size == 0) network = footprint("paper");
    const double scale = double(pixels) / (double(network.size) * double(network.size));
    const double in_batch = double(std::min<std::uint64_t>(std::uint64_t(batch), std::max<size_t>(images, 1)));
    m.training = std::uint64_t((in_batch * double(network.memory.per_image) + double(network.memory.scratch)) * scale) +
                 network.parameters * 3 * sizeof(Real);
  }
  return m;
}

/// Refuses, before anything is decoded, a run that cannot fit in the memory the machine has.
inline void check_memory(const MemoryEstimate& m, int size, int batch, std::uint64_t available) {
  using ewnet::gib_text;
  EWNET_CHECK(m.total() <= available, "a run at --image-size ", size,
              (batch > 0 ? ewnet::str(" with --batch ", batch) : ""), " needs about ", gib_text(m.total()), " (",
              gib_text(m.cache), " for the cached images, ", gib_text(m.decoding), " for decoding",
              (batch > 0 ? ", " + gib_text(m.training) + " for training" : std::string()), ") but this machine has ",
              gib_text(available), " available; use a smaller --image-size or --batch");
}

/// Scans, decodes and splits; prints one line about the data set (and a warning per bad file).
inline Data load_data(const DataOptions& o, std::ostream& out) {
  Data d;
  EWNET_CHECK(o.image_size >= 1 && o.image_size <= ewnet::detail::kMaxInputSide, "--image-size ", o.image_size,
              " is out of range (at most ", ewnet::detail::kMaxInputSide, ")");
  const ewnet::data::Dataset scanned = ewnet::data::scan_image_folder(o.dir);
  check_memory(estimate_memory(scanned.size(), o.image_size, o.batch, o.network), o.image_size, o.batch,
               ewnet::available_memory_bytes());
  d.files = scanned.size() + scanned.skipped.size();
  for (const std::string& s : scanned.skipped) std::cerr << "warning: skipping " << s << "\n";
  d.cache = std::make_unique<ewnet::data::ImageCache>(scanned, o.image_size, &std::cerr, o.threads, o.resize);
  const ewnet::data::Dataset& ds = d.cache->dataset();
  d.classes = ds.classes;
  d.split = o.split_file.empty() ? ewnet::data::split_each_label(ds, o.train_fraction, o.seed)
                                 : ewnet::data::split_from_file(ds, o.split_file);
  for (const std::string& w : d.split.warnings) std::cerr << "warning: " << w << "\n";
  out << o.dir << ": " << ds.size() << " images in " << ds.class_count() << " classes";
  if (!d.cache->skipped().empty() || !scanned.skipped.empty())
    out << ", " << d.cache->skipped().size() + scanned.skipped.size() << " bad files skipped";
  out << "; " << d.split.train.size() << " for training, " << d.split.validation.size() << " for validation ("
      << (o.split_file.empty() ? "stratified " + std::to_string(int(o.train_fraction * 100 + 0.5)) + "% split, seed " +
                                     std::to_string(o.seed)
                               : "split file " + o.split_file)
      << "); cached at " << o.image_size << "x" << o.image_size << " ("
      << ewnet::data::resize_mode_name(o.resize) << ")\n";
  return d;
}

/// What report.json says about the data.
inline ewnet::json::Value data_report(const Data& d, const std::string& dir) {
  ewnet::json::Value v = ewnet::json::Value::object();
  v["folder"] = dir;
  v["files"] = d.files;
  v["images"] = d.cache->size();
  v["skipped_files"] = d.cache->skipped().size() + d.cache->dataset().skipped.size();
  ewnet::json::Value skipped = ewnet::json::Value::array();
  for (const auto& s : d.cache->dataset().skipped) skipped.push_back(s);
  for (const auto& s : d.cache->skipped()) skipped.push_back(s.reason);
  v["skipped"] = skipped;
  v["training_images"] = d.split.train.size();
  v["validation_images"] = d.split.validation.size();
  return v;
}

/// `t` for a run on `d` read from folder `dir`: its class names, and the folder in the run's
/// report and checkpoints.
inline ewnet::train::TrainOptions on_data(ewnet::train::TrainOptions t, const Data& d, const std::string& dir) {
  t.classes = d.classes;
  t.report_extra["data"] = data_report(d, dir);
  t.metadata["ewnet.data"] = dir;
  return t;
}

/// A folder of unlabelled images (any layout, no label read), decoded at `size`, said in one line.
inline std::unique_ptr<ewnet::data::UnlabeledImages> load_unlabeled(const std::string& dir, int size,
                                                                    std::ostream& out) {
  check_memory(estimate_memory(ewnet::data::scan_unlabeled_folder(dir).size(), size, 0), size, 0,
               ewnet::available_memory_bytes());
  auto u = std::make_unique<ewnet::data::UnlabeledImages>(dir, size, &std::cerr);
  out << dir << ": " << u->size() << " unlabelled images (any layout; no label is read)";
  if (!u->skipped().empty() || !u->scan_skipped().empty())
    out << ", " << u->skipped().size() + u->scan_skipped().size() << " bad files skipped";
  out << "; cached at " << size << "x" << size << "\n";
  return u;
}

}  // namespace pipeline
