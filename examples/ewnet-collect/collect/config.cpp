#include "collect/config.hpp"

#include <cctype>
#include <fstream>
#include <set>
#include <sstream>

#include <ewnet/json.hpp>

#include "collect/strings.hpp"
#include "collect/url.hpp"

namespace ewnet::collect {
namespace {

// Decodes the HTML character references that occur in attribute values: &amp; &lt; &gt; &quot;
// &apos; &#NN; &#xNN;. Others are left as written.
std::string decode_entities(const std::string& s) {
  std::string out;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '&') {
      out += s[i];
      continue;
    }
    const std::size_t semi = s.find(';', i);
    if (semi == std::string::npos || semi - i > 10) {
      out += s[i];
      continue;
    }
    const std::string name = s.substr(i + 1, semi - i - 1);
    std::string rep;
    if (name == "amp") rep = "&";
    else if (name == "lt") rep = "<";
    else if (name == "gt") rep = ">";
    else if (name == "quot") rep = "\"";
    else if (name == "apos") rep = "'";
    else if (name.size() > 1 && name[0] == '#') {
      const bool hex = name[1] == 'x' || name[1] == 'X';
      const std::string digits = name.substr(hex ? 2 : 1);
      char* end = nullptr;
      const long cp = std::strtol(digits.c_str(), &end, hex ? 16 : 10);
      if (!digits.empty() && end && *end == '\0' && cp > 0 && cp < 128) rep = std::string(1, static_cast<char>(cp));
    }
    if (rep.empty()) {
      out += s[i];
      continue;
    }
    out += rep;
    i = semi;
  }
  return out;
}

}  // namespace

bool valid_class_name(const std::string& name) {
  if (name.empty() || name.size() > 100 || name[0] == '.' || name[0] == '_') return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  return true;
}

std::vector<ClassSpec> parse_classes(const std::string& text, const std::string& source) {
  std::vector<ClassSpec> out;
  std::set<std::string> seen;
  std::istringstream in(text);
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    const std::size_t hash = line.find('#');
    if (hash != std::string::npos) line.erase(hash);
    line = trim(line);
    if (line.empty()) continue;
    ClassSpec spec;
    const std::size_t colon = line.find(':');
    spec.name = trim(line.substr(0, colon));
    if (!valid_class_name(spec.name))
      throw InputError(str(source, ":", lineno, ": \"", spec.name,
                           "\" is not a usable class name (letters, digits, '-', '_', '.'; not starting "
                           "with '_' or '.')"));
    if (!seen.insert(lower(spec.name)).second)
      throw InputError(str(source, ":", lineno, ": class \"", spec.name, "\" is listed twice"));
    if (colon != std::string::npos) {
      std::string rest = line.substr(colon + 1);
      std::size_t start = 0;
      while (start <= rest.size()) {
        std::size_t bar = rest.find('|', start);
        if (bar == std::string::npos) bar = rest.size();
        const std::string q = trim(rest.substr(start, bar - start));
        if (!q.empty()) spec.queries.push_back(q);
        start = bar + 1;
      }
    }
    if (spec.queries.empty()) {
      std::string q = spec.name;
      for (char& c : q)
        if (c == '_' || c == '-') c = ' ';
      spec.queries.push_back(q);
    }
    out.push_back(std::move(spec));
  }
  if (out.empty()) throw InputError(str(source, ": no classes listed (expected lines like \"iphone6: iPhone 6 backside\")"));
  return out;
}

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InputError(str(path, ": cannot open for reading"));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw InputError(str(path, ": read error"));
  return ss.str();
}

std::vector<ClassSpec> load_classes(const std::string& path) { return parse_classes(read_text_file(path), path); }

