// Models exported by PyTorch (torch.onnx.export, opset 13, dynamic batch) run here and give
// PyTorch's outputs within 1e-5. The fixtures and their generator live in tests/fixtures/torch.

#include "data/npy.hpp"
#include "onnx/runtime.hpp"
#include "util/fs.hpp"

#include <cmath>
#include <cstring>
#include <doctest/doctest.h>
#include <filesystem>
#include <nlohmann/json.hpp>

using mlctl::onnx::Model;
using mlctl::onnx::Tensor;

namespace {

const std::filesystem::path k_dir =
    std::filesystem::path(MLCTL_SOURCE_DIR) / "tests" / "fixtures" / "torch";

mlctl::data::NpyArray read_npy(const std::string& file) {
  return mlctl::data::parse_npy(mlctl::util::read_file(k_dir / file), file);
}

template <class T> std::vector<T> values(const mlctl::data::NpyArray& a) {
  std::vector<T> v(a.count());
  REQUIRE(a.data.size() == v.size() * sizeof(T));
  std::memcpy(v.data(), a.data.data(), a.data.size());
  return v;
}

} // namespace

TEST_CASE("the runtime reproduces PyTorch's outputs on torch.onnx.export fixtures") {
  const auto manifest = nlohmann::json::parse(mlctl::util::read_file(k_dir / "fixtures.json"));
  REQUIRE(manifest["fixtures"].size() >= 3);
  for (const auto& fixture : manifest["fixtures"]) {
    const std::string name = fixture["name"];
    CAPTURE(name);
    const Model model = Model::load_file(k_dir / fixture["model"].get<std::string>());
    REQUIRE(model.inputs().size() == 1);
    CHECK(model.inputs()[0].shape.front() == -1); // the dynamic batch axis
    const auto x = read_npy(fixture["input"]);
    REQUIRE(x.dtype == "<f4");
    Tensor input;
    input.name = model.inputs()[0].name;
    input.datatype = "FP32";
    input.shape.assign(x.shape.begin(), x.shape.end());
    input.f32 = values<float>(x);

    // The whole batch, and each example alone (batch-1 takes the other kernel paths).
    const auto batch_out = model.run({input});
    const auto& outputs = fixture["outputs"];
    REQUIRE(batch_out.size() == outputs.size());
    for (std::size_t o = 0; o < outputs.size(); ++o) {
      const auto expected = read_npy(outputs[o]["file"]);
      CHECK(batch_out[o].name == outputs[o]["name"].get<std::string>());
      CHECK(batch_out[o].shape ==
            std::vector<std::int64_t>(expected.shape.begin(), expected.shape.end()));
      if (expected.dtype == "<i8") {
        CHECK(batch_out[o].i64 == values<std::int64_t>(expected));
        continue;
      }
      REQUIRE(expected.dtype == "<f4");
      const auto want = values<float>(expected);
      REQUIRE(batch_out[o].f32.size() == want.size());
      double max_diff = 0;
      for (std::size_t i = 0; i < want.size(); ++i) {
        max_diff =
            std::max(max_diff, static_cast<double>(std::fabs(batch_out[o].f32[i] - want[i])));
      }
      CAPTURE(max_diff);
      CHECK(max_diff <= 1e-5);
    }

    const auto per_item = input.f32.size() / static_cast<std::size_t>(input.shape[0]);
    for (std::int64_t i = 0; i < input.shape[0]; ++i) {
      Tensor one = input;
      one.shape[0] = 1;
      one.f32.assign(input.f32.begin() +
                         static_cast<std::ptrdiff_t>(per_item * static_cast<std::size_t>(i)),
                     input.f32.begin() +
                         static_cast<std::ptrdiff_t>(per_item * static_cast<std::size_t>(i + 1)));
      const auto out = model.run({one});
      const auto& full = batch_out[0];
      const auto width = full.f32.size() / static_cast<std::size_t>(input.shape[0]);
      for (std::size_t j = 0; j < width; ++j) {
        CHECK(std::fabs(out[0].f32[j] - full.f32[static_cast<std::size_t>(i) * width + j]) <= 1e-6);
      }
    }
  }
}
