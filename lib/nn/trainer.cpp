#include "nn/trainer.hpp"

#include "nn/rng.hpp"
#include "util/error.hpp"
#include "util/interrupt.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <string>

namespace mlctl::nn {

namespace {

using Eigen::Index;
using Matrix = Eigen::MatrixXf; // column-major: one example per column
using MatrixMap = Eigen::Map<Matrix>;
using ConstMatrixMap = Eigen::Map<const Matrix>;
using VectorMap = Eigen::Map<Eigen::VectorXf>;
using ConstVectorMap = Eigen::Map<const Eigen::VectorXf>;

constexpr float k_input_scale = 1.0F / 255.0F;
// Eigen sizes the blocks of its matrix products from the CPU's cache sizes, and the blocking
// decides the order of the sums: fixed sizes make the bits the same on every x86-64-v3 CPU,
// which matters more than the last few percent of speed on CPUs with bigger caches.
constexpr std::ptrdiff_t k_l1_cache = 32 * 1024;
constexpr std::ptrdiff_t k_l2_cache = 1024 * 1024;
constexpr std::ptrdiff_t k_l3_cache = 8 * 1024 * 1024;
constexpr Index k_eval_batch = 1024;

// Where layer l's weights (out × in, column-major) and biases live in the flat parameter vector.
struct LayerSlot {
  Index in = 0;
  Index out = 0;
  std::size_t weight = 0;
  std::size_t bias = 0;
};

// The network's shape and the per-batch buffers of one forward/backward pass.
struct Buffers {
  std::vector<Matrix> acts;   // acts[0]: input (in × batch); acts[l + 1]: output of layer l
  std::vector<Matrix> deltas; // deltas[l]: dLoss/dZ of layer l (out × batch)
  Eigen::RowVectorXf column_max;
  Eigen::RowVectorXf column_sum;
  Eigen::RowVectorXf example_loss;

  Buffers(const std::vector<LayerSlot>& layers, Index batch, bool with_deltas) {
    acts.emplace_back(layers.front().in, batch);
    for (const auto& layer : layers) {
      acts.emplace_back(layer.out, batch);
      if (with_deltas) {
        deltas.emplace_back(layer.out, batch);
      }
    }
    column_max.resize(batch);
    column_sum.resize(batch);
    example_loss.resize(batch);
  }
};

// A run has diverged when a batch's mean loss is not finite or exceeds this multiple of the
// first batch's (for cross-entropy 100 × ln 10 ≈ 230: the true class gets a probability below
// e^-230). Large learning rates often kill every ReLU and leave the loss huge but finite.
constexpr double k_divergence_factor = 100.0;

std::string format_loss(double loss) {
  if (std::isnan(loss)) {
    return "nan";
  }
  if (std::isinf(loss)) {
    return loss > 0 ? "inf" : "-inf";
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", loss);
  return buf;
}

} // namespace

struct Trainer::Impl {
  std::vector<int> sizes;
  Objective objective;
  TrainerOptions options;
  std::vector<LayerSlot> layers;
  // All weights and biases in one buffer (one optimizer pass per step), each block starting at
  // a 64-byte boundary: Eigen's aligned allocation plus padded offsets make every vectorised
  // loop start at the same place on every run, so the results do not depend on malloc.
  Eigen::VectorXf params;
  Eigen::VectorXf grads;
  Optimizer optimizer;
  Rng rng;
  std::vector<std::uint32_t> order;
  Buffers buffers;
  std::vector<std::uint8_t> batch_labels;
  double first_loss = -1; // mean loss of the first batch ever trained on

  Impl(std::vector<int> sizes_, Objective objective_, const TrainerOptions& options_)
      : sizes(std::move(sizes_)), objective(objective_), options(options_),
        layers(make_layers(sizes)), params(Eigen::VectorXf::Zero(parameter_count(layers))),
        grads(Eigen::VectorXf::Zero(params.size())),
        optimizer(options.optimizer, static_cast<std::size_t>(params.size())), rng(options.seed),
        buffers(layers, static_cast<Index>(options.batch_size), true),
        batch_labels(options.batch_size, 0) {
    initialise();
  }

