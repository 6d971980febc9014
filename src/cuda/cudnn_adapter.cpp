// cuda/cudnn_adapter.cpp: the only file that calls cuDNN.
//
// Convolutions use cuDNN's legacy (v7-style) API, which cuDNN 9 marks deprecated. The backend is
// compiled with CUDNN_WARN_DEPRECATED (cmake/EwnetCuda.cmake), and the warnings are silenced only
// around the convolution section below (filter and convolution descriptors, algorithm queries,
// the three passes): a deprecated call anywhere else (handle, tensor descriptors, errors) shows.
//
// Per convolution shape (input and output shapes with their batch strides, filter, geometry,
// math mode, deterministic mode) a plan holds the descriptors and, for each direction, the
// algorithm, chosen once when that direction first runs and kept. The choice takes cuDNN's
// heuristic ranking (cudnnGet*Algorithm_v7: no trial runs, no synchronisation, nothing written to
// the tensors, which matters for a backward-data pass that accumulates into dx) and the first
// algorithm that cuDNN accepts for the math mode and whose workspace fits kMaxWorkspace; in
// deterministic mode (runtime.hpp, on by default) only algorithms whose perf entry says
// CUDNN_DETERMINISTIC (the rule: cuda/algorithm_choice.hpp, tested on the host). stats() lists
// every choice, so tests assert what was chosen rather than compare results. All plans share one
// workspace, grown when a plan needs more; the old block goes back to the caching allocator,
// which is safe because every user of it runs on the same stream, and is held back while a CUDA
// graph exists or a capture runs (a graph may still use it: release_after_graphs).
//
// Precision: FP32 mode sets CUDNN_FMA_MATH (no tensor-core TF32); set_tf32(true) lets cuDNN use
// the math type its heuristic ranks best. The descriptor's math type is set to the plan's mode
// before every heuristic query and read back (stats() reports it): choosing an algorithm for one
// direction leaves the math type of that choice on the shared descriptor, which would otherwise
// restrict the next query.
#include "cuda/cudnn_adapter.hpp"

#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include <cudnn.h>

#include <ewnet/cuda/runtime.hpp>

#include "cuda/algorithm_choice.hpp"
#include "cuda/check.hpp"
#include "cuda/graph_support.hpp"

namespace ewnet::cuda::detail {
inline void check(cudnnStatus_t status, const char* call, const char* file, int line) {
  if (status == CUDNN_STATUS_SUCCESS) return;
  char detail[512] = {0};
  cudnnGetLastErrorString(detail, sizeof detail);
  fail("cuDNN", call, file, line, str(cudnnGetErrorString(status), detail[0] ? " (" : "", detail,
                                      detail[0] ? ")" : "").c_str());
}
}  // namespace ewnet::cuda::detail

namespace ewnet::cuda::cudnn {

namespace {

constexpr std::size_t kMaxWorkspace = std::size_t(1) << 30;

struct Context {
  cudnnHandle_t handle = nullptr;
  cudaStream_t stream = nullptr;
  void* workspace = nullptr;
  std::size_t workspace_bytes = 0;
};

Context& context() {
  static Context c = [] {
    require_device();
    Context ctx;
    EWNET_CUDA_CHECK(cudnnCreate(&ctx.handle));
    return ctx;
  }();
  if (c.stream != stream()) {
    c.stream = stream();
    EWNET_CUDA_CHECK(cudnnSetStream(c.handle, c.stream));
  }
  return c;
}

void* workspace(std::size_t bytes) {
  Context& c = context();
  if (bytes > c.workspace_bytes) {
    detail::release_after_graphs(c.workspace, c.workspace_bytes);
    c.workspace = nullptr;
    c.workspace_bytes = 0;
    c.workspace = allocate(bytes);
    c.workspace_bytes = bytes;
  }
  return c.workspace;
}

cudnnTensorDescriptor_t make_tensor(const Tensor<float>& t) {
  cudnnTensorDescriptor_t d = nullptr;
  EWNET_CUDA_CHECK(cudnnCreateTensorDescriptor(&d));
  const Shape& s = t.shape();
  // nStride is the view's batch stride: a channel slice of a concatenation is read in place.
  EWNET_CUDA_CHECK(cudnnSetTensor4dDescriptorEx(d, CUDNN_DATA_FLOAT, s.n, s.c, s.h, s.w, int(t.batch_stride()),
                                                s.h * s.w, s.w, 1));
  return d;
}

}  // namespace
}  // namespace ewnet::cuda::cudnn

