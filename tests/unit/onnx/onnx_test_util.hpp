#pragma once
// Helpers shared by the ONNX unit tests: small deterministic networks and a plain reference
// forward pass to compare the runtime against.

#include "nn/mlp.hpp"
#include "onnx/runtime.hpp"

#include <cmath>
#include <cstdint>
#include <vector>

namespace mlctl::onnx::test {

// A deterministic pseudo-random float in [-scale, scale] (no dependence on <random>'s
// implementation-defined distributions).
inline float noise(std::uint32_t& state, float scale) {
  state = state * 1664525u + 1013904223u;
  return scale * (static_cast<float>(state >> 8) / static_cast<float>(1u << 24) * 2.0f - 1.0f);
}

// Returns a network with layer sizes `sizes` (e.g. {784, 32, 10}), `hidden` activation on all
// but the last layer and `last` on the last one.
inline nn::Mlp make_mlp(const std::vector<int>& sizes, nn::Activation hidden, nn::Activation last,
                        std::uint32_t seed = 1) {
  nn::Mlp mlp;
  for (std::size_t i = 0; i + 1 < sizes.size(); ++i) {
    nn::DenseLayer layer;
    layer.weight.resize(sizes[i + 1], sizes[i]);
    layer.bias.resize(sizes[i + 1]);
    const float scale = 1.0f / std::sqrt(static_cast<float>(sizes[i]));
    for (int r = 0; r < sizes[i + 1]; ++r) {
      for (int c = 0; c < sizes[i]; ++c) {
        layer.weight(r, c) = noise(seed, scale);
      }
      layer.bias(r) = noise(seed, 0.1f);
    }
    layer.activation = i + 2 == sizes.size() ? last : hidden;
    mlp.layers.push_back(std::move(layer));
  }
  return mlp;
}

// Computes the network in double precision: rows of `x` (n × input size), returns n × output.
inline std::vector<double> reference_forward(const nn::Mlp& mlp, const std::vector<float>& x,
                                             int n) {
  std::vector<double> cur(x.begin(), x.end());
  int width = mlp.input_size();
  for (const auto& layer : mlp.layers) {
    const int out = static_cast<int>(layer.weight.rows());
    std::vector<double> next(static_cast<std::size_t>(n) * out);
    for (int i = 0; i < n; ++i) {
      for (int o = 0; o < out; ++o) {
        double s = layer.bias(o);
        for (int k = 0; k < width; ++k) {
          s += cur[static_cast<std::size_t>(i) * width + k] * layer.weight(o, k);
        }
        next[static_cast<std::size_t>(i) * out + o] = s;
      }
      double* row = next.data() + static_cast<std::size_t>(i) * out;
      switch (layer.activation) {
      case nn::Activation::relu:
        for (int o = 0; o < out; ++o)
          row[o] = std::max(0.0, row[o]);
        break;
      case nn::Activation::sigmoid:
        for (int o = 0; o < out; ++o)
          row[o] = 1.0 / (1.0 + std::exp(-row[o]));
        break;
      case nn::Activation::tanh:
        for (int o = 0; o < out; ++o)
          row[o] = std::tanh(row[o]);
        break;
      case nn::Activation::softmax: {
        double max = row[0];
        for (int o = 1; o < out; ++o)
          max = std::max(max, row[o]);
        double sum = 0;
        for (int o = 0; o < out; ++o)
          sum += (row[o] = std::exp(row[o] - max));
        for (int o = 0; o < out; ++o)
          row[o] /= sum;
        break;
      }
      case nn::Activation::none:
        break;
      }
    }
    cur = std::move(next);
    width = out;
  }
  return cur;
}

inline std::vector<float> make_input(int n, int width, std::uint32_t seed = 99) {
  std::vector<float> x(static_cast<std::size_t>(n) * width);
  for (auto& v : x) {
    v = (noise(seed, 0.5f) + 0.5f);
  }
  return x;
}

inline Tensor fp32(std::string name, std::vector<std::int64_t> shape, std::vector<float> data) {
  Tensor t;
  t.name = std::move(name);
  t.datatype = "FP32";
  t.shape = std::move(shape);
  t.f32 = std::move(data);
  return t;
}

} // namespace mlctl::onnx::test
