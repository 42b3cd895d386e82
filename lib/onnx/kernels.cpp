#include "onnx/kernels.hpp"

#include <Eigen/Core>
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define MLCTL_ONNX_X86 1
#endif

namespace mlctl::onnx::kernels {

namespace {

// Element-wise functions run on fixed-size aligned blocks, so every element takes Eigen's
// vectorized path: on unaligned maps Eigen computes the first elements with the scalar
// function, which makes results depend on buffer addresses (by an ulp), and outputs must not
// change with the thread or the batch position that computed them.
using Block = Eigen::Array<float, 16, 1>;

template <class F> void map_blocks(const float* x, float* y, std::size_t count, F f) {
  constexpr std::size_t k_block = 16;
  Block in;
  std::size_t i = 0;
  for (; i + k_block <= count; i += k_block) {
    std::memcpy(in.data(), x + i, sizeof in);
    const Block out = f(in);
    std::memcpy(y + i, out.data(), sizeof out);
  }
  if (i < count) {
    in.setZero();
    std::memcpy(in.data(), x + i, (count - i) * sizeof(float));
    const Block out = f(in);
    std::memcpy(y + i, out.data(), (count - i) * sizeof(float));
  }
}

// Portable micro-kernel: one row of x against one panel (the compiler vectorizes the 16-wide
// inner loop for whatever the build targets).
void panel_row_generic(const float* x, const float* panel, std::int64_t k, const float* bias,
                       bool relu, float* y, std::int64_t ncols) {
  float acc[k_panel] = {};
  for (std::int64_t kk = 0; kk < k; ++kk) {
    const float xv = x[kk];
    const float* w = panel + kk * k_panel;
    for (std::int64_t j = 0; j < k_panel; ++j) {
      acc[j] += xv * w[j];
    }
  }
  for (std::int64_t j = 0; j < ncols; ++j) {
    float v = acc[j] + (bias != nullptr ? bias[j] : 0.0f);
    y[j] = relu ? std::max(v, 0.0f) : v;
  }
}

void gemm_generic(const float* x, std::int64_t m, std::int64_t ldx, const float* packed,
                  std::int64_t k, std::int64_t n, const float* bias, bool relu, float* y,
                  std::int64_t ldy) {
  const std::int64_t panels = (n + k_panel - 1) / k_panel;
  for (std::int64_t p = 0; p < panels; ++p) {
    const float* panel = packed + p * k * k_panel;
    const std::int64_t ncols = std::min(k_panel, n - p * k_panel);
    for (std::int64_t i = 0; i < m; ++i) {
      panel_row_generic(x + i * ldx, panel, k, bias != nullptr ? bias + p * k_panel : nullptr, relu,
                        y + i * ldy + p * k_panel, ncols);
    }
  }
}

#ifdef MLCTL_ONNX_X86

// The accumulator sets of the one-row kernels (KU for MR = 1): k is split over them so that
// the FMA latency is hidden; `gemv_skip_zeros` adds in the same sets to give the same bits.
constexpr int k_sets = 6;

// The AVX2/FMA micro-kernel: MR rows of x times one 16-column panel, with MR*KU pairs of ymm
// accumulators (at most 6 pairs: 12 accumulators + the broadcast + loads fit the 16 registers).
// Small MR splits k over KU accumulator sets so the FMA latency is hidden even for one row.
// The accumulators are named variables (not an array): GCC keeps arrays of vectors on the stack.
#define MLCTL_ACC_DECL(s) __m256 c##s##a = _mm256_setzero_ps(), c##s##b = _mm256_setzero_ps();
#define MLCTL_ACC_STEP(s, kk, nslots)                                                              \
  if constexpr ((s) < (nslots)) {                                                                  \
    constexpr int r = (s) % MR;                                                                    \
    constexpr int u = (s) / MR;                                                                    \
    const float* bp = panel + ((kk) + u) * k_panel;                                                \
    const __m256 a = _mm256_broadcast_ss(x + r * ldx + (kk) + u);                                  \
    c##s##a = _mm256_fmadd_ps(a, _mm256_loadu_ps(bp), c##s##a);                                    \
    c##s##b = _mm256_fmadd_ps(a, _mm256_loadu_ps(bp + 8), c##s##b);                                \
  }
#define MLCTL_ACC_SUM(s)                                                                           \
  if constexpr ((s) < MR * KU) {                                                                   \
    if ((s) % MR == r) {                                                                           \
      lo = _mm256_add_ps(lo, c##s##a);                                                             \
      hi = _mm256_add_ps(hi, c##s##b);                                                             \
    }                                                                                              \
  }

template <int MR, int KU>
__attribute__((target("avx2,fma"), always_inline)) inline void
panel_rows_avx2(const float* x, std::int64_t ldx, const float* panel, std::int64_t k,
                const float* bias, bool relu, float* y, std::int64_t ldy, std::int64_t ncols) {
  static_assert(MR * KU <= 6);
  MLCTL_ACC_DECL(0)
  MLCTL_ACC_DECL(1)
  MLCTL_ACC_DECL(2)
  MLCTL_ACC_DECL(3)
  MLCTL_ACC_DECL(4)
  MLCTL_ACC_DECL(5)
  std::int64_t kk = 0;
  for (; kk + KU <= k; kk += KU) {
    MLCTL_ACC_STEP(0, kk, MR * KU)
    MLCTL_ACC_STEP(1, kk, MR * KU)
    MLCTL_ACC_STEP(2, kk, MR * KU)
    MLCTL_ACC_STEP(3, kk, MR * KU)
    MLCTL_ACC_STEP(4, kk, MR * KU)
    MLCTL_ACC_STEP(5, kk, MR * KU)
  }
  for (; kk < k; ++kk) {
    MLCTL_ACC_STEP(0, kk, MR)
    MLCTL_ACC_STEP(1, kk, MR)
    MLCTL_ACC_STEP(2, kk, MR)
    MLCTL_ACC_STEP(3, kk, MR)
    MLCTL_ACC_STEP(4, kk, MR)
    MLCTL_ACC_STEP(5, kk, MR)
  }
  const __m256 bias_lo = bias != nullptr ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
  const __m256 bias_hi = bias != nullptr ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
  for (int r = 0; r < MR; ++r) {
    __m256 lo = bias_lo;
    __m256 hi = bias_hi;
    MLCTL_ACC_SUM(0)
    MLCTL_ACC_SUM(1)
    MLCTL_ACC_SUM(2)
    MLCTL_ACC_SUM(3)
    MLCTL_ACC_SUM(4)
    MLCTL_ACC_SUM(5)
    if (relu) {
      lo = _mm256_max_ps(lo, _mm256_setzero_ps());
      hi = _mm256_max_ps(hi, _mm256_setzero_ps());
    }
    float* out = y + r * ldy;
    if (ncols == k_panel) {
      _mm256_storeu_ps(out, lo);
      _mm256_storeu_ps(out + 8, hi);
    } else {
      alignas(32) float tmp[k_panel];
      _mm256_store_ps(tmp, lo);
      _mm256_store_ps(tmp + 8, hi);
      std::memcpy(out, tmp, static_cast<std::size_t>(ncols) * sizeof(float));
    }
  }
}

#undef MLCTL_ACC_DECL
#undef MLCTL_ACC_STEP
#undef MLCTL_ACC_SUM

__attribute__((target("avx2,fma"))) void gemm_avx2(const float* x, std::int64_t m, std::int64_t ldx,
                                                   const float* packed, std::int64_t k,
                                                   std::int64_t n, const float* bias, bool relu,
                                                   float* y, std::int64_t ldy) {
  const std::int64_t panels = (n + k_panel - 1) / k_panel;
  // Panels outside, rows inside: a panel (k×16 floats) stays in L1/L2 while the rows stream.
  for (std::int64_t p = 0; p < panels; ++p) {
    const float* panel = packed + p * k * k_panel;
    const float* pb = bias != nullptr ? bias + p * k_panel : nullptr;
    const std::int64_t ncols = std::min(k_panel, n - p * k_panel);
    float* yp = y + p * k_panel;
    std::int64_t i = 0;
    for (; i + 6 <= m; i += 6) {
      panel_rows_avx2<6, 1>(x + i * ldx, ldx, panel, k, pb, relu, yp + i * ldy, ldy, ncols);
    }
    const float* xr = x + i * ldx;
    float* yr = yp + i * ldy;
    switch (m - i) {
    case 5:
      panel_rows_avx2<5, 1>(xr, ldx, panel, k, pb, relu, yr, ldy, ncols);
      break;
    case 4:
      panel_rows_avx2<4, 1>(xr, ldx, panel, k, pb, relu, yr, ldy, ncols);
      break;
    case 3:
      panel_rows_avx2<3, 2>(xr, ldx, panel, k, pb, relu, yr, ldy, ncols);
      break;
    case 2:
      panel_rows_avx2<2, 3>(xr, ldx, panel, k, pb, relu, yr, ldy, ncols);
      break;
    case 1:
      panel_rows_avx2<1, k_sets>(xr, ldx, panel, k, pb, relu, yr, ldy, ncols);
      break;
    default:
      break;
    }
  }
}

// The AVX-512 micro-kernel (run-time dispatch on CPUs that have it; the build itself targets
// x86-64-v3): MR rows of x times two adjacent 16-column panels, one zmm per panel and row, so
// a broadcast feeds two FMAs. Same packing as the AVX2 kernel; with KU = 1 it sums in the same
// order, so both give the same bits for MR >= 4. About twice the AVX2 kernel's throughput on a
// CPU with full-width AVX-512 units.
#define MLCTL_ACC512_DECL(s) __m512 c##s##a = _mm512_setzero_ps(), c##s##b = _mm512_setzero_ps();
#define MLCTL_ACC512_STEP(s, kk, nslots)                                                           \
  if constexpr ((s) < (nslots)) {                                                                  \
    constexpr int r = (s) % MR;                                                                    \
    constexpr int u = (s) / MR;                                                                    \
    const __m512 a = _mm512_set1_ps(x[r * ldx + (kk) + u]);                                        \
    c##s##a = _mm512_fmadd_ps(a, _mm512_loadu_ps(p0 + ((kk) + u) * k_panel), c##s##a);             \
    c##s##b = _mm512_fmadd_ps(a, _mm512_loadu_ps(p1 + ((kk) + u) * k_panel), c##s##b);             \
  }
#define MLCTL_ACC512_SUM(s)                                                                        \
  if constexpr ((s) < MR * KU) {                                                                   \
    if ((s) % MR == r) {                                                                           \
      lo = _mm512_add_ps(lo, c##s##a);                                                             \
      hi = _mm512_add_ps(hi, c##s##b);                                                             \
    }                                                                                              \
  }

template <int MR, int KU>
__attribute__((target("avx512f"), always_inline)) inline void
panel_pair_rows_avx512(const float* x, std::int64_t ldx, const float* p0, const float* p1,
                       std::int64_t k, const float* bias, bool relu, float* y, std::int64_t ldy,
                       __mmask16 hi_mask) {
  static_assert(MR * KU <= 12);
  MLCTL_ACC512_DECL(0)
  MLCTL_ACC512_DECL(1)
  MLCTL_ACC512_DECL(2)
  MLCTL_ACC512_DECL(3)
  MLCTL_ACC512_DECL(4)
  MLCTL_ACC512_DECL(5)
  MLCTL_ACC512_DECL(6)
  MLCTL_ACC512_DECL(7)
  MLCTL_ACC512_DECL(8)
  MLCTL_ACC512_DECL(9)
  MLCTL_ACC512_DECL(10)
  MLCTL_ACC512_DECL(11)
  std::int64_t kk = 0;
  for (; kk + KU <= k; kk += KU) {
    MLCTL_ACC512_STEP(0, kk, MR * KU)
    MLCTL_ACC512_STEP(1, kk, MR * KU)
    MLCTL_ACC512_STEP(2, kk, MR * KU)
    MLCTL_ACC512_STEP(3, kk, MR * KU)
    MLCTL_ACC512_STEP(4, kk, MR * KU)
    MLCTL_ACC512_STEP(5, kk, MR * KU)
    MLCTL_ACC512_STEP(6, kk, MR * KU)
    MLCTL_ACC512_STEP(7, kk, MR * KU)
    MLCTL_ACC512_STEP(8, kk, MR * KU)
    MLCTL_ACC512_STEP(9, kk, MR * KU)
    MLCTL_ACC512_STEP(10, kk, MR * KU)
    MLCTL_ACC512_STEP(11, kk, MR * KU)
  }
  for (; kk < k; ++kk) {
    MLCTL_ACC512_STEP(0, kk, MR)
    MLCTL_ACC512_STEP(1, kk, MR)
    MLCTL_ACC512_STEP(2, kk, MR)
    MLCTL_ACC512_STEP(3, kk, MR)
    MLCTL_ACC512_STEP(4, kk, MR)
    MLCTL_ACC512_STEP(5, kk, MR)
    MLCTL_ACC512_STEP(6, kk, MR)
    MLCTL_ACC512_STEP(7, kk, MR)
    MLCTL_ACC512_STEP(8, kk, MR)
    MLCTL_ACC512_STEP(9, kk, MR)
    MLCTL_ACC512_STEP(10, kk, MR)
    MLCTL_ACC512_STEP(11, kk, MR)
  }
  const __m512 bias_lo = bias != nullptr ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
  const __m512 bias_hi = bias != nullptr ? _mm512_loadu_ps(bias + k_panel) : _mm512_setzero_ps();
  for (int r = 0; r < MR; ++r) {
    __m512 lo = bias_lo;
    __m512 hi = bias_hi;
    MLCTL_ACC512_SUM(0)
    MLCTL_ACC512_SUM(1)
    MLCTL_ACC512_SUM(2)
    MLCTL_ACC512_SUM(3)
    MLCTL_ACC512_SUM(4)
    MLCTL_ACC512_SUM(5)
    MLCTL_ACC512_SUM(6)
    MLCTL_ACC512_SUM(7)
    MLCTL_ACC512_SUM(8)
    MLCTL_ACC512_SUM(9)
    MLCTL_ACC512_SUM(10)
    MLCTL_ACC512_SUM(11)
    if (relu) {
      // The masked form: GCC 12 warns about the unmasked one's internal undefined vector.
      const __m512 zero = _mm512_setzero_ps();
      lo = _mm512_mask_max_ps(zero, 0xffff, lo, zero);
      hi = _mm512_mask_max_ps(zero, 0xffff, hi, zero);
    }
    _mm512_storeu_ps(y + r * ldy, lo);
    _mm512_mask_storeu_ps(y + r * ldy + k_panel, hi_mask, hi);
  }
}

#undef MLCTL_ACC512_DECL
#undef MLCTL_ACC512_STEP
#undef MLCTL_ACC512_SUM

__attribute__((target("avx512f"))) void
gemm_avx512_pair(const float* x, std::int64_t m, std::int64_t ldx, const float* p0, std::int64_t k,
                 const float* bias, bool relu, float* y, std::int64_t ldy, std::int64_t ncols_hi) {
  const float* p1 = p0 + k * k_panel;
  const auto mask = static_cast<__mmask16>((1u << ncols_hi) - 1u);
  std::int64_t i = 0;
  for (; i + 12 <= m; i += 12) {
    panel_pair_rows_avx512<12, 1>(x + i * ldx, ldx, p0, p1, k, bias, relu, y + i * ldy, ldy, mask);
  }
  const float* xr = x + i * ldx;
  float* yr = y + i * ldy;
  switch (m - i) {
  case 11:
    panel_pair_rows_avx512<11, 1>(xr, ldx, p0, p1, k, bias, relu, yr, ldy, mask);
    break;
  case 10:
    panel_pair_rows_avx512<10, 1>(xr, ldx, p0, p1, k, bias, relu, yr, ldy, mask);
    break;
  case 9:
    panel_pair_rows_avx512<9, 1>(xr, ldx, p0, p1, k, bias, relu, yr, ldy, mask);
    break;
  case 8:
    panel_pair_rows_avx512<8, 1>(xr, ldx, p0, p1, k, bias, relu, yr, ldy, mask);
    break;
  case 7:
    panel_pair_rows_avx512<7, 1>(xr, ldx, p0, p1, k, bias, relu, yr, ldy, mask);
    break;
  case 6:
    panel_pair_rows_avx512<6, 1>(xr, ldx, p0, p1, k, bias, relu, yr, ldy, mask);
    break;
  case 5:
    panel_pair_rows_avx512<5, 1>(xr, ldx, p0, p1, k, bias, relu, yr, ldy, mask);
    break;
  case 4:
    panel_pair_rows_avx512<4, 1>(xr, ldx, p0, p1, k, bias, relu, yr, ldy, mask);
    break;
  case 3:
    panel_pair_rows_avx512<3, 2>(xr, ldx, p0, p1, k, bias, relu, yr, ldy, mask);
    break;
  case 2:
    panel_pair_rows_avx512<2, 3>(xr, ldx, p0, p1, k, bias, relu, yr, ldy, mask);
    break;
  case 1:
    panel_pair_rows_avx512<1, k_sets>(xr, ldx, p0, p1, k, bias, relu, yr, ldy, mask);
    break;
  default:
    break;
  }
}

// One row of x times four panels at once: the k_sets accumulator sets of the one-row kernel
// above for each panel (24 zmm), added in the same order, so the same bits. A row reads each
// weight once, from the L2 cache for a layer like 784×256 (802 KB): four streams of weights in
// flight instead of two take the time of that layer from about 13 to 10 µs here, the L2
// cache's bandwidth.
constexpr std::int64_t k_row_group = 4;

__attribute__((target("avx512f"))) void row_panels_avx512(const float* x, const float* panel,
                                                          std::int64_t k, const float* bias,
                                                          bool relu, float* y,
                                                          __mmask16 last_mask) {
  constexpr int G = k_row_group;
  const std::int64_t stride = k * k_panel;
  __m512 acc[k_sets][G];
#pragma GCC unroll 8
  for (int s = 0; s < k_sets; ++s) {
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g) {
      acc[s][g] = _mm512_setzero_ps();
    }
  }
  std::int64_t kk = 0;
  for (; kk + k_sets <= k; kk += k_sets) {
#pragma GCC unroll 8
    for (int s = 0; s < k_sets; ++s) {
      const __m512 a = _mm512_set1_ps(x[kk + s]);
#pragma GCC unroll 8
      for (int g = 0; g < G; ++g) {
        acc[s][g] =
            _mm512_fmadd_ps(a, _mm512_loadu_ps(panel + g * stride + (kk + s) * k_panel), acc[s][g]);
      }
    }
  }
  for (; kk < k; ++kk) {
    const __m512 a = _mm512_set1_ps(x[kk]);
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g) {
      acc[0][g] = _mm512_fmadd_ps(a, _mm512_loadu_ps(panel + g * stride + kk * k_panel), acc[0][g]);
    }
  }
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 8
  for (int g = 0; g < G; ++g) {
    __m512 v = bias != nullptr ? _mm512_loadu_ps(bias + g * k_panel) : zero;
#pragma GCC unroll 8
    for (int s = 0; s < k_sets; ++s) {
      v = _mm512_add_ps(v, acc[s][g]);
    }
    if (relu) {
      v = _mm512_mask_max_ps(zero, 0xffff, v, zero);
    }
    _mm512_mask_storeu_ps(y + g * k_panel, g + 1 < G ? __mmask16{0xffff} : last_mask, v);
  }
}

// Panels two at a time with AVX-512 (four for one row); an odd last panel goes to the AVX2
// kernel.
void gemm_avx512(const float* x, std::int64_t m, std::int64_t ldx, const float* packed,
                 std::int64_t k, std::int64_t n, const float* bias, bool relu, float* y,
                 std::int64_t ldy) {
  const std::int64_t panels = (n + k_panel - 1) / k_panel;
  std::int64_t p = 0;
  for (; m == 1 && p + k_row_group <= panels; p += k_row_group) {
    const std::int64_t last_cols = std::min(k_panel, n - (p + k_row_group - 1) * k_panel);
    row_panels_avx512(x, packed + p * k * k_panel, k,
                      bias != nullptr ? bias + p * k_panel : nullptr, relu, y + p * k_panel,
                      static_cast<__mmask16>((1u << last_cols) - 1u));
  }
  for (; p + 2 <= panels; p += 2) {
    gemm_avx512_pair(x, m, ldx, packed + p * k * k_panel, k,
                     bias != nullptr ? bias + p * k_panel : nullptr, relu, y + p * k_panel, ldy,
                     std::min(k_panel, n - (p + 1) * k_panel));
  }
  if (p < panels) {
    gemm_avx2(x, m, ldx, packed + p * k * k_panel, k, n - p * k_panel,
              bias != nullptr ? bias + p * k_panel : nullptr, relu, y + p * k_panel, ldy);
  }
}

// The rows of x (one image) that `gemv_skip_zeros` reads, split into the accumulator sets of
// the one-row kernels above: index kk goes to set kk % k_sets, except the last k % k_sets
// indices, which the kernels' tail loop adds to set 0 after the others. Each set in increasing
// kk, so the sums are formed in the same order as there.
struct NonZeroRows {
  std::vector<std::uint32_t> masks; // bit b of masks[w]: x[8w + b] is non-zero
  std::vector<std::int32_t> rows;   // set s at [s * per_set, end[s])
  std::int64_t per_set = 0;
  std::int64_t end[k_sets] = {};
};

// Fills `nz` with the non-zero entries of x[0..k); returns false as soon as more than
// `max_nonzero` are found (for a dense x, after reading about half of it).
__attribute__((target("avx2"))) bool non_zero_rows(const float* x, std::int64_t k,
                                                   std::int64_t max_nonzero, NonZeroRows& nz) {
  const std::int64_t words = (k + 7) / 8;
  nz.masks.resize(static_cast<std::size_t>(words));
  std::int64_t count = 0;
  const __m256 zero = _mm256_setzero_ps();
  for (std::int64_t w = 0; w < words; ++w) {
    std::uint32_t mask = 0;
    if (8 * w + 8 <= k) {
      mask = static_cast<std::uint32_t>(
          _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + 8 * w), zero, _CMP_NEQ_UQ)));
    } else {
      for (std::int64_t kk = 8 * w; kk < k; ++kk) {
        mask |= (x[kk] != 0.0f ? 1u : 0u) << (kk - 8 * w);
      }
    }
    nz.masks[static_cast<std::size_t>(w)] = mask;
    count += __builtin_popcount(mask);
    if (count > max_nonzero) {
      return false;
    }
  }
  const std::int64_t main = k / k_sets * k_sets;
  nz.per_set = k / k_sets + k_sets;
  nz.rows.resize(static_cast<std::size_t>(nz.per_set * k_sets));
  for (int s = 0; s < k_sets; ++s) {
    nz.end[s] = s * nz.per_set;
  }
  for (std::int64_t w = 0; w < words; ++w) {
    for (std::uint32_t mask = nz.masks[static_cast<std::size_t>(w)]; mask != 0; mask &= mask - 1) {
      const std::int64_t kk = 8 * w + __builtin_ctz(mask);
      const auto s = static_cast<int>(kk < main ? kk % k_sets : 0);
      nz.rows[static_cast<std::size_t>(nz.end[s]++)] = static_cast<std::int32_t>(kk);
    }
  }
  return true;
}

// G panels of 16 columns at once, one zmm accumulator per panel (G chains of FMAs in flight).
// The loops over g are unrolled so that GCC keeps the arrays of vectors in registers.
template <int G>
__attribute__((target("avx512f"))) void
sparse_panels_avx512(const float* x, const NonZeroRows& nz, const float* panel,
                     std::int64_t panel_stride, const float* bias, bool relu, float* y,
                     std::int64_t ncols_last) {
  __m512 sum[G];
#pragma GCC unroll 8
  for (int g = 0; g < G; ++g) {
    sum[g] = bias != nullptr ? _mm512_loadu_ps(bias + g * k_panel) : _mm512_setzero_ps();
  }
  for (int s = 0; s < k_sets; ++s) {
    __m512 acc[G];
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g) {
      acc[g] = _mm512_setzero_ps();
    }
    for (std::int64_t i = s * nz.per_set; i < nz.end[s]; ++i) {
      const std::int64_t kk = nz.rows[static_cast<std::size_t>(i)];
      const __m512 a = _mm512_set1_ps(x[kk]);
#pragma GCC unroll 8
      for (int g = 0; g < G; ++g) {
        acc[g] =
            _mm512_fmadd_ps(a, _mm512_loadu_ps(panel + g * panel_stride + kk * k_panel), acc[g]);
      }
    }
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g) {
      sum[g] = _mm512_add_ps(sum[g], acc[g]);
    }
  }
  const __m512 zero = _mm512_setzero_ps();
