// ewnet/data/unlabeled.hpp: unlabelled images for semi-supervised training: a folder of images in
// any layout, decoded and cached as the labelled ones are, batches of their weak and strong views,
// and the check that no validation image is among them.
//
//   UnlabeledImages        every image file under a folder, at any depth (hidden entries, ".x", and
//                          "_x" folders passed over, as the labelled scan does; a link to a folder is
//                          not followed, so a loop cannot trap the scan), decoded and cached; folder
//                          names are never read as labels: the images carry none
//   UnlabeledPool          the images a run draws from: such a folder's, or the part of a labelled
//                          split whose labels are put aside (cut_labels_per_class, the protocol of
//                          the semi-supervised studies)
//   UnlabeledLoader        the batch of a training step: the same images as a weak view (flip, crop,
//                          shift: data/augment.hpp) and a strong view (data/strong_augment.hpp). The
//                          images form an endless stream of seeded shuffles of the pool, and every
//                          draw comes from (seed, position in the stream), so step k's batch is the
//                          same whatever the thread count and wherever a run was resumed
//   validation_overlap     unlabelled images whose pixels equal a validation image's (compared by
//                          content at the cached size, not by name): a validation image's label
//                          could reach training through a pseudo-label, so check_unlabeled_images
//                          refuses them unless the run asks for the transductive setting (the usual
//                          domain-adaptation protocol: the unlabelled target images are the ones
//                          evaluated), and says which setting ran. A copy re-encoded with loss (a
//                          JPEG saved again) has other pixels and is not recognised.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

#include <ewnet/data/augment.hpp>
#include <ewnet/data/dataset.hpp>
#include <ewnet/data/loader.hpp>
#include <ewnet/data/strong_augment.hpp>
#include <ewnet/error.hpp>
#include <ewnet/random.hpp>
#include <ewnet/tensor.hpp>

namespace ewnet::data {

// ---- the images -----------------------------------------------------------------------------

/// Every image file under `root`, at any depth, sorted by path. Entries whose name starts with '.'
/// and folders whose name starts with '_' are passed over, and links to folders are not followed; a
/// dangling link is listed in `skipped` with the reason. Throws IoError when `root` is not a folder or holds no image file.
inline std::vector<std::string> scan_unlabeled_folder(const std::string& root, std::vector<std::string>* skipped = nullptr) {
  namespace fs = std::filesystem;
  std::error_code ec;
  EWNET_CHECK_AS(IoError, fs::is_directory(root, ec), root, ": unlabelled image folder not found");
  std::vector<std::string> files;
  fs::recursive_directory_iterator it(root, fs::directory_options::none, ec), end;
  EWNET_CHECK_AS(IoError, !ec, root, ": cannot list the folder: ", ec.message());
  for (; it != end; it.increment(ec)) {
    if (ec) throw IoError(str(root, ": cannot list the folder: ", ec.message()));
    const fs::path& p = it->path();
    const std::string name = p.filename().string();
    std::error_code tec;
    const bool folder = it->is_directory(tec);
    if (name.empty() || name[0] == '.' || (folder && name[0] == '_')) {
      if (folder) it.disable_recursion_pending();
      continue;
    }
    if (folder) continue;
    if (!fs::exists(fs::status(p, tec))) {
      if (skipped) skipped->push_back(str(p.string(), ": dangling symbolic link"));
      continue;
    }
    if (!it->is_regular_file(tec)) continue;
    if (has_image_extension(p)) files.push_back(p.string());
  }
  std::sort(files.begin(), files.end());
  EWNET_CHECK_AS(IoError, !files.empty(), root, ": no image files in the unlabelled folder");
  return files;
}

/// A folder of unlabelled images, decoded and resized to size x size once (ImageCache's decoding:
/// several threads, a bad file skipped with one warning naming it).
class UnlabeledImages {
 public:
  UnlabeledImages(const std::string& root, int size, std::ostream* warn = nullptr, int threads = default_threads())
      : root_(root) {
    Dataset d;
    d.root = root;
    d.classes = {"(unlabelled)"};  // one placeholder class: ImageCache wants one; no label is ever read
    for (const std::string& f : scan_unlabeled_folder(root, &d.skipped))
      d.samples.push_back({f, std::filesystem::relative(f, root).string(), 0});
    for (const std::string& s : d.skipped)
      if (warn) *warn << "warning: skipping " << s << "\n";
    try {
      cache_ = std::make_unique<ImageCache>(d, size, warn, threads);
    } catch (const IoError&) {  // every file failed to decode (each named in a warning)
      throw IoError(str(root, ": none of the ", d.samples.size(), " image files of the unlabelled folder decodes"));
    }
  }
  const std::string& root() const { return root_; }
  size_t size() const { return cache_->size(); }
  const Image& image(size_t i) const { return cache_->image(i); }
  const std::string& path(size_t i) const { return cache_->dataset().samples.at(i).path; }
  const std::vector<ImageCache::Skipped>& skipped() const { return cache_->skipped(); }
  const std::vector<std::string>& scan_skipped() const { return cache_->dataset().skipped; }

