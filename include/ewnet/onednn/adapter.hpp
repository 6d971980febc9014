// ewnet/onednn/adapter.hpp: the CPU backend's use of oneDNN's primitives, behind functions that
// speak ewnet's types (the CPU counterpart of src/cuda/cudnn_adapter): the engine and stream,
// memory descriptors of ewnet's tensor views, a bounded cache of primitive descriptors and
// primitives (created once per shape, as the cuDNN path caches its algorithm choice), per-thread
// scratch memory, reorders, and the state a layer keeps between calls (LayerCache).
//
// The operations themselves are in the other files of this folder (convolution.hpp, pooling.hpp,
// ...); ops/*.hpp dispatches float tensors on the CPU to them and keeps its own loops, the
// reference every test compares against, for double (the finite-difference checks) and for float
// when the reference path is asked for (EWNET_CPU_REFERENCE=1, or a ReferenceScope in a test).
//
// Memory stays bounded: the cache holds at most cache_capacity() entries per thread (least
// recently used evicted first), scratch buffers grow to the largest request and are reused, and a
// layer's cache holds one reordered copy of its weights per use (forward, backward data).
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <list>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <ewnet/cpu_engine.hpp>
#include <ewnet/device.hpp>
#include <ewnet/error.hpp>
#include <ewnet/precision.hpp>
#include <ewnet/tensor.hpp>

namespace ewnet::onednn {

using dnnl::memory;
using Dims = memory::dims;
using Args = std::unordered_map<int, memory>;

// ---- the switch between the primitives and the reference loops --------------------------------

namespace detail {
inline bool primitives_by_default() {
  const char* v = std::getenv("EWNET_CPU_REFERENCE");
  return !(v && *v && std::string(v) != "0");
}
inline bool& primitives_flag() {
  thread_local bool on = primitives_by_default();
  return on;
}
}  // namespace detail

/// True when float operations on the CPU run oneDNN's primitives on this thread (the default);
/// false when they run ewnet's reference loops (EWNET_CPU_REFERENCE=1, or inside a ReferenceScope).
inline bool enabled() { return detail::primitives_flag(); }
inline bool runs_on(Device d) { return d == Device::cpu && enabled(); }

/// Runs the reference loops on this thread for the scope's lifetime (tests compare the two paths).
class ReferenceScope {
 public:
  ReferenceScope() : saved_(detail::primitives_flag()) { detail::primitives_flag() = false; }
  ~ReferenceScope() { detail::primitives_flag() = saved_; }
  ReferenceScope(const ReferenceScope&) = delete;
  ReferenceScope& operator=(const ReferenceScope&) = delete;

