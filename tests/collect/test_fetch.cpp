// ewnet-collect against a local HTTP server: only valid images are kept, duplicates are removed,
// the per-host delay and robots.txt are respected, and a second run downloads nothing twice.
// Every address used is on 127.0.0.1, and the program runs with --loopback-only.
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <string>

#include "collect/collect.hpp"
#include "collect/dataset.hpp"
#include "collect/sha256.hpp"
#include "fixtures.hpp"
#include "test_server.hpp"

using namespace ewnet::collect;
using namespace ewnet_test;
namespace fs = std::filesystem;

namespace {

constexpr double kDelay = 0.2;
// Requests are timed by the server when their headers arrive; scheduling on a loaded machine can
// shift one arrival by a few milliseconds.
constexpr double kSlack = 0.04;

TestServer::Route image(const std::string& bytes, const std::string& type) {
  TestServer::Route r;
  r.content_type = type;
  r.body = bytes;
  return r;
}

TestServer::Route text(const std::string& body, const std::string& type = "application/json") {
  TestServer::Route r;
  r.content_type = type;
  r.body = body;
  return r;
}

std::string json_results(const std::string& base, const std::vector<std::string>& paths) {
  std::string s = R"({"result_count":)" + std::to_string(paths.size()) + R"(,"results":[)";
  for (std::size_t i = 0; i < paths.size(); ++i)
    s += (i ? "," : "") + std::string(R"({"id":")") + std::to_string(i) + R"(","url":")" + base + paths[i] + "\"}";
  return s + "]}";
}

double seconds(TestServer::Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// Smallest gap between consecutive requests in the log (all to one host).
double min_gap(std::vector<TestServer::Request> log) {
  std::sort(log.begin(), log.end(), [](const auto& a, const auto& b) { return a.at < b.at; });
  double gap = 1e9;
  for (std::size_t i = 1; i < log.size(); ++i) gap = std::min(gap, seconds(log[i].at - log[i - 1].at));
  return gap;
}

std::map<std::string, int> count_by_target(const std::vector<TestServer::Request>& log, int status = 0) {
  std::map<std::string, int> n;
  for (const auto& r : log)
    if (status == 0 || r.status == status) ++n[r.target];
  return n;
}

std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

int run_cli(const std::string& args, const std::string& log_path) {
  const std::string cmd = shell_quote(EWNET_COLLECT_EXE) + " " + args + " >" + shell_quote(log_path) + " 2>&1";
  const int rc = std::system(cmd.c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

// The fixture site: a JSON search API, robots.txt, and every kind of download the crawler meets.
struct Site {
  TestServer server;
  std::string good1, good2, flaky, good3, good4;

  Site() {
    const std::string base = server.base();
    good1 = png_bytes(blocks(1));
    good2 = jpg_bytes(blocks(2));
    flaky = png_bytes(blocks(3));
    good3 = png_bytes(blocks(4));
    good4 = jpg_bytes(blocks(5));
    auto near = blocks(1);
    near.rgb[3 * (70 * 200 + 90)] ^= 0xFF;  // one pixel changed
    auto cross_near = blocks(2);
    cross_near.rgb[3 * (20 * 200 + 30) + 1] ^= 0xFF;
    const std::string truncated_src = jpg_bytes(blocks(7));

    server.route("/robots.txt", text("User-agent: *\nDisallow: /img/private/\n", "text/plain"));
    server.route("/img/good1.png", image(good1, "image/png"));
    server.route("/img/good2.jpg", image(good2, "image/jpeg"));
    server.route("/img/truncated.jpg", image(truncated_src.substr(0, truncated_src.size() / 2), "image/jpeg"));
    server.route("/img/fake.jpg", image("<!DOCTYPE html><html><body>Image not found</body></html>", "image/jpeg"));
    TestServer::Route huge = image("\xFF\xD8\xFF", "image/jpeg");
    huge.declared_length = 5'000'000'000LL;
    server.route("/img/huge.jpg", huge);
    TestServer::Route slow = image(png_bytes(blocks(8)), "image/png");
    slow.delay_s = 2.0;
    server.route("/img/slow.png", slow);
    TestServer::Route flaky_route = image(flaky, "image/png");
    flaky_route.fail_first = 1;
    flaky_route.fail_status = 429;
    flaky_route.fail_headers = "Retry-After: 1\r\n";
    server.route("/img/flaky.png", flaky_route);
    server.route("/img/near1.png", image(png_bytes(near), "image/png"));
    server.route("/img/private/secret.png", image(png_bytes(blocks(9)), "image/png"));
    server.route("/img/copy-of-good2.jpg", image(good2, "image/jpeg"));
    server.route("/img/small.png", image(png_bytes(blocks(6, 100, 80)), "image/png"));
    server.route("/img/good3.png", image(good3, "image/png"));
    server.route("/img/cross.png", image(good1, "image/png"));
    server.route("/img/cross-near.png", image(png_bytes(cross_near), "image/png"));
    server.route("/img/good4.jpg", image(good4, "image/jpeg"));

    server.route("/api/search?q=phone%20back&page=1",
                 text(json_results(base, {"/img/good1.png", "/img/good2.jpg", "/img/truncated.jpg", "/img/fake.jpg",
                                          "/img/huge.jpg", "/img/slow.png", "/img/flaky.png", "/img/near1.png",
                                          "/img/private/secret.png", "/img/good1.png", "/img/copy-of-good2.jpg",
                                          "/img/small.png", "/img/missing.png"})));
    server.route("/api/search?q=phone%20back&page=2", text(R"({"results":[]})"));
    server.route("/api/search?q=laptop&page=1",
                 text(json_results(base, {"/img/good3.png", "/img/cross.png", "/img/cross-near.png", "/img/good4.jpg"})));
    server.route("/api/search?q=laptop&page=2", text(R"({"results":[]})"));
  }

  std::string provider_json() const {
    return R"({"name":"local","search_url":")" + server.base() +
           R"(/api/search?q={query}&page={page}","per_page":20,"first_page":1,"max_pages":3,
             "extract":{"json":"results[*].url"}})";
  }
};

std::map<std::string, ManifestEntry> manifest_by_url(const std::string& root) {
  std::map<std::string, ManifestEntry> m;
  for (const auto& e : read_manifest(root + "/manifest.csv")) m[e.url] = e;
  return m;
}

}  // namespace