 private:
  std::string root_;
  std::unique_ptr<ImageCache> cache_;
};

/// The images a run draws unlabelled batches from (views: their owner must outlive the pool),
/// with a name each for messages.
struct UnlabeledPool {
  std::vector<const Image*> images;
  std::vector<std::string> names;
  size_t size() const { return images.size(); }
};

inline UnlabeledPool pool_of(const UnlabeledImages& u) {
  UnlabeledPool p;
  for (size_t i = 0; i < u.size(); ++i) {
    p.images.push_back(&u.image(i));
    p.names.push_back(u.path(i));
  }
  return p;
}

/// The chosen images of a labelled cache, their labels left behind.
inline UnlabeledPool pool_of(const ImageCache& cache, const std::vector<size_t>& indices) {
  UnlabeledPool p;
  for (size_t i : indices) {
    p.images.push_back(&cache.image(i));
    p.names.push_back(cache.dataset().samples.at(i).path);
  }
  return p;
}

/// A training split cut to `per_class` labelled images a class (a seeded shuffle in each class),
/// the rest of it kept apart: the unlabelled pool of a semi-supervised study. A class with fewer
/// images keeps them all.
struct LabelCut {
  std::vector<size_t> labeled, rest;  // indices into the data set, sorted
};

inline LabelCut cut_labels_per_class(const Dataset& d, const std::vector<size_t>& train, int per_class,
                                     std::uint64_t seed) {
  EWNET_CHECK(per_class >= 1, "labelled images a class must be at least 1, got ", per_class);
  std::vector<std::vector<size_t>> by_class(d.classes.size());
  for (size_t i : train) by_class.at(size_t(d.samples.at(i).label)).push_back(i);
  LabelCut cut;
  for (size_t c = 0; c < by_class.size(); ++c) {
    std::vector<size_t>& v = by_class[c];
    Random rng(seed, 0x1abe1c070000ull + c);
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[size_t(rng.below(i))]);
    const size_t n = std::min(v.size(), size_t(per_class));
    cut.labeled.insert(cut.labeled.end(), v.begin(), v.begin() + std::ptrdiff_t(n));
    cut.rest.insert(cut.rest.end(), v.begin() + std::ptrdiff_t(n), v.end());
  }
  std::sort(cut.labeled.begin(), cut.labeled.end());
  std::sort(cut.rest.begin(), cut.rest.end());
  return cut;
}

// ---- the honesty check ------------------------------------------------------------------------

/// A 64-bit FNV-1a digest of an image's size and pixels.
inline std::uint64_t pixel_digest(const Image& img) {
  std::uint64_t h = 1469598103934665603ull;
  auto mix = [&](std::uint8_t b) {
    h ^= b;
    h *= 1099511628211ull;
  };
  for (int v : {img.width, img.height})
    for (int k = 0; k < 4; ++k) mix(std::uint8_t(unsigned(v) >> (8 * k)));
  for (std::uint8_t b : img.rgb) mix(b);
  return h;
}

struct ValidationOverlap {
  std::string unlabeled, validation;  // the two files
};

/// The unlabelled images whose pixels (at the cached size) equal a validation image's: digests
/// first, then the pixels compared, so a digest collision cannot refuse an innocent image.
inline std::vector<ValidationOverlap> validation_overlap(const UnlabeledPool& pool, const ImageCache& cache,
                                                         const std::vector<size_t>& validation) {
  std::multimap<std::uint64_t, size_t> by_digest;
  for (size_t v : validation) by_digest.emplace(pixel_digest(cache.image(v)), v);
  std::vector<ValidationOverlap> out;
  for (size_t i = 0; i < pool.size(); ++i) {
    const auto [first, last] = by_digest.equal_range(pixel_digest(*pool.images[i]));
    for (auto it = first; it != last; ++it) {
      const Image& v = cache.image(it->second);
      const Image& u = *pool.images[i];
      if (v.width == u.width && v.height == u.height && v.rgb == u.rgb) {
        out.push_back({pool.names[i], cache.dataset().samples.at(it->second).path});
        break;
      }
    }
  }
  return out;
}

/// The setting a semi-supervised run trained in, for its summary.
struct UnlabeledSetting {
  bool transductive = false;         // asked for: validation images may be among the unlabelled
  size_t images = 0;                 // unlabelled images
  size_t validation_images = 0;      // of them, equal to a validation image
  std::string line() const {
    if (!transductive)
      return str("inductive: ", images, " unlabelled images, none of them a validation image (compared by content)");
    return str("transductive (asked for): ", images, " unlabelled images, ", validation_images,
               " of them validation images, whose labels are never read");
  }
};

