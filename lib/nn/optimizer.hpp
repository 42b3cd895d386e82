#pragma once
// First-order optimizers over one flat parameter vector (all weights and biases of a network
// live in one contiguous buffer, so an update is a single vectorised pass).

#include <Eigen/Core>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace mlctl::nn {

enum class OptimizerKind { adam, sgd, adagrad };

// Returns "adam", "sgd" or "adagrad".
std::string to_string(OptimizerKind kind);
// Parses the names `to_string` returns. Throws `Error{invalid_input}`
// "unknown optimizer 'x' (expected adam, sgd or adagrad)".
OptimizerKind optimizer_from_string(std::string_view name);

// The update rules follow PyTorch's definitions (torch.optim.Adam, SGD, Adagrad).
struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::adam;
  float learning_rate = 0.001F;
  float beta1 = 0.9F;    // adam
  float beta2 = 0.999F;  // adam
  float epsilon = 1e-8F; // adam; adagrad uses 1e-10 like PyTorch
  float momentum = 0.9F; // sgd (heavy ball: v = mu v + g; p -= lr v)
};

class Optimizer {
public:
  // Allocates the state (moments, accumulators) of `parameter_count` parameters, all zero.
  Optimizer(const OptimizerOptions& options, std::size_t parameter_count);

  // Applies one update to `params` from `grads`. Precondition: both have `parameter_count`
  // elements. Deterministic: the same inputs and history give the same bits.
  void step(std::span<float> params, std::span<const float> grads);
  // Returns the number of `step` calls so far.
  std::uint64_t steps() const noexcept { return m_steps; }

private:
  OptimizerOptions m_options;
  // Eigen's aligned storage: an update's vectorised loops then never start with a scalar
  // prologue whose length depends on where malloc put the buffer (which would change results).
  Eigen::ArrayXf m_first;  // adam m, sgd velocity, adagrad sum of squares
  Eigen::ArrayXf m_second; // adam v
  std::uint64_t m_steps = 0;
  double m_beta1_power = 1.0; // beta1^steps
  double m_beta2_power = 1.0; // beta2^steps
};

} // namespace mlctl::nn
