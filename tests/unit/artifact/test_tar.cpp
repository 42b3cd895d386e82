#include "artifact/sha256.hpp"
#include "artifact/tar.hpp"
#include "data/test_support.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <doctest/doctest.h>
#include <functional>
#include <sys/stat.h>
#include <zlib.h>

namespace fs = std::filesystem;
using mlctl::ErrorKind;
using mlctl::artifact::ByteSource;
using mlctl::artifact::for_each_tar_entry;
using mlctl::artifact::pack_directory;
using mlctl::artifact::scan_safely;
using mlctl::artifact::sha256_file;
using mlctl::artifact::TarEntry;
using mlctl::artifact::unpack_safely;
using mlctl::artifact::UnpackLimits;
using mlctl::test::error_of;
using mlctl::test::fixture;
using mlctl::test::gzip;
using mlctl::util::read_file;
using mlctl::util::TempDir;
using mlctl::util::write_file_atomic;

namespace {

bool keep_all(const std::string&) {
  return true;
}

// A source that gives `bytes` as one block, then the end.
ByteSource one_block(std::string bytes) {
  return [bytes = std::move(bytes), served = false]() mutable noexcept -> std::string_view {
    if (served) {
      return {};
    }
    served = true;
    return bytes;
  };
}

// One entry of a hand-made (possibly hostile) archive.
struct RawEntry {
  std::string path;
  mode_t type = AE_IFREG;
  std::string data;
  std::string link;     // symlink target
  std::string hardlink; // hardlink target
};

// Writes `entries` as a tar (gzip-compressed unless `gzip` is false) with libarchive.
void make_tar(const fs::path& out, const std::vector<RawEntry>& entries, bool gzip = true) {
  archive* a = archive_write_new();
  REQUIRE(archive_write_set_format_pax_restricted(a) == ARCHIVE_OK);
  if (gzip) {
    REQUIRE(archive_write_add_filter_gzip(a) == ARCHIVE_OK);
  }
  REQUIRE(archive_write_open_filename(a, out.c_str()) == ARCHIVE_OK);
  for (const auto& e : entries) {
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.path.c_str());
    archive_entry_set_filetype(entry, e.type);
    archive_entry_set_perm(entry, 0644);
    if (!e.link.empty()) {
      archive_entry_set_symlink(entry, e.link.c_str());
    }
    if (!e.hardlink.empty()) {
      archive_entry_set_hardlink(entry, e.hardlink.c_str());
    }
    archive_entry_set_size(entry, static_cast<la_int64_t>(e.data.size()));
    REQUIRE(archive_write_header(a, entry) == ARCHIVE_OK);
    if (!e.data.empty()) {
      REQUIRE(archive_write_data(a, e.data.data(), e.data.size()) ==
              static_cast<la_ssize_t>(e.data.size()));
    }
    archive_entry_free(entry);
  }
  REQUIRE(archive_write_close(a) == ARCHIVE_OK);
  archive_write_free(a);
}

void make_model_dir(const fs::path& dir) {
  write_file_atomic(dir / "model.onnx", std::string(5000, 'm'));
  write_file_atomic(dir / "model.yaml", "apiVersion: mlctl/v1\n");
  write_file_atomic(dir / "sub" / "deep" / "notes.txt", "notes");
  write_file_atomic(dir / "run.sh", "#!/bin/sh\n");
  fs::permissions(dir / "run.sh", fs::perms::owner_exec, fs::perm_options::add);
}

std::size_t count_files(const fs::path& dir) {
  std::size_t n = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    n += e.is_directory() ? 0 : 1;
  }
  return n;
}

} // namespace

