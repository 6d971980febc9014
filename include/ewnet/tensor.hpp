// ewnet/tensor.hpp: Tensor<T>, an NCHW array on the CPU or a CUDA device.
//
// A tensor is a shared buffer plus a view on it: an offset, a shape and a batch stride (the
// distance in elements between consecutive samples). Within a sample the layout is always dense
// CHW. That is exactly enough for the views ewnet needs:
//   - a channel range of a tensor, channels(c0, count), which inception branches write straight
//     into so that depth concatenation costs nothing (its batch stride is the parent's);
//   - a range of samples, batch(n0, count), for mini-batches of a larger tensor.
// Views share the buffer and are writable; copying a Tensor copies the view, not the data.
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

  /// A dense tensor whose contents are undefined (for outputs that an operation overwrites).
  static Tensor empty(Shape shape, Device device = Device::cpu) {
    EWNET_CHECK_AS(ShapeError, shape.n >= 0 && shape.c >= 0 && shape.h >= 0 && shape.w >= 0,
                   "tensor shape ", shape, " has a negative extent");
    Tensor t;
    t.storage_ = std::make_shared<detail::Storage>(device, shape.size() * sizeof(T));
    t.shape_ = shape;
    t.batch_stride_ = shape.sample_size();
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
  /// True when the samples follow each other with no gap (the whole tensor is one dense block).
  bool contiguous() const { return batch_stride_ == shape_.sample_size() || shape_.n <= 1; }
  Device device() const { return storage_ ? storage_->device() : Device::cpu; }
  bool on_cpu() const { return device() == Device::cpu; }

  /// Pointer to element (0,0,0,0); a device pointer for CUDA tensors.
  T* data() const { return storage_ ? static_cast<T*>(storage_->get()) + offset_ : nullptr; }
  /// Pointer to the first element of sample i.
  T* sample(int i) const { return data() + size_t(i) * batch_stride_; }

  /// Element access for CPU tensors (tests, small host-side work).
  T& at(int n, int c, int h, int w) const {
    return data()[size_t(n) * batch_stride_ + (size_t(c) * shape_.h + size_t(h)) * shape_.w + size_t(w)];
  }

  /// A writable view of channels [c0, c0+count) of every sample.
  Tensor channels(int c0, int count) const {
    EWNET_CHECK_AS(ShapeError, c0 >= 0 && count >= 0 && c0 + count <= shape_.c, "channels(", c0, ", ", count,
                   ") is outside a tensor of shape ", shape_);
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

  /// The same samples seen with another per-sample shape of equal size (e.g. CxHxW as Dx1x1).
  Tensor reshape(Shape s) const {
    EWNET_CHECK_AS(ShapeError, s.n == shape_.n && s.sample_size() == shape_.sample_size(), "cannot reshape ",
                   shape_, " to ", s);
    Tensor v = *this;
    v.shape_ = s;
    return v;
  }

  /// True when both tensors view the same allocation.
  bool shares_storage_with(const Tensor& o) const { return storage_ && storage_ == o.storage_; }
  /// True when both are the same view (same buffer, offset, shape and stride).
  bool same_view(const Tensor& o) const {
    return storage_ == o.storage_ && offset_ == o.offset_ && shape_ == o.shape_ && batch_stride_ == o.batch_stride_;
  }

  /// Sets every element of the view to zero.
  void zero() const {
    if (empty()) return;
    if (contiguous()) {
      zero_block(data(), size());
    } else {
      for (int i = 0; i < shape_.n; ++i) zero_block(sample(i), shape_.sample_size());
    }
  }

  /// Copies the elements of `src` (same shape, any device, any batch stride) into this view.
  void copy_from(const Tensor& src) const {
    EWNET_CHECK_AS(ShapeError, src.shape() == shape_, "copy_from: source shape ", src.shape(),
                   " differs from destination shape ", shape_);
    if (empty()) return;
    const size_t row = shape_.sample_size() * sizeof(T);
    if (contiguous() && src.contiguous()) {
      detail::copy_bytes(device(), data(), src.device(), src.data(), size() * sizeof(T));
    } else if (device() == src.device()) {
      detail::copy_rows(device(), data(), batch_stride_ * sizeof(T), src.data(), src.batch_stride_ * sizeof(T),
                        row, size_t(shape_.n));
    } else {
      for (int i = 0; i < shape_.n; ++i)
        detail::copy_bytes(device(), sample(i), src.device(), src.sample(i), row);
    }
  }

  /// A dense copy on `device` (a copy even when already there).
  Tensor to(Device device) const {
    Tensor t = empty(shape_, device);
    t.copy_from(*this);
    return t;
  }

  /// A dense copy of the same view on the same device.
  Tensor clone() const { return to(device()); }

  /// The elements in NCHW order, copied to the host.
  std::vector<T> to_vector() const {
    std::vector<T> out(size());
    if (empty()) return out;
    const size_t row = shape_.sample_size();
    for (int i = 0; i < shape_.n; ++i)
      detail::copy_bytes(Device::cpu, out.data() + size_t(i) * row, device(), sample(i), row * sizeof(T));
    return out;
  }

 private:
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
};

}  // namespace ewnet
