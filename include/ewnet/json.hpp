// ewnet/json.hpp: a small JSON value with a strict parser and a writer.
//
// Used for the safetensors header, checkpoint metadata, a layer's configuration, report.json and
// configuration files; it sits on the ground floor of the library, needing only error.hpp and text.hpp.
// What it writes is always valid UTF-8, whatever bytes its strings hold (write_string).
// Numbers are held as double (exact for integers up to 2^53, which covers every byte offset a
// checkpoint can hold), read and written independently of the C locale. Objects keep their
// members in insertion order so written files read well. Parsing is bounded (Limits): nesting
// depth and value count, so hostile input cannot exhaust the stack or the memory.
#pragma once

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include <ewnet/error.hpp>
#include <ewnet/text.hpp>

namespace ewnet::json {

class Value {
 public:
  enum class Kind { null, boolean, number, string, array, object };
  using Array = std::vector<Value>;
  using Object = std::vector<std::pair<std::string, Value>>;

  Value() = default;
  Value(std::nullptr_t) {}
  Value(bool b) : kind_(Kind::boolean), bool_(b) {}
  Value(double d) : kind_(Kind::number), number_(d) {}
  Value(int i) : kind_(Kind::number), number_(i) {}
  Value(long i) : kind_(Kind::number), number_(static_cast<double>(i)) {}
  Value(long long i) : kind_(Kind::number), number_(static_cast<double>(i)) {}
  Value(unsigned long i) : kind_(Kind::number), number_(static_cast<double>(i)) {}
  Value(unsigned long long i) : kind_(Kind::number), number_(static_cast<double>(i)) {}
  Value(const char* s) : kind_(Kind::string), string_(s) {}
  Value(std::string s) : kind_(Kind::string), string_(std::move(s)) {}
  Value(Array a) : kind_(Kind::array), array_(std::move(a)) {}

  static Value object() {
    Value v;
    v.kind_ = Kind::object;
    return v;
  }
  static Value array() { return Value(Array{}); }

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::null; }
  bool is_number() const { return kind_ == Kind::number; }
  bool is_string() const { return kind_ == Kind::string; }
  bool is_array() const { return kind_ == Kind::array; }
  bool is_object() const { return kind_ == Kind::object; }
  bool is_bool() const { return kind_ == Kind::boolean; }

  bool as_bool() const { expect(Kind::boolean, "a boolean"); return bool_; }
  double as_number() const { expect(Kind::number, "a number"); return number_; }
  /// The number as an integer; throws if it has a fractional part or is out of range.
  long long as_int() const {
    double d = as_number();
    EWNET_CHECK_AS(IoError, std::floor(d) == d && std::fabs(d) < 9.007199254740992e15,
                   "JSON: expected an integer, found ", d);
    return static_cast<long long>(d);
  }
  const std::string& as_string() const { expect(Kind::string, "a string"); return string_; }
  const Array& as_array() const { expect(Kind::array, "an array"); return array_; }
  Array& as_array() { expect(Kind::array, "an array"); return array_; }
  const Object& as_object() const { expect(Kind::object, "an object"); return object_; }

  /// Member lookup; nullptr when absent.
  const Value* find(const std::string& key) const {
    expect(Kind::object, "an object");
    for (const auto& [k, v] : object_)
      if (k == key) return &v;
    return nullptr;
  }
  bool contains(const std::string& key) const { return find(key) != nullptr; }
  /// Member lookup; throws naming the key when absent.
  const Value& at(const std::string& key) const {
    const Value* v = find(key);
    EWNET_CHECK_AS(IoError, v != nullptr, "JSON: missing member \"", key, "\"");
    return *v;
  }
  /// Member access for writing: adds the member when absent.
  Value& operator[](const std::string& key) {
    if (kind_ == Kind::null) kind_ = Kind::object;
    expect(Kind::object, "an object");
    for (auto& [k, v] : object_)
      if (k == key) return v;
    object_.emplace_back(key, Value());
    return object_.back().second;
  }
  void push_back(Value v) {
    if (kind_ == Kind::null) kind_ = Kind::array;
    expect(Kind::array, "an array");
    array_.push_back(std::move(v));
  }
  size_t size() const {
    if (kind_ == Kind::array) return array_.size();
    if (kind_ == Kind::object) return object_.size();
    return 0;
  }

  /// Serialises; indent < 0 writes one line, otherwise pretty-prints with that many spaces.
  std::string dump(int indent = -1) const {
    std::string out;
    write(out, indent, 0);
    return out;
  }

