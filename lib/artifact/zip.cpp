#include "artifact/zip.hpp"

#include "util/error.hpp"
#include "util/fs.hpp"

#include <algorithm>
#include <ctime>
#include <memory>
#include <set>
#include <zip.h>
#include <zlib.h>

namespace mlctl::artifact {

namespace {

// RAII for the libzip handles used here.
struct ZipDiscard {
  void operator()(zip_t* z) const noexcept { zip_discard(z); }
};
struct ZipFileClose {
  void operator()(zip_file_t* f) const noexcept { zip_fclose(f); }
};
struct ZipSourceFree {
  void operator()(zip_source_t* s) const noexcept { zip_source_free(s); }
};
using ZipPtr = std::unique_ptr<zip_t, ZipDiscard>;
using ZipFilePtr = std::unique_ptr<zip_file_t, ZipFileClose>;
using ZipSourcePtr = std::unique_ptr<zip_source_t, ZipSourceFree>;

class ZipErrorGuard {
public:
  ZipErrorGuard() { zip_error_init(&m_error); }
  ~ZipErrorGuard() { zip_error_fini(&m_error); }
  ZipErrorGuard(const ZipErrorGuard&) = delete;
  ZipErrorGuard& operator=(const ZipErrorGuard&) = delete;
  zip_error_t* get() { return &m_error; }
  std::string message() { return zip_error_strerror(&m_error); }

private:
  zip_error_t m_error{};
};

[[noreturn]] void throw_corrupt(std::string_view name, const std::string& what) {
  throw Error(ErrorKind::corrupt, std::string(name) + ": " + what);
}

// Reads one entry, counting the bytes actually inflated against `budget` (the header's size
// is only a hint: a hostile archive may lie about it).
std::string read_entry(zip_t* za, zip_uint64_t index, const std::string& entry,
                       std::string_view name, std::uint64_t& budget) {
  zip_stat_t st;
  zip_stat_init(&st);
  if (zip_stat_index(za, index, 0, &st) != 0) {
    throw_corrupt(name, entry + ": " + zip_error_strerror(zip_get_error(za)));
  }
  if ((st.valid & ZIP_STAT_ENCRYPTION_METHOD) && st.encryption_method != ZIP_EM_NONE) {
    throw_corrupt(name, entry + ": encrypted entries are not supported");
  }
  if ((st.valid & ZIP_STAT_SIZE) && st.size > budget) {
    throw_corrupt(name, entry + ": archive expands past " + std::to_string(k_zip_max_total_bytes) +
                            " bytes");
  }
  ZipFilePtr file(zip_fopen_index(za, index, 0));
  if (!file) {
    throw_corrupt(name, entry + ": " + zip_error_strerror(zip_get_error(za)));
  }
  std::string data;
  if (st.valid & ZIP_STAT_SIZE) {
    data.reserve(static_cast<std::size_t>(st.size));
  }
  std::string chunk(1 << 16, '\0');
  while (true) {
    const zip_int64_t n = zip_fread(file.get(), chunk.data(), chunk.size());
    if (n < 0) {
      throw_corrupt(name, entry + ": " + zip_error_strerror(zip_file_get_error(file.get())));
    }
    if (n == 0) {
      break;
    }
    if (static_cast<std::uint64_t>(n) > budget) {
      throw_corrupt(name, entry + ": archive expands past " +
                              std::to_string(k_zip_max_total_bytes) + " bytes");
    }
    budget -= static_cast<std::uint64_t>(n);
    data.append(chunk.data(), static_cast<std::size_t>(n));
  }
  if ((st.valid & ZIP_STAT_SIZE) && data.size() != st.size) {
    throw_corrupt(name, entry + ": expected " + std::to_string(st.size) + " bytes, got " +
                            std::to_string(data.size()));
  }
  return data;
}

// The DOS timestamp 1980-01-01 00:00:00. libzip converts a time_t with localtime(), so the
// time_t is made with mktime() from the same local fields: the stored date is then fixed
// whatever the time zone.
std::time_t dos_epoch() {
  std::tm tm{};
  tm.tm_year = 80;
  tm.tm_mon = 0;
  tm.tm_mday = 1;
  tm.tm_hour = 0;
  tm.tm_isdst = -1;
  return std::mktime(&tm);
}

// Refuses empty, directory-like and duplicate entry names.
template <class Entries> void check_names(const Entries& entries) {
  std::set<std::string_view> names;
  for (const auto& e : entries) {
    if (e.name.empty() || e.name.back() == '/') {
      throw Error(ErrorKind::invalid_input, "zip: invalid entry name '" + e.name + "'");
    }
    if (!names.insert(e.name).second) {
      throw Error(ErrorKind::invalid_input, "zip: duplicate entry '" + e.name + "'");
    }
  }
}

// The records `write_zip_parts` writes (APPNOTE 4.3.7, 4.3.12, 4.3.16), field for field as
// libzip writes a stored entry with the settings of `encode_zip`, so that both give the same
// bytes: no extra fields, DOS date 1980-01-01 00:00, Unix mode 0644, bit 11 for non-ASCII
// (UTF-8) names.
constexpr std::uint16_t k_version_made_by = (3 << 8) | 63; // Unix, APPNOTE 6.3
constexpr std::uint16_t k_version_stored = 10;
constexpr std::uint16_t k_dos_date_1980 = (0 << 9) | (1 << 5) | 1;
constexpr std::uint32_t k_unix_mode_0644 = 0100644u << 16;
constexpr std::uint16_t k_flag_utf8 = 1 << 11;
constexpr std::uint64_t k_zip32_max = 0xffffffffu;

void put16(std::string& out, std::uint16_t v) {
  out.push_back(static_cast<char>(v & 0xff));
  out.push_back(static_cast<char>(v >> 8));
}

void put32(std::string& out, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) {
    out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  }
}

struct StoredEntry {
  const std::string* name;
  std::uint16_t flags;
  std::uint32_t crc;
  std::uint32_t size;
  std::uint32_t offset;
};

// The fields the local and the central header share, from "version needed" on.
void put_common(std::string& out, const StoredEntry& e) {
  put16(out, k_version_stored);
  put16(out, e.flags);
  put16(out, 0); // method: stored
  put16(out, 0); // time 00:00:00
  put16(out, k_dos_date_1980);
  put32(out, e.crc);
  put32(out, e.size); // compressed
  put32(out, e.size); // uncompressed
  put16(out, static_cast<std::uint16_t>(e.name->size()));
  put16(out, 0); // extra field length
}

std::string local_header(const StoredEntry& e) {
  std::string out("PK\x03\x04", 4);
  put_common(out, e);
  return out + *e.name;
}

void append_central_header(std::string& out, const StoredEntry& e) {
  out.append("PK\x01\x02", 4);
  put16(out, k_version_made_by);
  put_common(out, e);
  put16(out, 0); // comment length
  put16(out, 0); // disk number
  put16(out, 0); // internal attributes
  put32(out, k_unix_mode_0644);
  put32(out, e.offset);
  out += *e.name;
}

std::span<const std::byte> bytes_of(std::string_view s) {
  return std::as_bytes(std::span(s.data(), s.size()));
}

} // namespace

