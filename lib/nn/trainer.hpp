#pragma once
// Mini-batch training of dense networks on uint8 images, on Eigen: forward and backward passes
// are matrix products over a whole batch (examples are columns), every buffer is allocated once.
// Two objectives: a classifier (ReLU hidden layers, softmax cross-entropy) and an autoencoder
// (ReLU hidden layers, sigmoid output, mean squared error against the input).

#include "nn/mlp.hpp"
#include "nn/optimizer.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

namespace mlctl::nn {

enum class Objective { classify, reconstruct };

// A borrowed view of `count()` examples of `features` uint8 pixels each (C order), scaled by
// 1/255 when fed to the network; `labels` (one per example, 0..classes-1) for `classify`.
struct ImageSet {
  std::span<const std::uint8_t> pixels;
  std::span<const std::uint8_t> labels;
  std::size_t features = 784;

  std::size_t count() const noexcept { return features == 0 ? 0 : pixels.size() / features; }
};

struct TrainerOptions {
  OptimizerOptions optimizer;
  std::size_t batch_size = 256;
  std::uint64_t seed = 42;
  // Threads of Eigen's matrix products (OpenMP); the trainer starts no other thread.
  int threads = 1;
};

// Where an epoch stands, passed to the step callback after every optimizer step.
struct StepInfo {
  std::size_t step = 0;    // steps done in this epoch, 1-based
  std::size_t steps = 0;   // steps this epoch will run
  std::uint64_t total = 0; // optimizer steps since the trainer was created
  double loss = 0;         // mean loss of the examples seen so far in this epoch
  double accuracy = 0;     // classify only: fraction of them predicted right (before the update)
};
using StepFn = std::function<void(const StepInfo&)>;

struct EpochStats {
  double loss = 0;     // mean over the examples of the epoch, as the steps saw them
  double accuracy = 0; // classify only
  std::size_t steps = 0;
  std::size_t examples = 0;
};

struct Evaluation {
  double loss = 0;                                  // mean loss
  double accuracy = 0;                              // classify only
  std::vector<std::vector<std::int64_t>> confusion; // classify only: [true class][predicted]
};

class Trainer {
public:
  // Builds a network of `sizes` (input, hidden..., output), e.g. {784, 256, 64, 10}, with
  // He-uniform weights for ReLU layers and Glorot-uniform for the output layer drawn from
  // `options.seed`, zero biases. Sets Eigen's thread count to `options.threads`.
  // Throws `Error{invalid_input}` for fewer than two sizes, a size < 1, batch size 0 or
  // threads < 1.
  Trainer(std::vector<int> sizes, Objective objective, const TrainerOptions& options);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // Runs one epoch: the examples in an order drawn from the seed (a new permutation per
  // epoch), one optimizer step per batch, at most `max_steps` steps (0: the whole pass).
  // Throws `Error{invalid_input}` "training diverged at step N (loss nan); lower
  // --learning-rate" when a batch's mean loss is not finite or above 100 times the first
  // batch's, `Error{invalid_input}` when `data` does
  // not match the network, `Error{interrupted}` after a signal.
  EpochStats train_epoch(const ImageSet& data, std::size_t max_steps = 0,
                         const StepFn& on_step = {});

  // Returns the mean loss (and for `classify` the accuracy and confusion matrix) of `data`.
  Evaluation evaluate(const ImageSet& data) const;
  // Returns each example's loss: cross-entropy (`classify`) or mean squared error over the
  // features (`reconstruct`, the autoencoder's reconstruction error).
  std::vector<float> example_losses(const ImageSet& data) const;

  // Returns the steps per epoch for `count` examples (the last batch may be smaller).
  std::size_t steps_per_epoch(std::size_t count) const noexcept;
  // Returns the optimizer steps done so far.
  std::uint64_t steps_done() const noexcept;
  // Returns a copy of the current weights: ReLU hidden layers, then softmax (`classify`) or
  // sigmoid (`reconstruct`).
  Mlp to_mlp() const;

private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

} // namespace mlctl::nn