std::string expand_template(const std::string& tmpl, const std::map<std::string, std::string>& vars) {
  std::string out;
  for (std::size_t i = 0; i < tmpl.size(); ++i) {
    const char c = tmpl[i];
    if ((c == '{' || c == '}') && i + 1 < tmpl.size() && tmpl[i + 1] == c) {
      out += c;
      ++i;
    } else if (c == '{') {
      const std::size_t close = tmpl.find('}', i);
      if (close == std::string::npos) throw InputError(str("URL template \"", tmpl, "\": unclosed '{'"));
      const std::string name = tmpl.substr(i + 1, close - i - 1);
      const auto it = vars.find(name);
      if (it == vars.end())
        throw InputError(str("URL template \"", tmpl, "\": unknown variable {", name,
                             "} (known: {query}, {page}, {per_page}, {offset})"));
      out += it->second;
      i = close;
    } else if (c == '}') {
      throw InputError(str("URL template \"", tmpl, "\": unmatched '}' (write }} for a literal brace)"));
    } else {
      out += c;
    }
  }
  return out;
}

// ---- extraction ----------------------------------------------------------------------------

Extractor Extractor::json_path(const std::string& path) {
  Extractor e;
  e.kind_ = Kind::json_path;
  e.rule_ = path;
  const std::string p = trim(path);
  if (p.empty()) throw InputError("JSON path is empty (expected e.g. \"results[*].url\")");
  std::size_t i = 0;
  while (i <= p.size()) {
    // Indices are digits or '*', never '.', so the next '.' ends the step.
    std::size_t dot = p.find('.', i);
    if (dot == std::string::npos) dot = p.size();
    const std::string seg = p.substr(i, dot - i);
    Step step;
    const std::size_t br = seg.find('[');
    step.member = seg.substr(0, br);
    if (step.member.empty() && !(e.steps_.empty() && br == 0))
      throw InputError(str("JSON path \"", path, "\": empty member name"));
    std::size_t j = br;
    while (j != std::string::npos && j < seg.size()) {
      if (seg[j] != '[') throw InputError(str("JSON path \"", path, "\": unexpected '", seg[j], "'"));
      const std::size_t close = seg.find(']', j);
      if (close == std::string::npos) throw InputError(str("JSON path \"", path, "\": unclosed '['"));
      const std::string idx = seg.substr(j + 1, close - j - 1);
      if (idx == "*") {
        step.indices.push_back(-1);
      } else {
        if (idx.empty() || idx.size() > 9) throw InputError(str("JSON path \"", path, "\": bad index [", idx, "]"));
        for (char c : idx)
          if (!std::isdigit(static_cast<unsigned char>(c)))
            throw InputError(str("JSON path \"", path, "\": bad index [", idx, "]"));
        step.indices.push_back(std::stol(idx));
      }
      j = close + 1;
    }
    e.steps_.push_back(std::move(step));
    if (dot == p.size()) break;
    i = dot + 1;
  }
  return e;
}

Extractor Extractor::html_attribute(const std::string& rule) {
  Extractor e;
  e.kind_ = Kind::html_attribute;
  e.rule_ = rule;
  const std::size_t at = rule.find('@');
  if (at == std::string::npos || at == 0 || at + 1 >= rule.size())
    throw InputError(str("HTML rule \"", rule, "\": expected tag@attribute, e.g. img@src"));
  e.tag_ = lower(trim(rule.substr(0, at)));
  e.attribute_ = lower(trim(rule.substr(at + 1)));
  auto name_ok = [](const std::string& s, bool star_ok) {
    if (s.empty()) return false;
    if (star_ok && s == "*") return true;
    for (char c : s)
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == ':')) return false;
    return true;
  };
  if (!name_ok(e.tag_, true) || !name_ok(e.attribute_, false))
    throw InputError(str("HTML rule \"", rule, "\": expected tag@attribute, e.g. img@src"));
  return e;
}