std::vector<ZipEntry> read_zip_memory(std::string_view bytes, std::string_view name) {
  ZipErrorGuard err;
  // An empty buffer is rejected by libzip with a less helpful message.
  if (bytes.size() < 22) {
    throw_corrupt(name, "not a zip archive");
  }
  ZipSourcePtr src(zip_source_buffer_create(bytes.data(), bytes.size(), 0, err.get()));
  if (!src) {
    throw Error(ErrorKind::internal, std::string(name) + ": " + err.message());
  }
  ZipPtr za(zip_open_from_source(src.get(), ZIP_RDONLY | ZIP_CHECKCONS, err.get()));
  if (!za) {
    if (zip_error_code_zip(err.get()) == ZIP_ER_NOZIP) {
      throw_corrupt(name, "not a zip archive");
    }
    throw_corrupt(name, "not a zip archive: " + err.message());
  }
  (void)src.release(); // owned by the archive now
  const zip_int64_t count = zip_get_num_entries(za.get(), 0);
  if (count < 0) {
    throw_corrupt(name, "cannot list entries");
  }
  if (static_cast<std::uint64_t>(count) > k_zip_max_entries) {
    throw_corrupt(name, "more than " + std::to_string(k_zip_max_entries) + " entries");
  }
  std::uint64_t budget = k_zip_max_total_bytes;
  std::vector<ZipEntry> out;
  for (zip_int64_t i = 0; i < count; ++i) {
    const auto index = static_cast<zip_uint64_t>(i);
    const char* raw = zip_get_name(za.get(), index, 0);
    if (raw == nullptr) {
      throw_corrupt(name, "entry " + std::to_string(i) + ": unreadable name");
    }
    std::string entry = raw;
    if (entry.empty() || entry.back() == '/') {
      continue; // directory entries carry no data
    }
    std::string data = read_entry(za.get(), index, entry, name, budget);
    out.push_back({std::move(entry), std::move(data)});
  }
  return out;
}