#pragma GCC unroll 8
  for (int g = 0; g < G; ++g) {
    const __m512 v = relu ? _mm512_mask_max_ps(zero, 0xffff, sum[g], zero) : sum[g];
    const auto mask =
        g + 1 < G ? __mmask16{0xffff} : static_cast<__mmask16>((1u << ncols_last) - 1u);
    _mm512_mask_storeu_ps(y + g * k_panel, mask, v);
  }
}

// The same with AVX2: a panel is two ymm halves.
template <int G>
__attribute__((target("avx2,fma"))) void
sparse_panels_avx2(const float* x, const NonZeroRows& nz, const float* panel,
                   std::int64_t panel_stride, const float* bias, bool relu, float* y,
                   std::int64_t ncols_last) {
  __m256 sum[2 * G];
#pragma GCC unroll 8
  for (int h = 0; h < 2 * G; ++h) {
    sum[h] = bias != nullptr ? _mm256_loadu_ps(bias + h * 8) : _mm256_setzero_ps();
  }
  for (int s = 0; s < k_sets; ++s) {
    __m256 acc[2 * G];
#pragma GCC unroll 8
    for (int h = 0; h < 2 * G; ++h) {
      acc[h] = _mm256_setzero_ps();
    }
    for (std::int64_t i = s * nz.per_set; i < nz.end[s]; ++i) {
      const std::int64_t kk = nz.rows[static_cast<std::size_t>(i)];
      const __m256 a = _mm256_broadcast_ss(x + kk);
#pragma GCC unroll 8
      for (int h = 0; h < 2 * G; ++h) {
        const float* w = panel + (h / 2) * panel_stride + kk * k_panel + (h % 2) * 8;
        acc[h] = _mm256_fmadd_ps(a, _mm256_loadu_ps(w), acc[h]);
      }
    }
#pragma GCC unroll 8
    for (int h = 0; h < 2 * G; ++h) {
      sum[h] = _mm256_add_ps(sum[h], acc[h]);
    }
  }
  alignas(32) float tmp[k_panel];
#pragma GCC unroll 8
  for (int g = 0; g < G; ++g) {
    __m256 lo = sum[2 * g];
    __m256 hi = sum[2 * g + 1];
    if (relu) {
      lo = _mm256_max_ps(lo, _mm256_setzero_ps());
      hi = _mm256_max_ps(hi, _mm256_setzero_ps());
    }
    _mm256_store_ps(tmp, lo);
    _mm256_store_ps(tmp + 8, hi);
    const std::int64_t ncols = g + 1 < G ? k_panel : ncols_last;
    std::memcpy(y + g * k_panel, tmp, static_cast<std::size_t>(ncols) * sizeof(float));
  }
}

