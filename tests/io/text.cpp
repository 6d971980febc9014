// ewnet/text.hpp and the JSON writer: names of any bytes become UTF-8 the same way everywhere, and
// every format escapes what it must; a checkpoint's header stays readable by strict UTF-8 readers
// (the safetensors library parses it as UTF-8 JSON).
#include "test_files.hpp"
#include <catch2/catch.hpp>

#include <fstream>

#include <ewnet/json.hpp>
#include <ewnet/io/safetensors.hpp>
#include <ewnet/text.hpp>

using namespace ewnet;
using ewnet::test::TempDir;

TEST_CASE("to_utf8 keeps UTF-8 and reads every other byte as Latin-1", "[text]") {
  REQUIRE(text::to_utf8("plain, \"quoted\"\t<&>") == "plain, \"quoted\"\t<&>");
  REQUIRE(text::to_utf8("caf\xC3\xA9 \xF0\x9F\x94\x8B") == "caf\xC3\xA9 \xF0\x9F\x94\x8B");  // é and a battery emoji
  REQUIRE(text::to_utf8("caf\xE9") == "caf\xC3\xA9");                                        // Latin-1 é
  REQUIRE(text::to_utf8("\xC0\xAF") == "\xC3\x80\xC2\xAF");          // an overlong '/' is two Latin-1 characters
  REQUIRE(text::to_utf8("\xED\xA0\x80") == "\xC3\xAD\xC2\xA0\xC2\x80");  // a surrogate likewise
  REQUIRE(text::to_utf8("\xF5\x80") == "\xC3\xB5\xC2\x80");
  REQUIRE(text::to_utf8("\xE2\x82") == "\xC3\xA2\xC2\x82");          // a sequence cut short
  for (const std::string s : {"caf\xE9", "\xFF\xFE", "a\xC3", "\xED\xBF\xBF"}) REQUIRE(text::is_valid_utf8(text::to_utf8(s)));
  REQUIRE(text::utf8_prefix("\xC3\xA9\xC3\xA9", 3) == "\xC3\xA9");
}

TEST_CASE("CSV quotes CR as well as LF, commas and quotes; XML escapes markup and controls", "[text]") {
  REQUIRE(text::csv_field("a") == "a");
  REQUIRE(text::csv_field("a\rb") == "\"a\rb\"");
  REQUIRE(text::csv_field("a\nb") == "\"a\nb\"");
  REQUIRE(text::csv_field("say \"hi\", ok") == "\"say \"\"hi\"\", ok\"");
  REQUIRE(text::csv_field("caf\xE9") == "caf\xC3\xA9");
  REQUIRE(text::xml_text("<a & 'b'>\t\r\n\x01") == "&lt;a &amp; &apos;b&apos;&gt;&#9;&#13;&#10;\xEF\xBF\xBD");
  REQUIRE(text::xml_text("caf\xE9") == "caf\xC3\xA9");
}

TEST_CASE("the JSON writer writes UTF-8 whatever bytes its strings hold", "[text][json]") {
  json::Value v = json::Value::object();
  v["caf\xE9"] = "na\xEFve \x01 \"q\" \r\n";
  const std::string text = v.dump();
  REQUIRE(text::is_valid_utf8(text));
  REQUIRE(text == "{\"caf\xC3\xA9\":\"na\xC3\xAFve \\u0001 \\\"q\\\" \\r\\n\"}");
  REQUIRE(json::parse(text).at("caf\xC3\xA9").as_string() == "na\xC3\xAFve \x01 \"q\" \r\n");
}

TEST_CASE("a checkpoint's header is valid UTF-8 JSON with names of any bytes", "[text][checkpoint]") {
  TempDir dir;
  io::SafetensorsFile f;
  json::Value classes = json::Value::array();
  for (const std::string& c : std::vector<std::string>{"caf\xE9", "a,b", "q\"uote", "cr\rlf\n", "tab\t", "<&>", std::string(250, 'x')})
    classes.push_back(c);
  f.metadata["ewnet.classes"] = classes.dump();
  f.metadata["ewnet.data"] = "/data/M\xFCll";  // a raw Latin-1 path, as the programs record it
  io::SafeTensor t;
  t.dtype = "F32";
  t.shape = {1};
  t.bytes.assign(4, 0);
  f.tensors["caf\xE9.weight"] = t;
  const std::string path = dir.file("names.safetensors");
  io::write_safetensors(path, f);
  std::ifstream in(path, std::ios::binary);
  const std::string bytes((std::istreambuf_iterator<char>(in)), {});
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= std::uint64_t(static_cast<unsigned char>(bytes[size_t(i)])) << (8 * i);
  REQUIRE(text::is_valid_utf8(bytes.substr(8, n)));
  // Python reads it as the safetensors library does: the header decoded as strict UTF-8, then JSON;
  // with the safetensors module itself where it is installed.
  const std::string script =
      "import json,struct,sys\n"
      "b=open(sys.argv[1],'rb').read(); n=struct.unpack('<Q',b[:8])[0]\n"
      "h=json.loads(b[8:8+n].decode('utf-8'))\n"
      "names=json.loads(h['__metadata__']['ewnet.classes'])\n"
      "assert names[0]=='caf\\u00e9' and names[3]=='cr\\rlf\\n' and len(names[6])==250, names\n"
      "try:\n"
      "  from safetensors import safe_open\n"
      "except ImportError:\n"
      "  print('strict UTF-8 and JSON: ok (no safetensors module)'); sys.exit(0)\n"
      "with safe_open(sys.argv[1], 'np') as s: assert 'caf\\u00e9.weight' in s.keys()\n"
      "print('safetensors: ok')\n";
  std::ofstream(dir.file("check.py")) << script;
  const auto [status, out] = ewnet::test::run_command("/usr/bin/python3 " + dir.file("check.py") + " " + path);
  INFO(out);
  REQUIRE(status == 0);
}
