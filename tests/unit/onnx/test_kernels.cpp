#include "onnx/kernels.hpp"
#include "onnx_test_util.hpp"

#include <cstring>
#include <doctest/doctest.h>

namespace kernels = mlctl::onnx::kernels;
using mlctl::onnx::test::noise;

namespace {

// Checks kernels::gemm against a double-precision product for an m×k times k×n problem.
void check_gemm(std::int64_t m, std::int64_t k, std::int64_t n, bool transposed, bool with_bias,
                bool relu) {
  std::uint32_t seed = static_cast<std::uint32_t>(m * 1000003 + k * 1009 + n);
  std::vector<float> x(static_cast<std::size_t>(m * k));
  std::vector<float> b(static_cast<std::size_t>(k * n));
  for (auto& v : x)
    v = noise(seed, 1.0f);
  for (auto& v : b)
    v = noise(seed, 1.0f);
  std::vector<float> packed;
  kernels::pack(b.data(), k, n, transposed, 0.5f, packed);
  CHECK(packed.size() == kernels::packed_size(k, n));
  std::vector<float> bias(static_cast<std::size_t>((n + 15) / 16 * 16), 0.0f);
  for (std::int64_t j = 0; j < n; ++j)
    bias[static_cast<std::size_t>(j)] = noise(seed, 1.0f);
  // Write into a wider output (row stride n + 3) to check that nothing spills past n columns.
  const std::int64_t ldy = n + 3;
  std::vector<float> y(static_cast<std::size_t>(m * ldy), 12345.0f);
  kernels::gemm(x.data(), m, k, packed.data(), k, n, with_bias ? bias.data() : nullptr, relu,
                y.data(), ldy);
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < n; ++j) {
      double s = with_bias ? bias[static_cast<std::size_t>(j)] : 0.0;
      for (std::int64_t kk = 0; kk < k; ++kk) {
        const float bv = transposed ? b[static_cast<std::size_t>(j * k + kk)]
                                    : b[static_cast<std::size_t>(kk * n + j)];
        s += static_cast<double>(x[static_cast<std::size_t>(i * k + kk)]) * 0.5 * bv;
      }
      if (relu)
        s = std::max(0.0, s);
      REQUIRE(y[static_cast<std::size_t>(i * ldy + j)] ==
              doctest::Approx(s).epsilon(1e-5).scale(1.0));
    }
    for (std::int64_t j = n; j < ldy; ++j) {
      REQUIRE(y[static_cast<std::size_t>(i * ldy + j)] == 12345.0f);
    }
  }
}

} // namespace

TEST_CASE("gemm matches a reference product for every row-block and panel tail on every kernel") {
  // Each kernel this CPU has: portable, AVX2 and AVX-512 (m up to 25 covers the 12-row and
  // 6-row blocks and all their tails; n covers odd panel counts, partial panels and the
  // one-row kernel's groups of four panels).
  const auto best = kernels::isa();
  for (const auto isa : {kernels::Isa::generic, kernels::Isa::avx2, kernels::Isa::avx512}) {
    if (static_cast<int>(isa) > static_cast<int>(best)) {
      continue;
    }
    kernels::limit_isa(isa);
    REQUIRE(kernels::isa() == isa);
    for (std::int64_t m : {1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 25}) {
      for (std::int64_t n : {1, 10, 16, 17, 32, 33, 47, 60, 70}) {
        for (std::int64_t k : {1, 5, 7, 64}) {
          CAPTURE(static_cast<int>(isa));
          CAPTURE(m);
          CAPTURE(n);
          CAPTURE(k);
          check_gemm(m, k, n, /*transposed=*/true, /*with_bias=*/true, /*relu=*/false);
          check_gemm(m, k, n, /*transposed=*/false, /*with_bias=*/false, /*relu=*/true);
        }
      }
    }
  }
  kernels::limit_isa(kernels::Isa::avx512);
  CHECK(kernels::isa() == best);
}

TEST_CASE("gemm on a dense-layer shape") {
  check_gemm(256, 784, 256, true, true, true);
  check_gemm(1, 784, 256, true, true, false);
}

