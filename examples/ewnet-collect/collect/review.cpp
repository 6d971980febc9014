#include "collect/review.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <ewnet/data/image.hpp>

#include "collect/config.hpp"
#include "collect/dataset.hpp"
#include "collect/strings.hpp"

namespace fs = std::filesystem;

namespace ewnet::collect {
namespace {

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

void write_text(const std::string& path, const std::string& text) {
  write_file_atomic(path, reinterpret_cast<const std::uint8_t*>(text.data()), text.size());
}

// Holds ROOT/_state/lock for the lifetime of the object, so a reject does not race a fetch.
class FolderLock {
 public:
  explicit FolderLock(const std::string& root) {
    std::error_code ec;
    fs::create_directories(fs::path(root) / "_state", ec);
    const std::string path = (fs::path(root) / "_state" / "lock").string();
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw InputError(str(path, ": output folder is not writable"));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd_);
      throw InputError(str(root, ": another ewnet-collect is working in this folder"));
    }
  }
  ~FolderLock() { ::close(fd_); }
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;

 private:
  int fd_ = -1;
};

const char* kSheetStyle = R"(body{font-family:sans-serif;margin:1em;background:#f4f4f4}
.grid{display:flex;flex-wrap:wrap;gap:8px}
figure{margin:0;padding:4px;background:#fff;border:2px solid #ddd;width:{W}px}
figure.on{border-color:#c00;background:#fee}
figure img{display:block;max-width:{W}px;max-height:{W}px;margin:auto}
figcaption{font-size:11px;word-break:break-all}
textarea{width:100%;height:8em}
)";

// Clicking a thumbnail marks it; the box below lists the marked names, one per line: a reject list.
const char* kSheetScript = R"(<script>
function toggle(f){f.classList.toggle('on');var n=[];
document.querySelectorAll('figure.on').forEach(function(x){n.push(x.dataset.name)});
document.getElementById('rejects').value=n.join('\n')+(n.length?'\n':'');}
</script>)";

std::string page_head(const std::string& title, int thumb) {
  std::string style = kSheetStyle;
  for (std::size_t p; (p = style.find("{W}")) != std::string::npos;) style.replace(p, 3, std::to_string(thumb));
  return "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>" + html_escape(title) + "</title>\n<style>" +
         style + "</style>\n" + kSheetScript + "</head><body>\n";
}

// Makes (or reuses) a thumbnail; returns its path relative to the _sheet folder, or "" when the
// image cannot be read (the page then says so instead of showing it).
std::string thumbnail(const fs::path& root, const std::string& rel, const std::string& sha, int size,
                      const std::function<void(const std::string&)>& log) {
  const std::string name = "thumbs/" + sha.substr(0, 16) + "-" + std::to_string(size) + ".png";
  const fs::path out = root / "_sheet" / name;
  if (fs::exists(out)) return name;
  try {
    const data::Image img = data::load_image((root / rel).string());
    const double scale = std::min(1.0, static_cast<double>(size) / std::max(img.width, img.height));
    const int w = std::max(1, static_cast<int>(img.width * scale + 0.5));
    const int h = std::max(1, static_cast<int>(img.height * scale + 0.5));
    data::write_png(out.string(), data::resize_cubic(img, w, h));
    return name;
  } catch (const Error& e) {
    if (log) log(std::string("warning: ") + e.what());
    return "";
  }
}

std::string figure(const std::string& name, const std::string& thumb, const std::string& link, const std::string& note) {
  std::string s = "<figure data-name=\"" + html_escape(name) + "\" onclick=\"toggle(this)\">";
  s += thumb.empty() ? "<div>(unreadable)</div>" : "<img loading=\"lazy\" src=\"" + html_escape(thumb) + "\" alt=\"\">";
  s += "<figcaption><a href=\"" + html_escape(link) + "\" onclick=\"event.stopPropagation()\">" + html_escape(name) +
       "</a>" + (note.empty() ? "" : "<br>" + html_escape(note)) + "</figcaption></figure>\n";
  return s;
}

}  // namespace

