// ewnet/text.hpp: names as text in the files ewnet writes, whatever bytes they were made of.
//
// Class and file names come from the file system, where a name is any bytes but "/" and NUL:
// folders copied from old Windows shares hold Latin-1 bytes (a lone 0xE9 for "é"), and names may
// hold commas, quotes, tabs, line breaks and "<&>". Every text file ewnet writes is UTF-8 and
// parses with a strict reader, so a name is transcoded once, the same way everywhere (to_utf8):
// valid UTF-8 stays as it is, and each byte that is not part of a valid UTF-8 sequence (overlong
// forms, surrogates and code points over U+10FFFF included) is read as the Latin-1 character of
// that value (0xE9 -> U+00E9 "é"). Then each format escapes what it must:
//   JSON  json.hpp's writer (every string it writes goes through to_utf8 first);
//   CSV   csv_field: RFC 4180, quoted when it holds a comma, a quote, CR or LF;
//   XML   xml_text: &, <, >, quotes as entities, tab, LF and CR as character references, and the
//         other C0 controls, which XML 1.0 cannot hold even escaped, as U+FFFD.
// Names compared across files (a checkpoint's classes against a data folder's) are compared in
// this form.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace ewnet::text {

/// The length of the valid UTF-8 sequence at s[i] (1 to 4), or 0 when none starts there.
inline std::size_t utf8_sequence(const std::string& s, std::size_t i) {
  const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  if (c < 0x80) return 1;
  std::size_t n = 0;
  unsigned lo = 0x80, hi = 0xBF;  // the allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) n = 2;
  else if (c >= 0xE0 && c <= 0xEF) {
    n = 3;
    if (c == 0xE0) lo = 0xA0;  // no overlong forms
    if (c == 0xED) hi = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    n = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;  // nothing over U+10FFFF
  } else {
    return 0;
  }
  if (i + n > s.size()) return 0;
  if (b(i + 1) < lo || b(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < n; ++k)
    if (b(i + k) < 0x80 || b(i + k) > 0xBF) return 0;
  return n;
}

inline bool is_valid_utf8(const std::string& s) {
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_sequence(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

/// `s` as UTF-8 (see the file comment): valid sequences kept, any other byte read as Latin-1.
inline std::string to_utf8(const std::string& s) {
  if (is_valid_utf8(s)) return s;
  std::string out;
  out.reserve(s.size() + s.size() / 4);
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_sequence(s, i);
    if (n) {
      out.append(s, i, n);
      i += n;
    } else {
      const unsigned char c = static_cast<unsigned char>(s[i++]);
      out += char(0xC0 | (c >> 6));
      out += char(0x80 | (c & 0x3F));
    }
  }
  return out;
}

/// One CSV field (RFC 4180), UTF-8: quoted, with quotes doubled, when it holds a comma, a quote,
/// CR or LF.
inline std::string csv_field(const std::string& s) {
  const std::string u = to_utf8(s);
  if (u.find_first_of(",\"\r\n") == std::string::npos) return u;
  std::string q = "\"";
  for (char c : u) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

/// Text for XML content or an attribute value, UTF-8 (see the file comment).
inline std::string xml_text(const std::string& s) {
  std::string o;
  for (char ch : to_utf8(s)) {
    const unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&apos;"; break;
      case '\t': o += "&#9;"; break;
      case '\n': o += "&#10;"; break;
      case '\r': o += "&#13;"; break;
      default:
        if (c < 0x20) o += "\xEF\xBF\xBD";  // U+FFFD: XML 1.0 has no form for these
        else o += ch;
    }
  }
  return o;
}

/// The longest prefix of UTF-8 `s` of at most `max_bytes` bytes that ends on a character
/// boundary (a file name that must fit NAME_MAX with a suffix added).
inline std::string utf8_prefix(const std::string& s, std::size_t max_bytes) {
  if (s.size() <= max_bytes) return s;
  std::size_t end = 0;
  for (std::size_t i = 0; i < s.size();) {
    const std::size_t n = utf8_sequence(s, i);
    const std::size_t step = n ? n : 1;
    if (i + step > max_bytes) break;
    i += step;
    end = i;
  }
  return s.substr(0, end);
}

}  // namespace ewnet::text
