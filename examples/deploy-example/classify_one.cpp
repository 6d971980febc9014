// classify_one: the smallest program that puts a trained checkpoint to work with ewnet::Classifier.
//   classify_one CHECKPOINT IMAGE...
// prints, for each image, the best class with its probability, or "unknown" when the checkpoint
// holds a calibrated rejection threshold (ewnet-calibrate) and the image falls below it.
#include <cstdio>

#include <ewnet/deploy/classifier.hpp>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: classify_one CHECKPOINT IMAGE...\n");
    return 2;
  }
  try {
    ewnet::Classifier classifier(argv[1]);  // loads the model once
    if (classifier.thresholds().calibrated()) classifier.set_reject(true, ewnet::RejectionScore::max_probability);
    for (int i = 2; i < argc; ++i) {
      const ewnet::ClassifierResult r = classifier.classify_file(argv[i], 1);
      std::printf("%s: %s %.3f\n", argv[i], r.known ? r.top[0].name.c_str() : "unknown", r.top[0].probability);
    }
    return 0;
  } catch (const ewnet::Error& e) {
    std::fprintf(stderr, "classify_one: %s\n", e.what());
    return 1;
  }
}