  static std::vector<LayerSlot> make_layers(const std::vector<int>& sizes) {
    std::vector<LayerSlot> layers;
    std::size_t offset = 0;
    for (std::size_t l = 0; l + 1 < sizes.size(); ++l) {
      LayerSlot slot;
      slot.in = sizes[l];
      slot.out = sizes[l + 1];
      slot.weight = offset;
      offset = padded(offset + static_cast<std::size_t>(slot.in * slot.out));
      slot.bias = offset;
      offset = padded(offset + static_cast<std::size_t>(slot.out));
      layers.push_back(slot);
    }
    return layers;
  }

  static std::size_t padded(std::size_t offset) { return (offset + 15) / 16 * 16; }

  static Index parameter_count(const std::vector<LayerSlot>& layers) {
    const auto& last = layers.back();
    return static_cast<Index>(padded(last.bias + static_cast<std::size_t>(last.out)));
  }

  // He-uniform (ReLU layers) and Glorot-uniform (output layer): U(-a, a) with
  // a = sqrt(6 / fan_in), resp. sqrt(6 / (fan_in + fan_out)). Uniform rather than normal so
  // that the weights need no libm function (Box–Muller's log/cos differ between libms).
  void initialise() {
    for (std::size_t l = 0; l < layers.size(); ++l) {
      const auto& slot = layers[l];
      const bool output = l + 1 == layers.size();
      const double fan =
          output ? static_cast<double>(slot.in + slot.out) : static_cast<double>(slot.in);
      const double limit = std::sqrt(6.0 / fan);
      const auto count = static_cast<std::size_t>(slot.in * slot.out);
      for (std::size_t i = 0; i < count; ++i) {
        params[slot.weight + i] = static_cast<float>((2.0 * rng.uniform() - 1.0) * limit);
      }
    }
  }

  ConstMatrixMap weight(const Eigen::VectorXf& p, std::size_t l) const {
    const auto& s = layers[l];
    return {p.data() + s.weight, s.out, s.in};
  }
  ConstVectorMap bias(const Eigen::VectorXf& p, std::size_t l) const {
    const auto& s = layers[l];
    return {p.data() + s.bias, s.out};
  }

  // Copies examples `indices` into buffers.acts[0] as floats in [0, 1] (one per column).
  void gather(const ImageSet& data, std::span<const std::uint32_t> indices, Buffers& b,
              std::uint8_t* labels) const {
    const auto features = static_cast<Index>(data.features);
    using Pixels = Eigen::Map<const Eigen::Matrix<std::uint8_t, Eigen::Dynamic, 1>>;
    for (std::size_t j = 0; j < indices.size(); ++j) {
      const std::size_t i = indices[j];
      b.acts[0].col(static_cast<Index>(j)) =
          Pixels(data.pixels.data() + i * data.features, features).cast<float>() * k_input_scale;
      if (labels != nullptr) {
        labels[j] = data.labels[i];
      }
    }
  }

  // Forward pass over the first `n` columns: hidden layers ReLU, then logits (classify, the
  // softmax is applied by `loss`) or the sigmoid reconstruction.
  void forward(Buffers& b, Index n) const {
    for (std::size_t l = 0; l < layers.size(); ++l) {
      auto out = b.acts[l + 1].leftCols(n);
      out.noalias() = weight(params, l) * b.acts[l].leftCols(n);
      const auto bl = bias(params, l);
      if (l + 1 < layers.size()) {
        out.array() = (out.array().colwise() + bl.array()).cwiseMax(0.0F);
      } else if (objective == Objective::reconstruct) {
        out.array() = (out.array().colwise() + bl.array()).logistic();
      } else {
        out.colwise() += bl;
      }
    }
  }

