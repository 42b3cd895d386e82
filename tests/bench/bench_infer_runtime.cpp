// mlctl_bench_infer: times mlctl's ONNX runtime on one model, on the calling thread only.
//
//   mlctl_bench_infer MODEL.onnx [--batch N] [--iterations M] [--warmup W] [--isa
//   generic|avx2|avx512] [--zeros PERCENT]
//
// Feeds a fixed pseudo-random FP32 batch of the model's (single) input, shaped with the batch
// dimension set to N, with PERCENT of its values (default 0) set to 0 (an MNIST digit has
// about 81% black pixels, whose weights the runtime skips for one image), and prints one JSON
// object: per-call latency percentiles (µs) and the throughput in images per second.
// tests/bench/bench_infer.py runs it next to PyTorch.

#include "onnx/kernels.hpp"
#include "onnx/runtime.hpp"
#include "util/error.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: mlctl_bench_infer MODEL.onnx [--batch N] [--iterations M] [--warmup W] "
               "[--isa generic|avx2|avx512] [--zeros PERCENT]\n");
  return 2;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    return usage();
  }
  std::string path = argv[1];
  long batch = 1;
  long iterations = 1000;
  long warmup = 100;
  long zeros = 0;
  namespace kernels = mlctl::onnx::kernels;
  for (int i = 2; i + 1 < argc; i += 2) {
    const std::string flag = argv[i];
    if (flag == "--isa") {
      const std::string isa = argv[i + 1];
      kernels::limit_isa(isa == "generic" ? kernels::Isa::generic
                         : isa == "avx2"  ? kernels::Isa::avx2
                                          : kernels::Isa::avx512);
      continue;
    }
    const long value = std::strtol(argv[i + 1], nullptr, 10);
    if (flag == "--zeros") {
      if (value < 0 || value > 100) {
        return usage();
      }
      zeros = value;
      continue;
    }
    if (value <= 0) {
      return usage();
    }
    if (flag == "--batch") {
      batch = value;
    } else if (flag == "--iterations") {
      iterations = value;
    } else if (flag == "--warmup") {
      warmup = value;
    } else {
      return usage();
    }
  }
  try {
    const auto model = mlctl::onnx::Model::load_file(path);
    if (model.inputs().size() != 1 || model.inputs()[0].datatype != "FP32") {
      std::fprintf(stderr, "mlctl_bench_infer: the model must have one FP32 input\n");
      return 1;
    }
    mlctl::onnx::Tensor input;
    input.name = model.inputs()[0].name;
    input.datatype = "FP32";
    input.shape = model.inputs()[0].shape;
    std::size_t count = 1;
    for (auto& d : input.shape) {
      if (d < 0) {
        d = batch;
      }
      count *= static_cast<std::size_t>(d);
    }
    input.f32.resize(count);
    std::uint32_t state = 12345;
    for (auto& v : input.f32) {
      state = state * 1664525u + 1013904223u;
      v = static_cast<float>(state >> 8) / static_cast<float>(1u << 24);
      state = state * 1664525u + 1013904223u;
      if ((state >> 8) % 100 < static_cast<std::uint32_t>(zeros)) {
        v = 0.0f;
      }
    }
    const std::vector<mlctl::onnx::Tensor> inputs = {input};
    for (long i = 0; i < warmup; ++i) {
      (void)model.run(inputs);
    }
    std::vector<double> micros;
    micros.reserve(static_cast<std::size_t>(iterations));
    const auto start = std::chrono::steady_clock::now();
    for (long i = 0; i < iterations; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      const auto out = model.run(inputs);
      const auto t1 = std::chrono::steady_clock::now();
      micros.push_back(std::chrono::duration<double, std::micro>(t1 - t0).count());
    }
    const double total =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::sort(micros.begin(), micros.end());
    auto pct = [&](double p) {
      return micros[std::min(micros.size() - 1,
                             static_cast<std::size_t>(p * static_cast<double>(micros.size())))];
    };
    const nlohmann::json result = {
        {"model", path},
        {"batch", batch},
        {"iterations", iterations},
        {"p50_us", pct(0.50)},
        {"p99_us", pct(0.99)},
        {"min_us", micros.front()},
        {"images_per_second", static_cast<double>(batch) * static_cast<double>(iterations) / total},
        {"steps", model.step_count()},
        {"zeros_percent", zeros},
        {"kernel", kernels::isa() == kernels::Isa::avx512 ? "avx512"
                   : kernels::isa() == kernels::Isa::avx2 ? "avx2"
                                                          : "generic"},
    };
    std::printf("%s\n", result.dump().c_str());
    return 0;
  } catch (const mlctl::Error& e) {
    std::fprintf(stderr, "mlctl_bench_infer: %s\n", e.what());
    return 1;
  }
}
