// libFuzzer target: what ewnet-collect reads from the web and from users. The first byte picks
// the parser, the rest is its input: 0 robots.txt (parse, then allowed() on a few paths), 1 URLs
// (parse_url, resolve_url against a base and the input against itself), 2 a provider
// configuration, 3 a results page through a JSON-path extractor, 4 through an HTML-attribute one.
// Regex extractors are left out: they run a user's own pattern (std::regex recurses per
// character, so a long page can exhaust the stack whatever ewnet does).
#include <cstddef>
#include <cstdint>
#include <string>

#include "collect/config.hpp"
#include "collect/robots.hpp"
#include "collect/url.hpp"

using namespace ewnet::collect;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
  try {
    switch (data[0] % 5) {
      case 0: {
        const RobotsRules r = RobotsRules::parse(text, "ewnet-collect");
        for (const char* p : {"/", "/robots.txt", "/a/b?c=d", "/images/x.jpg"}) (void)r.allowed(p);
        (void)r.allowed("/" + text.substr(0, 64));
        break;
      }
      case 1: {
        Url u;
        (void)parse_url(text, u);
        (void)resolve_url("https://example.com/a/b/c?d=e", text);
        (void)resolve_url(text, "../x/./y.jpg");
        (void)percent_encode(text);
        break;
      }
      case 2:
        (void)parse_provider(text, "fuzz-provider.json");
        break;
      case 3: {
        static const Extractor json = Extractor::json_path("results[*].url");
        static const Extractor every = Extractor::json_path("*[*].*");
        (void)json.extract(text, "https://example.com/search?q=x");
        (void)every.extract(text, "https://example.com/search?q=x");
        break;
      }
      case 4: {
        static const Extractor img = Extractor::html_attribute("img@src");
        static const Extractor any = Extractor::html_attribute("*@href");
        (void)img.extract(text, "https://example.com/search?q=x");
        (void)any.extract(text, "https://example.com/search?q=x");
        break;
      }
    }
  } catch (const ewnet::Error&) {
  }
  return 0;
}
