// ewnet/io/param_budget.hpp: the checkpoint loader's guard against forged architectures. While a
// checkpoint's architecture is built, the parameters it allocates may not exceed the values the
// file holds: a 2^20-way classifier declared in a 6 MB file is refused before its memory is taken
// rather than after. It watches allocations through the layers' hook (ParamAllocationGuard).
#pragma once

#include <cstdint>
#include <string>

#include <ewnet/error.hpp>
#include <ewnet/layers/layer.hpp>

namespace ewnet {

/// Limits the parameter values allocated on this thread to `values` for the guard's lifetime;
/// `source` (the file) names the refusal, an IoError.
class ParamBudget final : public ParamAllocationGuard {
 public:
  ParamBudget(const std::string& source, std::uint64_t values)
      : source_(source), left_(values), saved_(detail::param_allocation_guard()) {
    detail::param_allocation_guard() = this;
  }
  ~ParamBudget() { detail::param_allocation_guard() = saved_; }
  ParamBudget(const ParamBudget&) = delete;
  ParamBudget& operator=(const ParamBudget&) = delete;

  void allocating(const std::string& param, std::uint64_t values) override {
    EWNET_CHECK_AS(IoError, values <= left_, source_, ": the architecture asks for a parameter '", param, "' of ",
                   values, " values but the file holds only ", left_,
                   " more: the architecture does not match the tensors (corrupt or forged checkpoint)");
    left_ -= values;
  }

 private:
  const std::string& source_;
  std::uint64_t left_;
  ParamAllocationGuard* saved_;
};

}  // namespace ewnet
