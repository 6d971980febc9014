// robots.txt (RFC 9309): groups per user agent, Allow/Disallow with '*' and '$', longest match.
#pragma once

#include <string>
#include <vector>

namespace ewnet::collect {

class RobotsRules {
 public:
  /// Everything allowed: what a missing robots.txt (any 4xx) means.
  static RobotsRules allow_all() { return RobotsRules(); }
  /// Everything disallowed: what an unreachable robots.txt (5xx, network error) means.
  static RobotsRules disallow_all();

  /// Parses robots.txt and keeps the rules for `product` (matched case-insensitively against the
  /// User-agent lines); the "*" groups apply only when no group names the product. Groups that
  /// name the same agent are merged. Unknown lines and malformed rules are ignored.
  static RobotsRules parse(const std::string& text, const std::string& product);

  /// Whether `path` (path plus query, starting with '/') may be fetched. The most specific
  /// matching rule (longest pattern) wins; on a tie Allow wins. /robots.txt is always allowed.
  bool allowed(const std::string& path) const;

  /// Crawl-delay in seconds from the chosen group, 0 when absent. Not in RFC 9309, but many sites
  /// set it, and a polite crawler waits at least that long.
  double crawl_delay() const { return crawl_delay_; }

 private:
  struct Rule {
    bool allow;
    std::string pattern;
  };
  static bool matches(const std::string& pattern, const std::string& path);
  std::vector<Rule> rules_;
  double crawl_delay_ = 0.0;
};

}  // namespace ewnet::collect