TEST_CASE("pack_directory is deterministic, also after mtimes change") {
  TempDir tmp;
  const auto dir = tmp.path() / "model";
  make_model_dir(dir);
  const std::string first = pack_directory(dir, tmp.path() / "a.tar.gz");
  CHECK(first.size() == 64);
  CHECK(first == sha256_file(tmp.path() / "a.tar.gz"));
  CHECK(pack_directory(dir, tmp.path() / "b.tar.gz") == first);

  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    fs::last_write_time(e.path(), fs::file_time_type::clock::now() - std::chrono::hours(240));
  }
  CHECK(pack_directory(dir, tmp.path() / "c.tar.gz") == first);
  CHECK(read_file(tmp.path() / "c.tar.gz") == read_file(tmp.path() / "a.tar.gz"));

  // A copy of the directory elsewhere packs to the same bytes (no absolute paths inside).
  fs::copy(dir, tmp.path() / "copy", fs::copy_options::recursive);
  CHECK(pack_directory(tmp.path() / "copy", tmp.path() / "d.tar.gz") == first);

  write_file_atomic(dir / "model.yaml", "apiVersion: mlctl/v2\n");
  CHECK(pack_directory(dir, tmp.path() / "e.tar.gz") != first);
}

TEST_CASE("pack_directory writes sorted entries with fixed metadata and no gzip timestamp") {
  TempDir tmp;
  const auto dir = tmp.path() / "model";
  make_model_dir(dir);
  const auto tgz = tmp.path() / "m.tar.gz";
  pack_directory(dir, tgz);

  const std::string bytes = read_file(tgz);
  REQUIRE(bytes.size() > 10);
  CHECK(static_cast<unsigned char>(bytes[0]) == 0x1f);
  CHECK(static_cast<unsigned char>(bytes[1]) == 0x8b);
  CHECK((static_cast<unsigned char>(bytes[3]) & 0x08) == 0); // RFC 1952 FLG.FNAME unset
  CHECK(bytes.substr(4, 4) == std::string(4, '\0'));         // MTIME = 0
  // One gzip member and nothing after it (libarchive would pad to 10240 bytes by default).
  {
    z_stream zs{};
    REQUIRE(inflateInit2(&zs, 16 + MAX_WBITS) == Z_OK);
    std::string out(1 << 20, '\0');
    zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(bytes.data()));
    zs.avail_in = static_cast<uInt>(bytes.size());
    zs.next_out = reinterpret_cast<Bytef*>(out.data());
    zs.avail_out = static_cast<uInt>(out.size());
    CHECK(inflate(&zs, Z_FINISH) == Z_STREAM_END);
    CHECK(zs.avail_in == 0);
    CHECK(zs.total_out % 512 == 0);
    inflateEnd(&zs);
  }

  archive* a = archive_read_new();
  archive_read_support_filter_gzip(a);
  archive_read_support_format_tar(a);
  REQUIRE(archive_read_open_filename(a, tgz.c_str(), 4096) == ARCHIVE_OK);
  std::vector<std::string> names;
  archive_entry* entry = nullptr;
  while (archive_read_next_header(a, &entry) == ARCHIVE_OK) {
    names.emplace_back(archive_entry_pathname(entry));
    CHECK(archive_entry_mtime(entry) == 0);
    CHECK(archive_entry_uid(entry) == 0);
    CHECK(archive_entry_gid(entry) == 0);
    const char* uname = archive_entry_uname(entry);
    CHECK((uname == nullptr || std::string(uname).empty()));
    CHECK(archive_entry_filetype(entry) == AE_IFREG);
    CHECK(archive_entry_perm(entry) == (names.back() == "run.sh" ? 0755 : 0644));
  }
  archive_read_free(a);
  CHECK(names ==
        std::vector<std::string>{"model.onnx", "model.yaml", "run.sh", "sub/deep/notes.txt"});
}

TEST_CASE("pack_directory refuses symlinks and a missing directory") {
  TempDir tmp;
  const auto dir = tmp.path() / "model";
  make_model_dir(dir);
  fs::create_symlink("/etc/passwd", dir / "leak");
  CHECK_THROWS_WITH_AS(pack_directory(dir, tmp.path() / "x.tar.gz"),
                       ((dir / "leak").string() + ": cannot pack a symlink").c_str(), mlctl::Error);
  CHECK_FALSE(fs::exists(tmp.path() / "x.tar.gz"));
  CHECK_THROWS_WITH_AS(pack_directory(tmp.path() / "none", tmp.path() / "x.tar.gz"),
                       ((tmp.path() / "none").string() + ": no such directory").c_str(),
                       mlctl::Error);
}