// ---- the legacy convolution API (deprecated in cuDNN 9) ---------------------------------------
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif

namespace ewnet::cuda::cudnn {
namespace {

struct Algo {
  bool chosen = false;
  int algo = 0;
  cudnnMathType_t math = CUDNN_FMA_MATH;
  std::size_t workspace = 0;
  bool deterministic = false;                   // as cuDNN's ranking reported it
  cudnnMathType_t queried_in = CUDNN_FMA_MATH;  // the descriptor's math type during the query
};

struct Plan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  bool tf32 = false;
  bool deterministic = true;
  Algo fwd, bwd_data, bwd_filter;
  cudnnMathType_t query_math() const { return tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH; }
  ~Plan() {
    if (x) cudnnDestroyTensorDescriptor(x);
    if (y) cudnnDestroyTensorDescriptor(y);
    if (w) cudnnDestroyFilterDescriptor(w);
    if (conv) cudnnDestroyConvolutionDescriptor(conv);
  }
};

using Key = std::array<long long, 17>;

std::mutex g_mutex;
std::map<Key, std::unique_ptr<Plan>>& plans() {
  static auto* p = new std::map<Key, std::unique_ptr<Plan>>;  // kept until exit: handles outlive statics
  return *p;
}

/// The plan for input `x`, filters `w`, output `y` (x and y as in the forward pass).
Plan& plan_for(const Tensor<float>& x, const Tensor<float>& w, const Tensor<float>& y, const Conv2dGeometry& g) {
  const bool use_tf32 = tf32(), use_deterministic = deterministic();
  const Key key{x.n(), x.c(), x.h(), x.w(), (long long)x.batch_stride(), w.n(), y.h(), y.w(),
                (long long)y.batch_stride(), g.kernel_h, g.kernel_w, g.stride_h, g.stride_w, g.pad_h, g.pad_w,
                use_tf32 ? 1 : 0, use_deterministic ? 1 : 0};
  std::unique_ptr<Plan>& slot = plans()[key];
  if (slot) return *slot;
  auto p = std::make_unique<Plan>();
  p->tf32 = use_tf32;
  p->deterministic = use_deterministic;
  p->x = make_tensor(x);
  p->y = make_tensor(y);
  EWNET_CUDA_CHECK(cudnnCreateFilterDescriptor(&p->w));
  EWNET_CUDA_CHECK(cudnnSetFilter4dDescriptor(p->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, w.n(), w.c(), w.h(), w.w()));
  EWNET_CUDA_CHECK(cudnnCreateConvolutionDescriptor(&p->conv));
  EWNET_CUDA_CHECK(cudnnSetConvolution2dDescriptor(p->conv, g.pad_h, g.pad_w, g.stride_h, g.stride_w, 1, 1,
                                                   CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  EWNET_CUDA_CHECK(cudnnSetConvolutionMathType(p->conv, p->query_math()));
  int n = 0, c = 0, h = 0, wd = 0;
  EWNET_CUDA_CHECK(cudnnGetConvolution2dForwardOutputDim(p->conv, p->x, p->w, &n, &c, &h, &wd));
  EWNET_CHECK_AS(ShapeError, n == y.n() && c == y.c() && h == y.h() && wd == y.w(), "cuDNN computes a ",
                 Shape(n, c, h, wd), " output for input ", x.shape(), " and filters ", w.shape(), ", not ", y.shape());
  slot = std::move(p);
  return *slot;
}

const char* math_name(cudnnMathType_t m) {
  switch (m) {
    case CUDNN_DEFAULT_MATH: return "DEFAULT";
    case CUDNN_TENSOR_OP_MATH: return "TENSOR_OP";
    case CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION: return "TENSOR_OP_ALLOW_CONVERSION";
    case CUDNN_FMA_MATH: return "FMA";
  }
  return "unknown";
}

/// Sets the plan's query math type on the descriptor (a choice for another direction leaves its
/// own there) and returns what the descriptor then holds, read back from cuDNN.
cudnnMathType_t set_query_math(const Plan& p) {
  EWNET_CUDA_CHECK(cudnnSetConvolutionMathType(p.conv, p.query_math()));
  cudnnMathType_t now = CUDNN_DEFAULT_MATH;
  EWNET_CUDA_CHECK(cudnnGetConvolutionMathType(p.conv, &now));
  return now;
}

/// Takes the heuristic's ranking and keeps the algorithm detail::choose_algorithm picks: the first
/// that runs in the plan's math mode with a workspace under the cap (and, in deterministic mode,
/// that cuDNN reports deterministic). `workspace_of(algo)` returns cuDNN's status and size.
template <class Perf, class WorkspaceOf>
Algo choose(const char* direction, Plan& p, cudnnMathType_t queried_in, const Perf* perf, int count,
            WorkspaceOf workspace_of) {
  std::vector<detail::AlgorithmCandidate> ranked(static_cast<std::size_t>(count));
  std::vector<cudnnMathType_t> maths(static_cast<std::size_t>(count), CUDNN_FMA_MATH);
  for (int i = 0; i < count; ++i) {
    detail::AlgorithmCandidate& c = ranked[std::size_t(i)];
    c.algorithm = int(perf[i].algo);
    c.usable = perf[i].status == CUDNN_STATUS_SUCCESS;
    c.deterministic = perf[i].determinism == CUDNN_DETERMINISTIC;
    if (!c.usable) continue;
    const cudnnMathType_t math = p.tf32 ? perf[i].mathType : CUDNN_FMA_MATH;
    maths[std::size_t(i)] = math;
    c.math_accepted = cudnnSetConvolutionMathType(p.conv, math) == CUDNN_STATUS_SUCCESS;
    if (!c.math_accepted) continue;
    c.workspace_known = workspace_of(c.algorithm, &c.workspace) == CUDNN_STATUS_SUCCESS;
  }
  const int i = detail::choose_algorithm(ranked, p.deterministic, kMaxWorkspace);
  if (i >= 0) {
    const detail::AlgorithmCandidate& c = ranked[std::size_t(i)];
    return Algo{true, c.algorithm, maths[std::size_t(i)], c.workspace, c.deterministic, queried_in};
  }
  throw DeviceError(str("cuDNN offers no ", p.deterministic ? "deterministic " : "", direction,
                        " convolution algorithm for this shape in ", p.tf32 ? "TF32" : "FP32 (FMA)", " math within a ",
                        kMaxWorkspace, "-byte workspace (cudnn_adapter.cpp)",
                        p.deterministic ? "; cuda::set_deterministic(false) allows the others" : ""));
}

}  // namespace

void conv_forward(const Tensor<float>& x, const Tensor<float>& w, const Tensor<float>& y, const Conv2dGeometry& g) {
  std::lock_guard<std::mutex> lock(g_mutex);
  Context& ctx = context();
  Plan& p = plan_for(x, w, y, g);
  if (!p.fwd.chosen) {
    cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int count = 0;
    const cudnnMathType_t queried_in = set_query_math(p);
    EWNET_CUDA_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(ctx.handle, p.x, p.w, p.conv, p.y,
                                                            CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &count, perf));
    p.fwd = choose("forward", p, queried_in, perf, count, [&](int algo, std::size_t* bytes) {
      return cudnnGetConvolutionForwardWorkspaceSize(ctx.handle, p.x, p.w, p.conv, p.y,
                                                     cudnnConvolutionFwdAlgo_t(algo), bytes);
    });
  }
  void* ws = workspace(p.fwd.workspace);
  const float one = 1.0f, zero = 0.0f;
  EWNET_CUDA_CHECK(cudnnSetConvolutionMathType(p.conv, p.fwd.math));
  EWNET_CUDA_CHECK(cudnnConvolutionForward(ctx.handle, &one, p.x, x.data(), p.w, w.data(), p.conv,
                                           cudnnConvolutionFwdAlgo_t(p.fwd.algo), ws, p.fwd.workspace, &zero,
                                           p.y, y.data()));
}

void conv_backward_data(const Tensor<float>& dy, const Tensor<float>& w, const Tensor<float>& dx,
                        const Conv2dGeometry& g, bool accumulate) {
  std::lock_guard<std::mutex> lock(g_mutex);
  Context& ctx = context();
  Plan& p = plan_for(dx, w, dy, g);
  if (!p.bwd_data.chosen) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int count = 0;
    const cudnnMathType_t queried_in = set_query_math(p);
    EWNET_CUDA_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(ctx.handle, p.w, p.y, p.conv, p.x,
                                                                 CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &count, perf));
    p.bwd_data = choose("backward-data", p, queried_in, perf, count, [&](int algo, std::size_t* bytes) {
      return cudnnGetConvolutionBackwardDataWorkspaceSize(ctx.handle, p.w, p.y, p.conv, p.x,
                                                          cudnnConvolutionBwdDataAlgo_t(algo), bytes);
    });
  }
  void* ws = workspace(p.bwd_data.workspace);
  // beta = 1 adds onto dx (a second consumer's share); beta = 0 never reads dx.
  const float one = 1.0f, beta = accumulate ? 1.0f : 0.0f;
  EWNET_CUDA_CHECK(cudnnSetConvolutionMathType(p.conv, p.bwd_data.math));
  EWNET_CUDA_CHECK(cudnnConvolutionBackwardData(ctx.handle, &one, p.w, w.data(), p.y, dy.data(), p.conv,
                                                cudnnConvolutionBwdDataAlgo_t(p.bwd_data.algo), ws,
                                                p.bwd_data.workspace, &beta, p.x, dx.data()));
}