 private:
  bool saved_;
};

// ---- engine, stream, descriptors ---------------------------------------------------------------

inline const dnnl::engine& engine() {
  static const dnnl::engine e(dnnl::engine::kind::cpu, 0);
  return e;
}
inline dnnl::stream& stream() {
  thread_local dnnl::stream s(engine());
  return s;
}

/// The memory descriptor of a float tensor view: plain NCHW or the engine's nChw16c / nChw8c, with
/// its batch stride. One sample's batch stride means nothing, and oneDNN's fast kernels take dense
/// descriptors only (a channel slice of one sample is dense): it is left out.
inline memory::desc desc_of(const Tensor<float>& t) {
  const memory::dim n = t.n(), c = t.c(), h = t.h(), w = t.w();
  const memory::dim batch_stride = n == 1 ? memory::dim(t.sample_extent()) : memory::dim(t.batch_stride());
  if (!t.blocked()) return memory::desc({n, c, h, w}, memory::data_type::f32, Dims{batch_stride, h * w, w, 1});
  EWNET_CHECK(t.block() == 8 || t.block() == 16, "the CPU engine has no layout in blocks of ", t.block(), " channels");
  memory::desc d({n, c, h, w}, memory::data_type::f32,
                 t.block() == 16 ? memory::format_tag::nChw16c : memory::format_tag::nChw8c);
  d.data.format_desc.blocking.strides[0] = batch_stride;
  return d;
}
/// `d` with another element type (the same layout and strides, in elements).
inline memory::desc with_type(memory::desc d, memory::data_type type) {
  d.data.data_type = dnnl_data_type_t(type);
  return d;
}

/// True when the engine runs bfloat16 matrix products natively: AVX512-BF16 (or AMX) in the
/// instruction set oneDNN uses here (ONEDNN_MAX_CPU_ISA may cap it).
inline bool bf16_supported() {
  const unsigned isa = unsigned(dnnl_get_effective_cpu_isa()), bf16 = unsigned(dnnl_cpu_isa_avx512_core_bf16);
  return (isa & bf16) == bf16;
}
/// Throws, naming what is missing, unless bf16_supported().
inline void require_bf16() {
  EWNET_CHECK_AS(DeviceError, bf16_supported(), "bfloat16 matrix products need a processor with AVX512-BF16 or AMX; ",
                 "the CPU engine runs ", cpu::cpu_engine().isa, " here (", cpu::cpu_engine().summary(),
                 "); use --precision fp32");
}

/// A oneDNN memory object over ewnet-owned data (no copy; oneDNN never frees it).
inline memory wrap(const memory::desc& d, const void* data) {
  return memory(d, engine(), const_cast<void*>(data));
}
inline memory wrap(const Tensor<float>& t) { return wrap(desc_of(t), t.data()); }

/// The engine's channels per block for activations (16 with AVX-512, 8 with AVX2; 0 when its
/// convolutions prefer no blocked layout): asked of oneDNN once, from the layout its convolution
/// chooses for a typical layer (64 channels of 14x14, 3x3) when left free (format_tag::any).
inline int preferred_block() {
  static const int block = [] {
    const auto any = memory::format_tag::any;
    const memory::desc x({32, 64, 14, 14}, memory::data_type::f32, any), w({64, 64, 3, 3}, memory::data_type::f32, any);
    dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct, x, w,
                                      memory::desc(), x, {1, 1}, {1, 1}, {1, 1});
    const memory::desc chosen = dnnl::convolution_forward::primitive_desc(d, engine()).src_desc();
    const dnnl_blocking_desc_t& b = chosen.data.format_desc.blocking;
    const bool channel_blocks = chosen.data.format_kind == dnnl_blocked && b.inner_nblks == 1 && b.inner_idxs[0] == 1;
    const int size = channel_blocks ? int(b.inner_blks[0]) : 0;
    return size == 8 || size == 16 ? size : 0;
  }();
  return block;
}

// ---- the primitive cache -----------------------------------------------------------------------

/// A cache key: the operation's name and every number that makes a primitive differ.
class Key {
 public:
  explicit Key(const char* op) : s_(op) { s_ += '|'; }
  Key& add(std::int64_t v) {
    s_.append(reinterpret_cast<const char*>(&v), sizeof v);
    return *this;
  }
  Key& add(const Dims& d) {
    add(std::int64_t(d.size()));
    for (memory::dim v : d) add(std::int64_t(v));
    return *this;
  }
  /// A tensor's dims, layout and data type (everything its descriptor is made of).
  Key& add(const memory::desc& d) {
    const dnnl_memory_desc_t& m = d.data;
    add(std::int64_t(m.ndims)).add(std::int64_t(m.data_type)).add(std::int64_t(m.format_kind));
    for (int i = 0; i < m.ndims; ++i) add(std::int64_t(m.dims[i])).add(std::int64_t(m.padded_dims[i]));
    if (m.format_kind == dnnl_blocked) {
      const dnnl_blocking_desc_t& b = m.format_desc.blocking;
      for (int i = 0; i < m.ndims; ++i) add(std::int64_t(b.strides[i]));
      add(std::int64_t(b.inner_nblks));
      for (int i = 0; i < b.inner_nblks; ++i) add(std::int64_t(b.inner_blks[i])).add(std::int64_t(b.inner_idxs[i]));
    } else if (m.format_kind == dnnl_format_kind_wino) {
      // Winograd's weights: two layers of equal dims may want other transforms (F(2x2, 3x3) or
      // F(4x4, 3x3)) and blockings, of other sizes.
      const dnnl_wino_desc_t& w = m.format_desc.wino_desc;
      add(std::int64_t(w.wino_format)).add(w.r).add(w.alpha).add(w.ic).add(w.oc).add(w.ic_block).add(w.oc_block);
      add(w.ic2_block).add(w.oc2_block).add(std::int64_t(w.size));
      float scale = w.adj_scale;
      std::int32_t bits;
      std::memcpy(&bits, &scale, sizeof bits);
      add(bits);
    }
    return *this;
  }
  const std::string& str() const { return s_; }

