#include "data/npz.hpp"

#include "artifact/zip.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <vector>

namespace mlctl::data {

namespace {

constexpr std::string_view k_suffix = ".npy";

std::map<std::string, NpyArray> arrays_from(std::vector<artifact::ZipEntry> entries,
                                            std::string_view name) {
  std::map<std::string, NpyArray> out;
  for (auto& entry : entries) {
    if (!entry.name.ends_with(k_suffix) || entry.name.size() == k_suffix.size()) {
      throw Error(ErrorKind::corrupt, std::string(name) + ": not an npz archive: " + entry.name +
                                          " is not a .npy file");
    }
    std::string key = entry.name.substr(0, entry.name.size() - k_suffix.size());
    if (out.contains(key)) {
      throw Error(ErrorKind::corrupt,
                  std::string(name) + ": not an npz archive: duplicate entry " + entry.name);
    }
    NpyArray array = parse_npy(entry.data, std::string(name) + ": " + entry.name);
    entry.data = std::string(); // release the copy early; arrays can be large
    out.emplace(std::move(key), std::move(array));
  }
  return out;
}

void check_key(const std::string& key) {
  if (key.empty() || key.find('/') != std::string::npos || key.find('\0') != std::string::npos) {
    throw Error(ErrorKind::invalid_input, "npz: invalid array name '" + key + "'");
  }
}

} // namespace

std::map<std::string, NpyArray> read_npz_memory(std::string_view bytes, std::string_view name) {
  return arrays_from(artifact::read_zip_memory(bytes, name), name);
}

std::map<std::string, NpyArray> read_npz(const std::filesystem::path& path) {
  const std::string bytes = util::read_file(path);
  return read_npz_memory(bytes, path.string());
}

std::string encode_npz(const std::map<std::string, NpyArray>& arrays) {
  std::vector<artifact::ZipEntry> entries;
  entries.reserve(arrays.size());
  for (const auto& [key, array] : arrays) {
    check_key(key);
    entries.push_back({key + std::string(k_suffix), encode_npy(array)});
  }
  return artifact::encode_zip(entries);
}

void write_npz(const std::filesystem::path& path, const std::map<std::string, NpyArray>& arrays) {
  std::map<std::string, NpyView> views;
  for (const auto& [key, array] : arrays) {
    views.emplace(key, NpyView{array.dtype, array.shape,
                               std::as_bytes(std::span(array.data.data(), array.data.size()))});
  }
  write_npz_views(path, views);
}

void write_npz_views(const std::filesystem::path& path,
                     const std::map<std::string, NpyView>& arrays) {
  // The headers live here while the zip writer streams them and the arrays' bytes.
  std::vector<std::string> headers;
  headers.reserve(arrays.size());
  std::vector<artifact::ZipEntryParts> entries;
  entries.reserve(arrays.size());
  with_context(path.string(), [&] {
    for (const auto& [key, array] : arrays) {
      check_key(key);
      headers.push_back(encode_npy_header(array.dtype, array.shape, array.data.size()));
      const std::string& header = headers.back();
      entries.push_back({key + std::string(k_suffix),
                         {std::as_bytes(std::span(header.data(), header.size())), array.data}});
    }
  });
  artifact::write_zip_parts(path, entries);
}

} // namespace mlctl::data