 private:
  void expect(Kind k, const char* what) const {
    EWNET_CHECK_AS(IoError, kind_ == k, "JSON: expected ", what, ", found ", kind_name());
  }
  const char* kind_name() const {
    switch (kind_) {
      case Kind::null: return "null";
      case Kind::boolean: return "a boolean";
      case Kind::number: return "a number";
      case Kind::string: return "a string";
      case Kind::array: return "an array";
      case Kind::object: return "an object";
    }
    return "?";
  }
  // Every string is written as UTF-8 (ewnet/text.hpp: bytes that are not UTF-8 are read as
  // Latin-1), so a name made of any bytes still gives a document strict readers accept.
  static void write_string(std::string& out, const std::string& s) {
    out += '"';
    for (unsigned char c : text::to_utf8(s)) {
      switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        default:
          if (c < 0x20) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\u%04x", c);
            out += buf;
          } else {
            out += static_cast<char>(c);
          }
      }
    }
    out += '"';
  }
  static void newline(std::string& out, int indent, int depth) {
    if (indent < 0) return;
    out += '\n';
    out.append(static_cast<size_t>(indent * depth), ' ');
  }
  void write(std::string& out, int indent, int depth) const {
    switch (kind_) {
      case Kind::null: out += "null"; break;
      case Kind::boolean: out += bool_ ? "true" : "false"; break;
      case Kind::number: {
        if (!std::isfinite(number_)) { out += "null"; break; }
        // to_chars ignores the C locale (snprintf's %g would write "0,5" under de_DE) and gives
        // the shortest text that reads back to the same double.
        char buf[32];
        const auto r = std::floor(number_) == number_ && std::fabs(number_) < 1e15
                           ? std::to_chars(buf, buf + sizeof buf, static_cast<long long>(number_))
                           : std::to_chars(buf, buf + sizeof buf, number_);
        out.append(buf, r.ptr);
        break;
      }
      case Kind::string: write_string(out, string_); break;
      case Kind::array:
        out += '[';
        for (size_t i = 0; i < array_.size(); ++i) {
          if (i) out += indent < 0 ? "," : ",";
          newline(out, indent, depth + 1);
          array_[i].write(out, indent, depth + 1);
        }
        if (!array_.empty()) newline(out, indent, depth);
        out += ']';
        break;
      case Kind::object:
        out += '{';
        for (size_t i = 0; i < object_.size(); ++i) {
          if (i) out += ',';
          newline(out, indent, depth + 1);
          write_string(out, object_[i].first);
          out += indent < 0 ? ":" : ": ";
          object_[i].second.write(out, indent, depth + 1);
        }
        if (!object_.empty()) newline(out, indent, depth);
        out += '}';
        break;
    }
  }

  Kind kind_ = Kind::null;
  bool bool_ = false;
  double number_ = 0;
  std::string string_;
  Array array_;
  Object object_;

  friend class Parser;
};

/// Bounds on what a document may hold. Every value costs about 100 bytes in memory whatever its
/// text, so a hostile 90 MB file of "[0,0,0,..." would take gigabytes: the count of values is
/// capped, and so is the nesting (each level is a recursion).
struct Limits {
  int max_depth = 128;
  std::size_t max_values = std::size_t(4) << 20;  // about 400 MB at most
};

/// Strict RFC 8259 parser; errors name the byte offset and what was expected.
class Parser {
 public:
  explicit Parser(const std::string& text, std::string source = "JSON", Limits limits = {})
      : s_(text), source_(std::move(source)), limits_(limits) {}

