// libFuzzer target: `onnx::Model::load` (protobuf parsing, validation, planning) on arbitrary
// bytes, then one `run` of every model that loads, on a small batch of zeros. Only
// `mlctl::Error` may escape; anything else (a crash, a sanitizer report, another exception)
// is a bug. Seeds: corpus/onnx/ (mlctl's writer output and a PyTorch export).

#include "onnx/runtime.hpp"
#include "util/error.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace {

// Inputs larger than this (values per call) are loaded but not run, to keep iterations fast.
constexpr std::int64_t k_max_run_values = 1 << 16;

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    const auto model = mlctl::onnx::Model::load(bytes, "fuzz.onnx");
    std::vector<mlctl::onnx::Tensor> inputs;
    for (const auto& info : model.inputs()) {
      mlctl::onnx::Tensor t;
      t.name = info.name;
      t.datatype = info.datatype;
      std::int64_t count = 1;
      for (const auto d : info.shape) {
        t.shape.push_back(d < 0 ? 2 : d);
        count *= t.shape.back();
        if (count > k_max_run_values) {
          return 0;
        }
      }
      if (t.datatype == "FP32") {
        t.f32.assign(static_cast<std::size_t>(count), 0.5f);
      } else {
        t.i64.assign(static_cast<std::size_t>(count), 1);
      }
      inputs.push_back(std::move(t));
    }
    (void)model.run(inputs);
  } catch (const mlctl::Error&) {
  }
  return 0;
}
