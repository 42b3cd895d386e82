#pragma once
// The images of the request store, kept outside SQLite in append-only segment files:
// `<dir>/00000001.u8`, `00000002.u8`, ... each the raw bytes of images one after another
// (uint8, round(x * 255), row-major), a row of `requests.db` naming its image's segment, offset
// and size (`input_segment`, `input_offset`, `input_size`). Any tool reads one without mlctl:
// `numpy.fromfile(path, numpy.uint8, count=size, offset=offset).reshape(28, 28)`.
//
// Why not a BLOB: through SQLite every image was written twice (the WAL, then the database
// file by the checkpoint), checksummed, and its page written once more when retention deleted
// it; those pages were two thirds of what the store wrote (measured: 462 WAL frames per batch of
// 1,024 rows at the retention limit, 145 without images). Here a batch's images are one write(2),
// and retention unlinks whole files.
//
// Durability is the store's (synchronous=NORMAL): a process crash loses nothing written; after
// a power loss a row may name bytes that did not reach the disk: the file is shorter then (ext4
// orders data before sizes) and `ImageReader` returns no image for it, never other bytes.

#include <cstdint>
#include <filesystem>
#include <map>
#include <span>
#include <vector>

namespace mlctl::server {

struct ImageLocation {
  std::int64_t segment = 0;
  std::int64_t offset = 0;
  std::int64_t size = 0;
};

// The writer's side (one thread).
class ImageLog {
public:
  // Creates `dir` when missing; new images go to a new segment numbered after every segment
  // there. A segment is closed once it holds `segment_bytes` (an image never spans two).
  // Throws `Error{io}` naming `dir`.
  ImageLog(std::filesystem::path dir, std::uint64_t segment_bytes);
  ~ImageLog();
  ImageLog(const ImageLog&) = delete;
  ImageLog& operator=(const ImageLog&) = delete;

  // Returns where `bytes` go and keeps them until `write()` (or until the segment is full, when
  // they are written at once). Throws `Error{io}`.
  ImageLocation add(std::span<const std::uint8_t> bytes);
  // Writes what `add` kept. Throws `Error{io}`; after an error the next image starts a new
  // segment (what the failed write left is never named by a committed row).
  void write();
  // Unlinks every segment numbered below `segment` (never the one being written).
  void remove_before(std::int64_t segment);
  // The segment new images go to.
  std::int64_t current() const noexcept { return m_segment; }
  // Bytes of the segments on disk and of what `add` kept.
  std::uint64_t bytes() const noexcept { return m_bytes; }

private:
  void next_segment();

  std::filesystem::path m_dir;
  std::uint64_t m_segment_bytes;
  std::map<std::int64_t, std::uint64_t> m_segments; // on disk: number -> bytes
  std::uint64_t m_bytes = 0;
  std::int64_t m_segment = 1;
  int m_fd = -1;                       // the current segment, opened at its first write
  std::uint64_t m_size = 0;            // its length, written and kept
  std::vector<std::uint8_t> m_pending; // kept by `add`, not yet written
};

// A reader's side: keeps the last segment it read open (rows are read in id order).
class ImageReader {
public:
  explicit ImageReader(std::filesystem::path dir) : m_dir(std::move(dir)) {}
  ~ImageReader();
  ImageReader(const ImageReader&) = delete;
  ImageReader& operator=(const ImageReader&) = delete;

  // Returns the image at `where`, or nothing when its segment is gone (retention) or shorter
  // than `where` says (a power loss).
  std::vector<std::uint8_t> read(const ImageLocation& where);

private:
  std::filesystem::path m_dir;
  std::int64_t m_segment = 0;
  int m_fd = -1;
};

} // namespace mlctl::server
