#include "commands/image_input.hpp"

#include "api/app_routes.hpp"
#include "commands/remote.hpp"
#include "model/fit.hpp"
#include "util/error.hpp"

#include <span>
#include <vector>

namespace mlctl::cli {

namespace {

std::pair<std::size_t, std::size_t> application_image_dims(const Context& ctx,
                                                           const std::string& app) {
  const auto path = api::routes::v2_model(app);
  const auto metadata = api_client(ctx).call("GET", path);
  std::vector<std::int64_t> shape;
  try {
    shape = metadata.at("inputs").at(0).at("shape").get<std::vector<std::int64_t>>();
  } catch (const nlohmann::json::exception&) {
  }
  if (shape.empty()) {
    throw Error(ErrorKind::corrupt, path + ": the metadata gives no input shape");
  }
  return model::image_dims(std::span(shape).subspan(shape.size() >= 2 ? 1 : 0));
}

} // namespace

ImageInput read_image_input(const std::string& path, bool fit, std::size_t rows, std::size_t cols) {
  ImageInput in;
  in.image = model::read_picture(path, fit ? model::Backdrop::contrast : model::Backdrop::black);
  if (fit) {
    model::FitReport r;
    auto fitted = model::fit_digit(in.image, rows, cols, path, &r);
    in.fit = {{"size", {in.image.cols, in.image.rows}},
              {"inverted", r.inverted},
              {"box", {r.box_x, r.box_y, r.box_cols, r.box_rows}},
              {"scaled", {r.scaled_cols, r.scaled_rows}}};
    in.image = std::move(fitted);
  }
  return in;
}

std::string refused_size_note(const std::string& path, const ImageInput& input, bool fit) {
  return " (" + path + " is " + std::to_string(input.image.cols) + "×" +
         std::to_string(input.image.rows) + " pixels)" + (fit ? "" : k_fit_hint);
}

std::string fit_text(const ImageInput& input) {
  const auto& fit = input.fit;
  const auto n = [&](const char* key, std::size_t i) {
    return std::to_string(fit[key][i].get<std::size_t>());
  };
  return n("size", 0) + "×" + n("size", 1) + (fit["inverted"].get<bool>() ? ", inverted" : "") +
         "; the digit (" + n("box", 2) + "×" + n("box", 3) + " at " + n("box", 0) + "," +
         n("box", 1) + ") scaled to " + n("scaled", 0) + "×" + n("scaled", 1) + ", centred in " +
         std::to_string(input.image.cols) + "×" + std::to_string(input.image.rows);
}

ImageInput read_image_input_for(const Context& ctx, const std::string& app, const std::string& path,
                                bool fit) {
  const auto [rows, cols] =
      fit ? application_image_dims(ctx, app) : std::pair<std::size_t, std::size_t>{0, 0};
  return read_image_input(path, fit, rows, cols);
}

} // namespace mlctl::cli