TEST_CASE("gemv_skip_zeros gives gemm's bits for one mostly-zero row, and declines a dense one") {
  // Every shape of the one-row kernels (k around the 6 accumulator sets and their tail, n with
  // partial and odd panel counts and groups of 4), on each vector kernel this CPU has.
  const auto best = kernels::isa();
  for (const auto isa : {kernels::Isa::avx2, kernels::Isa::avx512}) {
    if (static_cast<int>(isa) > static_cast<int>(best)) {
      continue;
    }
    kernels::limit_isa(isa);
    for (std::int64_t k : {1, 5, 6, 7, 13, 64, 784}) {
      for (std::int64_t n : {1, 10, 16, 17, 33, 64, 65, 80, 256}) {
        std::uint32_t seed = static_cast<std::uint32_t>(k * 1009 + n);
        std::vector<float> b(static_cast<std::size_t>(k * n));
        for (auto& v : b)
          v = noise(seed, 1.0f);
        std::vector<float> packed;
        kernels::pack(b.data(), k, n, true, 0.5f, packed);
        std::vector<float> bias(static_cast<std::size_t>((n + 15) / 16 * 16));
        for (auto& v : bias)
          v = noise(seed, 1.0f);
        for (const int zeros_in_8 : {4, 6, 7, 8}) {
          std::vector<float> x(static_cast<std::size_t>(k));
          for (std::size_t i = 0; i < x.size(); ++i)
            x[i] = (i * 5 + 3) % 8 < static_cast<std::size_t>(zeros_in_8)
                       ? (i % 2 != 0 ? -0.0f : 0.0f)
                       : noise(seed, 1.0f);
          for (const bool relu : {false, true}) {
            const float* bp = relu ? nullptr : bias.data();
            std::vector<float> dense(static_cast<std::size_t>(n) + 3, 7.0f);
            std::vector<float> sparse = dense;
            kernels::gemm(x.data(), 1, k, packed.data(), k, n, bp, relu, dense.data(), n);
            CAPTURE(static_cast<int>(isa));
            CAPTURE(k);
            CAPTURE(n);
            CAPTURE(zeros_in_8);
            REQUIRE(
                kernels::gemv_skip_zeros(x.data(), packed.data(), k, n, bp, relu, sparse.data()));
            REQUIRE(std::memcmp(dense.data(), sparse.data(), dense.size() * sizeof(float)) == 0);
          }
        }
        const std::vector<float> x(static_cast<std::size_t>(k), 0.25f);
        std::vector<float> y(static_cast<std::size_t>(n), 7.0f);
        CHECK_FALSE(
            kernels::gemv_skip_zeros(x.data(), packed.data(), k, n, nullptr, false, y.data()));
        CHECK(y == std::vector<float>(static_cast<std::size_t>(n), 7.0f));
      }
    }
  }
  // Past 2^18 inputs (and on the portable kernel) it declines before reading the weights.
  const std::vector<float> packed(kernels::packed_size(8, 1), 1.0f);
  const std::vector<float> zeros((1 << 18) + 1, 0.0f);
  float y = 0.0f;
  CHECK_FALSE(kernels::gemv_skip_zeros(zeros.data(), packed.data(), (1 << 18) + 1, 1, nullptr, false, &y));
  kernels::limit_isa(kernels::Isa::generic);
  CHECK_FALSE(kernels::gemv_skip_zeros(zeros.data(), packed.data(), 8, 1, nullptr, false, &y));
  kernels::limit_isa(kernels::Isa::avx512);
}

TEST_CASE("softmax and log-softmax along the inner and a strided axis") {
  const std::vector<float> x = {1.0f, 2.0f, 3.0f, -1.0f, 0.0f, 1000.0f};
  std::vector<float> y(6);
  kernels::softmax(x.data(), y.data(), 2, 3, 1, false);
  CHECK(y[0] == doctest::Approx(0.0900306));
  CHECK(y[2] == doctest::Approx(0.6652410));
  CHECK(y[5] == doctest::Approx(1.0)); // no overflow for large logits
  kernels::softmax(x.data(), y.data(), 2, 3, 1, true);
  CHECK(y[0] == doctest::Approx(std::log(0.0900306)));
  // The same array seen as 1 × 2 × 3, softmax over the middle axis of length 2.
  kernels::softmax(x.data(), y.data(), 1, 2, 3, false);
  CHECK(y[0] + y[3] == doctest::Approx(1.0));
  CHECK(y[0] == doctest::Approx(1.0 / (1.0 + std::exp(-2.0))));
}

TEST_CASE("activations") {
  const std::vector<float> x = {-2.0f, 0.0f, 3.0f};
  std::vector<float> y(3);
  kernels::relu(x.data(), y.data(), 3);
  CHECK(y == std::vector<float>{0.0f, 0.0f, 3.0f});
  kernels::sigmoid(x.data(), y.data(), 3);
  CHECK(y[0] == doctest::Approx(1.0 / (1.0 + std::exp(2.0))));
  CHECK(y[1] == doctest::Approx(0.5));
  kernels::tanh(x.data(), y.data(), 3);
  CHECK(y[2] == doctest::Approx(std::tanh(3.0)));
}
