#include "artifact/tar.hpp"

#include "artifact/sha256.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/huge_pages.hpp"

#include <algorithm>
#include <archive.h>
#include <archive_entry.h>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <memory>
#include <set>
#include <unistd.h>

namespace mlctl::artifact {

namespace fs = std::filesystem;

namespace {

constexpr std::uint64_t k_max_entry_in_memory = 1ull << 30;
constexpr std::string_view k_not_tar = "not a gzip-compressed tar archive";

struct ArchiveReadFree {
  void operator()(archive* a) const noexcept { archive_read_free(a); }
};
struct ArchiveWriteFree {
  void operator()(archive* a) const noexcept { archive_write_free(a); }
};
struct EntryFree {
  void operator()(archive_entry* e) const noexcept { archive_entry_free(e); }
};
using ReadPtr = std::unique_ptr<archive, ArchiveReadFree>;
using WritePtr = std::unique_ptr<archive, ArchiveWriteFree>;
using EntryPtr = std::unique_ptr<archive_entry, EntryFree>;

std::string archive_message(archive* a) {
  const char* msg = archive_error_string(a);
  std::string s = msg != nullptr ? msg : "unknown libarchive error";
  std::transform(s.begin(), s.begin() + std::min<std::size_t>(1, s.size()), s.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

// A reader of gzip or no filter, tar formats (ustar, pax, gnu) only.
ReadPtr new_reader(const std::string& what) {
  ReadPtr a(archive_read_new());
  if (!a) {
    throw Error(ErrorKind::internal, what + ": cannot allocate an archive reader");
  }
  archive_read_support_filter_gzip(a.get());
  archive_read_support_filter_none(a.get());
  archive_read_support_format_tar(a.get());
  return a;
}

// Opens `tgz` for reading: gzip or no filter, tar formats (ustar, pax, gnu) only.
ReadPtr open_reader(const fs::path& tgz, std::size_t block_size = 1 << 16) {
  std::error_code ec;
  if (!fs::exists(tgz, ec)) {
    throw Error(ErrorKind::not_found, tgz.string() + ": no such file");
  }
  if (!fs::is_regular_file(tgz, ec)) {
    throw Error(ErrorKind::invalid_input, tgz.string() + ": not a regular file");
  }
  ReadPtr a = new_reader(tgz.string());
  // libarchive detects the filter and the format while opening, so its failure to open means
  // "no tar archive"; an unreadable file is reported as such first.
  const int fd = ::open(tgz.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw Error(ErrorKind::io, tgz.string() + ": cannot open: " + std::strerror(errno));
  }
  ::close(fd);
  if (archive_read_open_filename(a.get(), tgz.c_str(), block_size) != ARCHIVE_OK) {
    throw Error(ErrorKind::invalid_input, tgz.string() + ": " + std::string(k_not_tar));
  }
  return a;
}

// Returns the next header, nullptr at the end. A failure on the first header means the
// bytes are no tar archive at all.
archive_entry* next_header(archive* a, const std::string& where, bool first,
                           ErrorKind damaged_kind) {
  archive_entry* entry = nullptr;
  const int r = archive_read_next_header(a, &entry);
  if (r == ARCHIVE_EOF) {
    return nullptr;
  }
  if (r < ARCHIVE_WARN) {
    if (first) {
      throw Error(ErrorKind::invalid_input, where + ": " + std::string(k_not_tar));
    }
    throw Error(damaged_kind, where + ": damaged archive: " + archive_message(a));
  }
  return entry;
}

archive_entry* next_header(archive* a, const fs::path& tgz, bool first, ErrorKind damaged_kind) {
  return next_header(a, tgz.string(), first, damaged_kind);
}

// Reads the data of the current entry, counting actual bytes against `budget`.
std::string read_data(archive* a, const fs::path& tgz, const std::string& name,
                      std::uint64_t budget, std::string_view over_budget, ErrorKind damaged_kind) {
  std::string out;
  std::string chunk(1 << 16, '\0');
  while (true) {
    const la_ssize_t n = archive_read_data(a, chunk.data(), chunk.size());
    if (n < 0) {
      throw Error(damaged_kind, tgz.string() + ": " + name + ": " + archive_message(a));
    }
    if (n == 0) {
      return out;
    }
    if (static_cast<std::uint64_t>(n) > budget - std::min<std::uint64_t>(budget, out.size())) {
      throw Error(ErrorKind::invalid_input,
                  tgz.string() + ": " + name + ": " + std::string(over_budget));
    }
    out.append(chunk.data(), static_cast<std::size_t>(n));
  }
}

// Returns the entry's path with "." components removed, refusing absolute paths and "..".
std::string safe_relative_path(const char* raw, const std::string& tgz, std::uint64_t index) {
  if (raw == nullptr || *raw == '\0') {
    throw Error(ErrorKind::invalid_input,
                tgz + ": entry " + std::to_string(index) + ": empty path");
  }
  const std::string_view path(raw);
  if (path.front() == '/') {
    throw Error(ErrorKind::invalid_input,
                tgz + ": " + std::string(path) + ": absolute paths are not allowed");
  }
  std::string out;
  std::size_t start = 0;
  while (start <= path.size()) {
    const std::size_t end = std::min(path.find('/', start), path.size());
    const std::string_view part = path.substr(start, end - start);
    if (part == "..") {
      throw Error(ErrorKind::invalid_input,
                  tgz + ": " + std::string(path) + ": '..' components are not allowed");
    }
    if (!part.empty() && part != ".") {
      if (!out.empty()) {
        out += '/';
      }
      out += part;
    }
    start = end + 1;
  }
  return out;
}

std::string_view refused_type(mode_t type) {
  switch (type) {
  case AE_IFLNK:
    return "symlinks are not allowed";
  case AE_IFCHR:
  case AE_IFBLK:
    return "device files are not allowed";
  case AE_IFIFO:
    return "fifos are not allowed";
  case AE_IFSOCK:
    return "sockets are not allowed";
  default:
    return "entries of this type are not allowed";
  }
}

// What every extraction refuses in a header: more entries than the limit, unsafe paths, links,
// and types other than regular files and directories. `count` is the entry's 1-based number.
struct CheckedHeader {
  std::string rel;   // normalized path; empty only for a directory naming the root
  std::string shown; // the path as stored, for messages
  bool directory = false;
};

CheckedHeader check_header(archive_entry* entry, const std::string& where, std::uint64_t count,
                           const UnpackLimits& limits) {
  if (count > limits.max_entries) {
    throw Error(ErrorKind::invalid_input,
                where + ": more than " + std::to_string(limits.max_entries) + " entries");
  }
  const char* raw = archive_entry_pathname(entry);
  CheckedHeader out;
  out.rel = safe_relative_path(raw, where, count - 1);
  out.shown = raw;
  if (archive_entry_hardlink(entry) != nullptr) {
    throw Error(ErrorKind::invalid_input, where + ": " + out.shown + ": hardlinks are not allowed");
  }
  const auto type = archive_entry_filetype(entry);
  if (type == AE_IFDIR) {
    out.directory = true;
    return out;
  }
  if (type != AE_IFREG) {
    throw Error(ErrorKind::invalid_input,
                where + ": " + out.shown + ": " + std::string(refused_type(type)));
  }
  if (out.rel.empty()) {
    throw Error(ErrorKind::invalid_input, where + ": " + out.shown + ": not a file path");
  }
  return out;
}

// Reads the data of the current entry as libarchive hands it out (no intermediate copy),
// counting actual bytes against `budget`, and appends it to `out` unless it is null (holes of
// sparse entries as zeros). Returns the entry's size.
std::uint64_t consume_data(archive* a, const std::string& where, const std::string& shown,
                           std::uint64_t budget, const std::string& over, std::string* out) {
  std::uint64_t size = 0;
  while (true) {
    const void* block = nullptr;
    std::size_t length = 0;
    la_int64_t offset = 0;
    const int r = archive_read_data_block(a, &block, &length, &offset);
    if (r == ARCHIVE_EOF) {
      return size;
    }
    if (r < ARCHIVE_WARN) {
      throw Error(ErrorKind::invalid_input, where + ": " + shown + ": " + archive_message(a));
    }
    if (offset < 0 || static_cast<std::uint64_t>(offset) < size) {
      throw Error(ErrorKind::invalid_input,
                  where + ": " + shown + ": damaged archive: data out of order");
    }
    const std::uint64_t end = static_cast<std::uint64_t>(offset) + length;
    if (end > budget) {
      throw Error(ErrorKind::invalid_input, where + ": " + shown + ": " + over);
    }
    if (out != nullptr) {
      out->append(static_cast<std::size_t>(static_cast<std::uint64_t>(offset) - size), '\0');
      out->append(static_cast<const char*>(block), length);
    }
    size = end;
  }
}

// Every proper prefix directory of `rel` ("a/b/c" -> "a", "a/b").
std::vector<std::string> parents_of(const std::string& rel) {
  std::vector<std::string> out;
  for (std::size_t pos = rel.find('/'); pos != std::string::npos; pos = rel.find('/', pos + 1)) {
    out.push_back(rel.substr(0, pos));
  }
  return out;
}

ScannedArchive scan_archive(archive* a, const std::string& where,
                            const std::function<bool(const std::string&)>& keep,
                            const UnpackLimits& limits) {
  ScannedArchive out;
  std::set<std::string> files;
  std::set<std::string> dirs;
  std::uint64_t count = 0;
  const std::string over =
      "archive expands past " + std::to_string(limits.max_total_bytes) + " bytes";
  while (archive_entry* entry = next_header(a, where, count == 0, ErrorKind::invalid_input)) {
    const CheckedHeader h = check_header(entry, where, ++count, limits);
    // The tree an extraction would build, without building it: nothing may land on or under a
    // file, and no file on a directory.
    const auto conflict = [&] {
      return Error(ErrorKind::invalid_input,
                   where + ": " + h.shown + ": conflicts with an earlier entry");
    };
    const auto parents = parents_of(h.rel);
    for (const auto& parent : parents) {
      if (files.count(parent) != 0) {
        throw conflict();
      }
    }
    if (h.directory) {
      if (!h.rel.empty()) {
        if (files.count(h.rel) != 0) {
          throw conflict();
        }
        dirs.insert(h.rel);
      }
      dirs.insert(parents.begin(), parents.end());
      continue;
    }
    if (files.count(h.rel) != 0) {
      throw Error(ErrorKind::invalid_input, where + ": " + h.shown + ": duplicate entry");
    }
    if (dirs.count(h.rel) != 0) {
      throw conflict();
    }
    const std::uint64_t budget = limits.max_total_bytes - out.total_bytes;
    std::string* content = nullptr;
    if (keep(h.rel)) {
      content = &out.kept[h.rel];
      // The header's size is only a hint (bytes are counted as they come), bounded by the budget.
      const auto declared = archive_entry_size_is_set(entry) != 0 ? archive_entry_size(entry) : 0;
      util::reserve_huge(
          *content,
          std::min<std::uint64_t>(budget, declared > 0 ? static_cast<std::uint64_t>(declared) : 0));
    }
    out.total_bytes += consume_data(a, where, h.shown, budget, over, content);
    files.insert(h.rel);
    dirs.insert(parents.begin(), parents.end());
    out.files.push_back(h.rel);
  }
  return out;
}

la_ssize_t read_source(archive*, void* client, const void** buffer) {
  const std::string_view block = (*static_cast<const ByteSource*>(client))();
  *buffer = block.data();
  return static_cast<la_ssize_t>(block.size());
}

// Removes what an unfinished extraction left in `dest`, unless disarmed.
class ExtractionGuard {
public:
  ExtractionGuard(fs::path dest, bool created) : m_dest(std::move(dest)), m_created(created) {}
  ~ExtractionGuard() {
    if (m_done) {
      return;
    }
    std::error_code ec;
    if (m_created) {
      fs::remove_all(m_dest, ec);
      return;
    }
    for (const auto& child : fs::directory_iterator(m_dest, ec)) {
      fs::remove_all(child.path(), ec);
    }
  }
  ExtractionGuard(const ExtractionGuard&) = delete;
  ExtractionGuard& operator=(const ExtractionGuard&) = delete;
  void disarm() { m_done = true; }

private:
  fs::path m_dest;
  bool m_created;
  bool m_done = false;
};

la_ssize_t append_to_string(archive*, void* client, const void* buffer, size_t length) {
  static_cast<std::string*>(client)->append(static_cast<const char*>(buffer), length);
  return static_cast<la_ssize_t>(length);
}

} // namespace

void for_each_tar_entry(const fs::path& tgz,
                        const std::function<bool(const TarEntry&, std::string_view)>& fn) {
  constexpr auto damaged = ErrorKind::corrupt;
  ReadPtr a = open_reader(tgz);
  bool first = true;
  while (archive_entry* entry = next_header(a.get(), tgz, first, damaged)) {
    first = false;
    if (archive_entry_filetype(entry) != AE_IFREG || archive_entry_hardlink(entry) != nullptr) {
      continue;
    }
    const char* raw = archive_entry_pathname(entry);
    TarEntry info{raw != nullptr ? raw : "", 0};
    std::string data = read_data(a.get(), tgz, info.path, k_max_entry_in_memory,
                                 "entry larger than 1 GiB", damaged);
    info.size = data.size();
    if (!fn(info, data)) {
      return;
    }
  }
}

std::string pack_directory(const fs::path& dir, const fs::path& out_tgz) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw Error(ErrorKind::not_found, dir.string() + ": no such directory");
  }
  const fs::path out_canonical = fs::weakly_canonical(out_tgz, ec);
  struct Item {
    std::string rel;
    fs::path path;
    bool executable;
  };
  std::vector<Item> items;
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec);
  if (ec) {
    throw Error(ErrorKind::io, dir.string() + ": cannot list: " + ec.message());
  }
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) {
      throw Error(ErrorKind::io, dir.string() + ": cannot list: " + ec.message());
    }
    const auto st = it->symlink_status(ec);
    const fs::path& p = it->path();
    if (fs::is_directory(st)) {
      continue;
    }
    if (fs::is_symlink(st)) {
      throw Error(ErrorKind::invalid_input, p.string() + ": cannot pack a symlink");
    }
    if (!fs::is_regular_file(st)) {
      throw Error(ErrorKind::invalid_input, p.string() + ": cannot pack a special file");
    }
    if (!out_canonical.empty() && fs::weakly_canonical(p, ec) == out_canonical) {
      continue; // the archive being replaced, when it is written inside `dir`
    }
    const bool exec = (st.permissions() & fs::perms::owner_exec) != fs::perms::none;
    items.push_back({p.lexically_relative(dir).generic_string(), p, exec});
  }
  std::sort(items.begin(), items.end(), [](const Item& a, const Item& b) { return a.rel < b.rel; });

  std::string bytes;
  WritePtr a(archive_write_new());
  const auto check = [&](int r, std::string_view what) {
    if (r != ARCHIVE_OK) {
      throw Error(ErrorKind::internal,
                  out_tgz.string() + ": " + std::string(what) + ": " + archive_message(a.get()));
    }
  };
  check(archive_write_set_format_pax_restricted(a.get()), "tar format");
  check(archive_write_add_filter_gzip(a.get()), "gzip filter");
  // No timestamp in the gzip header: the same files give the same bytes (RFC 1952 MTIME = 0).
  check(archive_write_set_filter_option(a.get(), "gzip", "timestamp", nullptr), "gzip option");
  // Without this, libarchive pads the compressed stream with zeros to 10240 bytes, which
  // gzip(1) reports as trailing garbage.
  check(archive_write_set_bytes_in_last_block(a.get(), 1), "block size");
  check(archive_write_open2(a.get(), &bytes, nullptr, append_to_string, nullptr, nullptr), "open");
  EntryPtr entry(archive_entry_new());
  for (const auto& item : items) {
    const std::string content = util::read_file(item.path);
    archive_entry_clear(entry.get());
    archive_entry_set_pathname_utf8(entry.get(), item.rel.c_str());
    archive_entry_set_filetype(entry.get(), AE_IFREG);
    archive_entry_set_perm(entry.get(), item.executable ? 0755 : 0644);
    archive_entry_set_size(entry.get(), static_cast<la_int64_t>(content.size()));
    archive_entry_set_mtime(entry.get(), 0, 0);
    archive_entry_set_uid(entry.get(), 0);
    archive_entry_set_gid(entry.get(), 0);
    check(archive_write_header(a.get(), entry.get()), item.rel);
    if (!content.empty() && archive_write_data(a.get(), content.data(), content.size()) !=
                                static_cast<la_ssize_t>(content.size())) {
      check(ARCHIVE_FATAL, item.rel);
    }
  }
  check(archive_write_close(a.get()), "close");
  util::write_file_atomic(out_tgz, bytes);
  return sha256_hex(bytes);
}