std::vector<ZipEntry> read_zip(const std::filesystem::path& path) {
  const std::string bytes = util::read_file(path);
  return read_zip_memory(bytes, path.string());
}

std::string encode_zip(const std::vector<ZipEntry>& entries) {
  check_names(entries);
  if (entries.empty()) {
    // libzip writes nothing for an archive without entries; numpy.savez writes the
    // end-of-central-directory record alone (APPNOTE 4.3.16).
    return std::string("PK\x05\x06", 4) + std::string(18, '\0');
  }
  const auto fail = [](const std::string& what) -> Error {
    return Error(ErrorKind::internal, "zip: " + what);
  };
  ZipErrorGuard err;
  ZipSourcePtr out(zip_source_buffer_create(nullptr, 0, 0, err.get()));
  if (!out) {
    throw fail(err.message());
  }
  // Keep the buffer alive past zip_close() to read the archive back.
  zip_source_keep(out.get());
  ZipPtr za(zip_open_from_source(out.get(), ZIP_TRUNCATE, err.get()));
  if (!za) {
    throw fail(err.message());
  }
  const std::time_t mtime = dos_epoch();
  for (const auto& e : entries) {
    zip_source_t* data = zip_source_buffer(za.get(), e.data.data(), e.data.size(), 0);
    if (data == nullptr) {
      throw fail(zip_error_strerror(zip_get_error(za.get())));
    }
    const zip_int64_t idx = zip_file_add(za.get(), e.name.c_str(), data, ZIP_FL_ENC_UTF_8);
    if (idx < 0) {
      zip_source_free(data);
      throw fail(e.name + ": " + zip_error_strerror(zip_get_error(za.get())));
    }
    const auto index = static_cast<zip_uint64_t>(idx);
    if (zip_set_file_compression(za.get(), index, ZIP_CM_STORE, 0) != 0 ||
        zip_file_set_mtime(za.get(), index, mtime, 0) != 0 ||
        zip_file_set_external_attributes(za.get(), index, 0, ZIP_OPSYS_UNIX, 0100644u << 16) != 0) {
      throw fail(e.name + ": " + zip_error_strerror(zip_get_error(za.get())));
    }
  }
  if (zip_close(za.get()) != 0) {
    throw fail(zip_error_strerror(zip_get_error(za.get())));
  }
  (void)za.release(); // zip_close freed it
  zip_stat_t st;
  zip_stat_init(&st);
  if (zip_source_stat(out.get(), &st) != 0 || zip_source_open(out.get()) != 0) {
    throw fail(zip_error_strerror(zip_source_error(out.get())));
  }
  std::string bytes(static_cast<std::size_t>(st.size), '\0');
  const zip_int64_t n = zip_source_read(out.get(), bytes.data(), bytes.size());
  zip_source_close(out.get());
  if (n < 0 || static_cast<std::uint64_t>(n) != st.size) {
    throw fail("cannot read the archive back");
  }
  return bytes;
}