TEST_CASE("fetch keeps only valid, distinct images, politely, and resumes without repeats", "[fetch][network]") {
  Site site;
  ScratchDir dir("fetch");
  const std::string base = site.server.base();
  write_text(dir / "classes.txt", "# test classes\nphones: phone back\nlaptops: laptop\n");
  write_text(dir / "provider.json", site.provider_json());
  const std::string out = dir / "data";
  const std::string args = "fetch --classes " + shell_quote(dir / "classes.txt") + " --provider " +
                           shell_quote(dir / "provider.json") + " --out " + shell_quote(out) +
                           " --per-class 10 --min-size 150x100 --near-distance 6 --delay 0.2 --parallel 3"
                           " --timeout 1 --retries 2 --backoff 0.1 --max-bytes 1M --loopback-only";

  const int rc = run_cli(args, dir / "run1.log");
  INFO(read_text(dir / "run1.log"));
  REQUIRE(rc == 0);
  const auto run1 = site.server.log();

  // Only the valid, distinct images are kept, each in its class folder and in the manifest.
  const auto kept = manifest_by_url(out);
  const std::set<std::string> expected = {base + "/img/good1.png", base + "/img/good2.jpg", base + "/img/flaky.png",
                                          base + "/img/good3.png", base + "/img/good4.jpg"};
  std::set<std::string> got;
  for (const auto& [url, e] : kept) got.insert(url);
  CHECK(got == expected);
  for (const auto& [url, e] : kept) {
    const std::string cls = url.find("good3") != std::string::npos || url.find("good4") != std::string::npos ? "laptops" : "phones";
    CHECK(e.cls == cls);
    CHECK(e.file.rfind(cls + "/", 0) == 0);
    CHECK(e.width == 200);
    CHECK(e.height == 150);
    const std::string bytes = read_text(out + "/" + e.file);
    CHECK(sha256_hex(bytes) == e.sha256);
  }
  std::size_t files = 0;
  for (const char* cls : {"phones", "laptops"})
    for (const auto& f : fs::directory_iterator(out + "/" + cls)) files += f.is_regular_file();
  CHECK(files == 5);

  // Cross-class duplicates (exact and near) are held for review, not kept twice.
  const std::string review = read_text(out + "/review.csv");
  CHECK_THAT(review, Catch::Contains("/img/cross.png") && Catch::Contains("/img/cross-near.png"));
  CHECK(std::count(review.begin(), review.end(), '\n') == 3);  // header and two rows
  CHECK(fs::exists(out + "/_review/laptops"));

  // Why the others were skipped.
  const std::string tried = read_text(out + "/_state/tried.tsv");
  auto outcome_of = [&](const std::string& path) {
    const std::string key = base + path + "\t";
    const std::size_t at = tried.rfind(key);
    if (at == std::string::npos) return std::string("(not tried)");
    const std::size_t b = at + key.size();
    return tried.substr(b, tried.find('\t', b) - b);
  };
  CHECK(outcome_of("/img/truncated.jpg") == "not-an-image");
  CHECK(outcome_of("/img/fake.jpg") == "not-an-image");
  CHECK(outcome_of("/img/huge.jpg") == "too-large");
  CHECK(outcome_of("/img/slow.png") == "timeout");
  CHECK(outcome_of("/img/near1.png") == "near-duplicate");
  CHECK(outcome_of("/img/copy-of-good2.jpg") == "duplicate");
  CHECK(outcome_of("/img/small.png") == "too-small");
  CHECK(outcome_of("/img/missing.png") == "http-404");
  CHECK(outcome_of("/img/private/secret.png") == "robots-disallowed");
  CHECK(outcome_of("/img/cross.png") == "review");
  CHECK(outcome_of("/img/cross-near.png") == "review");

  // robots.txt: read once, and the disallowed address never requested.
  const auto n1 = count_by_target(run1);
  CHECK(n1.at("/robots.txt") == 1);
  CHECK(n1.count("/img/private/secret.png") == 0);
  CHECK(n1.at("/img/good1.png") == 1);  // listed twice on the page, fetched once
  // The program names itself.
  for (const auto& r : run1) CHECK_THAT(r.user_agent, Catch::StartsWith("ewnet-collect/0.1"));

  // The delay between requests to one host, measured by the server.
  CHECK(run1.size() >= 15);
  CHECK(min_gap(run1) >= kDelay - kSlack);
  // 429 then success: retried, after the one second the server asked for.
  std::vector<TestServer::Clock::time_point> flaky_times;
  for (const auto& r : run1)
    if (r.target == "/img/flaky.png") flaky_times.push_back(r.at);
  REQUIRE(flaky_times.size() == 2);
  CHECK(seconds(flaky_times[1] - flaky_times[0]) >= 1.0 - kSlack);

  // Run again: nothing kept or finally rejected is downloaded a second time. Only the timed-out
  // address is tried again, since a slow server may recover.
  site.server.clear_log();
  REQUIRE(run_cli(args, dir / "run2.log") == 0);
  const auto run2 = site.server.log();
  std::vector<std::string> repeated;
  for (const auto& r : run2)
    if (r.target != "/robots.txt" && r.target.rfind("/api/search", 0) != 0 && r.target != "/img/slow.png")
      repeated.push_back(r.target);
  CHECK(repeated.empty());
  CHECK(min_gap(run2) >= kDelay - kSlack);
  CHECK(manifest_by_url(out).size() == 5);
  for (const auto& [url, e] : kept) {
    const std::string path = url.substr(base.size());
    CHECK(count_by_target(run1, 200)[path] + count_by_target(run2, 200)[path] == 1);
  }

  // The contact sheet shows every kept image with its file name.
  REQUIRE(run_cli("sheet --out " + shell_quote(out), dir / "sheet.log") == 0);
  const std::string phones_page = read_text(out + "/_sheet/phones.html");
  for (const auto& [url, e] : kept)
    if (e.cls == "phones") CHECK_THAT(phones_page, Catch::Contains(e.file));
  CHECK_THAT(read_text(out + "/_sheet/laptops.html"), Catch::Contains("Held for review"));
  CHECK_THAT(read_text(out + "/_sheet/index.html"), Catch::Contains("phones.html"));
  std::size_t thumbs = 0;
  for (const auto& f : fs::directory_iterator(out + "/_sheet/thumbs")) thumbs += f.is_regular_file();
  CHECK(thumbs == 6);  // five kept, two held for review, one of which has the same bytes as a kept one

  // A reject list moves images aside (never deletes) and the next fetch does not bring them back.
  const ManifestEntry rej1 = kept.at(base + "/img/good2.jpg");
  const ManifestEntry rej2 = kept.at(base + "/img/good4.jpg");
  const std::string rej2_name = rej2.file.substr(rej2.file.find('/') + 1);
  write_text(dir / "rejects.txt", "# wrong devices\n" + rej1.file + "\n" + rej2_name + "\nno-such-file.jpg\n");
  REQUIRE(run_cli("reject --out " + shell_quote(out) + " --list " + shell_quote(dir / "rejects.txt"), dir / "reject.log") == 0);
  CHECK_THAT(read_text(dir / "reject.log"), Catch::Contains("no-such-file.jpg"));
  CHECK_FALSE(fs::exists(out + "/" + rej1.file));
  CHECK(fs::exists(out + "/_rejected/" + rej1.file));
  CHECK(fs::exists(out + "/_rejected/" + rej2.file));
  CHECK(read_text(out + "/_rejected/" + rej1.file) == site.good2);
  CHECK(manifest_by_url(out).size() == 3);
  CHECK(read_manifest(out + "/_rejected/rejected.csv").size() == 2);

  site.server.clear_log();
  REQUIRE(run_cli(args, dir / "run3.log") == 0);
  const auto n3 = count_by_target(site.server.log());
  CHECK(n3.count("/img/good2.jpg") == 0);
  CHECK(n3.count("/img/good4.jpg") == 0);
  CHECK(n3.count("/img/copy-of-good2.jpg") == 0);
  CHECK(manifest_by_url(out).size() == 3);
}