Extractor Extractor::regex(const std::string& pattern) {
  Extractor e;
  e.kind_ = Kind::regex;
  e.rule_ = pattern;
  try {
    e.regex_ = std::make_shared<const std::regex>(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& err) {
    throw InputError(str("regular expression \"", pattern, "\": ", err.what()));
  }
  return e;
}

namespace {

void walk_json(const json::Value& v, const std::vector<std::pair<std::string, std::vector<long>>>& steps,
               std::size_t k, std::vector<std::string>& out);

void apply_indices(const json::Value& v, const std::vector<long>& indices, std::size_t i,
                   const std::vector<std::pair<std::string, std::vector<long>>>& steps, std::size_t k,
                   std::vector<std::string>& out) {
  if (i == indices.size()) {
    walk_json(v, steps, k + 1, out);
    return;
  }
  if (!v.is_array()) return;
  const auto& arr = v.as_array();
  if (indices[i] < 0) {
    for (const auto& el : arr) apply_indices(el, indices, i + 1, steps, k, out);
  } else if (static_cast<std::size_t>(indices[i]) < arr.size()) {
    apply_indices(arr[static_cast<std::size_t>(indices[i])], indices, i + 1, steps, k, out);
  }
}

void walk_json(const json::Value& v, const std::vector<std::pair<std::string, std::vector<long>>>& steps,
               std::size_t k, std::vector<std::string>& out) {
  if (k == steps.size()) {
    if (v.is_string()) out.push_back(v.as_string());
    return;
  }
  const auto& [member, indices] = steps[k];
  if (member.empty()) {
    apply_indices(v, indices, 0, steps, k, out);
  } else if (!v.is_object()) {
    return;
  } else if (member == "*") {
    for (const auto& kv : v.as_object()) apply_indices(kv.second, indices, 0, steps, k, out);
  } else if (const json::Value* child = v.find(member)) {
    apply_indices(*child, indices, 0, steps, k, out);
  }
}

// Scans the tags of an HTML page and returns the values of `attribute` on tags named `tag` (or on
// every tag when tag is "*"). Comments, and the contents of script and style elements, are skipped.
std::vector<std::string> html_attributes(const std::string& html, const std::string& tag,
                                         const std::string& attribute) {
  std::vector<std::string> out;
  std::size_t i = 0;
  const std::size_t n = html.size();
  while ((i = html.find('<', i)) != std::string::npos) {
    if (html.compare(i, 4, "<!--") == 0) {
      const std::size_t end = html.find("-->", i + 4);
      if (end == std::string::npos) break;
      i = end + 3;
      continue;
    }
    std::size_t j = i + 1;
    while (j < n && (std::isalnum(static_cast<unsigned char>(html[j])) || html[j] == '-' || html[j] == ':')) ++j;
    const std::string name = lower(html.substr(i + 1, j - i - 1));
    if (name.empty()) {
      i = j;
      continue;
    }
    // Attributes: name, optionally '=' and a quoted or bare value, until '>'.
    while (j < n && html[j] != '>') {
      while (j < n && (std::isspace(static_cast<unsigned char>(html[j])) || html[j] == '/')) ++j;
      const std::size_t a0 = j;
      while (j < n && !std::isspace(static_cast<unsigned char>(html[j])) && html[j] != '=' && html[j] != '>' &&
             html[j] != '/')
        ++j;
      const std::string aname = lower(html.substr(a0, j - a0));
      while (j < n && std::isspace(static_cast<unsigned char>(html[j]))) ++j;
      std::string value;
      bool has_value = false;
      if (j < n && html[j] == '=') {
        ++j;
        while (j < n && std::isspace(static_cast<unsigned char>(html[j]))) ++j;
        has_value = true;
        if (j < n && (html[j] == '"' || html[j] == '\'')) {
          const char q = html[j];
          const std::size_t close = html.find(q, j + 1);
          const std::size_t stop = close == std::string::npos ? n : close;
          value = html.substr(j + 1, stop - j - 1);
          j = stop == n ? n : stop + 1;
        } else {
          const std::size_t v0 = j;
          while (j < n && !std::isspace(static_cast<unsigned char>(html[j])) && html[j] != '>') ++j;
          value = html.substr(v0, j - v0);
        }
      }
      if (aname.empty() && !has_value) {
        if (j < n && html[j] != '>') ++j;  // stray character
        continue;
      }
      if (has_value && aname == attribute && (tag == "*" || name == tag)) out.push_back(decode_entities(value));
    }
    i = j;
    if (name == "script" || name == "style") {
      const std::size_t end = lower(html.substr(i, std::string::npos)).find("</" + name);
      if (end == std::string::npos) break;
      i += end;
    }
  }
  return out;
}

}  // namespace

std::vector<std::string> Extractor::extract(const std::string& page, const std::string& page_url) const {
  std::vector<std::string> raw;
  switch (kind_) {
    case Kind::json_path: {
      json::Value doc;
      try {
        doc = json::parse(page, page_url);
      } catch (const Error& e) {
        throw IoError(str(page_url, ": results page is not JSON (", e.what(), ")"));
      }
      std::vector<std::pair<std::string, std::vector<long>>> steps;
      for (const Step& s : steps_) steps.emplace_back(s.member, s.indices);
      walk_json(doc, steps, 0, raw);
      break;
    }
    case Kind::html_attribute:
      raw = html_attributes(page, tag_, attribute_);
      break;
    case Kind::regex: {
      for (std::sregex_iterator it(page.begin(), page.end(), *regex_), end; it != end; ++it) {
        std::string m = it->size() > 1 ? (*it)[1].str() : (*it)[0].str();
        // Addresses inside JSON embedded in a page have their slashes escaped.
        for (std::size_t p; (p = m.find("\\/")) != std::string::npos;) m.replace(p, 2, "/");
        raw.push_back(decode_entities(m));
      }
      break;
    }
  }
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const std::string& r : raw) {
    const std::string abs = resolve_url(page_url, r);
    if (!abs.empty() && seen.insert(abs).second) out.push_back(abs);
  }
  return out;
}

