#pragma once
// A fully-connected network as plain weights: what training produces, what the ONNX writer
// exports and what the runtime's Gemm chain computes. Shared by nn/ and onnx/.

#include <Eigen/Core>
#include <string>
#include <vector>

namespace mlctl::nn {

enum class Activation { none, relu, sigmoid, tanh, softmax };

// Returns "none", "relu", "sigmoid", "tanh" or "softmax".
std::string to_string(Activation activation);

// y = activation(W x + b), with W of shape out × in (the ONNX Gemm layout with transB = 1).
struct DenseLayer {
  Eigen::MatrixXf weight; // out × in, row-major semantics when exported
  Eigen::VectorXf bias;   // out
  Activation activation = Activation::none;
};

struct Mlp {
  std::vector<DenseLayer> layers;

  int input_size() const { return layers.empty() ? 0 : static_cast<int>(layers.front().weight.cols()); }
  int output_size() const { return layers.empty() ? 0 : static_cast<int>(layers.back().weight.rows()); }
};

} // namespace mlctl::nn
