#pragma once
// Brings a picture of a digit (a photo, a scan, a drawing of any size, dark ink on paper or
// light on dark) to the form of the MNIST images, as LeCun et al. made them: light digit on
// black, its bounding box scaled (anti-aliased, aspect kept) into 20×20, placed in 28×28 so
// that its centre of mass is the centre. For other sizes, the box is 20/28 of the shorter side.

#include "model/picture.hpp"

#include <cstddef>
#include <string_view>

namespace mlctl::model {

struct FitReport {
  bool inverted = false; // the background was light: the values were inverted
  std::size_t box_x = 0; // the digit's bounding box in the input
  std::size_t box_y = 0;
  std::size_t box_cols = 0;
  std::size_t box_rows = 0;
  std::size_t scaled_cols = 0; // its size in the output
  std::size_t scaled_rows = 0;
};

// Returns `image` fitted into `rows` × `cols`; `report` (if given) says what was done.
// The border tells the polarity (its median: light is paper) and the paper's level, a plane
// fitted to it, so that light falling unevenly across the sheet is taken out (dark ink counts
// as the share of the paper's light it takes away); values are stretched so that the paper
// becomes 0 and the strongest ink 255; the box holds the pixels above a quarter of that.
// Throws `Error{invalid_input}` "<name>: no digit found ..." for a nearly uniform image or one
// where only specks stand out.
GrayImage fit_digit(const GrayImage& image, std::size_t rows, std::size_t cols,
                    std::string_view name, FitReport* report = nullptr);

} // namespace mlctl::model
