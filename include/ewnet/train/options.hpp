// ewnet/train/options.hpp: what a training run is asked to do (train::fit's settings), MATLAB's
// trainingOptions('sgdm', ...) with the paper's defaults.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <ewnet/data/augment.hpp>
#include <ewnet/data/loader.hpp>
#include <ewnet/device.hpp>
#include <ewnet/json.hpp>
#include <ewnet/optim/schedule.hpp>
#include <ewnet/optim/sgdm.hpp>
#include <ewnet/precision.hpp>

namespace ewnet::train {

struct UnlabeledTraining;  // train/unlabeled_batches.hpp

struct TrainOptions {
  int epochs = 320;                                                  // the paper's maximum
  int batch = 64;                                                    // the paper's
  LearnRateSchedule schedule = LearnRateSchedule::constant(1e-3);    // the paper's source rate
  SgdmOptions sgdm;                                                  // momentum 0.9, L2 1e-4
  std::uint64_t seed = 0;                                            // shuffling and augmentation
  Device device = Device::cpu;
  Precision precision = Precision::fp32;  // the matrix products' (Model::set_precision; bf16: CPU only)
  std::string out_dir;
  std::string title = "training";       // the run's name in the report (train/report.hpp)
  std::vector<std::string> classes;     // label names, saved in the checkpoints
  bool resume = false;
  bool progress = true;                 // RunReport's progress bar on stderr
  data::AugmentOptions augment;
  // RandAugment and cutout before that augmentation (data/strong_augment.hpp); off by default.
  data::StrongAugmentOptions strong_augment = data::LoaderOptions().strong;
  // Semi-supervised training: unlabelled images learned from beside the labelled ones at every
  // step (train/unlabeled_batches.hpp); none by default.
  std::shared_ptr<const UnlabeledTraining> unlabeled;
  // Train from cached activations of this layer (empty: run every layer every step). Needs
  // augmentation off and can_cache_features(model, feature_cache) (train/feature_cache.hpp).
  std::string feature_cache;
  int threads = data::default_threads();
  std::map<std::string, std::string> metadata;  // extra checkpoint entries
  json::Value report_extra = json::Value::object();  // extra members of RunReport's report.json
  // A resume whose settings or data differ from the checkpoint's (run_settings) is refused
  // naming each difference; true lets it continue with a warning per difference.
  bool allow_changed_settings = false;
};

}  // namespace ewnet::train