TEST_CASE("pack then unpack_safely restores the files") {
  TempDir tmp;
  const auto dir = tmp.path() / "model";
  make_model_dir(dir);
  const auto tgz = tmp.path() / "m.tar.gz";
  pack_directory(dir, tgz);
  const auto files = unpack_safely(tgz, tmp.path() / "out" / "v1");
  CHECK(files ==
        std::vector<std::string>{"model.onnx", "model.yaml", "run.sh", "sub/deep/notes.txt"});
  for (const auto& f : files) {
    CHECK(read_file(tmp.path() / "out" / "v1" / f) == read_file(dir / f));
  }
  const auto perms = fs::status(tmp.path() / "out" / "v1" / "run.sh").permissions();
  CHECK((perms & fs::perms::owner_exec) != fs::perms::none);

  // An existing empty directory is fine; a non-empty one is refused.
  fs::create_directories(tmp.path() / "empty");
  CHECK(unpack_safely(tgz, tmp.path() / "empty").size() == 4);
  CHECK_THROWS_WITH_AS(unpack_safely(tgz, tmp.path() / "empty"),
                       ((tmp.path() / "empty").string() + ": destination is not empty").c_str(),
                       mlctl::Error);
}

TEST_CASE("for_each_tar_entry streams regular files and stops when asked") {
  TempDir tmp;
  const auto tgz = tmp.path() / "t.tar.gz";
  make_tar(tgz, {{"dir", AE_IFDIR, "", "", ""},
                 {"dir/a.txt", AE_IFREG, "alpha", "", ""},
                 {"link", AE_IFLNK, "", "dir/a.txt", ""},
                 {"b.bin", AE_IFREG, std::string(70000, 'b'), "", ""},
                 {"c.txt", AE_IFREG, "gamma", "", ""}});
  std::vector<std::pair<std::string, std::string>> seen;
  for_each_tar_entry(tgz, [&](const TarEntry& e, std::string_view data) {
    CHECK(e.size == data.size());
    seen.emplace_back(e.path, std::string(data));
    return true;
  });
  REQUIRE(seen.size() == 3);
  CHECK(seen[0] == std::pair<std::string, std::string>{"dir/a.txt", "alpha"});
  CHECK(seen[1].second == std::string(70000, 'b'));
  CHECK(seen[2].first == "c.txt");

  int calls = 0;
  for_each_tar_entry(tgz, [&](const TarEntry&, std::string_view) { return ++calls < 2; });
  CHECK(calls == 2);

  // A plain (uncompressed) tar is read too.
  make_tar(tmp.path() / "plain.tar", {{"x", AE_IFREG, "x", "", ""}}, false);
  calls = 0;
  for_each_tar_entry(tmp.path() / "plain.tar", [&](const TarEntry&, std::string_view d) {
    CHECK(d == "x");
    return ++calls > 0;
  });
  CHECK(calls == 1);
}