TEST_CASE("an interrupted fetch continues where it stopped", "[fetch][network]") {
  TestServer server;
  std::vector<std::string> paths;
  for (int i = 0; i < 6; ++i) {
    const std::string p = "/i/" + std::to_string(i) + ".png";
    server.route(p, image(png_bytes(blocks(100 + i)), "image/png"));
    paths.push_back(p);
  }
  server.route("/s?q=tv&p=0", text(json_results(server.base(), paths)));
  // No robots.txt: the server answers 404, which allows everything.
  ScratchDir dir("resume");
  const Provider provider = parse_provider(
      R"({"search_url":")" + server.base() + R"(/s?q={query}&p={page}","first_page":0,"max_pages":1,
          "extract":{"json":"results[*].url"}})",
      "provider.json");
  const auto classes = parse_classes("tvs: tv\n", "classes.txt");

  std::atomic<bool> stop{false};
  CollectOptions opt;
  opt.out_dir = dir / "data";
  opt.per_class = 100;
  opt.min_width = opt.min_height = 64;
  opt.parallel = 2;
  opt.fetch.min_delay_s = 0.05;
  opt.fetch.loopback_only = true;
  opt.fetch.cancel = &stop;
  int kept_lines = 0;
  opt.log = [&](const std::string& m) {
    if (m.find(": kept ") != std::string::npos && ++kept_lines == 2) stop = true;  // "Ctrl-C" after two
  };
  const CollectReport first = collect(classes, provider, opt);
  CHECK(first.interrupted);
  const int kept_first = first.classes.at("tvs").kept_new;
  CHECK(kept_first >= 2);
  CHECK(kept_first < 6);

  stop = false;
  opt.log = nullptr;
  const CollectReport second = collect(classes, provider, opt);
  CHECK_FALSE(second.interrupted);
  CHECK(second.classes.at("tvs").kept_before == kept_first);
  CHECK(second.classes.at("tvs").kept_new == 6 - kept_first);
  const auto n = count_by_target(server.log());
  for (const auto& p : paths) CHECK(n.at(p) == 1);
  CHECK(read_manifest(opt.out_dir + "/manifest.csv").size() == 6);
}

