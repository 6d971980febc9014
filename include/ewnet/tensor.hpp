// ewnet/tensor.hpp: Tensor<T>, an NCHW array on the CPU or a CUDA device.
//
// A tensor is a shared buffer plus a view on it: an offset, a shape and a batch stride (the
// distance in elements between consecutive samples). Within a sample the layout is dense CHW,
// except inside a Model on the CPU engine, whose primitives keep activations in their own blocked
// layout (block() > 0: oneDNN's nChw16c or nChw8c; see Layout below). That is exactly enough for
// the views ewnet needs:
//   - a channel range of a tensor, channels(c0, count), which inception branches write straight
//     into so that depth concatenation costs nothing (its batch stride is the parent's);
//   - a range of samples, batch(n0, count), for mini-batches of a larger tensor.
// Views share the buffer and are writable; copying a Tensor copies the view, not the data.
//
// Layout. Plain (block 0): element (n, c, h, w) at n * batch_stride + (c * H + h) * W + w. Blocked
// (block B, 8 or 16): the channels in groups of B, each group's H x W pixels holding B consecutive
// channels, at n * batch_stride + ((c / B) * H * W + h * W + w) * B + c % B; the channel count is
// padded with zeros to a multiple of B (sample_extent()). A blocked tensor with one pixel a sample
// and a channel count that is a multiple of B is laid out exactly as a plain one (same_as_plain()).
// to_vector(), at(), copy_from() and to() read and convert either layout; everything a user is
// handed by a Model (activation(), prediction(), output_gradient()) is plain.
#pragma once

#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include <ewnet/device.hpp>
#include <ewnet/error.hpp>
#include <ewnet/shape.hpp>

namespace ewnet {

namespace detail {
/// One allocation on one device; freed when the last tensor viewing it goes away.
class Storage {
 public:
  Storage(Device device, size_t bytes) : device_(device), bytes_(bytes), ptr_(allocate(device, bytes)) {}
  ~Storage() { release(device_, ptr_, bytes_); }
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  Device device() const { return device_; }
  size_t bytes() const { return bytes_; }
  void* get() const { return ptr_; }

 private:
  Device device_;
  size_t bytes_;
  void* ptr_;
};
}  // namespace detail

template <class T>
class Tensor {
  static_assert(std::is_floating_point_v<T> || std::is_integral_v<T>, "Tensor holds numbers");

 public:
  using value_type = T;

  /// An empty tensor: no storage, shape [0x0x0x0].
  Tensor() = default;

  /// A dense, zero-filled tensor of `shape` on `device`.
  explicit Tensor(Shape shape, Device device = Device::cpu) : Tensor(empty(shape, device)) { zero(); }

  /// A dense tensor whose contents are undefined (for outputs that an operation overwrites), plain
  /// or in blocks of `block` channels (the CPU engine's layout; CPU only).
  static Tensor empty(Shape shape, Device device = Device::cpu, int block = 0) {
    EWNET_CHECK_AS(ShapeError, shape.n >= 0 && shape.c >= 0 && shape.h >= 0 && shape.w >= 0,
                   "tensor shape ", shape, " has a negative extent");
    EWNET_CHECK_AS(DeviceError, block == 0 || device == Device::cpu, "a blocked tensor lives on the CPU");
    EWNET_CHECK(block >= 0, "tensor block size ", block, " is negative");
    Tensor t;
    t.shape_ = shape;
    t.block_ = block;
    t.batch_stride_ = t.sample_extent();
    t.storage_ = std::make_shared<detail::Storage>(device, size_t(shape.n) * t.batch_stride_ * sizeof(T));
    return t;
  }

  /// A CPU tensor holding `values` (size must equal shape.size()), then moved to `device`.
  static Tensor from_vector(Shape shape, const std::vector<T>& values, Device device = Device::cpu) {
    EWNET_CHECK_AS(ShapeError, values.size() == shape.size(), "from_vector: ", values.size(),
                   " values for shape ", shape, " (", shape.size(), " elements)");
    Tensor t = empty(shape, device);
    detail::copy_bytes(device, t.data(), Device::cpu, values.data(), values.size() * sizeof(T));
    return t;
  }