 private:
  std::string s_;
};

/// A primitive with the descriptor it was made from (the descriptor answers which layouts and how
/// much scratch memory and workspace it wants).
struct Entry {
  dnnl::primitive_desc_base pd;
  dnnl::primitive primitive;
};

/// Entries per thread before the least recently used is evicted: enough for every shape of the
/// largest model ewnet builds (Inception-v3: about 300 primitives a batch size in training) at two
/// batch sizes; EWNET_PRIMITIVE_CACHE overrides it.
inline size_t cache_capacity() {
  static const size_t n = [] {
    const char* v = std::getenv("EWNET_PRIMITIVE_CACHE");
    const long parsed = v ? std::strtol(v, nullptr, 10) : 0;
    return parsed > 0 ? size_t(parsed) : size_t(1024);
  }();
  return n;
}

/// Least-recently-used cache of primitives, one per thread (primitives are not shared across
/// threads, and each thread's scratch memory is its own).
class PrimitiveCache {
 public:
  /// The entry for `key`, made by make() when absent.
  template <class Make>
  const Entry& get(const Key& key, Make&& make) {
    auto it = index_.find(key.str());
    if (it != index_.end()) {
      order_.splice(order_.begin(), order_, it->second);
      return it->second->second;
    }
    order_.emplace_front(key.str(), make());
    index_[key.str()] = order_.begin();
    while (order_.size() > cache_capacity()) {
      index_.erase(order_.back().first);
      order_.pop_back();
    }
    return order_.front().second;
  }
  size_t size() const { return order_.size(); }
  void clear() {
    index_.clear();
    order_.clear();
  }

 private:
  std::list<std::pair<std::string, Entry>> order_;  // most recently used first
  std::unordered_map<std::string, std::list<std::pair<std::string, Entry>>::iterator> index_;
};

inline PrimitiveCache& primitive_cache() {
  thread_local PrimitiveCache c;
  return c;
}

// ---- scratch memory ----------------------------------------------------------------------------

/// A 64-byte aligned host buffer that grows on request and keeps its contents' place otherwise.
class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { std::free(p_); }
  /// At least `bytes` bytes (the old contents are lost when it grows).
  void* get(size_t bytes) {
    if (size_ < bytes) {
      std::free(p_);
      p_ = nullptr;
      size_ = 0;
      p_ = ewnet::detail::allocate(Device::cpu, bytes);
      size_ = bytes;
    }
    return p_;
  }
  void* data() const { return p_; }
  size_t size() const { return size_; }

 private:
  void* p_ = nullptr;
  size_t size_ = 0;
};

/// Scratch slots: the primitives' own scratchpad, and buffers for operands reordered on the way
/// in or out of a primitive.
enum class Slot { scratchpad, src, dst, weights, extra, count };

/// Per-thread scratch memory for `slot`, at least `bytes` long and 64-byte aligned; grown when too
/// small, never shrunk (bounded by the largest request).
inline void* scratch(Slot slot, size_t bytes) {
  thread_local Buffer buffers[size_t(Slot::count)];
  return buffers[size_t(slot)].get(bytes);
}

/// Memory for `d` in a scratch slot.
inline memory scratch_memory(const memory::desc& d, Slot slot) { return wrap(d, scratch(slot, d.get_size())); }

/// How many primitives this thread has executed (tests check that a path ran on the engine).
inline std::uint64_t& executed() {
  thread_local std::uint64_t n = 0;
  return n;
}

/// Executes a cached primitive with `args`, its scratchpad in this thread's scratch memory, on as
/// many OpenMP threads as the caller may use (cpu_engine.hpp).
inline void execute(const Entry& e, Args args) {
  ++executed();
  const memory::desc sd = e.pd.scratchpad_desc();
  if (sd.get_size() > 0) args[DNNL_ARG_SCRATCHPAD] = scratch_memory(sd, Slot::scratchpad);
  cpu::use_engine_threads();
  e.primitive.execute(stream(), args);
  stream().wait();
}

