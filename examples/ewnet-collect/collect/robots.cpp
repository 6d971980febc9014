#include "collect/robots.hpp"

#include <cctype>
#include <cstdlib>
#include <sstream>

#include "collect/strings.hpp"

namespace ewnet::collect {
namespace {

// Percent-escapes are compared with upper-case hex digits, so "%2f" and "%2F" are the same.
std::string normalise_escapes(std::string s) {
  for (std::size_t i = 0; i + 2 < s.size(); ++i)
    if (s[i] == '%' && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      s[i + 1] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[i + 1])));
      s[i + 2] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[i + 2])));
    }
  return s;
}

}  // namespace

RobotsRules RobotsRules::disallow_all() {
  RobotsRules r;
  r.rules_.push_back({false, "/"});
  return r;
}

RobotsRules RobotsRules::parse(const std::string& text, const std::string& product) {
  const std::string me = lower(product);
  struct Group {
    std::vector<std::string> agents;
    std::vector<Rule> rules;
    double crawl_delay = 0.0;
  };
  std::vector<Group> groups;
  bool last_was_agent = false;
  std::istringstream in(text.substr(0, 512 * 1024));  // RFC 9309: parse at least 500 KiB
  std::string line;
  while (std::getline(in, line)) {
    const std::size_t hash = line.find('#');
    if (hash != std::string::npos) line.erase(hash);
    const std::size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = lower(trim(line.substr(0, colon)));
    const std::string value = trim(line.substr(colon + 1));
    if (key == "user-agent") {
      if (!last_was_agent) groups.emplace_back();
      groups.back().agents.push_back(lower(value));
      last_was_agent = true;
      continue;
    }
    if (groups.empty()) {
      last_was_agent = false;
      continue;  // rules before any User-agent line belong to no group
    }
    if (key == "allow" || key == "disallow") {
      last_was_agent = false;
      if (value.empty()) continue;  // "Disallow:" with no path allows everything
      groups.back().rules.push_back({key == "allow", normalise_escapes(value)});
    } else if (key == "crawl-delay") {
      last_was_agent = false;
      char* end = nullptr;
      const double d = std::strtod(value.c_str(), &end);
      if (end != value.c_str() && d > 0 && d < 86400) groups.back().crawl_delay = d;
    } else {
      last_was_agent = false;  // Sitemap and unknown keys end the agent list too
    }
  }

  // The product token is the name before any '/version'; an agent line matches it exactly.
  auto names_me = [&](const std::string& agent) {
    const std::string token = agent.substr(0, agent.find_first_of("/ \t"));
    return !token.empty() && token == me;
  };
  RobotsRules mine, star;
  bool have_mine = false;
  for (const Group& g : groups) {
    bool is_mine = false, is_star = false;
    for (const std::string& a : g.agents) {
      if (names_me(a)) is_mine = true;
      if (a == "*") is_star = true;
    }
    RobotsRules* target = is_mine ? &mine : (is_star ? &star : nullptr);
    if (!target) continue;
    have_mine = have_mine || is_mine;
    target->rules_.insert(target->rules_.end(), g.rules.begin(), g.rules.end());
    if (g.crawl_delay > target->crawl_delay_) target->crawl_delay_ = g.crawl_delay;
  }
  return have_mine ? mine : star;
}

bool RobotsRules::matches(const std::string& pattern, const std::string& path) {
  // '*' matches any run of characters, a final '$' anchors at the end; otherwise the pattern is a
  // prefix. Greedy matching with backtracking to the last '*' is linear enough for robots patterns.
  std::string pat = pattern;
  bool anchored = false;
  if (!pat.empty() && pat.back() == '$') {
    anchored = true;
    pat.pop_back();
  }
  std::size_t p = 0, s = 0, star_p = std::string::npos, star_s = 0;
  while (true) {
    if (p == pat.size()) {
      if (!anchored || s == path.size()) return true;
    } else if (pat[p] == '*') {
      star_p = ++p;
      star_s = s;
      continue;
    } else if (s < path.size() && pat[p] == path[s]) {
      ++p;
      ++s;
      continue;
    }
    if (star_p == std::string::npos || star_s >= path.size()) return false;
    p = star_p;
    s = ++star_s;
  }
}

bool RobotsRules::allowed(const std::string& raw_path) const {
  const std::string path = normalise_escapes(raw_path.empty() ? "/" : raw_path);
  if (path == "/robots.txt") return true;
  bool allow = true;
  std::size_t best = 0;
  bool found = false;
  for (const Rule& r : rules_) {
    if (!matches(r.pattern, path)) continue;
    const std::size_t len = r.pattern.size();
    if (!found || len > best || (len == best && r.allow && !allow)) {
      found = true;
      best = len;
      allow = r.allow;
    }
  }
  return allow;
}

}  // namespace ewnet::collect