std::vector<std::string> unpack_safely(const fs::path& tgz, const fs::path& dest,
                                       const UnpackLimits& limits) {
  constexpr auto damaged = ErrorKind::invalid_input;
  std::error_code ec;
  bool created = false;
  if (fs::exists(dest, ec)) {
    if (!fs::is_directory(dest, ec)) {
      throw Error(ErrorKind::invalid_input, dest.string() + ": not a directory");
    }
    if (!fs::is_empty(dest, ec)) {
      throw Error(ErrorKind::invalid_input, dest.string() + ": destination is not empty");
    }
  }
  ReadPtr a = open_reader(tgz);
  if (!fs::exists(dest, ec)) {
    fs::create_directories(dest, ec);
    if (ec) {
      throw Error(ErrorKind::io, dest.string() + ": cannot create directory: " + ec.message());
    }
    created = true;
  }
  ExtractionGuard guard(dest, created);
  std::vector<std::string> files;
  std::set<std::string> seen;
  std::uint64_t total = 0;
  std::uint64_t count = 0;
  const std::string over =
      "archive expands past " + std::to_string(limits.max_total_bytes) + " bytes";
  const std::string where = tgz.string();
  while (archive_entry* entry = next_header(a.get(), tgz, count == 0, damaged)) {
    const CheckedHeader h = check_header(entry, where, ++count, limits);
    const std::string& rel = h.rel;
    const std::string& shown = h.shown;
    if (h.directory) {
      if (!rel.empty()) {
        fs::create_directories(dest / rel, ec);
        if (ec) {
          throw Error(ErrorKind::invalid_input,
                      tgz.string() + ": " + shown + ": cannot create directory: " + ec.message());
        }
      }
      continue;
    }
    if (!seen.insert(rel).second) {
      throw Error(ErrorKind::invalid_input, tgz.string() + ": " + shown + ": duplicate entry");
    }
    const std::string data =
        read_data(a.get(), tgz, shown, limits.max_total_bytes - total, over, damaged);
    total += data.size();
    // `dest` started empty and only regular files and directories are created in it, so no
    // link can redirect this write; an existing path means two entries collide.
    const fs::path target = dest / rel;
    if (fs::symlink_status(target, ec).type() != fs::file_type::not_found) {
      throw Error(ErrorKind::invalid_input,
                  tgz.string() + ": " + shown + ": conflicts with an earlier entry");
    }
    fs::create_directories(target.parent_path(), ec);
    if (ec) {
      throw Error(ErrorKind::invalid_input,
                  tgz.string() + ": " + shown + ": cannot create directory: " + ec.message());
    }
    util::write_file_atomic(target, data);
    if ((archive_entry_perm(entry) & 0100) != 0) {
      fs::permissions(target,
                      fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec,
                      fs::perm_options::add, ec);
    }
    files.push_back(rel);
  }
  guard.disarm();
  return files;
}

ScannedArchive scan_safely(const ByteSource& source, std::string_view name,
                           const std::function<bool(const std::string&)>& keep,
                           const UnpackLimits& limits) {
  const std::string where(name);
  ReadPtr a = new_reader(where);
  // libarchive calls back for bytes while it detects the filter and the format: a failure to
  // open means "no tar archive".
  if (archive_read_open(a.get(), const_cast<ByteSource*>(&source), nullptr, read_source, nullptr) !=
      ARCHIVE_OK) {
    throw Error(ErrorKind::invalid_input, where + ": " + std::string(k_not_tar));
  }
  return scan_archive(a.get(), where, keep, limits);
}

ScannedArchive scan_safely(const fs::path& tgz, const std::function<bool(const std::string&)>& keep,
                           const UnpackLimits& limits) {
  ReadPtr a = open_reader(tgz, 1 << 20);
  return scan_archive(a.get(), tgz.string(), keep, limits);
}

} // namespace mlctl::artifact