/// Attributes every primitive ewnet makes: the scratchpad is ewnet's (bounded, reused).
inline dnnl::primitive_attr base_attr() {
  dnnl::primitive_attr a;
  a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return a;
}

// ---- reorders ----------------------------------------------------------------------------------

/// dst = src (or dst += src when `accumulate`), converting between the two layouts.
inline void reorder(const memory& src, const memory& dst, bool accumulate = false) {
  const memory::desc sd = src.get_desc(), dd = dst.get_desc();
  Key key("reorder");
  key.add(sd).add(dd).add(accumulate);
  const Entry& e = primitive_cache().get(key, [&] {
    dnnl::primitive_attr attr = base_attr();
    if (accumulate) {
      dnnl::post_ops po;
      po.append_sum(1.f);
      attr.set_post_ops(po);
    }
    dnnl::reorder::primitive_desc pd(engine(), sd, engine(), dd, attr);
    return Entry{pd, dnnl::reorder(pd)};
  });
  execute(e, {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, dst}});
}

/// `t` in the layout `want`: itself when it already is, else a copy in scratch slot `slot`.
inline memory as_layout(const memory& t, const memory::desc& want, Slot slot) {
  if (t.get_desc() == want) return t;
  memory m = scratch_memory(want, slot);
  reorder(t, m);
  return m;
}

// ---- what a layer keeps between calls ----------------------------------------------------------

/// What a layer keeps for its primitives between calls, and how they are to run (bf16). The layer
/// owns it and lends it to its operations (the reference and CUDA paths ignore it):
///   - its weights reordered into the layout a primitive asked for, one copy per use (forward,
///     backward data), valid while the weights' buffer and `weights_version` are unchanged: the
///     layer sets weights_version from Param::version, which every writer of parameter values in
///     ewnet advances (a solver step, loading a checkpoint, initialisation);
///   - what a forward pass leaves for its backward pass (max pooling's argmax, LRN's workspace,
///     batch norm's batch variance), tagged with the output it belongs to, so a backward pass after
///     a forward pass that kept nothing (inference) recomputes it instead of reading stale values.
class LayerCache {
 public:
  enum Use { forward_weights, backward_weights, uses };

  std::uint64_t weights_version = 0;
  /// The layer's matrix products read activations and weights in bfloat16 (Precision::bf16).
  bool bf16 = false;

  /// The weights `plain` (ewnet's own layout) in layout `want`, reordered only when the kept copy is
  /// stale.
  memory weights(Use use, const memory& plain, const memory::desc& want) {
    Prepared& p = prepared_[use];
    const void* source = plain.get_data_handle();
    if (p.source != source || p.version != weights_version || !(p.desc == want)) {
      p.source = nullptr;
      reorder(plain, wrap(want, p.data.get(want.get_size())));
      p.source = source;
      p.version = weights_version;
      p.desc = want;
    }
    return wrap(want, p.data.data());
  }
  /// Forgets the reordered weights (the layer's parameters were re-created).
  void drop_weights() {
    for (Prepared& p : prepared_) p.source = nullptr;
  }

  /// Workspace memory for `d`, now belonging to the forward pass that wrote `output`.
  memory keep(const memory::desc& d, const void* output) {
    workspace_desc_ = d;
    workspace_owner_ = output;
    return wrap(d, workspace_.get(d.get_size()));
  }
  /// The workspace the last forward pass left for `output` with descriptor `d`, if any.
  bool kept(const memory::desc& d, const void* output, memory& out) {
    if (workspace_owner_ != output || workspace_owner_ == nullptr || !(workspace_desc_ == d)) return false;
    out = wrap(d, workspace_.data());
    return true;
  }
  /// A forward pass that kept nothing: no backward pass may use an older workspace.
  void forget() { workspace_owner_ = nullptr; }

 private:
  struct Prepared {
    const void* source = nullptr;
    std::uint64_t version = 0;
    memory::desc desc;
    Buffer data;
  };
  Prepared prepared_[uses];
  Buffer workspace_;
  memory::desc workspace_desc_;
  const void* workspace_owner_ = nullptr;
};

}  // namespace ewnet::onednn