template <int G>
void sparse_panels(bool avx512, const float* x, const NonZeroRows& nz, const float* panel,
                   std::int64_t panel_stride, const float* bias, bool relu, float* y,
                   std::int64_t ncols_last) {
  if (avx512) {
    sparse_panels_avx512<G>(x, nz, panel, panel_stride, bias, relu, y, ncols_last);
  } else {
    sparse_panels_avx2<G>(x, nz, panel, panel_stride, bias, relu, y, ncols_last);
  }
}

Isa detect_isa() {
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) {
    return Isa::generic;
  }
  return __builtin_cpu_supports("avx512f") ? Isa::avx512 : Isa::avx2;
}

#endif

std::atomic<int> g_isa_limit{static_cast<int>(Isa::avx512)};

} // namespace

Isa isa() {
#ifdef MLCTL_ONNX_X86
  static const Isa k_detected = detect_isa();
  return static_cast<Isa>(
      std::min(static_cast<int>(k_detected), g_isa_limit.load(std::memory_order_relaxed)));
#else
  return Isa::generic;
#endif
}

void limit_isa(Isa max) {
  g_isa_limit.store(static_cast<int>(max), std::memory_order_relaxed);
}

std::size_t packed_size(std::int64_t k, std::int64_t n) {
  return static_cast<std::size_t>((n + k_panel - 1) / k_panel) * static_cast<std::size_t>(k_panel) *
         static_cast<std::size_t>(k);
}

