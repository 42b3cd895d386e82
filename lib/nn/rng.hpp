#pragma once
// The deterministic random numbers of training: xoshiro256** seeded through splitmix64.
// Everything derived from it (weight init, batch order) uses integer arithmetic and IEEE
// +,*,sqrt only, so a seed gives the same numbers with every compiler, libm and CPU.

#include <cstdint>
#include <span>

namespace mlctl::nn {

class Rng {
public:
  // Expands `seed` into the 256-bit state with splitmix64 (any seed, 0 included, is fine).
  explicit Rng(std::uint64_t seed);

  // Returns the next 64 random bits (xoshiro256**).
  std::uint64_t next_u64();
  // Returns a double uniform in [0, 1) with 53 random bits.
  double uniform();
  // Returns an integer uniform in [0, n) without modulo bias. Precondition: n > 0.
  std::uint64_t below(std::uint64_t n);
  // Shuffles `values` in place (Fisher–Yates, drawing with `below`).
  void shuffle(std::span<std::uint32_t> values);

private:
  std::uint64_t m_state[4];
};

} // namespace mlctl::nn