void write_zip(const std::filesystem::path& path, const std::vector<ZipEntry>& entries) {
  std::vector<ZipEntryParts> parts;
  parts.reserve(entries.size());
  for (const auto& e : entries) {
    parts.push_back({e.name, {bytes_of(e.data)}});
  }
  write_zip_parts(path, parts);
}

} // namespace mlctl::artifact

namespace mlctl::artifact {

void write_zip_parts(const std::filesystem::path& path, const std::vector<ZipEntryParts>& entries) {
  with_context(path.string(), [&] { check_names(entries); });
  const auto too_large = [&] {
    return Error(ErrorKind::invalid_input,
                 path.string() + ": zip: archive past 4 GiB (zip64 is not written)");
  };
  // Every offset and size must fit the 32-bit fields (0xffffffff means "see zip64"): checked
  // before anything is written.
  std::uint64_t total = 22; // end of central directory
  for (const auto& entry : entries) {
    total += 30 + 46 + 2 * entry.name.size(); // local and central headers
    for (const auto& part : entry.parts) {
      total += part.size();
    }
  }
  if (total >= k_zip32_max) {
    throw too_large();
  }
  if (entries.size() > 0xffff) {
    throw Error(ErrorKind::invalid_input,
                path.string() + ": zip: more than 65535 entries (zip64 is not written)");
  }
  util::AtomicFile file(path);
  std::vector<StoredEntry> written;
  written.reserve(entries.size());
  for (const auto& entry : entries) {
    std::uint64_t size = 0;
    for (const auto& part : entry.parts) {
      size += part.size();
    }
    const bool ascii = std::all_of(entry.name.begin(), entry.name.end(),
                                   [](char c) { return static_cast<unsigned char>(c) < 0x80; });
    StoredEntry e{&entry.name, ascii ? std::uint16_t{0} : k_flag_utf8, 0,
                  static_cast<std::uint32_t>(size), static_cast<std::uint32_t>(file.size())};
    file.write(bytes_of(local_header(e)));
    // CRC and write chunk by chunk, so each chunk is still in cache when it is copied out.
    constexpr std::size_t k_chunk = std::size_t{1} << 20;
    uLong crc = crc32_z(0, nullptr, 0);
    for (const auto& part : entry.parts) {
      for (std::size_t at = 0; at < part.size(); at += k_chunk) {
        const auto chunk = part.subspan(at, std::min(k_chunk, part.size() - at));
        crc = crc32_z(crc, reinterpret_cast<const Bytef*>(chunk.data()), chunk.size());
        file.write(chunk);
      }
    }
    e.crc = static_cast<std::uint32_t>(crc);
    std::string crc_field;
    put32(crc_field, e.crc);
    // The CRC field follows the signature, version, flags, method, time and date.
    file.write_at(e.offset + 14, bytes_of(crc_field));
    written.push_back(e);
  }
  const std::uint64_t directory_offset = file.size();
  std::string tail;
  for (const auto& e : written) {
    append_central_header(tail, e);
  }
  const std::uint64_t directory_size = tail.size();
  tail.append("PK\x05\x06", 4);
  put16(tail, 0); // this disk
  put16(tail, 0); // disk of the central directory
  put16(tail, static_cast<std::uint16_t>(written.size()));
  put16(tail, static_cast<std::uint16_t>(written.size()));
  put32(tail, static_cast<std::uint32_t>(directory_size));
  put32(tail, static_cast<std::uint32_t>(directory_offset));
  put16(tail, 0); // comment length
  file.write(bytes_of(tail));
  file.commit();
}

} // namespace mlctl::artifact
