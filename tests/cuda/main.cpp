// The CUDA tests' main: skips the whole program (exit code 77, CTest's SKIP_RETURN_CODE) when no
// CUDA device can be used, and otherwise fixes the random seed for the run and prints it.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <random>

#include <ewnet/cuda/runtime.hpp>

#include "cuda_test.hpp"

namespace ewnet::cuda_test {
namespace {
std::uint64_t g_seed = 0;
}
std::uint64_t seed() { return g_seed; }
}  // namespace ewnet::cuda_test

int main(int argc, char* argv[]) {
  if (!ewnet::cuda::available()) {
    std::printf("no CUDA device: skipped\n");
    return 77;
  }
  // Fresh inputs each run; EWNET_TEST_SEED=<n> repeats a run.
  if (const char* s = std::getenv("EWNET_TEST_SEED")) {
    ewnet::cuda_test::g_seed = std::strtoull(s, nullptr, 10);
  } else {
    std::random_device rd;
    ewnet::cuda_test::g_seed = (std::uint64_t(rd()) << 32) | rd();
  }
  std::printf("CUDA device: %s; seed %llu (EWNET_TEST_SEED=%llu repeats this run)\n",
              ewnet::cuda::device_name().c_str(), (unsigned long long)ewnet::cuda_test::g_seed,
              (unsigned long long)ewnet::cuda_test::g_seed);
  return Catch::Session().run(argc, argv);
}
