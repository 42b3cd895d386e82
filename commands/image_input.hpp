#pragma once
// --image for predict and explain: a PNG or JPEG as read or, with --fit, a picture of a digit
// brought to the model's image size (model/fit.hpp); with --app, that size comes from the
// application's V2 metadata.

#include "commands/context.hpp"
#include "model/predict.hpp"

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>

namespace mlctl::cli {

// Added where an image of the wrong size is refused and --fit was not given.
inline constexpr const char* k_fit_hint =
    "; --fit brings any picture of a digit to the model's form";

struct ImageInput {
  model::GrayImage image;
  nlohmann::json fit; // --fit: {"size", "inverted", "box", "scaled"}; null otherwise
};

// Reads the picture at `path`; with `fit`, brings it to `rows` × `cols`.
ImageInput read_image_input(const std::string& path, bool fit, std::size_t rows, std::size_t cols);

// " (seven.png is 32×32 pixels)", and `k_fit_hint` without `fit`: added where an application
// refuses `input` read from `path`.
std::string refused_size_note(const std::string& path, const ImageInput& input, bool fit);

// "640×480, inverted; the digit (212×301 at 10,20) scaled to 14×20, centred in 28×28"
std::string fit_text(const ImageInput& input);

// The same for an application's images: with `fit`, their size comes from its V2 metadata
// (the first input's shape without the batch, read as the Predictor reads a model's).
ImageInput read_image_input_for(const Context& ctx, const std::string& app, const std::string& path,
                                bool fit);

} // namespace mlctl::cli
