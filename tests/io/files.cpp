// io/files.hpp: never harm a user's files. Output folders ewnet may write into, temporaries it
// may remove, a lock that is never a planted link, writes a kill cannot leave half done, outputs
// that may not replace an input.
#include "test_files.hpp"
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ewnet/io/files.hpp>
#include <ewnet/io/safetensors.hpp>

using namespace ewnet;
using ewnet::test::TempDir;
namespace fs = std::filesystem;

namespace {
std::string contents(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
std::set<std::string> names_in(const fs::path& dir) {
  std::set<std::string> n;
  for (const auto& e : fs::directory_iterator(dir)) n.insert(e.path().filename().string());
  return n;
}
}  // namespace

TEST_CASE("a run folder must be new, empty, or ewnet's (marked); never a root, an input or inside one",
          "[files][hostile]") {
  TempDir dir;
  std::ostringstream log;
  // Someone's folder: refused, every file as it was.
  fs::create_directories(dir.path / "mine");
  std::ofstream(dir.path / "mine" / "best.safetensors") << "my own file";
  std::ofstream(dir.path / "mine" / "notes.tmp-12345") << "my notes";
  REQUIRE_THROWS_WITH(io::prepare_run_folder(dir.file("mine"), {}, &log),
                      Catch::Contains("mine") && Catch::Contains("did not write") &&
                          Catch::Contains("best.safetensors") && Catch::Contains(".ewnet-run"));
  REQUIRE(contents(dir.path / "mine" / "best.safetensors") == "my own file");
  REQUIRE(names_in(dir.path / "mine") == std::set<std::string>{"best.safetensors", "notes.tmp-12345"});

  // New and empty folders are taken and marked; a marked one is taken again.
  std::string token;
  {
    const io::RunFolder run = io::prepare_run_folder(dir.file("new/run"), {}, &log);
    token = run.token();
    REQUIRE(token.size() == 16);
    REQUIRE(io::run_folder_token(dir.file("new/run")) == token);
    // The same process preparing the same folder again shares the hold (a program's, then fit's).
    REQUIRE(io::prepare_run_folder(dir.file("new/run"), {}, &log).token() == token);
  }
  std::ofstream(dir.path / "new" / "run" / "best.safetensors") << "a checkpoint";
  REQUIRE(io::prepare_run_folder(dir.file("new/run"), {}, &log).token() == token);
  fs::create_directories(dir.path / "empty");
  REQUIRE_NOTHROW(io::prepare_run_folder(dir.file("empty"), {}, &log));

  // A marker that is a link, or another text, is not ewnet's.
  fs::create_directories(dir.path / "fake");
  fs::create_symlink(dir.path / "new" / "run" / ".ewnet-run", dir.path / "fake" / ".ewnet-run");
  REQUIRE_THROWS_WITH(io::prepare_run_folder(dir.file("fake"), {}, &log), Catch::Contains("not the marker"));

  // Roots, inputs, folders inside an input, inputs inside the folder.
  REQUIRE_THROWS_WITH(io::prepare_run_folder("/", {}, &log), Catch::Contains("root of the file system"));
  REQUIRE_THROWS_WITH(io::prepare_run_folder("/proc", {}, &log), Catch::Contains("root of a mounted file system"));
  fs::create_directories(dir.path / "data" / "cls");
  REQUIRE_THROWS_WITH(io::prepare_run_folder(dir.file("data/run"), {dir.file("data")}, &log),
                      Catch::Contains("inside the input folder") && Catch::Contains("data"));
  REQUIRE_THROWS_WITH(io::prepare_run_folder(dir.file("data"), {dir.file("data")}, &log),
                      Catch::Contains("is one of the run's inputs"));
  REQUIRE_THROWS_WITH(io::prepare_run_folder(dir.file("new/run"), {dir.file("new/run/best.safetensors")}, &log),
                      Catch::Contains("lies inside the output folder"));
  REQUIRE_THROWS_WITH(io::prepare_run_folder(dir.file("new/run/best.safetensors"), {}, &log),
                      Catch::Contains("not a folder"));
  REQUIRE_FALSE(fs::exists(dir.path / "data" / "run"));
}

TEST_CASE("a run folder of an ewnet from before the marker is recognised and marked", "[files]") {
  TempDir dir;
  fs::create_directories(dir.path / "old");
  io::SafetensorsFile f;
  f.metadata["ewnet.train.history"] = "{}";
  io::write_safetensors(dir.file("old/last.safetensors"), f);
  std::ofstream(dir.path / "old" / "log.csv") << "epoch\n";
  REQUIRE(io::run_folder_token(dir.file("old")).empty());
  REQUIRE(io::prepare_run_folder(dir.file("old"), {}).token().size() == 16);
  // Without a training history it is someone's folder that happens to use ewnet's names.
  fs::create_directories(dir.path / "other");
  io::write_safetensors(dir.file("other/last.safetensors"), io::SafetensorsFile());
  REQUIRE_THROWS_WITH(io::prepare_run_folder(dir.file("other"), {}), Catch::Contains("did not write"));
}

TEST_CASE("only temporaries provably ewnet's, of processes that are gone, are removed", "[files][hostile]") {
  TempDir dir;
  std::ostringstream log;
  const std::string token = io::prepare_run_folder(dir.path.string(), {}, &log).token();
  const std::string gone = "999999999";
  const fs::path ours = dir.path / (".last.safetensors.ewnet-tmp-" + token + "-" + gone);
  const fs::path alive = dir.path / (".best.safetensors.ewnet-tmp-" + token + "-" + std::to_string(::getppid()));
  const std::vector<fs::path> theirs = {dir.path / "best.safetensors.tmp-999999999",  // looks like the old scheme
                                        dir.path / (".x.ewnet-tmp-0123456789abcdef-" + gone)};  // another token
  for (const fs::path& p : theirs) std::ofstream(p) << "keep me";
  std::ofstream(ours) << "half a checkpoint";
  std::ofstream(alive) << "being written";
  fs::create_symlink(dir.path / "best.safetensors.tmp-999999999", dir.path / (".l.ewnet-tmp-" + token + "-" + gone));
  REQUIRE(io::remove_stale_temporaries(dir.path.string()) == 1);
  REQUIRE_FALSE(fs::exists(ours));
  REQUIRE(fs::exists(alive));
  for (const fs::path& p : theirs) REQUIRE(contents(p) == "keep me");
  REQUIRE(fs::is_symlink(dir.path / (".l.ewnet-tmp-" + token + "-" + gone)));
  // Outside a run folder nothing is provably ewnet's: nothing is removed.
  fs::create_directories(dir.path / "plain");
  std::ofstream(dir.path / "plain" / (".x.ewnet-tmp-" + token + "-" + gone)) << "?";
  REQUIRE(io::remove_stale_temporaries((dir.path / "plain").string()) == 0);
}

TEST_CASE("the folder's lock is never a symbolic link, a FIFO or a file with another name", "[files][hostile]") {
  TempDir dir;
  std::ofstream(dir.path / "precious.txt") << "precious";
  fs::create_directories(dir.path / "a");
  fs::create_symlink(dir.path / "precious.txt", dir.path / "a" / ".ewnet-lock");
  REQUIRE_THROWS_WITH(io::OutputLock(dir.file("a")), Catch::Contains("symbolic link"));
  fs::create_directories(dir.path / "b");
  fs::create_hard_link(dir.path / "precious.txt", dir.path / "b" / ".ewnet-lock");
  REQUIRE_THROWS_WITH(io::OutputLock(dir.file("b")), Catch::Contains("hard link"));
  REQUIRE(contents(dir.path / "precious.txt") == "precious");
  fs::create_directories(dir.path / "c");
  REQUIRE(::mkfifo((dir.path / "c" / ".ewnet-lock").c_str(), 0644) == 0);
  REQUIRE_THROWS_WITH(io::OutputLock(dir.file("c")), Catch::Contains("not a regular file"));
  // Through prepare_run_folder too, with the target untouched.
  REQUIRE_THROWS(io::prepare_run_folder(dir.file("a"), {}));
  REQUIRE(contents(dir.path / "precious.txt") == "precious");
}

TEST_CASE("a writer killed mid-write leaves the previous file and no temporary", "[files][hostile]") {
  TempDir dir;
  const std::string path = dir.file("model.safetensors");
  io::SafetensorsFile small;
  small.metadata["which"] = "previous";
  io::write_safetensors(path, small);
  const std::string before = contents(path);
  // A child writes a 4 MB checkpoint and is killed by the kernel (SIGXFSZ) after 256 KiB: the
  // state a kill -9 or a power cut leaves in the middle of a save.
  io::SafetensorsFile big;
  io::SafeTensor t;
  t.dtype = "F32";
  t.shape = {1 << 20};
  t.bytes.assign(std::size_t(4) << 20, 1);
  big.tensors["w"] = t;
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_DFL);
    rlimit limit{256 << 10, 256 << 10};
    ::setrlimit(RLIMIT_FSIZE, &limit);
    try {
      io::write_safetensors(path, big);
    } catch (...) {
    }
    ::_exit(0);  // not reached when the kernel kills it
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  REQUIRE(WIFSIGNALED(status));
  REQUIRE(WTERMSIG(status) == SIGXFSZ);
  REQUIRE(contents(path) == before);
  REQUIRE(names_in(dir.path) == std::set<std::string>{"model.safetensors"});
  // A 250-byte file name still gets a temporary name that fits the file system's 255 bytes.
  const std::string long_name(250, 'n');
  REQUIRE(io::temporary_name(dir.file(long_name)).size() - dir.path.string().size() - 1 == 255);
  io::write_file_atomically(dir.file(long_name), "long");
  REQUIRE(contents(dir.path / long_name) == "long");
}

