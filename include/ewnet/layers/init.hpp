// ewnet/layers/init.hpp: weight initialisers (seeded, host-side, then copied to the device).
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include <ewnet/random.hpp>
#include <ewnet/tensor.hpp>

namespace ewnet {

enum class Init {
  he,      // normal, std = sqrt(2 / fan_in) (He et al. 2015), for layers followed by ReLU
  glorot,  // uniform in +-sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio 2010), MATLAB's default
};

inline const char* init_name(Init i) { return i == Init::he ? "he" : "glorot"; }
inline Init parse_init(const std::string& s) {
  if (s == "he") return Init::he;
  if (s == "glorot") return Init::glorot;
  throw Error(str("unknown initialiser \"", s, "\": expected he or glorot"));
}

template <class T>
void initialize_weights(const Tensor<T>& w, Init init, double fan_in, double fan_out, Random& rng) {
  std::vector<T> v(w.size());
  if (init == Init::he) {
    const double std = std::sqrt(2.0 / fan_in);
    for (T& x : v) x = T(rng.normal() * std);
  } else {
    const double limit = std::sqrt(6.0 / (fan_in + fan_out));
    for (T& x : v) x = T(rng.uniform(-limit, limit));
  }
  w.copy_from(Tensor<T>::from_vector(w.shape(), v));
}

}  // namespace ewnet
