#include "collect/collect.hpp"

#include <algorithm>
#include <set>
#include <thread>

#include "collect/dataset.hpp"
#include "collect/phash.hpp"
#include "collect/sha256.hpp"

namespace ewnet::collect {

const std::vector<std::string>& image_content_types() {
  static const std::vector<std::string> types = {"image/", "application/octet-stream", "binary/octet-stream"};
  return types;
}

Verdict check_download(const Response& r, std::size_t max_bytes, int min_width, int min_height) {
  Verdict v;
  if (!r.ok()) {
    v.reject = r.outcome == Response::Outcome::http_error ? "http-" + std::to_string(r.status) : outcome_name(r.outcome);
    v.detail = r.error;
    return v;
  }
  if (r.body.size() > max_bytes) {
    v.reject = "too-large";
    v.detail = std::to_string(r.body.size()) + " bytes";
    return v;
  }
  if (!r.content_type.empty()) {
    bool ok = false;
    for (const auto& t : image_content_types()) ok = ok || r.content_type.rfind(t, 0) == 0;
    if (!ok) {
      v.reject = "wrong-type";
      v.detail = "Content-Type " + r.content_type;
      return v;
    }
  }
  try {
    // The checks training applies before it keeps a file (the file size, the header limits, the
    // bounded decoders), so nothing is kept that training would refuse or choke on.
    v.image = data::decode_image_file(r.body.data(), r.body.size(), r.url);
  } catch (const Error& e) {
    v.reject = "not-an-image";
    v.detail = e.what();
    return v;
  }
  if (v.image.width < min_width || v.image.height < min_height) {
    v.reject = "too-small";
    v.detail = std::to_string(v.image.width) + "x" + std::to_string(v.image.height);
    v.image = data::Image();
  }
  return v;
}

namespace {

/// What the data set already holds of a download that passed the checks.
struct Match {
  std::string outcome;  // "" when new (kept); duplicate, previously-rejected, near-duplicate, review
  std::string detail;
};

/// One run of the fetch step: for each class, its searches, their results pages, the downloads
/// of each page (a few at once) and the judgement of each download, in that order.
class Collection {
 public:
  Collection(const Provider& provider, const CollectOptions& opt)
      : provider_(provider), opt_(opt), ds_(opt.out_dir), fetcher_(opt.fetch) {
    ds_.index_perceptual_hashes(opt.log);
  }

  /// Searches until `cls` has opt.per_class images or its searches run out; false when interrupted.
  bool fill(const ClassSpec& cls) {
    ClassReport& cr = report_.classes[cls.name];
    cr.kept_before = ds_.kept_count(cls.name);
    std::set<std::string> seen_this_run;
    for (const std::string& query : cls.queries) {
      if (!search(cls.name, query, cr, seen_this_run)) return false;
      if (full(cls.name)) break;
    }
    return true;
  }

  const CollectReport& report() const { return report_; }

 private:
  bool full(const std::string& cls) { return ds_.kept_count(cls) >= opt_.per_class; }
  bool cancelled() const { return opt_.fetch.cancel && opt_.fetch.cancel->load(); }
  bool interrupt() {
    report_.interrupted = true;
    return false;
  }
  void say(const std::string& msg) const {
    if (opt_.log) opt_.log(msg);
  }

  /// The results pages of one search, each page's new addresses downloaded; false when interrupted.
  bool search(const std::string& cls, const std::string& query, ClassReport& cr, std::set<std::string>& seen) {
    for (int page = 0; page < provider_.max_pages; ++page) {
      if (cancelled()) return interrupt();
      if (full(cls)) break;
      const std::vector<std::string> urls = results_page(query, page);
      if (report_.interrupted) return false;
      if (urls.empty()) break;  // past the last page of results, or a page that failed
      std::vector<std::string> todo;
      for (const auto& u : urls)
        if (!ds_.tried(u) && seen.insert(u).second) todo.push_back(u);
      if (!download(cls, todo, cr)) return false;
    }
    return true;
  }

  /// The image addresses on one results page; none (with a warning) when the page cannot be
  /// fetched or read, and none when cancelled (then report_.interrupted is set).
  std::vector<std::string> results_page(const std::string& query, int page) {
    const std::string page_url = provider_.page_url(query, page);
    const Response pr = fetcher_.get(page_url, opt_.max_page_bytes);
    if (!pr.ok()) {
      if (pr.outcome == Response::Outcome::cancelled) interrupt();
      else say("warning: results page " + page_url + ": " + pr.error + "; going on with the next search");
      return {};
    }
    try {
      return provider_.extractor.extract(std::string(pr.body.begin(), pr.body.end()), page_url);
    } catch (const Error& e) {
      say(std::string("warning: ") + e.what() + "; going on with the next search");
      return {};
    }
  }