// ---- provider ------------------------------------------------------------------------------

std::string Provider::page_url(const std::string& query, int index) const {
  return expand_template(search_url, {{"query", percent_encode(query)},
                                      {"page", std::to_string(first_page + index)},
                                      {"per_page", std::to_string(per_page)},
                                      {"offset", std::to_string(static_cast<long long>(index) * per_page)}});
}

Provider parse_provider(const std::string& text, const std::string& source) {
  json::Value doc;
  try {
    doc = json::parse(text, source);
  } catch (const Error& e) {
    throw InputError(str("provider ", e.what()));
  }
  if (!doc.is_object()) throw InputError(str(source, ": a provider is a JSON object"));
  Provider p;
  try {
    auto int_field = [&](const char* key, int lo, int hi, int fallback) {
      const json::Value* v = doc.find(key);
      if (!v) return fallback;
      const long long x = v->as_int();
      if (x < lo || x > hi) throw InputError(str("\"", key, "\" must be between ", lo, " and ", hi));
      return static_cast<int>(x);
    };
    p.name = doc.find("name") ? doc.at("name").as_string() : source;
    if (!doc.find("search_url")) throw InputError("missing \"search_url\" (the results page URL template)");
    p.search_url = doc.at("search_url").as_string();
    p.per_page = int_field("per_page", 1, 1000, 20);
    p.first_page = int_field("first_page", 0, 1000000, 1);
    p.max_pages = int_field("max_pages", 1, 10000, 5);
    const json::Value* ex = doc.find("extract");
    if (!ex || !ex->is_object() || ex->size() != 1)
      throw InputError(str("\"extract\" must be an object with one rule: {\"json\": \"results[*].url\"}, "
                                   "{\"html\": \"img@src\"} or {\"regex\": \"...\"}"));
    const auto& [kind, rule] = ex->as_object().front();
    if (kind == "json") p.extractor = Extractor::json_path(rule.as_string());
    else if (kind == "html") p.extractor = Extractor::html_attribute(rule.as_string());
    else if (kind == "regex") p.extractor = Extractor::regex(rule.as_string());
    else throw InputError(str("unknown extract rule \"", kind, "\" (json, html or regex)"));
  } catch (const Error& e) {
    throw InputError(str(source, ": ", e.what()));
  }
  Url u;
  std::string sample;
  try {
    sample = p.page_url("test", 0);
  } catch (const Error& e) {
    throw InputError(str(source, ": ", e.what()));
  }
  if (!parse_url(sample, u))
    throw InputError(str(source, ": search_url \"", p.search_url, "\" is not an http or https URL"));
  if (p.search_url.find("{query}") == std::string::npos)
    throw InputError(str(source, ": search_url has no {query}"));
  return p;
}

Provider load_provider(const std::string& path) { return parse_provider(read_text_file(path), path); }

}  // namespace ewnet::collect