  // Computes each example's loss into b.example_loss and, when `delta` is set, the gradient
  // of the mean batch loss with respect to the output layer's pre-activation into it.
  // Returns the number of correct predictions (classify).
  std::size_t loss(Buffers& b, Index n, const std::uint8_t* labels, Matrix* delta) const {
    const auto& out = b.acts.back();
    auto example_loss = b.example_loss.head(n);
    if (objective == Objective::reconstruct) {
      const auto x = b.acts[0].leftCols(n);
      const auto y = out.leftCols(n);
      const auto features = static_cast<float>(x.rows());
      if (delta != nullptr) {
        auto d = delta->leftCols(n);
        d = y - x;
        example_loss = d.colwise().squaredNorm() / features;
        // d(mean over batch of mean squared error)/dz through the sigmoid: 2 (y - x) y (1 - y).
        const float scale = 2.0F / (features * static_cast<float>(n));
        d.array() *= scale * y.array() * (1.0F - y.array());
      } else {
        example_loss = (y - x).colwise().squaredNorm() / features;
      }
      return 0;
    }
    const auto z = out.leftCols(n);
    auto m = b.column_max.head(n);
    auto s = b.column_sum.head(n);
    m = z.colwise().maxCoeff();
    std::size_t correct = 0;
    // Per example: argmax and the logit of the true class (10 values each; the matrix work
    // stays in the vectorised expressions below).
    for (Index j = 0; j < n; ++j) {
      Index predicted = 0;
      z.col(j).maxCoeff(&predicted);
      correct += static_cast<std::size_t>(predicted == labels[j]);
      example_loss[j] = m[j] - z(labels[j], j); // + log(sum exp(z - m)) below
    }
    if (delta != nullptr) {
      auto d = delta->leftCols(n);
      d = (z.rowwise() - m).array().exp().matrix();
      s = d.colwise().sum();
      example_loss.array() += s.array().log();
      // softmax - onehot, averaged over the batch.
      const float inv_n = 1.0F / static_cast<float>(n);
      d.array().rowwise() *= s.array().inverse() * inv_n;
      for (Index j = 0; j < n; ++j) {
        d(labels[j], j) -= inv_n;
      }
    } else {
      s = (z.rowwise() - m).array().exp().matrix().colwise().sum();
      example_loss.array() += s.array().log();
    }
    return correct;
  }

  // Runs `fn(first_index, n)` after a forward pass of each evaluation batch of `data`.
  template <class Fn>
  void for_each_batch(const ImageSet& data, Buffers& b, std::uint8_t* labels, Fn&& fn) const {
    const std::size_t count = data.count();
    std::vector<std::uint32_t> indices;
    for (std::size_t begin = 0; begin < count; begin += k_eval_batch) {
      util::throw_if_interrupted();
      const std::size_t n = std::min<std::size_t>(k_eval_batch, count - begin);
      indices.resize(n);
      std::iota(indices.begin(), indices.end(), static_cast<std::uint32_t>(begin));
      gather(data, indices, b, labels);
      forward(b, static_cast<Index>(n));
      fn(begin, static_cast<Index>(n));
    }
  }