TEST_CASE("HTML results, an agent-specific robots group and redirects", "[fetch][network]") {
  TestServer server;
  server.route("/robots.txt", text("User-agent: *\nDisallow: /\n\nUser-agent: ewnet-collect\nAllow: /\n"
                                   "Disallow: /pics/no/\nCrawl-delay: 0.3\n",
                                   "text/plain"));
  server.route("/results.html?q=monitor",
               text(R"(<html><body><!-- <img src="/pics/commented.png"> -->
                 <img src="pics/a.png" alt="a"><img src='/pics/no/b.png'>
                 <img src="/pics/old.png?v=1&amp;w=2"><img src="data:image/gif;base64,R0lG"></body></html>)",
                    "text/html; charset=utf-8"));
  server.route("/pics/a.png", image(png_bytes(blocks(200)), "image/png"));
  server.route("/pics/no/b.png", image(png_bytes(blocks(201)), "image/png"));
  TestServer::Route moved;
  moved.status = 301;
  moved.extra_headers = "Location: /pics/new.png\r\n";
  server.route("/pics/old.png?v=1&w=2", moved);
  server.route("/pics/new.png", image(png_bytes(blocks(202)), "image/png"));

  ScratchDir dir("html");
  const Provider provider = parse_provider(R"({"search_url":")" + server.base() +
                                               R"(/results.html?q={query}","max_pages":1,"extract":{"html":"img@src"}})",
                                           "provider.json");
  CollectOptions opt;
  opt.out_dir = dir / "data";
  opt.per_class = 10;
  opt.min_width = opt.min_height = 64;
  opt.fetch.min_delay_s = 0.05;  // robots.txt asks for 0.3 s, which wins
  opt.fetch.loopback_only = true;
  const CollectReport rep = collect(parse_classes("monitors: monitor\n", "classes.txt"), provider, opt);
  CHECK(rep.classes.at("monitors").kept_new == 2);
  const auto n = count_by_target(server.log());
  CHECK(n.count("/pics/no/b.png") == 0);
  CHECK(n.count("/pics/commented.png") == 0);
  CHECK(n.at("/pics/new.png") == 1);
  CHECK(min_gap(server.log()) >= 0.3 - kSlack);
  const auto m = manifest_by_url(opt.out_dir);
  CHECK(m.count(server.base() + "/pics/a.png") == 1);
  CHECK(m.count(server.base() + "/pics/old.png?v=1&w=2") == 1);
}

