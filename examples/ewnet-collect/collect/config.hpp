// What the user configures: the class list with its search keywords, and the search provider.
#pragma once

#include <map>
#include <memory>
#include <regex>
#include <string>
#include <vector>

#include <ewnet/error.hpp>

namespace ewnet::collect {

/// Bad input from the user (a missing file, a malformed configuration, an unusable output
/// folder): the program reports it and exits with status 2.
class InputError : public Error {
 public:
  using Error::Error;
};

/// One class of the data set: its folder name and the searches that find its images.
struct ClassSpec {
  std::string name;                  // letters, digits, '-', '_', '.'; not starting with '_' or '.'
  std::vector<std::string> queries;  // each one a search, e.g. "iPhone 6 backside"
};

/// Parses the class list. One class per line, "name: query | another query"; a line with only a
/// name searches for the name with '_' and '-' read as spaces. '#' starts a comment. Throws
/// InputError naming `source` and the line for a bad name, a repeated name or an empty list.
std::vector<ClassSpec> parse_classes(const std::string& text, const std::string& source);
std::vector<ClassSpec> load_classes(const std::string& path);

/// Whether `name` may be a class folder: [A-Za-z0-9._-]+, not starting with '.' or '_' (those are
/// the program's own folders), at most 100 characters.
bool valid_class_name(const std::string& name);

/// Replaces {query}, {page}, {per_page} and {offset} in a URL template; {{ and }} are literal
/// braces. The query is percent-encoded. Throws InputError for an unknown or unclosed variable.
std::string expand_template(const std::string& tmpl, const std::map<std::string, std::string>& vars);

/// How image addresses are taken out of a results page.
class Extractor {
 public:
  enum class Kind { json_path, html_attribute, regex };

  /// JSON path: member names separated by '.', each optionally followed by [*] (every element)
  /// or [N] (one element); a name of * takes every member of an object. "results[*].url".
  static Extractor json_path(const std::string& path);
  /// HTML attribute: "tag@attribute", tag may be * ("img@src", "a@href", "img@data-src").
  static Extractor html_attribute(const std::string& rule);
  /// ECMAScript regular expression; the first capture group if it has one, else the whole match.
  static Extractor regex(const std::string& pattern);

  /// The addresses found in `page`, resolved against `page_url`, http(s) only, in page order,
  /// without repeats. A page that is not valid for the rule (not JSON for a JSON path) throws
  /// IoError naming `page_url`.
  std::vector<std::string> extract(const std::string& page, const std::string& page_url) const;

  Kind kind() const { return kind_; }
  const std::string& rule() const { return rule_; }

 private:
  struct Step {
    std::string member;  // "" at the root, "*" for every member
    std::vector<long> indices;  // -1 for [*]
  };
  Kind kind_ = Kind::json_path;
  std::string rule_;
  std::vector<Step> steps_;
  std::string tag_, attribute_;
  std::shared_ptr<const std::regex> regex_;
};

/// A search provider: where the results pages are and how to read them.
struct Provider {
  std::string name;
  std::string search_url;  // template, see expand_template
  int per_page = 20;
  int first_page = 1;      // the value of {page} for the first page
  int max_pages = 5;       // pages read per query at most
  Extractor extractor;

  /// The results page URL for `query` and page number `index` (0-based).
  std::string page_url(const std::string& query, int index) const;
};

/// Parses a provider configuration (JSON):
///   { "name": "...", "search_url": "https://host/search?q={query}&page={page}",
///     "per_page": 20, "first_page": 1, "max_pages": 5,
///     "extract": { "json": "results[*].url" } }    or { "html": "img@src" } or { "regex": "..." }
/// Throws InputError naming `source` and the problem.
Provider parse_provider(const std::string& text, const std::string& source);
Provider load_provider(const std::string& path);

/// Reads a whole text file; throws InputError naming the path when it cannot.
std::string read_text_file(const std::string& path);

}  // namespace ewnet::collect