void pack(const float* b, std::int64_t k, std::int64_t n, bool transposed, float scale,
          std::vector<float>& out) {
  out.assign(packed_size(k, n), 0.0f);
  for (std::int64_t col = 0; col < n; ++col) {
    float* dst = out.data() + (col / k_panel) * k * k_panel + col % k_panel;
    if (transposed) {
      const float* src = b + col * k; // row `col` of the n×k matrix
      for (std::int64_t kk = 0; kk < k; ++kk) {
        dst[kk * k_panel] = scale * src[kk];
      }
    } else {
      for (std::int64_t kk = 0; kk < k; ++kk) {
        dst[kk * k_panel] = scale * b[kk * n + col];
      }
    }
  }
}

void gemm(const float* x, std::int64_t m, std::int64_t ldx, const float* packed, std::int64_t k,
          std::int64_t n, const float* bias, bool relu, float* y, std::int64_t ldy) {
  if (m <= 0 || n <= 0) {
    return;
  }
#ifdef MLCTL_ONNX_X86
  switch (isa()) {
  case Isa::avx512:
    gemm_avx512(x, m, ldx, packed, k, n, bias, relu, y, ldy);
    return;
  case Isa::avx2:
    gemm_avx2(x, m, ldx, packed, k, n, bias, relu, y, ldy);
    return;
  case Isa::generic:
    break;
  }
#endif
  gemm_generic(x, m, ldx, packed, k, n, bias, relu, y, ldy);
}