  /// Downloads `todo` opt.parallel at a time until the class is full; false when interrupted.
  bool download(const std::string& cls, const std::vector<std::string>& todo, ClassReport& cr) {
    const std::size_t parallel = static_cast<std::size_t>(std::max(1, opt_.parallel));
    std::size_t next = 0;
    while (next < todo.size() && !full(cls)) {
      if (cancelled()) return interrupt();
      // Downloads no more than the class still needs, so a run asked for N keeps N and leaves
      // the remaining addresses untried for a later, larger run.
      const std::size_t need = static_cast<std::size_t>(opt_.per_class - ds_.kept_count(cls));
      const std::size_t batch = std::min({parallel, need, todo.size() - next});
      std::vector<Response> responses(batch);
      std::vector<std::thread> workers;
      for (std::size_t i = 0; i < batch; ++i)
        workers.emplace_back([&, i] { responses[i] = fetcher_.get(todo[next + i], opt_.max_bytes, image_content_types()); });
      for (auto& w : workers) w.join();
      // Judged in result order, so the outcome does not depend on which download finished first.
      for (std::size_t i = 0; i < batch; ++i) judge(cls, todo[next + i], responses[i], cr);
      if (report_.interrupted) return false;
      next += batch;
    }
    return true;
  }

  /// Keeps, holds for review or skips one download, records it as tried and counts it.
  void judge(const std::string& cls, const std::string& url, const Response& r, ClassReport& cr) {
    if (r.outcome == Response::Outcome::cancelled) {
      report_.interrupted = true;
      return;
    }
    Verdict v = check_download(r, opt_.max_bytes, opt_.min_width, opt_.min_height);
    if (!v.reject.empty()) {
      ds_.record_tried(url, v.reject, !r.transient(), v.detail);
      ++cr.skipped[v.reject];
      say(cls + ": skipped " + url + " (" + v.reject + (v.detail.empty() ? "" : ": " + v.detail) + ")");
      return;
    }
    const std::string sha = sha256_hex(r.body.data(), r.body.size());
    const std::uint64_t ph = dhash(v.image);
    const Match m = match(cls, url, r, v, sha, ph);
    if (m.outcome.empty()) {
      const ManifestEntry e = ds_.keep(cls, url, sha, r.body, v.image.width, v.image.height, ph);
      ds_.record_tried(url, "kept", true, e.file);
      ++cr.kept_new;
      say(cls + ": kept " + e.file + " <- " + url);
      return;
    }
    ds_.record_tried(url, m.outcome, true, m.detail);
    if (m.outcome == "review") {
      ++cr.held_for_review;
      say(cls + ": held for review " + url + " (" + m.detail + ", another class)");
    } else {
      ++cr.skipped[m.outcome];
      say(cls + ": skipped " + url + " (" + m.outcome + (m.detail.empty() ? "" : ": " + m.detail) + ")");
    }
  }

  /// The same bytes, or a perceptually near image, in the data set: a duplicate when the same
  /// class has it; held for review (done here) when another class has it.
  Match match(const std::string& cls, const std::string& url, const Response& r, const Verdict& v,
              const std::string& sha, std::uint64_t ph) {
    if (const ManifestEntry* same = ds_.find_kept_sha(sha)) {
      if (same->cls == cls) return {"duplicate", "same bytes as " + same->file};
      ds_.hold_for_review(cls, url, sha, r.body, v.image.width, v.image.height, same->file, 0);
      return {"review", "same bytes as " + same->file};
    }
    if (ds_.was_rejected_sha(sha)) return {"previously-rejected", ""};
    if (ds_.in_review(sha)) return {"duplicate", "already held for review"};
    const DataSet::NearMatch m = ds_.nearest(ph, cls, opt_.near_distance);
    if (!m.entry) return {};
    const std::string detail = "distance " + std::to_string(m.distance) + " to " + m.entry->file;
    if (m.entry->cls == cls) return {"near-duplicate", detail};
    ds_.hold_for_review(cls, url, sha, r.body, v.image.width, v.image.height, m.entry->file, m.distance);
    return {"review", detail};
  }

  const Provider& provider_;
  const CollectOptions& opt_;
  DataSet ds_;
  PoliteFetcher fetcher_;
  CollectReport report_;
};

}  // namespace

CollectReport collect(const std::vector<ClassSpec>& classes, const Provider& provider, const CollectOptions& opt) {
  Collection run(provider, opt);
  for (const ClassSpec& cls : classes)
    if (!run.fill(cls)) break;
  return run.report();
}

}  // namespace ewnet::collect
