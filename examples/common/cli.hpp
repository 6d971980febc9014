// cli.hpp: the command-line conventions of the ewnet-* programs.
//   --name VALUE options and --flag switches; anything else is a positional argument;
//   --help prints the usage and exits 0; a bad argument prints one usage line and exits 2;
//   an ewnet::Error (an unreadable file, no CUDA device) is printed and exits 1.
#pragma once

#include <cctype>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <iostream>
#include <map>
#include <new>
#include <set>
#include <string>
#include <vector>

#include <ewnet/cpu_engine.hpp>
#include <ewnet/device.hpp>
#include <ewnet/error.hpp>
#include <ewnet/precision.hpp>

namespace cli {

/// A wrong command line: exit status 2 with the usage line.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Args {
 public:
  /// `options` take a value, `flags` do not.
  Args(int argc, char** argv, std::set<std::string> options, std::set<std::string> flags) {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      if (a == "--help" || a == "-h") {
        help_ = true;
      } else if (a.rfind("--", 0) == 0) {
        std::string name = a.substr(2), value;
        const size_t eq = name.find('=');
        const bool inline_value = eq != std::string::npos;
        if (inline_value) {
          value = name.substr(eq + 1);
          name = name.substr(0, eq);
        }
        if (flags.count(name) && !inline_value) {
          values_[name] = "1";
        } else if (options.count(name)) {
          if (!inline_value) {
            // "--out --resume" means a forgotten value, not a folder named "--resume".
            if (i + 1 >= argc || std::string(argv[i + 1]).rfind("--", 0) == 0)
              throw UsageError("option --" + name + ": missing value" +
                               (i + 1 < argc ? " (found option " + std::string(argv[i + 1]) + ")" : std::string()) +
                               "; write --" + name + "=VALUE for a value that starts with --");
            value = argv[++i];
          }
          values_[name] = value;
        } else {
          throw UsageError("unknown option " + a);
        }
      } else {
        positional_.push_back(a);
      }
    }
  }
  bool help() const { return help_; }
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  bool flag(const std::string& name) const { return has(name); }
  std::string get(const std::string& name, const std::string& fallback) const {
    auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second;
  }
  int get_int(const std::string& name, int fallback, int min = 1) const {
    if (!has(name)) return fallback;
    const std::string v = get(name, "");
    char* end = nullptr;
    errno = 0;
    const long x = std::strtol(v.c_str(), &end, 10);
    if (v.empty() || *end || errno == ERANGE || x < min || x > 1000000000)
      throw UsageError("--" + name + " needs an integer >= " + std::to_string(min) + ", got '" + v + "'");
    return int(x);
  }
  double get_double(const std::string& name, double fallback, double min_exclusive = 0) const {
    if (!has(name)) return fallback;
    const std::string v = get(name, "");
    char* end = nullptr;
    errno = 0;
    const double x = std::strtod(v.c_str(), &end);
    // inf, nan, 1e309 (overflow) and denormals (1e-310: underflow) are never a meant rate.
    if (v.empty() || *end || errno == ERANGE || !std::isfinite(x) || (x != 0 && !std::isnormal(x)) ||
        !(x > min_exclusive))
      throw UsageError("--" + name + " needs a finite number > " + std::to_string(min_exclusive) + ", got '" + v + "'");
    return x;
  }
  std::uint64_t get_seed(const std::string& name, std::uint64_t fallback) const {
    if (!has(name)) return fallback;
    const std::string v = get(name, "");
    char* end = nullptr;
    errno = 0;
    const unsigned long long x = std::strtoull(v.c_str(), &end, 10);
    if (v.empty() || *end || v[0] == '-' || !std::isdigit(static_cast<unsigned char>(v[0])) || errno == ERANGE)
      throw UsageError("--" + name + " needs an integer from 0 to 18446744073709551615, got '" + v + "'");
    return x;
  }
  ewnet::Device get_device(const std::string& name = "device") const {
    const std::string v = get(name, "cpu");
    if (v == "cpu") return ewnet::Device::cpu;
    if (v == "cuda") return ewnet::Device::cuda;
    throw UsageError("--" + name + " must be cpu or cuda, got '" + v + "'");
  }
  ewnet::Precision get_precision(const std::string& name = "precision") const {
    const std::string v = get(name, "fp32");
    if (v == "fp32") return ewnet::Precision::fp32;
    if (v == "bf16") return ewnet::Precision::bf16;
    throw UsageError("--" + name + " must be fp32 or bf16, got '" + v + "'");
  }
  /// --model: one of ewnet::build_model's names (paper, googlenet, resnet18, inception-v3).
  std::string get_model(const std::string& name = "model") const {
    const std::string v = get(name, "paper");
    for (const char* known : {"paper", "googlenet", "resnet18", "inception-v3"})
      if (v == known) return v;
    throw UsageError("--" + name + " must be paper, googlenet, resnet18 or inception-v3, got '" + v + "'");
  }
  /// --aux: build `model` with its auxiliary classifiers (googlenet and inception-v3 have them).
  bool get_aux(const std::string& model) const {
    if (!flag("aux")) return false;
    if (model != "googlenet" && model != "inception-v3")
      throw UsageError("--aux: " + model + " has no auxiliary classifiers (googlenet and inception-v3 have)");
    return true;
  }
  const std::vector<std::string>& positional() const { return positional_; }

 private:
  bool help_ = false;
  std::map<std::string, std::string> values_;
  std::vector<std::string> positional_;
};

/// Runs a program's body with the exit-status conventions above.
inline int run(const char* program, const char* usage, const std::function<int()>& body) {
  try {
    return body();
  } catch (const UsageError& e) {
    std::fprintf(stderr, "%s: %s\nusage: %s\n(run %s --help for the options)\n", program, e.what(), usage, program);
    return 2;
  } catch (const ewnet::Error& e) {
    std::fprintf(stderr, "%s: error: %s\n", program, e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    // The library names the file and the step where it can (decoding, loading a checkpoint,
    // training); anything left is reported rather than ending in std::terminate.
    std::fprintf(stderr, "%s: error: out of memory; lower --batch or --image-size, or free memory\n", program);
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", program, e.what());
    return 1;
  }
}

/// Prints once, on stderr (stdout may carry JSON), which CPU engine and instruction set the program
/// runs on, and a warning when that is a generic fallback on a processor with AVX2 or AVX-512.
inline void report_cpu_engine() {
  static bool done = false;
  if (done) return;
  done = true;
  const ewnet::cpu::CpuEngineInfo& e = ewnet::cpu::cpu_engine();
  std::cerr << e.summary() << std::endl;
  if (e.generic) std::cerr << e.warning() << std::endl;
}

inline int print_help(const char* usage, const char* help) {
  std::printf("usage: %s\n\n%s", usage, help);
  return 0;
}

}  // namespace cli