  // Backward pass: parameter gradients of the mean batch loss into `grads`.
  void backward(Index n) {
    auto& b = buffers;
    for (std::size_t l = layers.size(); l-- > 0;) {
      const auto& slot = layers[l];
      const auto d = b.deltas[l].leftCols(n);
      MatrixMap dw(grads.data() + slot.weight, slot.out, slot.in);
      VectorMap db(grads.data() + slot.bias, slot.out);
      dw.noalias() = d * b.acts[l].leftCols(n).transpose();
      db.noalias() = d.rowwise().sum();
      if (l > 0) {
        auto prev = b.deltas[l - 1].leftCols(n);
        prev.noalias() = weight(params, l).transpose() * d;
        // ReLU': pass the gradient where the layer's output was positive.
        prev = (b.acts[l].leftCols(n).array() > 0.0F).select(prev, 0.0F);
      }
    }
  }
};

Trainer::Trainer(std::vector<int> sizes, Objective objective, const TrainerOptions& options) {
  if (sizes.size() < 2) {
    throw Error(ErrorKind::invalid_input, "a network needs an input and an output size");
  }
  for (const int size : sizes) {
    if (size < 1) {
      throw Error(ErrorKind::invalid_input,
                  "layer sizes must be positive, got " + std::to_string(size));
    }
  }
  if (options.batch_size == 0) {
    throw Error(ErrorKind::invalid_input, "batch size must be at least 1");
  }
  if (options.threads < 1) {
    throw Error(ErrorKind::invalid_input, "threads must be at least 1");
  }
  if (objective == Objective::reconstruct && sizes.front() != sizes.back()) {
    throw Error(ErrorKind::invalid_input, "an autoencoder's output size must equal its input size");
  }
  Eigen::setNbThreads(options.threads);
  Eigen::setCpuCacheSizes(k_l1_cache, k_l2_cache, k_l3_cache);
  m_impl = std::make_unique<Impl>(std::move(sizes), objective, options);
}

Trainer::~Trainer() = default;

namespace {

void check_data(const ImageSet& data, int input, Objective objective) {
  if (data.features != static_cast<std::size_t>(input) || data.pixels.size() % data.features != 0) {
    throw Error(ErrorKind::invalid_input, "the images have " + std::to_string(data.features) +
                                              " pixels but the network takes " +
                                              std::to_string(input));
  }
  if (objective == Objective::classify && data.labels.size() != data.count()) {
    throw Error(ErrorKind::invalid_input, std::to_string(data.count()) + " images but " +
                                              std::to_string(data.labels.size()) + " labels");
  }
}

void check_labels(const ImageSet& data, int classes) {
  for (const auto label : data.labels) {
    if (label >= classes) {
      throw Error(ErrorKind::invalid_input, "label " + std::to_string(label) + " is outside 0.." +
                                                std::to_string(classes - 1));
    }
  }
}

} // namespace

std::size_t Trainer::steps_per_epoch(std::size_t count) const noexcept {
  const auto batch = m_impl->options.batch_size;
  return (count + batch - 1) / batch;
}

std::uint64_t Trainer::steps_done() const noexcept {
  return m_impl->optimizer.steps();
}

EpochStats Trainer::train_epoch(const ImageSet& data, std::size_t max_steps,
                                const StepFn& on_step) {
  auto& impl = *m_impl;
  check_data(data, impl.sizes.front(), impl.objective);
  const bool classify = impl.objective == Objective::classify;
  if (classify) {
    check_labels(data, impl.sizes.back());
  }
  const std::size_t count = data.count();
  impl.order.resize(count);
  std::iota(impl.order.begin(), impl.order.end(), 0U);
  impl.rng.shuffle(impl.order);

  EpochStats stats;
  std::size_t steps = steps_per_epoch(count);
  if (max_steps != 0) {
    steps = std::min(steps, max_steps);
  }
  double loss_sum = 0;
  std::size_t correct = 0;
  const std::size_t batch = impl.options.batch_size;
  for (std::size_t step = 0; step < steps; ++step) {
    util::throw_if_interrupted();
    const std::size_t begin = step * batch;
    const std::size_t n = std::min(batch, count - begin);
    const auto indices = std::span<const std::uint32_t>(impl.order).subspan(begin, n);
    impl.gather(data, indices, impl.buffers, classify ? impl.batch_labels.data() : nullptr);
    const auto cols = static_cast<Index>(n);
    impl.forward(impl.buffers, cols);
    correct += impl.loss(impl.buffers, cols, impl.batch_labels.data(), &impl.buffers.deltas.back());
    const double batch_loss = impl.buffers.example_loss.head(cols).cast<double>().sum();
    const double mean_loss = batch_loss / static_cast<double>(n);
    if (impl.first_loss < 0 && std::isfinite(mean_loss)) {
      impl.first_loss = mean_loss;
    }
    if (!std::isfinite(mean_loss) || mean_loss > k_divergence_factor * impl.first_loss) {
      throw Error(ErrorKind::invalid_input,
                  "training diverged at step " + std::to_string(impl.optimizer.steps() + 1) +
                      " (loss " + format_loss(mean_loss) + "); lower --learning-rate");
    }
    impl.backward(cols);
    impl.optimizer.step(
        std::span<float>(impl.params.data(), static_cast<std::size_t>(impl.params.size())),
        std::span<const float>(impl.grads.data(), static_cast<std::size_t>(impl.grads.size())));
    loss_sum += batch_loss;
    stats.examples += n;
    stats.steps = step + 1;
    if (on_step) {
      StepInfo info;
      info.step = step + 1;
      info.steps = steps;
      info.total = impl.optimizer.steps();
      info.loss = loss_sum / static_cast<double>(stats.examples);
      info.accuracy = static_cast<double>(correct) / static_cast<double>(stats.examples);
      on_step(info);
    }
  }
  if (stats.examples > 0) {
    stats.loss = loss_sum / static_cast<double>(stats.examples);
    stats.accuracy = static_cast<double>(correct) / static_cast<double>(stats.examples);
  }
  return stats;
}

Evaluation Trainer::evaluate(const ImageSet& data) const {
  const auto& impl = *m_impl;
  check_data(data, impl.sizes.front(), impl.objective);
  const bool classify = impl.objective == Objective::classify;
  const auto classes = static_cast<std::size_t>(impl.sizes.back());
  if (classify) {
    check_labels(data, impl.sizes.back());
  }
  Buffers b(impl.layers, k_eval_batch, false);
  std::vector<std::uint8_t> labels(k_eval_batch, 0);
  Evaluation result;
  if (classify) {
    result.confusion.assign(classes, std::vector<std::int64_t>(classes, 0));
  }
  double loss_sum = 0;
  std::size_t correct = 0;
  impl.for_each_batch(data, b, classify ? labels.data() : nullptr, [&](std::size_t, Index n) {
    correct += impl.loss(b, n, labels.data(), nullptr);
    loss_sum += b.example_loss.head(n).cast<double>().sum();
    if (classify) {
      for (Index j = 0; j < n; ++j) {
        Index predicted = 0;
        b.acts.back().col(j).maxCoeff(&predicted);
        ++result
              .confusion[labels[static_cast<std::size_t>(j)]][static_cast<std::size_t>(predicted)];
      }
    }
  });
  const std::size_t count = data.count();
  if (count > 0) {
    result.loss = loss_sum / static_cast<double>(count);
    result.accuracy = static_cast<double>(correct) / static_cast<double>(count);
  }
  return result;
}

std::vector<float> Trainer::example_losses(const ImageSet& data) const {
  const auto& impl = *m_impl;
  check_data(data, impl.sizes.front(), impl.objective);
  if (impl.objective == Objective::classify) {
    check_labels(data, impl.sizes.back());
  }
  Buffers b(impl.layers, k_eval_batch, false);
  std::vector<std::uint8_t> labels(k_eval_batch, 0);
  std::vector<float> losses(data.count(), 0.0F);
  const bool classify = impl.objective == Objective::classify;
  impl.for_each_batch(data, b, classify ? labels.data() : nullptr, [&](std::size_t begin, Index n) {
    impl.loss(b, n, labels.data(), nullptr);
    Eigen::Map<Eigen::RowVectorXf>(losses.data() + begin, n) = b.example_loss.head(n);
  });
  return losses;
}

Mlp Trainer::to_mlp() const {
  const auto& impl = *m_impl;
  Mlp mlp;
  for (std::size_t l = 0; l < impl.layers.size(); ++l) {
    DenseLayer layer;
    layer.weight = impl.weight(impl.params, l);
    layer.bias = impl.bias(impl.params, l);
    const bool output = l + 1 == impl.layers.size();
    layer.activation = !output ? Activation::relu
                               : (impl.objective == Objective::classify ? Activation::softmax
                                                                        : Activation::sigmoid);
    mlp.layers.push_back(std::move(layer));
  }
  return mlp;
}

} // namespace mlctl::nn