bool gemv_skip_zeros(const float* x, const float* packed, std::int64_t k, std::int64_t n,
                     const float* bias, bool relu, float* y) {
#ifdef MLCTL_ONNX_X86
  // The index of non-zero rows a thread keeps is about 4.5 bytes per input: at most ~1 MB.
  constexpr std::int64_t k_max_inputs = std::int64_t{1} << 18;
  const Isa kernel = isa();
  if (kernel == Isa::generic || k <= 0 || n <= 0 || k > k_max_inputs) {
    return false;
  }
  thread_local NonZeroRows nz;
  if (!non_zero_rows(x, k, k / 2, nz)) {
    return false;
  }
  const bool avx512 = kernel == Isa::avx512;
  const std::int64_t panels = (n + k_panel - 1) / k_panel;
  const std::int64_t stride = k * k_panel;
  // Four panels at a time (four chains of FMAs in flight), then the rest.
  constexpr std::int64_t k_group = 4;
  std::int64_t p = 0;
  for (; p + k_group < panels; p += k_group) {
    sparse_panels<k_group>(avx512, x, nz, packed + p * stride, stride,
                           bias != nullptr ? bias + p * k_panel : nullptr, relu, y + p * k_panel,
                           k_panel);
  }
  const float* pb = bias != nullptr ? bias + p * k_panel : nullptr;
  const std::int64_t ncols_last = n - (panels - 1) * k_panel;
  switch (panels - p) {
  case 4:
    sparse_panels<4>(avx512, x, nz, packed + p * stride, stride, pb, relu, y + p * k_panel,
                     ncols_last);
    break;
  case 3:
    sparse_panels<3>(avx512, x, nz, packed + p * stride, stride, pb, relu, y + p * k_panel,
                     ncols_last);
    break;
  case 2:
    sparse_panels<2>(avx512, x, nz, packed + p * stride, stride, pb, relu, y + p * k_panel,
                     ncols_last);
    break;
  default:
    sparse_panels<1>(avx512, x, nz, packed + p * stride, stride, pb, relu, y + p * k_panel,
                     ncols_last);
    break;
  }
  return true;
#else
  (void)x, (void)packed, (void)k, (void)n, (void)bias, (void)relu, (void)y;
  return false;
#endif
}

