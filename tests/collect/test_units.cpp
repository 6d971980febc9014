// The pieces of ewnet-collect that need no network: robots.txt, URLs and templates, extraction
// rules, configuration files, SHA-256, the perceptual hash, CSV, download checks.
#include <catch2/catch.hpp>

#include <string>

#include "collect/collect.hpp"
#include "collect/config.hpp"
#include "collect/dataset.hpp"
#include "collect/phash.hpp"
#include "collect/robots.hpp"
#include "collect/sha256.hpp"
#include "collect/url.hpp"
#include "fixtures.hpp"
#include "test_images.hpp"

using namespace ewnet::collect;
using namespace ewnet_test;

TEST_CASE("robots.txt: groups, longest match, Allow on ties, wildcards", "[robots]") {
  const std::string text =
      "# comment\n"
      "User-agent: *\n"
      "Disallow: /\n"
      "\n"
      "User-agent: otherbot\n"
      "User-agent: EWNET-Collect/2.0\n"
      "Disallow: /private/\n"
      "Allow: /private/public/\n"
      "Disallow: /*.gif$\n"
      "Disallow: /drafts\n"
      "Allow: /drafts\n"
      "Crawl-delay: 3\n";
  const RobotsRules r = RobotsRules::parse(text, "ewnet-collect");
  CHECK(r.allowed("/"));
  CHECK(r.allowed("/images/a.jpg"));
  CHECK_FALSE(r.allowed("/private/a.jpg"));
  CHECK(r.allowed("/private/public/a.jpg"));
  CHECK_FALSE(r.allowed("/x/y.gif"));
  CHECK(r.allowed("/x/y.gif?size=2"));  // '$' anchors at the end
  CHECK(r.allowed("/drafts/a"));         // equal length: Allow wins
  CHECK(r.crawl_delay() == Approx(3.0));

  // Another agent falls back to the '*' group.
  const RobotsRules star = RobotsRules::parse(text, "somebot");
  CHECK_FALSE(star.allowed("/images/a.jpg"));
  CHECK(star.allowed("/robots.txt"));

  // Groups naming the same agent are merged; rules before any User-agent are ignored.
  const RobotsRules merged = RobotsRules::parse(
      "Disallow: /zzz\nUser-agent: ewnet-collect\nDisallow: /a\n\nUser-agent: ewnet-collect\nDisallow: /b\n", "ewnet-collect");
  CHECK_FALSE(merged.allowed("/a1"));
  CHECK_FALSE(merged.allowed("/b1"));
  CHECK(merged.allowed("/zzz"));

  const RobotsRules wild = RobotsRules::parse("User-agent: *\nDisallow: /*/thumbs/*.jpg\nDisallow:\n", "x");
  CHECK_FALSE(wild.allowed("/a/b/thumbs/c.jpg"));
  CHECK(wild.allowed("/a/b/full/c.jpg"));
  CHECK(RobotsRules::parse("", "x").allowed("/anything"));
  CHECK_FALSE(RobotsRules::disallow_all().allowed("/a"));
  CHECK(RobotsRules::allow_all().allowed("/a"));
  CHECK(RobotsRules::parse("User-agent: *\nDisallow: /a%3cb\n", "x").allowed("/a%3Cb") == false);
}

TEST_CASE("URLs: parsing, origin, resolving, percent-encoding", "[url]") {
  Url u;
  REQUIRE(parse_url("HTTP://Example.COM:8080/a/b?x=1#frag", u));
  CHECK(u.scheme == "http");
  CHECK(u.host == "example.com");
  CHECK(u.port == 8080);
  CHECK(u.path == "/a/b?x=1");
  CHECK(u.origin() == "http://example.com:8080");
  REQUIRE(parse_url("https://example.com?q=1", u));
  CHECK(u.path == "/?q=1");
  CHECK(u.origin() == "https://example.com");
  CHECK_FALSE(parse_url("ftp://example.com/a", u));
  CHECK_FALSE(parse_url("http:///a", u));
  CHECK_FALSE(parse_url("http://a:99999/", u));
  CHECK_FALSE(parse_url("javascript:alert(1)", u));

  const std::string base = "http://h.test/dir/page.html?q=1";
  CHECK(resolve_url(base, "img/a.png") == "http://h.test/dir/img/a.png");
  CHECK(resolve_url(base, "../a.png") == "http://h.test/a.png");
  CHECK(resolve_url(base, "/root.png?x=2") == "http://h.test/root.png?x=2");
  CHECK(resolve_url(base, "//cdn.test/c.png") == "http://cdn.test/c.png");
  CHECK(resolve_url(base, "https://o.test/d.png") == "https://o.test/d.png");
  CHECK(resolve_url(base, "data:image/png;base64,AAAA") == "");
  CHECK(resolve_url(base, "  ") == "");

  CHECK(percent_encode("iPhone 6 backside") == "iPhone%206%20backside");
  CHECK(percent_encode("a&b=c/d~e") == "a%26b%3Dc%2Fd~e");
}

