// ewnet/error.hpp: the one exception type the library throws, and the checks that raise it.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace ewnet {

/// Every failure ewnet reports is an ewnet::Error (or a subclass): bad shapes, unknown layer names,
/// graph cycles, unreadable files, device failures. The message names the thing and what was expected.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& what) : std::runtime_error(what) {}
};

/// A file could not be read or written, or its contents are not what was expected.
class IoError : public Error {
 public:
  using Error::Error;
};

/// A shape disagrees with what an operation or layer requires.
class ShapeError : public Error {
 public:
  using Error::Error;
};

/// The layer graph is malformed (unknown name, cycle, dangling input, wrong input count).
class GraphError : public Error {
 public:
  using Error::Error;
};

/// A device (CUDA, cuDNN, cuBLAS) call failed, or a device was asked for that is not there.
class DeviceError : public Error {
 public:
  using Error::Error;
};

namespace detail {
inline void append(std::ostringstream&) {}
template <class First, class... Rest>
void append(std::ostringstream& os, const First& first, const Rest&... rest) {
  os << first;
  append(os, rest...);
}
}  // namespace detail

/// Concatenates its arguments with operator<< into one string.
template <class... Parts>
std::string str(const Parts&... parts) {
  std::ostringstream os;
  detail::append(os, parts...);
  return os.str();
}

}  // namespace ewnet

/// Throws ErrorType with the streamed message when cond is false.
#define EWNET_CHECK_AS(ErrorType, cond, ...)                     \
  do {                                                           \
    if (!(cond)) throw ErrorType(::ewnet::str(__VA_ARGS__));     \
  } while (0)

#define EWNET_CHECK(cond, ...) EWNET_CHECK_AS(::ewnet::Error, cond, __VA_ARGS__)
