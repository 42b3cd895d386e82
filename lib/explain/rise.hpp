#pragma once
// RISE (Petsiuk, Das, Saenko 2018, "Randomized Input Sampling for Explanation of Black-box
// Models"): saliency maps of a black-box classifier. Random binary masks on a coarse grid are
// upsampled bilinearly with a random shift, multiplied into the image, and the classifier's
// probabilities weight the masks: S_c = sum_i f_c(I * M_i) M_i / sum_i M_i (the paper divides
// by N p, the expectation of the denominator; see rise.cpp). Deterministic for a
// seed (the masks come from `nn::Rng`, integer arithmetic and IEEE operations only).

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace mlctl::onnx {
class Model;
}

namespace mlctl::explain {

struct RiseOptions {
  std::size_t masks = 2000; // N
  int grid = 7;             // the mask grid is grid × grid cells
  double p = 0.5;           // probability that a cell is kept
  std::uint64_t seed = 0;
  std::size_t batch = 250; // masked images per classifier call
};

// The saliency of one image: `classes` maps of rows × cols, row-major, class after class.
struct Saliency {
  std::size_t rows = 28;
  std::size_t cols = 28;
  std::size_t classes = 0;
  std::vector<float> maps;          // classes * rows * cols
  std::vector<float> probabilities; // the classifier on the unmasked image
  std::vector<float> baseline;      // per class: the mean score over all masked images (the
                                    // level of a pixel that does not matter)
  std::int64_t predicted = -1;      // argmax of `probabilities`

  // Returns the map of class `c` (rows * cols values).
  const float* map(std::size_t c) const { return maps.data() + c * rows * cols; }
};

// A black box: takes `n` images of rows*cols floats (row-major, one after another) and returns
// n × classes scores, row-major.
using Classifier =
    std::function<std::vector<float>(const std::vector<float>& images, std::size_t n)>;

// Throws `Error{invalid_input}` naming the option: "masks: must be 1..100000, got 0",
// "grid: must be 2..28, got 1", "p: must be in (0, 1), got 1.5".
void validate(const RiseOptions& options);

// Returns the `options.masks` masks (each rows*cols floats in [0, 1]) RISE draws for `seed`:
// a grid × grid binary grid, upsampled bilinearly to (grid+1) × cell size and cropped at a
// random shift (cell = ceil(size / grid)). Throws like `validate`.
std::vector<float> make_masks(std::size_t rows, std::size_t cols, const RiseOptions& options);

// Computes the saliency maps of `image` (rows*cols floats) under `classifier`. Throws like
// `validate`, `Error{invalid_input}` when the image size is not rows*cols or the classifier
// returns a size that is not n × classes, and whatever `classifier` throws.
Saliency rise(const Classifier& classifier, const std::vector<float>& image, std::size_t rows,
              std::size_t cols, const RiseOptions& options);
// The same for several images, sharing one set of masks (n images of rows*cols floats).
std::vector<Saliency> rise(const Classifier& classifier, const std::vector<float>& images,
                           std::size_t n, std::size_t rows, std::size_t cols,
                           const RiseOptions& options);

// Returns a classifier that runs `model` (one FP32 input [N, rows*cols]) and returns its
// probability output: the output named `probabilities` when there is one, else the first FP32
// output of rank 2. Throws `Error{invalid_input}` "<model>: no FP32 [N, classes] output" when
// there is none. The model must outlive the classifier.
Classifier onnx_classifier(const onnx::Model& model);

// Returns the share of the saliency mass of class `c` in columns [col_begin, col_end): the mass
// is what the map holds above the class's `baseline` (negative parts count as 0); 0 when there
// is none. For tests and reports.
double mass_share(const Saliency& saliency, std::size_t c, std::size_t col_begin,
                  std::size_t col_end);

} // namespace mlctl::explain
