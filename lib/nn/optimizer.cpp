#include "nn/optimizer.hpp"

#include "util/error.hpp"

#include <Eigen/Core>
#include <cmath>

namespace mlctl::nn {

std::string to_string(OptimizerKind kind) {
  switch (kind) {
  case OptimizerKind::adam:
    return "adam";
  case OptimizerKind::sgd:
    return "sgd";
  case OptimizerKind::adagrad:
    return "adagrad";
  }
  return "adam";
}

OptimizerKind optimizer_from_string(std::string_view name) {
  if (name == "adam") {
    return OptimizerKind::adam;
  }
  if (name == "sgd") {
    return OptimizerKind::sgd;
  }
  if (name == "adagrad") {
    return OptimizerKind::adagrad;
  }
  throw Error(ErrorKind::invalid_input,
              "unknown optimizer '" + std::string(name) + "' (expected adam, sgd or adagrad)");
}

Optimizer::Optimizer(const OptimizerOptions& options, std::size_t parameter_count)
    : m_options(options), m_first(Eigen::ArrayXf::Zero(static_cast<Eigen::Index>(parameter_count))),
      m_second(Eigen::ArrayXf::Zero(
          options.kind == OptimizerKind::adam ? static_cast<Eigen::Index>(parameter_count) : 0)) {}

void Optimizer::step(std::span<float> params, std::span<const float> grads) {
  using Array = Eigen::Map<Eigen::ArrayXf>;
  using ConstArray = Eigen::Map<const Eigen::ArrayXf>;
  const auto n = m_first.size();
  if (params.size() != static_cast<std::size_t>(n) || grads.size() != static_cast<std::size_t>(n)) {
    throw Error(ErrorKind::internal, "optimizer: parameter count mismatch");
  }
  Array p(params.data(), n);
  ConstArray g(grads.data(), n);
  auto& first = m_first;
  ++m_steps;
  const float lr = m_options.learning_rate;
  switch (m_options.kind) {
  case OptimizerKind::adam: {
    auto& second = m_second;
    const float b1 = m_options.beta1;
    const float b2 = m_options.beta2;
    // Bias corrections in double (powers as running products: no libm in the result), then
    // one float each: p -= lr/c1 * m / (sqrt(v)/sqrt(c2) + eps).
    m_beta1_power *= static_cast<double>(b1);
    m_beta2_power *= static_cast<double>(b2);
    const double c1 = 1.0 - m_beta1_power;
    const double c2 = 1.0 - m_beta2_power;
    const auto step_size = static_cast<float>(static_cast<double>(lr) / c1);
    const auto inv_sqrt_c2 = static_cast<float>(1.0 / std::sqrt(c2));
    const float eps = m_options.epsilon;
    first = b1 * first + (1.0F - b1) * g;
    second = b2 * second + (1.0F - b2) * g.square();
    p -= step_size * first / (second.sqrt() * inv_sqrt_c2 + eps);
    break;
  }
  case OptimizerKind::sgd:
    first = m_options.momentum * first + g;
    p -= lr * first;
    break;
  case OptimizerKind::adagrad:
    first += g.square();
    p -= lr * g / (first.sqrt() + 1e-10F);
    break;
  }
}

} // namespace mlctl::nn