TEST_CASE("unpack_safely refuses hostile entries and leaves nothing behind") {
  TempDir tmp;
  const auto dest = tmp.path() / "dest";
  struct Case {
    std::string name;
    std::vector<RawEntry> entries;
    std::string message; // after "<tgz>: "
  };
  const RawEntry ok{"ok.txt", AE_IFREG, "fine", "", ""};
  const std::vector<Case> cases{
      {"dotdot", {ok, {"../x", AE_IFREG, "evil", "", ""}}, "../x: '..' components are not allowed"},
      {"inner-dotdot",
       {ok, {"a/../../x", AE_IFREG, "evil", "", ""}},
       "a/../../x: '..' components are not allowed"},
      {"absolute",
       {ok, {"/tmp/x", AE_IFREG, "evil", "", ""}},
       "/tmp/x: absolute paths are not allowed"},
      {"symlink", {ok, {"s", AE_IFLNK, "", "/etc/passwd", ""}}, "s: symlinks are not allowed"},
      {"hardlink", {ok, {"h", AE_IFREG, "", "", "ok.txt"}}, "h: hardlinks are not allowed"},
      {"fifo", {ok, {"f", AE_IFIFO, "", "", ""}}, "f: fifos are not allowed"},
      {"device", {ok, {"d", AE_IFCHR, "", "", ""}}, "d: device files are not allowed"},
      {"duplicate", {ok, ok}, "ok.txt: duplicate entry"},
      {"dir-then-file",
       {ok, {"d", AE_IFDIR, "", "", ""}, {"./d", AE_IFREG, "x", "", ""}},
       "./d: conflicts with an earlier entry"},
      {"file-then-dir",
       {ok, {"ok.txt/inner", AE_IFREG, "x", "", ""}},
       "ok.txt/inner: cannot create directory: Not a directory"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.name);
    const auto tgz = tmp.path() / (c.name + ".tar.gz");
    make_tar(tgz, c.entries);
    ErrorKind kind = ErrorKind::internal;
    CHECK(error_of([&] { unpack_safely(tgz, dest); }, &kind) == tgz.string() + ": " + c.message);
    CHECK(kind == ErrorKind::invalid_input);
    CHECK_FALSE(fs::exists(dest)); // created by unpack_safely, removed again
    CHECK_FALSE(fs::exists(tmp.path() / "x"));
    // The single pass that writes nothing refuses the same entries (a file under a file is
    // a conflict there: no directory creation fails).
    const std::string scan_message =
        c.name == "file-then-dir" ? "ok.txt/inner: conflicts with an earlier entry" : c.message;
    kind = ErrorKind::internal;
    CHECK(error_of([&] { scan_safely(tgz, keep_all); }, &kind) ==
          tgz.string() + ": " + scan_message);
    CHECK(kind == ErrorKind::invalid_input);
    const std::string bytes = read_file(tgz);
    CHECK(error_of([&] { scan_safely(one_block(bytes), "upload", keep_all); }) ==
          "upload: " + scan_message);
  }
}

TEST_CASE("scan_safely keeps what is asked, counts everything and writes nothing") {
  TempDir tmp;
  const auto tgz = tmp.path() / "t.tar.gz";
  make_tar(tgz, {{"dir", AE_IFDIR, "", "", ""},
                 {"dir/a.txt", AE_IFREG, "alpha", "", ""},
                 {"./b.bin", AE_IFREG, std::string(3000000, 'b'), "", ""},
                 {"dir/sub/c.txt", AE_IFREG, "gamma", "", ""}});
  const auto keep = [](const std::string& p) { return p != "dir/a.txt"; };
  const auto scanned = scan_safely(tgz, keep);
  CHECK(scanned.files == std::vector<std::string>{"dir/a.txt", "b.bin", "dir/sub/c.txt"});
  CHECK(scanned.total_bytes == 3000010);
  REQUIRE(scanned.kept.size() == 2);
  CHECK(scanned.kept.at("b.bin") == std::string(3000000, 'b'));
  CHECK(scanned.kept.at("dir/sub/c.txt") == "gamma");
  CHECK(count_files(tmp.path()) == 1); // only the archive

  // Streamed in pieces of any size, the result is the same.
  const std::string bytes = read_file(tgz);
  for (const std::size_t piece : {std::size_t{1}, std::size_t{4096}, std::size_t{1} << 20}) {
    CAPTURE(piece);
    std::size_t at = 0;
    const ByteSource source = [&]() noexcept -> std::string_view {
      const auto n = std::min(piece, bytes.size() - at);
      const std::string_view block(bytes.data() + at, n);
      at += n;
      return block;
    };
    const auto streamed = scan_safely(source, "upload", keep);
    CHECK(streamed.files == scanned.files);
    CHECK(streamed.kept == scanned.kept);
  }

  // Limits count extracted bytes and entries, kept or not.
  CHECK_THROWS_WITH_AS(scan_safely(tgz, keep, UnpackLimits{1000000, 100}),
                       (tgz.string() + ": ./b.bin: archive expands past 1000000 bytes").c_str(),
                       mlctl::Error);
  CHECK_THROWS_WITH_AS(
      scan_safely(
          tgz, [](const std::string&) { return false; }, UnpackLimits{1000000, 100}),
      (tgz.string() + ": ./b.bin: archive expands past 1000000 bytes").c_str(), mlctl::Error);
  CHECK_THROWS_WITH_AS(scan_safely(tgz, keep, UnpackLimits{1ull << 30, 3}),
                       (tgz.string() + ": more than 3 entries").c_str(), mlctl::Error);
  CHECK_THROWS_WITH_AS(scan_safely(one_block("not a tar at all, not even close"), "upload", keep),
                       "upload: not a gzip-compressed tar archive", mlctl::Error);
  CHECK_THROWS_WITH_AS(scan_safely(one_block(""), "upload", keep),
                       "upload: not a gzip-compressed tar archive", mlctl::Error);
  ErrorKind kind = ErrorKind::internal;
  CHECK(error_of([&] { scan_safely(one_block(bytes.substr(0, bytes.size() / 2)), "upload", keep); },
                 &kind)
            .starts_with("upload: "));
  CHECK(kind == ErrorKind::invalid_input);
}