  const Shape& shape() const { return shape_; }
  int n() const { return shape_.n; }
  int c() const { return shape_.c; }
  int h() const { return shape_.h; }
  int w() const { return shape_.w; }
  size_t size() const { return shape_.size(); }
  bool empty() const { return shape_.size() == 0; }
  /// Elements between sample i and sample i+1.
  size_t batch_stride() const { return batch_stride_; }
  /// Channels per block: 0 for plain CHW samples, 8 or 16 in the CPU engine's blocked layout.
  int block() const { return block_; }
  bool blocked() const { return block_ > 0; }
  /// Elements one sample occupies: C*H*W, with C rounded up to a whole block when blocked.
  size_t sample_extent() const {
    const size_t c = block_ ? (size_t(shape_.c) + size_t(block_) - 1) / size_t(block_) * size_t(block_) : size_t(shape_.c);
    return c * shape_.plane();
  }
  /// True when this blocked view has the same bytes as a plain one would (one pixel a sample, whole
  /// blocks of channels): the engine's layout and the plain one then agree.
  bool same_as_plain() const { return !block_ || (shape_.plane() == 1 && shape_.c % block_ == 0); }
  /// The same view seen as plain (same_as_plain() must hold).
  Tensor plain_view() const {
    EWNET_CHECK_AS(ShapeError, same_as_plain(), "a blocked tensor of shape ", shape_, " has no plain view");
    Tensor v = *this;
    v.block_ = 0;
    return v;
  }
  /// The same view seen in blocks of `block` channels (same_as_plain() of the result must hold).
  Tensor blocked_view(int block) const {
    Tensor v = *this;
    v.block_ = block;
    EWNET_CHECK_AS(ShapeError, v.same_as_plain(), "a tensor of shape ", shape_, " has no view in blocks of ", block);
    return v;
  }
  /// True when the samples follow each other with no gap (the whole tensor is one dense block).
  bool contiguous() const { return batch_stride_ == sample_extent() || shape_.n <= 1; }
  Device device() const { return storage_ ? storage_->device() : Device::cpu; }
  bool on_cpu() const { return device() == Device::cpu; }

  /// Pointer to element (0,0,0,0); a device pointer for CUDA tensors.
  T* data() const { return storage_ ? static_cast<T*>(storage_->get()) + offset_ : nullptr; }
  /// Pointer to the first element of sample i.
  T* sample(int i) const { return data() + size_t(i) * batch_stride_; }

  /// Element access for CPU tensors (tests, small host-side work).
  T& at(int n, int c, int h, int w) const { return data()[size_t(n) * batch_stride_ + offset_in_sample(c, h, w)]; }

  /// A writable view of channels [c0, c0+count) of every sample. Blocked: c0 must start a block,
  /// and the view must end on a block boundary or at the last channel (its padding is the
  /// tensor's own then), so that no two views share a block.
  Tensor channels(int c0, int count) const {
    EWNET_CHECK_AS(ShapeError, c0 >= 0 && count >= 0 && c0 + count <= shape_.c, "channels(", c0, ", ", count,
                   ") is outside a tensor of shape ", shape_);
    EWNET_CHECK_AS(ShapeError, !block_ || (c0 % block_ == 0 && (count % block_ == 0 || c0 + count == shape_.c)),
                   "channels(", c0, ", ", count, ") of a tensor in blocks of ", block_, " channels splits a block");
    Tensor v = *this;
    v.offset_ += size_t(c0) * shape_.plane();
    v.shape_.c = count;
    return v;
  }

  /// A writable view of samples [n0, n0+count).
  Tensor batch(int n0, int count) const {
    EWNET_CHECK_AS(ShapeError, n0 >= 0 && count >= 0 && n0 + count <= shape_.n, "batch(", n0, ", ", count,
                   ") is outside a tensor of shape ", shape_);
    Tensor v = *this;
    v.offset_ += size_t(n0) * batch_stride_;
    v.shape_.n = count;
    return v;
  }

  /// The same samples seen with another per-sample shape of equal size (e.g. CxHxW as Dx1x1);
  /// plain tensors only.
  Tensor reshape(Shape s) const {
    EWNET_CHECK_AS(ShapeError, s.n == shape_.n && s.sample_size() == shape_.sample_size(), "cannot reshape ",
                   shape_, " to ", s);
    EWNET_CHECK_AS(ShapeError, !block_ || s == shape_, "cannot reshape a blocked tensor of shape ", shape_, " to ", s);
    Tensor v = *this;
    v.shape_ = s;
    return v;
  }

