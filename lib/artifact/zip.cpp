#include "artifact/zip.hpp"

#include "util/error.hpp"
#include "util/fs.hpp"

#include <ctime>
#include <memory>
#include <set>
#include <zip.h>

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
  std::set<std::string_view> names;
  for (const auto& e : entries) {
    if (e.name.empty() || e.name.back() == '/') {
      throw Error(ErrorKind::invalid_input, "zip: invalid entry name '" + e.name + "'");
    }
    if (!names.insert(e.name).second) {
      throw Error(ErrorKind::invalid_input, "zip: duplicate entry '" + e.name + "'");
    }
  }
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
  util::write_file_atomic(path, with_context(path.string(), [&] { return encode_zip(entries); }));
}

} // namespace mlctl::artifact