TEST_CASE("unpack_safely enforces the byte and entry limits") {
  TempDir tmp;
  const auto tgz = tmp.path() / "big.tar.gz";
  // 3 MB of zeros compress to a few kB: the limit counts extracted bytes.
  make_tar(tgz, {{"a", AE_IFREG, std::string(600000, '\0'), "", ""},
                 {"b", AE_IFREG, std::string(3000000, '\0'), "", ""}});
  CHECK(fs::file_size(tgz) < 20000);
  const auto dest = tmp.path() / "dest";
  fs::create_directories(dest);
  CHECK_THROWS_WITH_AS(unpack_safely(tgz, dest, UnpackLimits{1000000, 100}),
                       (tgz.string() + ": b: archive expands past 1000000 bytes").c_str(),
                       mlctl::Error);
  CHECK(fs::is_directory(dest)); // it existed before: kept, but emptied
  CHECK(count_files(dest) == 0);
  CHECK(unpack_safely(tgz, dest, UnpackLimits{3600000, 2}).size() == 2);

  const auto many = tmp.path() / "many.tar.gz";
  make_tar(many,
           {{"1", AE_IFREG, "", "", ""}, {"2", AE_IFREG, "", "", ""}, {"3", AE_IFREG, "", "", ""}});
  CHECK_THROWS_WITH_AS(unpack_safely(many, tmp.path() / "m", UnpackLimits{1000, 2}),
                       (many.string() + ": more than 2 entries").c_str(), mlctl::Error);
}