std::string write_contact_sheet(const SheetOptions& opt) {
  const fs::path root(opt.out_dir);
  const std::string manifest = (root / "manifest.csv").string();
  if (!fs::exists(manifest)) throw InputError(str(opt.out_dir, ": no manifest.csv here; run ewnet-collect fetch first"));
  if (opt.thumb_size < 16 || opt.thumb_size > 1024) throw InputError("--thumb must be between 16 and 1024 pixels");
  FolderLock lock(opt.out_dir);
  const auto kept = read_manifest(manifest);
  std::error_code ec;
  fs::create_directories(root / "_sheet" / "thumbs", ec);
  if (ec) throw InputError(str((root / "_sheet").string(), ": cannot create folder: ", ec.message()));

  std::map<std::string, std::vector<const ManifestEntry*>> by_class;
  for (const auto& e : kept) by_class[e.cls].push_back(&e);
  // review.csv: file,class,url,sha256,width,height,duplicate_of,distance
  std::map<std::string, std::vector<std::vector<std::string>>> review;
  {
    std::ifstream in((root / "review.csv").string(), std::ios::binary);
    std::string line;
    while (std::getline(in, line)) {
      const auto f = csv_split(line);
      if (f.size() >= 8 && f[0] != "file" && fs::exists(root / f[0])) review[f[1]].push_back(f);
    }
  }

  std::string index = page_head("ewnet-collect contact sheet", opt.thumb_size);
  index += "<h1>Contact sheet</h1>\n<p>One page per class. Click the images that do not belong; the box at the "
           "bottom of the page collects their names. Save them to a file, one per line, and run "
           "<code>ewnet-collect reject --out DIR --list FILE</code>.</p>\n<ul>\n";
  std::set<std::string> all_classes;
  for (const auto& [c, v] : by_class) all_classes.insert(c);
  for (const auto& [c, v] : review) all_classes.insert(c);
  for (const std::string& c : all_classes) {
    const auto kit = by_class.find(c);
    const std::size_t n = kit == by_class.end() ? 0 : kit->second.size();
    const auto rit = review.find(c);
    const std::size_t r = rit == review.end() ? 0 : rit->second.size();
    index += "<li><a href=\"" + html_escape(c) + ".html\">" + html_escape(c) + "</a>: " + std::to_string(n) + " images" +
             (r ? ", " + std::to_string(r) + " held for review" : "") + "</li>\n";

    std::string page = page_head(c + " - ewnet-collect", opt.thumb_size);
    page += "<p><a href=\"index.html\">all classes</a></p><h1>" + html_escape(c) + "</h1>\n<div class=\"grid\">\n";
    if (kit != by_class.end())
      for (const ManifestEntry* e : kit->second) {
        const std::string thumb = thumbnail(root, e->file, e->sha256, opt.thumb_size, opt.log);
        page += figure(e->file, thumb, "../" + e->file,
                       std::to_string(e->width) + "x" + std::to_string(e->height));
      }
    page += "</div>\n";
    if (rit != review.end()) {
      page += "<h2>Held for review</h2>\n<p>These look like images already kept in another class (see review.csv). "
              "They are not part of the data set; move one into a class folder by hand if it belongs there.</p>\n"
              "<div class=\"grid\">\n";
      for (const auto& f : rit->second) {
        const std::string thumb = thumbnail(root, f[0], f[3], opt.thumb_size, opt.log);
        page += figure(f[0], thumb, "../" + f[0], "like " + f[6]);
      }
      page += "</div>\n";
    }
    page += "<h2>Reject list</h2>\n<textarea id=\"rejects\" readonly></textarea>\n</body></html>\n";
    write_text((root / "_sheet" / (c + ".html")).string(), page);
  }
  index += "</ul>\n</body></html>\n";
  const std::string index_path = (root / "_sheet" / "index.html").string();
  write_text(index_path, index);
  return index_path;
}

std::vector<std::string> read_reject_list(const std::string& path) {
  std::istringstream in(read_text_file(path));
  std::vector<std::string> names;
  std::string line;
  while (std::getline(in, line)) {
    const std::size_t hash = line.find('#');
    if (hash != std::string::npos) line.erase(hash);
    line = trim(line);
    if (!line.empty()) names.push_back(line);
  }
  return names;
}

RejectReport apply_reject_list(const std::string& out_dir, const std::vector<std::string>& names) {
  const fs::path root(out_dir);
  const std::string manifest = (root / "manifest.csv").string();
  if (!fs::exists(manifest)) throw InputError(str(out_dir, ": no manifest.csv here; run ewnet-collect fetch first"));
  FolderLock lock(out_dir);
  std::vector<ManifestEntry> kept = read_manifest(manifest);
  std::vector<bool> reject(kept.size(), false);
  RejectReport rep;
  for (std::string name : names) {
    for (char& c : name)
      if (c == '\\') c = '/';
    std::vector<std::size_t> hits;
    for (std::size_t i = 0; i < kept.size(); ++i) {
      const std::string& f = kept[i].file;
      const std::string base = f.substr(f.rfind('/') + 1);
      if (f == name || (name.find('/') == std::string::npos && base == name)) hits.push_back(i);
    }
    if (hits.empty()) rep.not_found.push_back(name);
    else if (hits.size() > 1) rep.ambiguous.push_back(name);
    else reject[hits[0]] = true;
  }

  std::vector<ManifestEntry> keep, rejected_now;
  for (std::size_t i = 0; i < kept.size(); ++i) (reject[i] ? rejected_now : keep).push_back(kept[i]);
  if (rejected_now.empty()) return rep;

  // Files move first, then rejected.csv grows, then manifest.csv shrinks: after a crash in between,
  // the manifest still names the moved images and re-running the same list finishes the job.
  std::vector<ManifestEntry> all_rejected = read_manifest((root / "_rejected" / "rejected.csv").string());
  std::vector<ManifestEntry> moved_entries;
  std::error_code ec;
  for (const ManifestEntry& e : rejected_now) {
    ManifestEntry r = e;
    r.file = "_rejected/" + e.file;
    const fs::path from = root / e.file, to = root / r.file;
    fs::create_directories(to.parent_path(), ec);
    if (ec) throw IoError(str(to.parent_path().string(), ": cannot create folder: ", ec.message()));
    if (fs::exists(from)) {
      fs::path target = to;
      for (int k = 1; fs::exists(target); ++k) target = to.string() + "." + std::to_string(k);
      fs::rename(from, target, ec);
      if (ec) throw IoError(str(from.string(), ": cannot move to ", target.string(), ": ", ec.message()));
      r.file = fs::relative(target, root).generic_string();
    }
    moved_entries.push_back(r);
    rep.moved.push_back(e.file);
  }
  all_rejected.insert(all_rejected.end(), moved_entries.begin(), moved_entries.end());
  write_manifest((root / "_rejected" / "rejected.csv").string(), all_rejected);
  write_manifest(manifest, keep);
  return rep;
}

}  // namespace ewnet::collect