TEST_CASE("an unreachable robots.txt (5xx) means nothing is fetched from that site", "[fetch][network]") {
  TestServer server;
  TestServer::Route down;
  down.status = 503;
  server.route("/robots.txt", down);
  server.route("/s?q=x", text(R"({"results":[]})"));
  ScratchDir dir("robots503");
  const Provider provider = parse_provider(
      R"({"search_url":")" + server.base() + R"(/s?q={query}","max_pages":1,"extract":{"json":"results[*].url"}})", "p.json");
  CollectOptions opt;
  opt.out_dir = dir / "data";
  opt.fetch.min_delay_s = 0.05;
  opt.fetch.max_retries = 1;
  opt.fetch.backoff_base_s = 0.05;
  opt.fetch.loopback_only = true;
  collect(parse_classes("a: x\n", "c.txt"), provider, opt);
  const auto n = count_by_target(server.log());
  CHECK(n.at("/robots.txt") == 2);  // one retry of the 503
  CHECK(n.count("/s?q=x") == 0);
}

TEST_CASE("the fetcher enforces timeouts and the size limit", "[fetch][network]") {
  TestServer server;
  TestServer::Route slow = text("late");
  slow.delay_s = 1.5;
  server.route("/slow", slow);
  TestServer::Route big = text(std::string(5000, 'x'), "image/png");
  server.route("/big", big);
  FetchOptions fo;
  fo.min_delay_s = 0.0;
  fo.timeout_s = 0.5;
  fo.loopback_only = true;
  PoliteFetcher f(fo);
  const auto t0 = std::chrono::steady_clock::now();
  const Response r1 = f.get(server.base() + "/slow", 1000);
  CHECK(r1.outcome == Response::Outcome::timeout);
  CHECK(seconds(std::chrono::steady_clock::now() - t0) < 1.4);
  const Response r2 = f.get(server.base() + "/big", 1000, {"image/"});
  CHECK(r2.outcome == Response::Outcome::too_large);
  const Response r3 = f.get(server.base() + "/big", 10000, {"text/"});
  CHECK(r3.outcome == Response::Outcome::wrong_type);
  const Response r4 = f.get(server.base() + "/big", 10000, {"image/"});
  CHECK(r4.ok());
  CHECK(r4.body.size() == 5000);
}
