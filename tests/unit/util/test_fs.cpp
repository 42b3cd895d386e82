#include "util/error.hpp"
#include "util/fs.hpp"

#include <cerrno>
#include <doctest/doctest.h>
#include <fcntl.h>
#include <filesystem>
#include <string>
#include <unistd.h>

namespace fs = std::filesystem;
using mlctl::util::StagedDir;
using mlctl::util::TempDir;

TEST_CASE("write_file_atomic writes, replaces and leaves no temporary file") {
  TempDir dir;
  const auto path = dir.path() / "sub" / "a.txt";
  mlctl::util::write_file_atomic(path, "one");
  CHECK(mlctl::util::read_file(path) == "one");
  mlctl::util::write_file_atomic(path, "two");
  CHECK(mlctl::util::read_file(path) == "two");
  int entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(path.parent_path())) {
    ++entries;
  }
  CHECK(entries == 1);
}

TEST_CASE("read_file of a missing file is not_found and names the path") {
  TempDir dir;
  const auto path = dir.path() / "missing.bin";
  CHECK_THROWS_WITH_AS(mlctl::util::read_file(path), (path.string() + ": no such file").c_str(),
                       mlctl::Error);
  // A directory is not read as an empty file.
  CHECK_THROWS_WITH_AS(mlctl::util::read_file(dir.path()),
                       (dir.path().string() + ": is a directory, not a file").c_str(),
                       mlctl::Error);
}

TEST_CASE("TempDir removes its directory unless released") {
  fs::path kept;
  fs::path removed;
  {
    TempDir a;
    TempDir b;
    removed = a.path();
    kept = b.release();
    CHECK(fs::is_directory(removed));
  }
  CHECK_FALSE(fs::exists(removed));
  CHECK(fs::is_directory(kept));
  fs::remove_all(kept);
}

TEST_CASE("StagedDir publishes only on commit and replaces an existing target") {
  TempDir root;
  const auto target = root.path() / "dataset";
  {
    StagedDir staged(target);
    mlctl::util::write_file_atomic(staged.path() / "x", "1");
    // destroyed without commit
  }
  CHECK_FALSE(fs::exists(target));
  {
    StagedDir staged(target);
    mlctl::util::write_file_atomic(staged.path() / "x", "1");
    staged.commit();
  }
  CHECK(mlctl::util::read_file(target / "x") == "1");
  {
    StagedDir staged(target);
    mlctl::util::write_file_atomic(staged.path() / "y", "2");
    staged.commit();
  }
  CHECK_FALSE(fs::exists(target / "x"));
  CHECK(mlctl::util::read_file(target / "y") == "2");
  int entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(root.path())) {
    ++entries;
  }
  CHECK(entries == 1); // no staging or aside directories left behind
}

TEST_CASE("AtomicFile appends, patches earlier bytes, and appears only on commit") {
  TempDir dir;
  const auto path = dir.path() / "f.bin";
  const auto bytes = [](std::string_view s) {
    return std::as_bytes(std::span(s.data(), s.size()));
  };
  {
    mlctl::util::AtomicFile file(path);
    file.write(bytes("hello "));
    file.write(bytes("world"));
    CHECK(file.size() == 11);
    file.write_at(0, bytes("J"));
    CHECK_FALSE(fs::exists(path));
    file.commit();
  }
  CHECK(mlctl::util::read_file(path) == "Jello world");
  {
    mlctl::util::AtomicFile abandoned(path);
    abandoned.write(bytes("partial"));
  }
  CHECK(mlctl::util::read_file(path) == "Jello world");
  int entries = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir.path())) {
    ++entries;
  }
  CHECK(entries == 1);
}

TEST_CASE("a write to a full disk throws no_space, naming the file and the reason") {
  const int fd = ::open("/dev/full", O_WRONLY | O_CLOEXEC);
  if (fd < 0) {
    MESSAGE("skipped: no /dev/full here");
    return;
  }
  const char byte = 'x';
  const auto written = ::write(fd, &byte, 1);
  const int error = errno;
  ::close(fd);
  REQUIRE(written < 0);
  errno = error;
  try {
    mlctl::util::throw_errno("/dev/full", "write failed");
  } catch (const mlctl::Error& e) {
    CHECK(e.kind() == mlctl::ErrorKind::no_space);
    CHECK(std::string(e.what()) == "/dev/full: write failed: No space left on device");
  }
}