TEST_CASE("an output that would replace one of the run's inputs is refused", "[files][hostile]") {
  TempDir dir;
  fs::create_directories(dir.path / "photos");
  std::ofstream(dir.path / "photos" / "a.jpg") << "jpeg";
  std::ofstream(dir.path / "model.safetensors") << "weights";
  const std::vector<std::string> inputs = {dir.file("model.safetensors"), dir.file("photos")};
  REQUIRE_THROWS_WITH(io::check_output_file(dir.file("model.safetensors"), inputs, "--csv"),
                      Catch::Contains("--csv") && Catch::Contains("one of this run's inputs"));
  REQUIRE_THROWS_WITH(io::check_output_file(dir.file("photos/./a.jpg"), inputs, "--csv"),
                      Catch::Contains("file of the input folder"));
  fs::create_symlink(dir.path / "model.safetensors", dir.path / "link.csv");
  REQUIRE_THROWS_WITH(io::check_output_file(dir.file("link.csv"), inputs, "--csv"),
                      Catch::Contains("one of this run's inputs"));
  REQUIRE_THROWS_WITH(io::check_output_file(dir.file("photos"), inputs, "--csv"), Catch::Contains("is a folder"));
  REQUIRE_NOTHROW(io::check_output_file(dir.file("photos/results.csv"), inputs, "--csv"));
  REQUIRE_NOTHROW(io::check_output_file(dir.file("results.csv"), inputs, "--csv"));
}
