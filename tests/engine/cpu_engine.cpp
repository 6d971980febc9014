// The CPU engine the backend runs on: reported, and never a generic fallback where the processor
// has more. Its own main: on a processor without AVX2 there is nothing to check, and the process
// exits 77, which CTest reports as skipped.
//
// CTest runs this file's cases twice (tests/engine/CMakeLists.txt): as the machine is, where the
// engine must use the processor's widest kernels, and with ONEDNN_MAX_CPU_ISA=SSE41, where it
// must say that it runs a generic fallback and warn (so the first check can fail).
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <vector>

#include <ewnet/blas.hpp>
#include <ewnet/cpu_engine.hpp>
#include <ewnet/model.hpp>

using ewnet::cpu::cpu_engine;

TEST_CASE("the CPU engine says what it is and what it runs on", "[native]") {
  const auto& e = cpu_engine();
  INFO(e.summary());
  CHECK(e.engine.rfind("oneDNN ", 0) == 0);
  CHECK_FALSE(e.isa.empty());
  CHECK(e.summary().rfind("CPU: oneDNN ", 0) == 0);
  CHECK(e.summary().find(e.isa) != std::string::npos);
  CHECK(e.threads == ewnet::cpu::thread_count());
}

TEST_CASE("the CPU engine is not a generic fallback on this processor", "[native]") {
  const auto& e = cpu_engine();
  INFO(e.summary());
  CHECK_FALSE(e.generic);
  CHECK(e.warning().empty());
  if (e.processor == "AVX-512") CHECK(e.isa.rfind("avx512_core", 0) == 0);
  if (e.processor == "AVX2") CHECK(e.isa.rfind("avx2", 0) == 0);
}

TEST_CASE("a capped engine is reported as a generic fallback, with a warning", "[capped]") {
  const auto& e = cpu_engine();
  INFO(e.summary());
  CHECK(e.generic);
  CHECK(e.isa == "sse41");
  CHECK(e.warning().find("sse41") != std::string::npos);
}

TEST_CASE("bfloat16 is offered exactly where the engine has AVX512-BF16 or AMX", "[native][capped]") {
  const auto& e = cpu_engine();
  INFO(e.summary());
  const bool has = e.isa.rfind("avx512_core_bf16", 0) == 0 || e.isa.rfind("avx512_core_amx", 0) == 0;
  CHECK(ewnet::onednn::bf16_supported() == has);
  ewnet::Model<float> m;
  m.add(std::make_unique<ewnet::ImageInput<float>>("input", 3, 8, 8));
  m.add(std::make_unique<ewnet::FullyConnected<float>>("fc", 2));
  if (has) {
    CHECK_NOTHROW(m.set_precision(ewnet::Precision::bf16));
  } else {
    // Capped to SSE4.1 (engine:capped) or a processor without them: an error naming what is missing.
    CHECK_THROWS_WITH(m.set_precision(ewnet::Precision::bf16),
                      Catch::Contains("AVX512-BF16 or AMX") && Catch::Contains(e.isa));
  }
}

TEST_CASE("GEMM through the engine matches the double-precision loop", "[native][capped]") {
  // Both paths at once: op(A) op(B) for every transpose pair, with alpha, beta and row pitches.
  const int m = 37, n = 29, k = 53;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      const int lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 2, ldc = n + 5;
      std::vector<float> a(size_t(ta ? k : m) * lda), b(size_t(tb ? n : k) * ldb), c(size_t(m) * ldc);
      std::vector<double> ad(a.size()), bd(b.size()), cd(c.size());
      for (size_t i = 0; i < a.size(); ++i) ad[i] = a[i] = float((i * 37 % 101) / 50.0 - 1);
      for (size_t i = 0; i < b.size(); ++i) bd[i] = b[i] = float((i * 53 % 97) / 48.0 - 1);
      for (size_t i = 0; i < c.size(); ++i) cd[i] = c[i] = float((i * 11 % 13) / 6.0 - 1);
      ewnet::cpu::gemm(ta, tb, m, n, k, 0.5f, a.data(), lda, b.data(), ldb, 0.25f, c.data(), ldc);
      ewnet::cpu::gemm(bool(ta), bool(tb), m, n, k, 0.5, ad.data(), lda, bd.data(), ldb, 0.25, cd.data(), ldc);
      // The naive sum of the definition, for the double loop itself.
      for (int i = 0; i < m; ++i)
        for (int j = 0; j < n; ++j) {
          double s = 0;
          for (int p = 0; p < k; ++p)
            s += double(ta ? a[size_t(p) * lda + i] : a[size_t(i) * lda + p]) *
                 double(tb ? b[size_t(j) * ldb + p] : b[size_t(p) * ldb + j]);
          const double init = (size_t(i) * ldc + j) * 11 % 13 / 6.0 - 1;
          const double want = 0.5 * s + 0.25 * double(float(init));
          INFO("trans " << ta << tb << " at " << i << "," << j);
          REQUIRE(cd[size_t(i) * ldc + j] == Approx(want).margin(1e-12));
          REQUIRE(c[size_t(i) * ldc + j] == Approx(want).margin(1e-4));
        }
    }
}

int main(int argc, char** argv) {
  if (ewnet::cpu::engine_detail::processor_width() == 0) {
    std::printf("this processor has no AVX2: nothing to check about the engine's choice\n");
    return 77;
  }
  return Catch::Session().run(argc, argv);
}
