#pragma once
// Dataset directories: `train.npz` and `test.npz` (`x` uint8 N×rows×cols, `y` uint8 N) plus
// `dataset.json` (format "mlctl.dataset/v1": source, counts, class histograms, the content
// digest that versions the data, and a per-pixel profile of the train split).

#include "data/idx.hpp"

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace mlctl::data {

inline constexpr std::string_view k_dataset_format = "mlctl.dataset/v1";
inline constexpr std::size_t k_num_classes = 10;

struct LabeledImages {
  std::size_t count = 0;
  std::size_t rows = 28;
  std::size_t cols = 28;
  std::vector<std::uint8_t> x; // count*rows*cols pixels, C order
  std::vector<std::uint8_t> y; // count labels
};

// Combines an IDX image array (N×rows×cols) and an IDX label array (N) into one split.
// Throws `Error{corrupt}` naming the file for wrong dimensions, and naming both files when
// the counts differ ("<images>: 100 images but <labels>: 99 labels").
LabeledImages from_idx(const IdxArray& images, const IdxArray& labels, std::string_view images_name,
                       std::string_view labels_name);

// Reads a split .npz: `x` uint8 N×rows×cols (or N×rows*cols, taken as 28×28 when that is 784,
// else 1×n), `y` uint8 or any integer type with values 0..255, N entries.
// Throws `Error{not_found}` for a missing file, `Error{corrupt}`/`Error{invalid_input}`
// "<file>: ..." naming the array for anything else.
LabeledImages read_split(const std::filesystem::path& npz);
// Writes `split` as an .npz (`x` |u1 count×rows×cols, `y` |u1 count), atomically and
// deterministically. Throws `Error{invalid_input}` when the vectors do not match `count`.
void write_split(const std::filesystem::path& npz, const LabeledImages& split);

// Returns "sha256:<hex>" of a canonical stream (a version tag, then for train and test:
// count, rows, cols as little-endian uint64, x, y). Depends only on the content.
std::string dataset_digest(const LabeledImages& train, const LabeledImages& test);

// Returns the dataset.json document of `train`/`test` (the profile covers the train split).
nlohmann::json dataset_summary(const LabeledImages& train, const LabeledImages& test,
                               const nlohmann::json& source);

// Writes `train.npz`, `test.npz` and `dataset.json` into `dir` through a staged directory
// (an existing `dir` is replaced only once everything is written) and returns the summary,
// equal to the dataset.json content. The same input gives byte-identical files.
// Throws `Error{invalid_input}` for inconsistent splits or labels outside 0..9, `Error{io}`.
nlohmann::json write_dataset(const std::filesystem::path& dir, const LabeledImages& train,
                             const LabeledImages& test, const nlohmann::json& source);

// Returns the parsed dataset.json of `dir` after checking that it is a v1 dataset and that
// train.npz and test.npz exist. Throws `Error{not_found}` "<dir>: no such dataset directory",
// "<dir>: not a dataset directory (no dataset.json)" (with how to make one of a directory of
// IDX files) or "<dir>/train.npz: no such file", `Error{corrupt}` "<dir>/dataset.json:
// ..." for invalid JSON or another format.
nlohmann::json read_dataset_info(const std::filesystem::path& dir);
// Reads `dir/<split>.npz`; `split` is "train" or "test" (else `Error{invalid_input}`).
LabeledImages read_dataset_split(const std::filesystem::path& dir, std::string_view split);

} // namespace mlctl::data
