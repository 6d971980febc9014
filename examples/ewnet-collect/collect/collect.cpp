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

void say(const CollectOptions& opt, const std::string& msg) {
  if (opt.log) opt.log(msg);
}

}  // namespace

CollectReport collect(const std::vector<ClassSpec>& classes, const Provider& provider, const CollectOptions& opt) {
  CollectReport report;
  DataSet ds(opt.out_dir);
  ds.index_perceptual_hashes(opt.log);
  PoliteFetcher fetcher(opt.fetch);
  const auto cancelled = [&] { return opt.fetch.cancel && opt.fetch.cancel->load(); };
  const int parallel = std::max(1, opt.parallel);

  for (const ClassSpec& cls : classes) {
    ClassReport& cr = report.classes[cls.name];
    cr.kept_before = ds.kept_count(cls.name);
    std::set<std::string> seen_this_run;
    for (const std::string& query : cls.queries) {
      for (int page = 0; page < provider.max_pages; ++page) {
        if (cancelled()) {
          report.interrupted = true;
          return report;
        }
        if (ds.kept_count(cls.name) >= opt.per_class) break;
        const std::string page_url = provider.page_url(query, page);
        const Response pr = fetcher.get(page_url, opt.max_page_bytes);
        if (!pr.ok()) {
          if (pr.outcome == Response::Outcome::cancelled) {
            report.interrupted = true;
            return report;
          }
          say(opt, "warning: results page " + page_url + ": " + pr.error + "; going on with the next search");
          break;
        }
        std::vector<std::string> urls;
        try {
          urls = provider.extractor.extract(std::string(pr.body.begin(), pr.body.end()), page_url);
        } catch (const Error& e) {
          say(opt, std::string("warning: ") + e.what() + "; going on with the next search");
          break;
        }
        if (urls.empty()) break;  // past the last page of results
        std::vector<std::string> todo;
        for (const auto& u : urls)
          if (!ds.tried(u) && seen_this_run.insert(u).second) todo.push_back(u);

        std::size_t next = 0;
        while (next < todo.size() && ds.kept_count(cls.name) < opt.per_class) {
          if (cancelled()) {
            report.interrupted = true;
            return report;
          }
          // Downloads no more than the class still needs, so a run asked for N keeps N and leaves
          // the remaining addresses untried for a later, larger run.
          const std::size_t need = static_cast<std::size_t>(opt.per_class - ds.kept_count(cls.name));
          const std::size_t batch = std::min({static_cast<std::size_t>(parallel), need, todo.size() - next});
          std::vector<Response> responses(batch);
          std::vector<std::thread> workers;
          for (std::size_t i = 0; i < batch; ++i)
            workers.emplace_back([&, i] { responses[i] = fetcher.get(todo[next + i], opt.max_bytes, image_content_types()); });
          for (auto& w : workers) w.join();

          // Judged in result order, so the outcome does not depend on which download finished first.
          for (std::size_t i = 0; i < batch; ++i) {
            const std::string& url = todo[next + i];
            const Response& r = responses[i];
            if (r.outcome == Response::Outcome::cancelled) {
              report.interrupted = true;
              continue;
            }
            Verdict v = check_download(r, opt.max_bytes, opt.min_width, opt.min_height);
            if (!v.reject.empty()) {
              ds.record_tried(url, v.reject, !r.transient(), v.detail);
              ++cr.skipped[v.reject];
              say(opt, cls.name + ": skipped " + url + " (" + v.reject + (v.detail.empty() ? "" : ": " + v.detail) + ")");
              continue;
            }
            const std::string sha = sha256_hex(r.body.data(), r.body.size());
            const std::uint64_t ph = dhash(v.image);
            std::string outcome, detail;
            if (const ManifestEntry* same = ds.find_kept_sha(sha)) {
              if (same->cls == cls.name) {
                outcome = "duplicate";
                detail = "same bytes as " + same->file;
              } else {
                ds.hold_for_review(cls.name, url, sha, r.body, v.image.width, v.image.height, same->file, 0);
                outcome = "review";
                detail = "same bytes as " + same->file;
              }
            } else if (ds.was_rejected_sha(sha)) {
              outcome = "previously-rejected";
            } else if (ds.in_review(sha)) {
              outcome = "duplicate";
              detail = "already held for review";
            } else {
              const DataSet::NearMatch m = ds.nearest(ph, cls.name, opt.near_distance);
              if (m.entry && m.entry->cls == cls.name) {
                outcome = "near-duplicate";
                detail = "distance " + std::to_string(m.distance) + " to " + m.entry->file;
              } else if (m.entry) {
                ds.hold_for_review(cls.name, url, sha, r.body, v.image.width, v.image.height, m.entry->file,
                                   m.distance);
                outcome = "review";
                detail = "distance " + std::to_string(m.distance) + " to " + m.entry->file;
              }
            }
            if (outcome.empty()) {
              const ManifestEntry e = ds.keep(cls.name, url, sha, r.body, v.image.width, v.image.height, ph);
              ds.record_tried(url, "kept", true, e.file);
              ++cr.kept_new;
              say(opt, cls.name + ": kept " + e.file + " <- " + url);
            } else {
              ds.record_tried(url, outcome, true, detail);
              if (outcome == "review") {
                ++cr.held_for_review;
                say(opt, cls.name + ": held for review " + url + " (" + detail + ", another class)");
              } else {
                ++cr.skipped[outcome];
                say(opt, cls.name + ": skipped " + url + " (" + outcome + (detail.empty() ? "" : ": " + detail) + ")");
              }
            }
          }
          if (report.interrupted) return report;
          next += batch;
        }
      }
      if (ds.kept_count(cls.name) >= opt.per_class) break;
    }
  }
  return report;
}

}  // namespace ewnet::collect