void conv_backward_filter(const Tensor<float>& x, const Tensor<float>& dy, const Tensor<float>& dw,
                          const Conv2dGeometry& g) {
  std::lock_guard<std::mutex> lock(g_mutex);
  Context& ctx = context();
  Plan& p = plan_for(x, dw, dy, g);
  if (!p.bwd_filter.chosen) {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int count = 0;
    const cudnnMathType_t queried_in = set_query_math(p);
    EWNET_CUDA_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
        ctx.handle, p.x, p.y, p.conv, p.w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &count, perf));
    p.bwd_filter = choose("backward-filter", p, queried_in, perf, count, [&](int algo, std::size_t* bytes) {
      return cudnnGetConvolutionBackwardFilterWorkspaceSize(ctx.handle, p.x, p.y, p.conv, p.w,
                                                            cudnnConvolutionBwdFilterAlgo_t(algo), bytes);
    });
  }
  void* ws = workspace(p.bwd_filter.workspace);
  const float one = 1.0f, zero = 0.0f;
  EWNET_CUDA_CHECK(cudnnSetConvolutionMathType(p.conv, p.bwd_filter.math));
  EWNET_CUDA_CHECK(cudnnConvolutionBackwardFilter(ctx.handle, &one, p.x, x.data(), p.y, dy.data(), p.conv,
                                                  cudnnConvolutionBwdFilterAlgo_t(p.bwd_filter.algo), ws,
                                                  p.bwd_filter.workspace, &zero, p.w, dw.data()));
}

Stats stats() {
  std::lock_guard<std::mutex> lock(g_mutex);
  Stats s;
  s.plans = plans().size();
  if (available()) s.workspace_bytes = context().workspace_bytes;
  for (const auto& [key, plan] : plans()) {
    const std::pair<const char*, const Algo*> directions[] = {
        {"forward", &plan->fwd}, {"backward-data", &plan->bwd_data}, {"backward-filter", &plan->bwd_filter}};
    for (const auto& [direction, a] : directions) {
      if (!a->chosen) continue;
      Choice c;
      c.direction = direction;
      c.tf32_plan = plan->tf32;
      c.deterministic_plan = plan->deterministic;
      c.algorithm = a->algo;
      c.math = math_name(a->math);
      c.queried_in = math_name(a->queried_in);
      c.deterministic = a->deterministic;
      c.workspace = a->workspace;
      s.choices.push_back(c);
    }
  }
  return s;
}

void reserve_workspace(std::size_t bytes) {
  std::lock_guard<std::mutex> lock(g_mutex);
  workspace(bytes);
}

}  // namespace ewnet::cuda::cudnn

#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