  Value parse() {
    Value v = value(0);
    skip_ws();
    if (pos_ != s_.size()) fail("trailing characters after the value");
    return v;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw IoError(str(source_, ": invalid JSON at byte ", pos_, ": ", what));
  }
  void skip_ws() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t'))
      ++pos_;
  }
  bool consume(char c) {
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == c) { ++pos_; return true; }
    return false;
  }
  void expect_literal(const char* lit) {
    for (const char* p = lit; *p; ++p, ++pos_)
      if (pos_ >= s_.size() || s_[pos_] != *p) fail(str("expected '", lit, "'"));
  }
  Value value(int depth) {
    if (depth > limits_.max_depth) fail(str("nesting deeper than ", limits_.max_depth));
    if (++values_ > limits_.max_values) fail(str("more than ", limits_.max_values, " values"));
    skip_ws();
    if (pos_ >= s_.size()) fail("unexpected end of input");
    char c = s_[pos_];
    if (c == '{') return object(depth);
    if (c == '[') return array(depth);
    if (c == '"') return Value(string());
    if (c == 't') { expect_literal("true"); return Value(true); }
    if (c == 'f') { expect_literal("false"); return Value(false); }
    if (c == 'n') { expect_literal("null"); return Value(); }
    if (c == '-' || (c >= '0' && c <= '9')) return number();
    fail(str("unexpected character '", c, "'"));
  }
  Value object(int depth) {
    ++pos_;
    Value v = Value::object();
    if (consume('}')) return v;
    do {
      skip_ws();
      if (pos_ >= s_.size() || s_[pos_] != '"') fail("expected a member name");
      std::string key = string();
      if (!consume(':')) fail("expected ':'");
      v.object_.emplace_back(std::move(key), value(depth + 1));
    } while (consume(','));
    if (!consume('}')) fail("expected ',' or '}'");
    return v;
  }
  Value array(int depth) {
    ++pos_;
    Value v = Value::array();
    if (consume(']')) return v;
    do {
      v.array_.push_back(value(depth + 1));
    } while (consume(','));
    if (!consume(']')) fail("expected ',' or ']'");
    return v;
  }
  Value number() {
    size_t start = pos_;
    if (s_[pos_] == '-') ++pos_;
    auto digits = [&] {
      size_t d = pos_;
      while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
      if (pos_ == d) fail("expected a digit");
    };
    digits();
    if (pos_ < s_.size() && s_[pos_] == '.') { ++pos_; digits(); }
    if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
      ++pos_;
      if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
      digits();
    }
    // from_chars, unlike strtod, does not depend on the C locale's decimal point.
    double d = 0;
    const auto r = std::from_chars(s_.data() + start, s_.data() + pos_, d);
    if (r.ec == std::errc::result_out_of_range) {
      pos_ = start;
      fail("number out of range");
    }
    if (r.ec != std::errc() || r.ptr != s_.data() + pos_) {
      pos_ = start;
      fail("malformed number");
    }
    return Value(d);
  }
  unsigned hex4() {
    if (pos_ + 4 > s_.size()) fail("truncated \\u escape");
    unsigned v = 0;
    for (int i = 0; i < 4; ++i) {
      char c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= unsigned(c - '0');
      else if (c >= 'a' && c <= 'f') v |= unsigned(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= unsigned(c - 'A' + 10);
      else fail("bad hex digit in \\u escape");
    }
    return v;
  }
  static void utf8(std::string& out, unsigned cp) {
    if (cp < 0x80) out += char(cp);
    else if (cp < 0x800) { out += char(0xC0 | (cp >> 6)); out += char(0x80 | (cp & 0x3F)); }
    else if (cp < 0x10000) {
      out += char(0xE0 | (cp >> 12)); out += char(0x80 | ((cp >> 6) & 0x3F)); out += char(0x80 | (cp & 0x3F));
    } else {
      out += char(0xF0 | (cp >> 18)); out += char(0x80 | ((cp >> 12) & 0x3F));
      out += char(0x80 | ((cp >> 6) & 0x3F)); out += char(0x80 | (cp & 0x3F));
    }
  }
  std::string string() {
    ++pos_;  // opening quote
    std::string out;
    while (true) {
      if (pos_ >= s_.size()) fail("unterminated string");
      char c = s_[pos_++];
      if (c == '"') return out;
      if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
      if (c != '\\') { out += c; continue; }
      if (pos_ >= s_.size()) fail("unterminated escape");
      char e = s_[pos_++];
      switch (e) {
        case '"': out += '"'; break;
        case '\\': out += '\\'; break;
        case '/': out += '/'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          unsigned cp = hex4();
          // A surrogate is only half a character: alone it has no UTF-8 form, so it is an error
          // rather than bytes no other UTF-8 reader accepts.
          if (cp >= 0xDC00 && cp <= 0xDFFF) fail("lone low surrogate in \\u escape");
          if (cp >= 0xD800 && cp < 0xDC00) {
            if (!(pos_ + 6 <= s_.size() && s_[pos_] == '\\' && s_[pos_ + 1] == 'u')) fail("lone high surrogate in \\u escape");
            pos_ += 2;
            unsigned lo = hex4();
            if (lo < 0xDC00 || lo > 0xDFFF) fail("bad surrogate pair");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          utf8(out, cp);
          break;
        }
        default: fail(str("bad escape '\\", e, "'"));
      }
    }
  }

  const std::string& s_;
  std::string source_;
  Limits limits_;
  size_t pos_ = 0;
  size_t values_ = 0;
};

/// Parses text; `source` names where it came from in error messages (a file name, say).
inline Value parse(const std::string& text, const std::string& source = "JSON", Limits limits = {}) {
  return Parser(text, source, limits).parse();
}

/// An array of strings (class names, say).
inline Value string_array(const std::vector<std::string>& items) {
  Value a = Value::array();
  for (const std::string& s : items) a.push_back(s);
  return a;
}

}  // namespace ewnet::json