void relu(const float* x, float* y, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    y[i] = std::max(x[i], 0.0f);
  }
}

void sigmoid(const float* x, float* y, std::size_t count) {
  map_blocks(x, y, count, [](const Block& b) { return Block(b.logistic()); });
}

void tanh(const float* x, float* y, std::size_t count) {
  map_blocks(x, y, count, [](const Block& b) { return Block(b.tanh()); });
}

void softmax(const float* x, float* y, std::int64_t outer, std::int64_t len, std::int64_t inner,
             bool log) {
  if (len <= 0) {
    return;
  }
  std::vector<float> column;
  std::vector<float> e;
  for (std::int64_t o = 0; o < outer; ++o) {
    for (std::int64_t i = 0; i < inner; ++i) {
      const float* in = x + o * len * inner + i;
      float* out = y + o * len * inner + i;
      // Work on a contiguous copy of the slice when it is strided (axis not innermost).
      const float* src = in;
      float* dst = out;
      if (inner != 1) {
        column.resize(static_cast<std::size_t>(len));
        for (std::int64_t j = 0; j < len; ++j) {
          column[static_cast<std::size_t>(j)] = in[j * inner];
        }
        src = column.data();
        dst = column.data();
      }
      float max = -std::numeric_limits<float>::infinity();
      for (std::int64_t j = 0; j < len; ++j) {
        max = std::max(max, src[j]);
      }
      const auto n = static_cast<std::size_t>(len);
      if (log) {
        // log-softmax: x - max - log(sum(exp(x - max))); exp goes to `dst` as scratch first.
        e.resize(n);
        map_blocks(src, e.data(), n, [max](const Block& b) { return Block((b - max).exp()); });
        float sum = 0.0f;
        for (const float v : e) {
          sum += v;
        }
        const float lse = max + std::log(sum);
        for (std::size_t j = 0; j < n; ++j) {
          dst[j] = src[j] - lse;
        }
      } else {
        map_blocks(src, dst, n, [max](const Block& b) { return Block((b - max).exp()); });
        float sum = 0.0f;
        for (std::size_t j = 0; j < n; ++j) {
          sum += dst[j];
        }
        const float inv = 1.0f / sum;
        for (std::size_t j = 0; j < n; ++j) {
          dst[j] *= inv;
        }
      }
      if (inner != 1) {
        for (std::int64_t j = 0; j < len; ++j) {
          out[j * inner] = column[static_cast<std::size_t>(j)];
        }
      }
    }
  }
}

} // namespace mlctl::onnx::kernels