TEST_CASE("URL templates", "[provider]") {
  CHECK(expand_template("http://s.test/?q={query}&p={page}&{{x}}", {{"query", "a%20b"}, {"page", "3"}}) ==
        "http://s.test/?q=a%20b&p=3&{x}");
  CHECK_THROWS_AS(expand_template("http://s.test/?q={qurey}", {{"query", "a"}}), InputError);
  CHECK_THROWS_AS(expand_template("http://s.test/?q={query", {{"query", "a"}}), InputError);
  CHECK_THROWS_AS(expand_template("http://s.test/?q=}", {}), InputError);

  const Provider p = parse_provider(
      R"({"name":"t","search_url":"http://s.test/search?q={query}&page={page}&n={per_page}&o={offset}",
          "per_page":10,"first_page":0,"extract":{"json":"results[*].url"}})",
      "t.json");
  CHECK(p.page_url("iPhone 6 backside", 2) == "http://s.test/search?q=iPhone%206%20backside&page=2&n=10&o=20");
}

TEST_CASE("extraction: JSON path", "[provider]") {
  const std::string page = R"({"results":[{"url":"http://a.test/1.jpg"},{"url":"/2.jpg"},{"nourl":1},
      {"url":"http://a.test/1.jpg"},{"url":42}],
      "query":{"pages":{"11":{"imageinfo":[{"thumburl":"http://b.test/t1.jpg"}]},
                        "12":{"imageinfo":[{"thumburl":"http://b.test/t2.jpg"}]}}},
      "list":[["http://c.test/x.png","http://c.test/y.png"]]})";
  const std::string from = "http://s.test/api?q=x";
  CHECK(Extractor::json_path("results[*].url").extract(page, from) ==
        std::vector<std::string>{"http://a.test/1.jpg", "http://s.test/2.jpg"});
  CHECK(Extractor::json_path("results[1].url").extract(page, from) == std::vector<std::string>{"http://s.test/2.jpg"});
  CHECK(Extractor::json_path("query.pages.*.imageinfo[*].thumburl").extract(page, from) ==
        std::vector<std::string>{"http://b.test/t1.jpg", "http://b.test/t2.jpg"});
  CHECK(Extractor::json_path("list[0][*]").extract(page, from).size() == 2);
  CHECK(Extractor::json_path("missing[*].url").extract(page, from).empty());
  CHECK(Extractor::json_path("[*]").extract(R"(["http://a.test/q.png"])", from).size() == 1);
  CHECK_THROWS_AS(Extractor::json_path("results[*].url").extract("<html>", from), ewnet::IoError);
  CHECK_THROWS_AS(Extractor::json_path("results[x]"), InputError);
  CHECK_THROWS_AS(Extractor::json_path("results..url"), InputError);
  CHECK_THROWS_AS(Extractor::json_path(""), InputError);
}

TEST_CASE("extraction: HTML attribute and regex", "[provider]") {
  const std::string html = R"(<html><head><script>var s = "<img src='/script.png'>";</script></head>
    <body><!-- <img src="/commented.png"> -->
    <IMG class="r" SRC="/a.png?x=1&amp;y=2" alt='x > y'>
    <img data-src=/lazy.jpg src="data:image/gif;base64,R0lGOD">
    <a href="big/b.jpg"><img src='c.png'/></a>
    <img src="/a.png?x=1&amp;y=2">
    </body></html>)";
  const std::string from = "http://s.test/res/page";
  CHECK(Extractor::html_attribute("img@src").extract(html, from) ==
        std::vector<std::string>{"http://s.test/a.png?x=1&y=2", "http://s.test/res/c.png"});
  CHECK(Extractor::html_attribute("img@data-src").extract(html, from) == std::vector<std::string>{"http://s.test/lazy.jpg"});
  CHECK(Extractor::html_attribute("a@href").extract(html, from) == std::vector<std::string>{"http://s.test/res/big/b.jpg"});
  CHECK_THROWS_AS(Extractor::html_attribute("img"), InputError);
  CHECK_THROWS_AS(Extractor::html_attribute("@src"), InputError);

  const std::string js = R"(x={"murl":"http:\/\/m.test\/1.jpg"},{"murl":"http://m.test/2.jpg"})";
  CHECK(Extractor::regex(R"re("murl":"([^"]+)")re").extract(js, from) ==
        std::vector<std::string>{"http://m.test/1.jpg", "http://m.test/2.jpg"});
  CHECK_THROWS_AS(Extractor::regex("(unclosed"), InputError);
}

TEST_CASE("class lists and provider files", "[config]") {
  const auto classes = parse_classes(
      "# devices\niphone6: iPhone 6 backside | iPhone 6 back cover\n\ngalaxy_s5\n  pixel-2 :  Pixel 2 rear  # trailing\n",
      "classes.txt");
  REQUIRE(classes.size() == 3);
  CHECK(classes[0].name == "iphone6");
  CHECK(classes[0].queries == std::vector<std::string>{"iPhone 6 backside", "iPhone 6 back cover"});
  CHECK(classes[1].queries == std::vector<std::string>{"galaxy s5"});
  CHECK(classes[2].name == "pixel-2");
  CHECK(classes[2].queries == std::vector<std::string>{"Pixel 2 rear"});

  auto input_error = [](auto f) {
    try {
      f();
    } catch (const InputError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK_THAT(input_error([] { parse_classes("a: x\nbad/name: y\n", "c.txt"); }), Catch::Contains("c.txt:2"));
  CHECK_THAT(input_error([] { parse_classes("_state: x\n", "c.txt"); }), Catch::Contains("_state"));
  CHECK_THAT(input_error([] { parse_classes("a\nA\n", "c.txt"); }), Catch::Contains("twice"));
  CHECK_THAT(input_error([] { parse_classes("# nothing\n", "c.txt"); }), Catch::Contains("no classes"));
  CHECK_THAT(input_error([] { load_classes("/nonexistent/classes.txt"); }), Catch::Contains("cannot open"));

  CHECK_THAT(input_error([] { parse_provider("{not json", "p.json"); }), Catch::Contains("p.json"));
  CHECK_THAT(input_error([] { parse_provider(R"({"extract":{"json":"a"}})", "p.json"); }), Catch::Contains("search_url"));
  CHECK_THAT(input_error([] { parse_provider(R"({"search_url":"ftp://x/{query}","extract":{"json":"a"}})", "p.json"); }),
             Catch::Contains("http"));
  CHECK_THAT(input_error([] { parse_provider(R"({"search_url":"http://x/{query}","extract":{"xpath":"a"}})", "p.json"); }),
             Catch::Contains("xpath"));
  CHECK_THAT(input_error([] { parse_provider(R"({"search_url":"http://x/{query}","extract":{"json":"a"},"per_page":0})", "p.json"); }),
             Catch::Contains("per_page"));
  CHECK_THAT(input_error([] { parse_provider(R"({"search_url":"http://x/{q}","extract":{"json":"a"}})", "p.json"); }),
             Catch::Contains("{q}"));
  CHECK_THAT(input_error([] { parse_provider(R"({"search_url":"http://x/","extract":{"json":"a"}})", "p.json"); }),
             Catch::Contains("{query}"));
  CHECK_THAT(input_error([] { parse_provider(R"({"search_url":"http://x/{query}","extract":{"regex":"("}})", "p.json"); }),
             Catch::Contains("p.json"));
}

TEST_CASE("SHA-256 known answers", "[sha256]") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  Sha256 h;  // one million 'a', fed in uneven pieces to exercise the buffering
  const std::string chunk(999, 'a');
  std::size_t left = 1000000;
  while (left > 0) {
    const std::size_t n = std::min(left, chunk.size());
    h.update(chunk.data(), n);
    left -= n;
  }
  CHECK(h.hex() == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  // 55, 56 and 64 bytes sit at the padding boundaries.
  CHECK(sha256_hex(std::string(55, 'x')) != sha256_hex(std::string(56, 'x')));
  CHECK(sha256_hex(std::string(64, 'a')) == "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb");
}

TEST_CASE("perceptual hash: edits are close, different pictures far", "[phash]") {
  const auto a = blocks(10);
  auto a1 = a;
  a1.rgb[3 * (75 * 200 + 100)] ^= 0xFF;  // one pixel changed
  const auto a_small = ewnet::data::resize_cubic(a, 100, 75);
  const std::string jpg = jpg_bytes(a, 70);
  const auto a_jpg = ewnet::data::decode_image(u8(jpg), jpg.size(), "a.jpg");
  CHECK(hamming_distance(dhash(a), dhash(a1)) <= 1);
  CHECK(hamming_distance(dhash(a), dhash(a_small)) <= 4);
  CHECK(hamming_distance(dhash(a), dhash(a_jpg)) <= 4);
  for (int seed = 11; seed < 20; ++seed) CHECK(hamming_distance(dhash(a), dhash(blocks(seed))) > 12);
  CHECK(hamming_distance(0, ~std::uint64_t{0}) == 64);
  CHECK(hamming_distance(0b1011, 0b0001) == 2);
  // A tiny image still hashes (pixels are repeated).
  CHECK_NOTHROW(dhash(blocks(3, 4, 3)));
}

TEST_CASE("CSV quoting round-trips", "[dataset]") {
  const std::vector<std::string> fields = {"a/b.jpg", "cls", "http://x.test/?a=1,2&q=\"z\"", "", "7"};
  CHECK(csv_split(csv_join(fields)) == fields);
  CHECK(csv_join({"a", "b,c"}) == "a,\"b,c\"");
}

TEST_CASE("download checks", "[validate]") {
  Response r;
  r.outcome = Response::Outcome::ok;
  r.status = 200;
  r.url = "http://x.test/a.png";
  r.content_type = "image/png";
  const std::string png = png_bytes(blocks(5));
  r.body.assign(png.begin(), png.end());
  CHECK(check_download(r, 1 << 20, 100, 100).reject.empty());
  CHECK(check_download(r, 1 << 20, 201, 100).reject == "too-small");
  CHECK(check_download(r, 100, 100, 100).reject == "too-large");
  r.content_type = "text/html";
  CHECK(check_download(r, 1 << 20, 100, 100).reject == "wrong-type");
  r.content_type = "application/octet-stream";
  CHECK(check_download(r, 1 << 20, 100, 100).reject.empty());
  r.content_type = "image/jpeg";
  const std::string html = "<html>no</html>";
  r.body.assign(html.begin(), html.end());
  const Verdict v = check_download(r, 1 << 20, 100, 100);
  CHECK(v.reject == "not-an-image");
  CHECK_THAT(v.detail, Catch::Contains("http://x.test/a.png"));
  r.outcome = Response::Outcome::http_error;
  r.status = 404;
  CHECK(check_download(r, 1 << 20, 100, 100).reject == "http-404");
  CHECK(image_extension(u8(png), png.size()) == "png");
}

TEST_CASE("check_download applies training's checks: a JPEG of 500 scans is not kept", "[collect][hostile]") {
  // stb_image decoded it (slowly: each scan a pass over the image) and the file was kept, for
  // training to spend minutes on; the bounded decoder refuses it as training does.
  Response r;
  r.outcome = Response::Outcome::ok;
  r.status = 200;
  r.content_type = "image/jpeg";
  r.url = "http://x.test/bomb.jpg";
  const std::vector<std::uint8_t> bomb =
      ewnet::test::repeat_first_scan(ewnet::test::encode_jpeg(blocks(3, 120, 100), true, true, false), 500);
  r.body = bomb;
  const Verdict v = check_download(r, 64 << 20, 100, 100);
  CHECK(v.reject == "not-an-image");
  CHECK_THAT(v.detail, Catch::Contains("bomb.jpg") && Catch::Contains("scans"));
  // A WebP is an image training reads, kept under the extension training lists.
  const std::uint8_t webp[] = {'R', 'I', 'F', 'F', 0, 0, 0, 0, 'W', 'E', 'B', 'P', 'V', 'P', '8', 'L'};
  CHECK(image_extension(webp, sizeof webp) == "webp");
}