/// Refuses an unlabelled pool that holds a validation image, naming up to five pairs, unless
/// `transductive`; returns the setting for the run's summary.
inline UnlabeledSetting check_unlabeled_images(const UnlabeledPool& pool, const ImageCache& cache,
                                               const std::vector<size_t>& validation, bool transductive) {
  const std::vector<ValidationOverlap> overlap = validation_overlap(pool, cache, validation);
  if (!overlap.empty() && !transductive) {
    std::string list;
    for (size_t i = 0; i < std::min<size_t>(overlap.size(), 5); ++i)
      list += str("\n  ", overlap[i].unlabeled, " is ", overlap[i].validation);
    if (overlap.size() > 5) list += str("\n  and ", overlap.size() - 5, " more");
    throw Error(str(overlap.size(), " of the ", pool.size(), " unlabelled images are validation images: their "
                    "pseudo-labels would train on what is evaluated", list,
                    "\n(remove them, or ask for the transductive setting explicitly)"));
  }
  return {transductive, pool.size(), overlap.size()};
}

// ---- batches ------------------------------------------------------------------------------------

struct UnlabeledLoaderOptions {
  int batch = 16;                  // images a step (FixMatch: mu times the labelled batch)
  std::uint64_t seed = 0;
  AugmentOptions weak;             // the weak view, and the geometric part of the strong one
  StrongAugmentOptions strong;
  bool weak_view = true;           // false: leave UnlabeledBatch::weak empty
  bool strong_view = true;         // false: leave UnlabeledBatch::strong empty
  int threads = default_threads();
};

/// One step's unlabelled images as two views of the same images, N x 3 x S x S each, values
/// 0..255. There are no labels.
template <class T>
struct UnlabeledBatch {
  Tensor<T> weak, strong;
  std::vector<size_t> indices;  // into the pool
};

template <class T>
class UnlabeledLoader {
 public:
  UnlabeledLoader(UnlabeledPool pool, UnlabeledLoaderOptions o) : pool_(std::move(pool)), opt_(std::move(o)) {
    EWNET_CHECK(opt_.batch > 0, "unlabelled loader: batch size must be positive, got ", opt_.batch);
    EWNET_CHECK(pool_.size() > 0, "unlabelled loader: no images");
    check(opt_.strong);
    const Image& first = *pool_.images[0];
    for (size_t i = 0; i < pool_.size(); ++i)
      EWNET_CHECK(pool_.images[i]->width == first.width && pool_.images[i]->height == first.height,
                  "unlabelled loader: ", pool_.names[i], " is ", pool_.images[i]->width, "x",
                  pool_.images[i]->height, " but the others are ", first.width, "x", first.height);
  }

  size_t size() const { return pool_.size(); }
  const UnlabeledPool& pool() const { return pool_; }

  /// The batch of training step `step` (0-based, counted over the whole run): the images at
  /// positions [step * batch, (step + 1) * batch) of the stream, where pass k of the pool is the
  /// shuffle drawn from (seed, k).
  void batch(std::uint64_t step, UnlabeledBatch<T>& out) {
    const size_t n = size_t(opt_.batch), H = size_t(pool_.images[0]->height), W = size_t(pool_.images[0]->width);
    const Shape s{opt_.batch, 3, int(H), int(W)};
    if (opt_.weak_view && out.weak.shape() != s) out.weak = Tensor<T>::empty(s);
    if (opt_.strong_view && out.strong.shape() != s) out.strong = Tensor<T>::empty(s);
    if (!opt_.weak_view) out.weak = Tensor<T>();
    if (!opt_.strong_view) out.strong = Tensor<T>();
    out.indices.resize(n);
    for (size_t k = 0; k < n; ++k) {
      const std::uint64_t position = step * n + k;
      out.indices[k] = order(position / pool_.size())[size_t(position % pool_.size())];
    }
    const size_t sample = 3 * H * W;
    auto pack = [&](size_t w, size_t workers) {
      for (size_t k = w; k < n; k += workers) {
        const std::uint64_t position = step * n + k;
        const Image& img = *pool_.images[out.indices[k]];
        if (opt_.weak_view) {
          Random rng(opt_.seed ^ 0x3eac0f1e3ull, position);
          augment_to_chw(img, out.weak.data() + k * sample, opt_.weak, rng);
        }
        if (opt_.strong_view) {
          Random rng(opt_.seed ^ 0x5760a6e11ull, position);
          strong_view_to_chw(img, out.strong.data() + k * sample, opt_.weak, opt_.strong, rng);
        }
      }
    };
    const size_t workers = std::min(n, size_t(std::max(1, opt_.threads)));
    std::vector<std::thread> threads;
    for (size_t w = 1; w < workers; ++w) threads.emplace_back(pack, w, workers);
    pack(0, workers);
    for (std::thread& t : threads) t.join();
  }

 private:
  /// Pass `pass` through the pool: a shuffle drawn from (seed, pass), the last one kept.
  const std::vector<size_t>& order(std::uint64_t pass) {
    if (pass != order_pass_ || order_.empty()) {
      std::vector<size_t> all(pool_.size());
      for (size_t i = 0; i < all.size(); ++i) all[i] = i;
      order_ = epoch_order(std::move(all), true, opt_.seed ^ 0x9001u, int(pass));
      order_pass_ = pass;
    }
    return order_;
  }

  UnlabeledPool pool_;
  UnlabeledLoaderOptions opt_;
  std::vector<size_t> order_;
  std::uint64_t order_pass_ = 0;
};

}  // namespace ewnet::data