TEST_CASE("unpack_safely and for_each_tar_entry refuse what is not a tar archive") {
  TempDir tmp;
  const auto junk = tmp.path() / "junk.tar.gz";
  write_file_atomic(junk, std::string(3000, 'j'));
  const std::string expected = junk.string() + ": not a gzip-compressed tar archive";
  CHECK_THROWS_WITH_AS(unpack_safely(junk, tmp.path() / "d"), expected.c_str(), mlctl::Error);
  CHECK_FALSE(fs::exists(tmp.path() / "d"));
  CHECK_THROWS_WITH_AS(
      for_each_tar_entry(junk, [](const TarEntry&, std::string_view) { return true; }),
      expected.c_str(), mlctl::Error);

  // A zip is no tar either.
  const auto zip = tmp.path() / "a.zip";
  write_file_atomic(zip, read_file(fixture("not_npz.zip")));
  CHECK_THROWS_WITH_AS(unpack_safely(zip, tmp.path() / "d"),
                       (zip.string() + ": not a gzip-compressed tar archive").c_str(),
                       mlctl::Error);

  ErrorKind kind = ErrorKind::internal;
  error_of([&] { unpack_safely(tmp.path() / "missing.tgz", tmp.path() / "d"); }, &kind);
  CHECK(kind == ErrorKind::not_found);

  // A truncated archive fails during extraction.
  TempDir model;
  make_model_dir(model.path());
  write_file_atomic(model.path() / "noise.bin", [] {
    std::string s(200000, '\0');
    std::uint32_t v = 1;
    for (auto& c : s) {
      v = v * 1664525u + 1013904223u;
      c = static_cast<char>(v >> 24);
    }
    return s;
  }());
  const auto full = tmp.path() / "full.tar.gz";
  pack_directory(model.path(), full);
  const std::string bytes = read_file(full);
  const auto cut = tmp.path() / "cut.tar.gz";
  write_file_atomic(cut, bytes.substr(0, bytes.size() / 2));
  kind = ErrorKind::internal;
  CHECK(error_of([&] { unpack_safely(cut, tmp.path() / "d"); }, &kind)
            .starts_with(cut.string() + ": "));
  CHECK(kind == ErrorKind::invalid_input);
  CHECK_FALSE(fs::exists(tmp.path() / "d"));
}

TEST_CASE("scan_safely reads gzip members in turn and checks every trailer") {
  TempDir tmp;
  const auto plain = tmp.path() / "a.tar";
  make_tar(plain,
           {{"a.txt", AE_IFREG, std::string(70000, 'a'), "", ""},
            {"b.bin", AE_IFREG, std::string(3000, 'b'), "", ""}},
           false);
  const std::string tar = read_file(plain);
  const auto expected = scan_safely(plain, keep_all);
  REQUIRE(expected.files == std::vector<std::string>{"a.txt", "b.bin"});

  // The tar cut in three members, as `cat a.gz b.gz c.gz` gives; bytes after the last member
  // are ignored (as gzip(1) and libarchive do).
  const std::string members =
      gzip(tar.substr(0, 1000)) + gzip(tar.substr(1000, 60000)) + gzip(tar.substr(61000));
  for (const std::string& bytes : {members, members + "trailing bytes"}) {
    const auto scanned = scan_safely(one_block(bytes), "upload", keep_all);
    CHECK(scanned.files == expected.files);
    CHECK(scanned.kept == expected.kept);
  }

  // A damaged trailer is found even though the tar ends before it.
  std::string bad_crc = gzip(tar);
  bad_crc[bad_crc.size() - 8] = static_cast<char>(bad_crc[bad_crc.size() - 8] ^ 1);
  CHECK_THROWS_WITH_AS(scan_safely(one_block(bad_crc), "upload", keep_all),
                       "upload: damaged archive: gzip: CRC-32 mismatch", mlctl::Error);
  const std::string whole = gzip(tar);
  CHECK_THROWS_WITH_AS(
      scan_safely(one_block(whole.substr(0, whole.size() - 4)), "upload", keep_all),
      "upload: damaged archive: gzip: truncated input", mlctl::Error);
  std::string broken = whole;
  broken[20] = static_cast<char>(broken[20] ^ 0x55);
  ErrorKind kind = ErrorKind::internal;
  CHECK(error_of([&] { scan_safely(one_block(broken), "upload", keep_all); }, &kind)
            .starts_with("upload: "));
  CHECK(kind == ErrorKind::invalid_input);

  // What follows the tar's end inside the gzip stream counts against the byte limit.
  const std::string padded = gzip(tar + std::string(4000000, '\0'));
  CHECK_THROWS_WITH_AS(
      scan_safely(one_block(padded), "upload", keep_all, UnpackLimits{1000000, 10}),
      "upload: archive expands past 1000000 bytes", mlctl::Error);
  CHECK(scan_safely(one_block(padded), "upload", keep_all).files == expected.files);
}
