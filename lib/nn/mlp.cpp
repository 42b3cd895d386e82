#include "nn/mlp.hpp"

namespace mlctl::nn {

std::string to_string(Activation activation) {
  switch (activation) {
  case Activation::none:
    return "none";
  case Activation::relu:
    return "relu";
  case Activation::sigmoid:
    return "sigmoid";
  case Activation::tanh:
    return "tanh";
  case Activation::softmax:
    return "softmax";
  }
  return "none";
}

} // namespace mlctl::nn