  /// True when both tensors view the same allocation.
  bool shares_storage_with(const Tensor& o) const { return storage_ && storage_ == o.storage_; }
  /// True when both are the same view (same buffer, offset, shape and stride).
  bool same_view(const Tensor& o) const {
    return storage_ == o.storage_ && offset_ == o.offset_ && shape_ == o.shape_ && batch_stride_ == o.batch_stride_ &&
           block_ == o.block_;
  }

  /// Sets every element of the view to zero.
  void zero() const {
    if (empty()) return;
    if (contiguous()) {
      zero_block(data(), size_t(shape_.n) * sample_extent());
    } else {
      for (int i = 0; i < shape_.n; ++i) zero_block(sample(i), sample_extent());
    }
  }

  /// Copies the elements of `src` (same shape, any device, any batch stride, either layout) into
  /// this view. Between layouts it converts element by element on the host (Model converts its
  /// activations with the CPU engine's reorders instead).
  void copy_from(const Tensor& src) const {
    EWNET_CHECK_AS(ShapeError, src.shape() == shape_, "copy_from: source shape ", src.shape(),
                   " differs from destination shape ", shape_);
    if (empty()) return;
    if (src.block_ != block_ && !(src.same_as_plain() && same_as_plain())) {
      EWNET_CHECK_AS(DeviceError, on_cpu() && src.on_cpu(), "copy_from: layouts differ across devices");
      for (int n = 0; n < shape_.n; ++n)
        for (int c = 0; c < shape_.c; ++c)
          for (int h = 0; h < shape_.h; ++h)
            for (int w = 0; w < shape_.w; ++w) at(n, c, h, w) = src.at(n, c, h, w);
      return;
    }
    const size_t row = sample_extent() * sizeof(T);
    if (contiguous() && src.contiguous()) {
      detail::copy_bytes(device(), data(), src.device(), src.data(), size_t(shape_.n) * row);
    } else if (device() == src.device()) {
      detail::copy_rows(device(), data(), batch_stride_ * sizeof(T), src.data(), src.batch_stride_ * sizeof(T),
                        row, size_t(shape_.n));
    } else {
      for (int i = 0; i < shape_.n; ++i)
        detail::copy_bytes(device(), sample(i), src.device(), src.sample(i), row);
    }
  }

  /// A dense plain copy on `device` (a copy even when already there).
  Tensor to(Device device) const {
    Tensor t = empty(shape_, device);
    t.copy_from(*this);
    return t;
  }

  /// A dense plain copy of the same view on the same device.
  Tensor clone() const { return to(device()); }

  /// The elements in NCHW order, copied to the host.
  std::vector<T> to_vector() const {
    std::vector<T> out(size());
    if (empty()) return out;
    if (block_ && !same_as_plain()) {
      Tensor host = empty(shape_);
      host.copy_from(*this);
      return host.to_vector();
    }
    const size_t row = shape_.sample_size();
    for (int i = 0; i < shape_.n; ++i)
      detail::copy_bytes(Device::cpu, out.data() + size_t(i) * row, device(), sample(i), row * sizeof(T));
    return out;
  }

 private:
  size_t offset_in_sample(int c, int h, int w) const {
    const size_t pixel = size_t(h) * shape_.w + size_t(w);
    if (!block_) return size_t(c) * shape_.plane() + pixel;
    return (size_t(c / block_) * shape_.plane() + pixel) * size_t(block_) + size_t(c % block_);
  }

  void zero_block(T* p, size_t count) const {
    if (device() == Device::cpu) {
      std::memset(static_cast<void*>(p), 0, count * sizeof(T));
    } else {
#ifdef EWNET_WITH_CUDA
      cuda::memset_zero(p, count * sizeof(T));
#else
      detail::no_cuda();
#endif
    }
  }

  std::shared_ptr<detail::Storage> storage_;
  size_t offset_ = 0;
  Shape shape_{0, 0, 0, 0};
  size_t batch_stride_ = 0;
  int block_ = 0;  // channels per block of the CPU engine's layout; 0: plain CHW
};

}  // namespace ewnet
