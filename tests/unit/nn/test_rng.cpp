#include "nn/rng.hpp"

#include <algorithm>
#include <doctest/doctest.h>
#include <numeric>
#include <vector>

using mlctl::nn::Rng;

TEST_CASE("Rng is xoshiro256** seeded by splitmix64") {
  // Reference values from an independent transcription of the published algorithms.
  Rng a(42);
  CHECK(a.next_u64() == 0x15780b2e0c2ec716ULL);
  CHECK(a.next_u64() == 0x6104d9866d113a7eULL);
  CHECK(a.next_u64() == 0xae17533239e499a1ULL);
  Rng zero(0);
  CHECK(zero.next_u64() == 0x99ec5f36cb75f2b4ULL);
  CHECK(zero.next_u64() == 0xbf6e1f784956452aULL);
}

TEST_CASE("Rng::uniform stays in 0..1 (1 excluded) and has the right mean") {
  Rng rng(7);
  double sum = 0;
  constexpr int k_n = 100000;
  for (int i = 0; i < k_n; ++i) {
    const double u = rng.uniform();
    REQUIRE(u >= 0.0);
    REQUIRE(u < 1.0);
    sum += u;
  }
  CHECK(sum / k_n == doctest::Approx(0.5).epsilon(0.01));
}

TEST_CASE("Rng::below is in range and covers every value about equally") {
  Rng rng(1);
  std::vector<int> counts(10, 0);
  for (int i = 0; i < 100000; ++i) {
    const auto v = rng.below(10);
    REQUIRE(v < 10);
    ++counts[v];
  }
  for (const int c : counts) {
    CHECK(c > 9500);
    CHECK(c < 10500);
  }
  CHECK(rng.below(1) == 0);
}

TEST_CASE("Rng::shuffle gives a permutation that depends only on the seed") {
  std::vector<std::uint32_t> a(1000);
  std::iota(a.begin(), a.end(), 0U);
  auto b = a;
  auto c = a;
  Rng(5).shuffle(a);
  Rng(5).shuffle(b);
  Rng(6).shuffle(c);
  CHECK(a == b);
  CHECK(a != c);
  auto sorted = a;
  std::sort(sorted.begin(), sorted.end());
  for (std::uint32_t i = 0; i < sorted.size(); ++i) {
    REQUIRE(sorted[i] == i);
  }
  std::size_t fixed_points = 0;
  for (std::uint32_t i = 0; i < a.size(); ++i) {
    fixed_points += a[i] == i ? 1 : 0;
  }
  CHECK(fixed_points < 10);
}
