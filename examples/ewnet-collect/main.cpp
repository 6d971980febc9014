// ewnet-collect: builds an image data set from image-search results, cleans it, and leaves it in
// the ROOT/<class>/ layout that ewnet-train reads. See docs/collecting-data.md.
#include <atomic>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "collect/collect.hpp"
#include "collect/config.hpp"
#include "collect/review.hpp"

namespace {

using namespace ewnet::collect;

std::atomic<bool> g_interrupted{false};

extern "C" void on_signal(int) { g_interrupted.store(true); }

const char* kUsage = R"(ewnet-collect: build an image data set from image-search results

usage:
  ewnet-collect fetch  --classes FILE --provider FILE --out DIR [options]
  ewnet-collect sheet  --out DIR [--thumb PIXELS]
  ewnet-collect reject --out DIR --list FILE
  ewnet-collect --help

fetch   searches for every class, downloads the results, keeps the images that pass the checks
        and stores them as DIR/<class>/<hash>.<ext>, listed in DIR/manifest.csv
        (file,class,url,sha256,width,height). Run it again to continue: addresses already tried
        are never downloaded again, and a class that has enough images is skipped.
  --classes FILE        one class per line: "name: search words | other search words"
                        (a line with only a name searches for the name); '#' starts a comment
  --provider FILE       search provider configuration (JSON), see docs/providers/
  --out DIR             the data set folder (created when missing)
  --per-class N         images wanted per class (default 100)
  --min-size WxH        smallest accepted image (default 224x224)
  --near-distance D     perceptual-hash bits within which two images are near duplicates
                        (default 6; -1 turns the check off)
  --delay S             seconds between two requests to one host (default 1; a site's
                        robots.txt Crawl-delay, when longer, wins)
  --parallel N          downloads in flight at once (default 4)
  --timeout S           seconds a single request may take (default 30)
  --retries N           extra attempts after 429, 5xx or a dropped connection (default 4),
                        waiting 2^k seconds (or the server's Retry-After) between them
  --backoff S           first retry wait in seconds (default 1)
  --max-bytes N         largest accepted image file, bytes; K and M suffixes (default 20M)
  --max-pages N         results pages read per search (default: the provider's max_pages)
  --contact TEXT        appended to the User-Agent (an e-mail or web page), which some
                        providers ask for
  --loopback-only       connect to 127.0.0.0/8 and ::1 only (for tests)
  --quiet               print only warnings and the summary

        Every download is checked: HTTP status, size, Content-Type, that it decodes as an image,
        the minimum size. Exact duplicates (SHA-256) and near duplicates (64-bit dHash within
        --near-distance) of a kept image are skipped; one that matches an image of another class
        is held in DIR/_review/<class>/ and listed in DIR/review.csv instead of being kept twice.
        robots.txt is honoured for every host, with User-agent "ewnet-collect".

sheet   writes DIR/_sheet/index.html and one page of thumbnails per class; click the images that
        do not belong and copy the list of names the page collects.
  --thumb PIXELS        thumbnail size (default 160)

reject  moves the images named in FILE (one per line, "<class>/<file>" or a bare file name) to
        DIR/_rejected/<class>/, takes them out of manifest.csv and records them in
        DIR/_rejected/rejected.csv, so fetch never brings them back. Nothing is deleted.

exit status: 0 done, 1 a failure while working, 2 bad command line or input,
             130 interrupted (run the same command again to continue)
)";

struct Args {
  std::string command;
  std::map<std::string, std::string> values;
  std::vector<std::string> flags;

  bool has(const std::string& k) const { return values.count(k) > 0; }
  std::string get(const std::string& k, const std::string& fallback = "") const {
    const auto it = values.find(k);
    return it == values.end() ? fallback : it->second;
  }
  bool flag(const std::string& k) const {
    for (const auto& f : flags)
      if (f == k) return true;
    return false;
  }
  std::string require(const std::string& k) const {
    if (!has(k)) throw InputError("missing --" + k + " (see ewnet-collect --help)");
    return get(k);
  }
};

Args parse_args(int argc, char** argv, const std::vector<std::string>& valued, const std::vector<std::string>& flags) {
  Args a;
  a.command = argv[1];
  for (int i = 2; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg.rfind("--", 0) != 0) throw InputError("unexpected argument \"" + arg + "\" (see ewnet-collect --help)");
    std::string key = arg.substr(2), value;
    const std::size_t eq = key.find('=');
    const bool inline_value = eq != std::string::npos;
    if (inline_value) {
      value = key.substr(eq + 1);
      key.erase(eq);
    }
    bool is_valued = false, is_flag = false;
    for (const auto& v : valued) is_valued = is_valued || v == key;
    for (const auto& f : flags) is_flag = is_flag || f == key;
    if (is_flag && !inline_value) {
      a.flags.push_back(key);
    } else if (is_valued) {
      if (!inline_value) {
        if (i + 1 >= argc) throw InputError("--" + key + " needs a value");
        value = argv[++i];
      }
      a.values[key] = value;
    } else {
      throw InputError("unknown option --" + key + " for " + a.command + " (see ewnet-collect --help)");
    }
  }
  return a;
}

long parse_int(const std::string& name, const std::string& text, long lo, long hi) {
  try {
    std::size_t used = 0;
    const long v = std::stol(text, &used);
    if (used == text.size() && v >= lo && v <= hi) return v;
  } catch (const std::exception&) {
  }
  throw InputError("--" + name + " must be a whole number from " + std::to_string(lo) + " to " + std::to_string(hi) +
                   ", not \"" + text + "\"");
}

double parse_seconds(const std::string& name, const std::string& text, double lo, double hi) {
  try {
    std::size_t used = 0;
    const double v = std::stod(text, &used);
    if (used == text.size() && v >= lo && v <= hi) return v;
  } catch (const std::exception&) {
  }
  throw InputError("--" + name + " must be a number of seconds from " + std::to_string(lo) + " to " +
                   std::to_string(hi) + ", not \"" + text + "\"");
}

std::size_t parse_bytes(const std::string& text) {
  std::string t = text;
  std::size_t mult = 1;
  if (!t.empty() && (t.back() == 'K' || t.back() == 'k')) mult = 1024, t.pop_back();
  else if (!t.empty() && (t.back() == 'M' || t.back() == 'm')) mult = 1024 * 1024, t.pop_back();
  const long v = parse_int("max-bytes", t, 1, 1L << 31);
  if (static_cast<std::size_t>(v) * mult > (std::size_t{1} << 31))
    throw InputError("--max-bytes is at most 2048M");
  return static_cast<std::size_t>(v) * mult;
}

void parse_size(const std::string& text, int& w, int& h) {
  const std::size_t x = text.find_first_of("xX");
  if (x == std::string::npos) throw InputError("--min-size must look like 224x224, not \"" + text + "\"");
  w = static_cast<int>(parse_int("min-size", text.substr(0, x), 1, 16384));
  h = static_cast<int>(parse_int("min-size", text.substr(x + 1), 1, 16384));
}

int run_fetch(const Args& a) {
  const bool quiet = a.flag("quiet");
  const auto classes = load_classes(a.require("classes"));
  Provider provider = load_provider(a.require("provider"));
  CollectOptions opt;
  opt.out_dir = a.require("out");
  if (a.has("per-class")) opt.per_class = static_cast<int>(parse_int("per-class", a.get("per-class"), 1, 1000000));
  if (a.has("min-size")) parse_size(a.get("min-size"), opt.min_width, opt.min_height);
  if (a.has("near-distance")) opt.near_distance = static_cast<int>(parse_int("near-distance", a.get("near-distance"), -1, 64));
  if (a.has("parallel")) opt.parallel = static_cast<int>(parse_int("parallel", a.get("parallel"), 1, 64));
  if (a.has("max-bytes")) opt.max_bytes = parse_bytes(a.get("max-bytes"));
  if (a.has("max-pages")) provider.max_pages = static_cast<int>(parse_int("max-pages", a.get("max-pages"), 1, 10000));
  if (a.has("delay")) opt.fetch.min_delay_s = parse_seconds("delay", a.get("delay"), 0.0, 3600.0);
  if (a.has("timeout")) opt.fetch.timeout_s = parse_seconds("timeout", a.get("timeout"), 0.1, 3600.0);
  opt.fetch.connect_timeout_s = std::min(opt.fetch.connect_timeout_s, opt.fetch.timeout_s);
  if (a.has("retries")) opt.fetch.max_retries = static_cast<int>(parse_int("retries", a.get("retries"), 0, 20));
  if (a.has("backoff")) opt.fetch.backoff_base_s = parse_seconds("backoff", a.get("backoff"), 0.0, 600.0);
  if (a.has("contact")) {
    std::string ua = kUserAgent;
    ua.insert(ua.size() - 1, "; " + a.get("contact"));
    opt.fetch.user_agent = ua;
  }
  opt.fetch.loopback_only = a.flag("loopback-only");
  opt.fetch.cancel = &g_interrupted;
  opt.log = [quiet](const std::string& m) {
    if (!quiet || m.rfind("warning", 0) == 0) std::cerr << m << '\n';
  };
  opt.fetch.log = opt.log;
  if (opt.fetch.min_delay_s < 1.0)
    std::cerr << "note: --delay " << opt.fetch.min_delay_s << " is below one second; keep it for servers you run\n";

  const CollectReport rep = collect(classes, provider, opt);
  int short_classes = 0;
  std::cout << "class,kept_before,kept_now,new,held_for_review,skipped\n";
  for (const ClassSpec& c : classes) {
    const auto it = rep.classes.find(c.name);
    if (it == rep.classes.end()) continue;
    const ClassReport& r = it->second;
    int skipped = 0;
    std::string why;
    for (const auto& [k, n] : r.skipped) {
      skipped += n;
      why += (why.empty() ? " (" : ", ") + k + " " + std::to_string(n);
    }
    if (!why.empty()) why += ")";
    const int now = r.kept_before + r.kept_new;
    if (now < opt.per_class) ++short_classes;
    std::cout << c.name << ',' << r.kept_before << ',' << now << ',' << r.kept_new << ',' << r.held_for_review << ','
              << skipped << why << '\n';
  }
  if (rep.interrupted) {
    std::cerr << "interrupted; run the same command again to continue where it stopped\n";
    return 130;
  }
  if (short_classes > 0)
    std::cerr << "note: " << short_classes << " class(es) have fewer than " << opt.per_class
              << " images; add search words or providers, or raise --max-pages\n";
  return 0;
}

int run_sheet(const Args& a) {
  SheetOptions opt;
  opt.out_dir = a.require("out");
  if (a.has("thumb")) opt.thumb_size = static_cast<int>(parse_int("thumb", a.get("thumb"), 16, 1024));
  opt.log = [](const std::string& m) { std::cerr << m << '\n'; };
  std::cout << write_contact_sheet(opt) << '\n';
  return 0;
}

int run_reject(const Args& a) {
  const std::string out = a.require("out");
  const auto names = read_reject_list(a.require("list"));
  const RejectReport rep = apply_reject_list(out, names);
  for (const auto& m : rep.moved) std::cout << "rejected " << m << '\n';
  for (const auto& n : rep.not_found) std::cerr << "warning: " << n << " is not a kept image (already rejected?)\n";
  for (const auto& n : rep.ambiguous)
    std::cerr << "warning: " << n << " names images in several classes; write it as <class>/" << n << '\n';
  std::cout << rep.moved.size() << " image(s) moved to " << out << "/_rejected/\n";
  return rep.ambiguous.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kUsage;
    return 2;
  }
  const std::string cmd = argv[1];
  if (cmd == "--help" || cmd == "-h" || cmd == "help") {
    std::cout << kUsage;
    return 0;
  }
  for (int i = 2; i < argc; ++i)
    if (std::string(argv[i]) == "--help") {
      std::cout << kUsage;
      return 0;
    }
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  try {
    if (cmd == "fetch")
      return run_fetch(parse_args(argc, argv,
                                  {"classes", "provider", "out", "per-class", "min-size", "near-distance", "delay",
                                   "parallel", "timeout", "retries", "backoff", "max-bytes", "max-pages", "contact"},
                                  {"loopback-only", "quiet"}));
    if (cmd == "sheet") return run_sheet(parse_args(argc, argv, {"out", "thumb"}, {}));
    if (cmd == "reject") return run_reject(parse_args(argc, argv, {"out", "list"}, {}));
    std::cerr << "ewnet-collect: unknown command \"" << cmd << "\" (fetch, sheet or reject; see --help)\n";
    return 2;
  } catch (const InputError& e) {
    std::cerr << "ewnet-collect: " << e.what() << '\n';
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "ewnet-collect: " << e.what() << '\n';
    return 1;
  }
}
