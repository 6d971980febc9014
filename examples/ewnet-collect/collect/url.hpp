// Just enough URL handling for a crawler: split, percent-encode, resolve a relative reference.
#pragma once

#include <string>

namespace ewnet::collect {

struct Url {
  std::string scheme;  // lower case: "http" or "https"
  std::string host;    // lower case, without brackets for IPv6
  int port = 0;        // explicit port, or the scheme's default
  std::string path;    // starts with '/', includes the query ("/a/b?x=1"); never the fragment

  /// scheme://host[:port], the unit robots.txt applies to.
  std::string origin() const;
};

/// Parses an absolute http or https URL; returns false for anything else (other schemes,
/// missing host, bad port).
bool parse_url(const std::string& text, Url& out);

/// Percent-encodes everything except RFC 3986 unreserved characters; spaces become %20.
std::string percent_encode(const std::string& s);

/// Resolves `ref` (absolute, scheme-relative "//h/p", root-relative "/p" or relative "p") against
/// the absolute `base`. Returns "" when the result is not an http(s) URL (data:, javascript:, ...).
std::string resolve_url(const std::string& base, const std::string& ref);

}  // namespace ewnet::collect
