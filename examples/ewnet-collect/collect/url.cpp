#include "collect/url.hpp"

#include <cctype>

#include "collect/strings.hpp"

namespace ewnet::collect {
namespace {

// Removes "." and ".." segments (RFC 3986 section 5.2.4) from a path without its query.
std::string remove_dot_segments(const std::string& path) {
  std::string out;
  std::size_t i = 0;
  while (i < path.size()) {
    std::size_t j = path.find('/', i + 1);
    if (j == std::string::npos) j = path.size();
    const std::string seg = path.substr(i, j - i);  // includes the leading '/'
    if (seg == "/.") {
      if (j == path.size()) out += '/';
    } else if (seg == "/..") {
      const std::size_t k = out.rfind('/');
      out.erase(k == std::string::npos ? 0 : k);
      if (j == path.size()) out += '/';
    } else {
      out += seg;
    }
    i = j;
  }
  return out.empty() ? "/" : out;
}

}  // namespace

std::string Url::origin() const {
  const bool default_port = (scheme == "http" && port == 80) || (scheme == "https" && port == 443);
  const std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return scheme + "://" + h + (default_port ? "" : ":" + std::to_string(port));
}

bool parse_url(const std::string& raw, Url& out) {
  const std::string text = trim(raw);
  const std::size_t colon = text.find("://");
  if (colon == std::string::npos) return false;
  Url u;
  u.scheme = lower(text.substr(0, colon));
  if (u.scheme != "http" && u.scheme != "https") return false;
  std::size_t auth_begin = colon + 3;
  std::size_t auth_end = text.find_first_of("/?#", auth_begin);
  if (auth_end == std::string::npos) auth_end = text.size();
  std::string authority = text.substr(auth_begin, auth_end - auth_begin);
  const std::size_t at = authority.rfind('@');
  if (at != std::string::npos) authority = authority.substr(at + 1);
  std::string port_text;
  if (!authority.empty() && authority[0] == '[') {
    const std::size_t close = authority.find(']');
    if (close == std::string::npos) return false;
    u.host = authority.substr(1, close - 1);
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return false;
      port_text = authority.substr(close + 2);
    }
  } else {
    const std::size_t pc = authority.find(':');
    u.host = authority.substr(0, pc);
    if (pc != std::string::npos) port_text = authority.substr(pc + 1);
  }
  u.host = lower(u.host);
  if (u.host.empty()) return false;
  u.port = u.scheme == "https" ? 443 : 80;
  if (!port_text.empty()) {
    if (port_text.size() > 5) return false;
    for (char c : port_text)
      if (!std::isdigit(static_cast<unsigned char>(c))) return false;
    u.port = std::stoi(port_text);
    if (u.port <= 0 || u.port > 65535) return false;
  }
  std::string rest = text.substr(auth_end);
  const std::size_t hash = rest.find('#');
  if (hash != std::string::npos) rest.erase(hash);
  if (rest.empty() || rest[0] == '?') rest = "/" + rest;
  u.path = rest;
  out = u;
  return true;
}

std::string percent_encode(const std::string& s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += hex[c >> 4];
      out += hex[c & 15];
    }
  }
  return out;
}

std::string resolve_url(const std::string& base_text, const std::string& ref_raw) {
  const std::string ref = trim(ref_raw);
  if (ref.empty()) return "";
  // A scheme is letters, digits, '+', '-', '.' before the first ':' that precedes any '/', '?', '#'.
  const std::size_t colon = ref.find(':');
  const std::size_t delim = ref.find_first_of("/?#");
  if (colon != std::string::npos && (delim == std::string::npos || colon < delim)) {
    Url u;
    return parse_url(ref, u) ? ref : "";
  }
  Url base;
  if (!parse_url(base_text, base)) return "";
  if (ref.rfind("//", 0) == 0) {
    Url u;
    const std::string abs = base.scheme + ":" + ref;
    return parse_url(abs, u) ? abs : "";
  }
  if (ref[0] == '#') return base.origin() + base.path;
  std::string base_path = base.path, base_query;
  const std::size_t q = base_path.find('?');
  if (q != std::string::npos) {
    base_query = base_path.substr(q);
    base_path.erase(q);
  }
  std::string ref_path = ref, ref_query;
  const std::size_t rh = ref_path.find('#');
  if (rh != std::string::npos) ref_path.erase(rh);
  const std::size_t rq = ref_path.find('?');
  if (rq != std::string::npos) {
    ref_query = ref_path.substr(rq);
    ref_path.erase(rq);
  }
  std::string path;
  if (ref_path.empty()) {
    path = base_path;
    if (ref_query.empty()) ref_query = base_query;
  } else if (ref_path[0] == '/') {
    path = remove_dot_segments(ref_path);
  } else {
    path = remove_dot_segments(base_path.substr(0, base_path.rfind('/') + 1) + ref_path);
  }
  return base.origin() + path + ref_query;
}

}  // namespace ewnet::collect
