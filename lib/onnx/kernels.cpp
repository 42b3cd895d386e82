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
      panel_rows_avx2<1, 6>(xr, ldx, panel, k, pb, relu, yr, ldy, ncols);
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
    panel_pair_rows_avx512<1, 6>(xr, ldx, p0, p1, k, bias, relu, yr, ldy, mask);
    break;
  default:
    break;
  }
}

// Panels two at a time with AVX-512; an odd last panel goes to the AVX2 kernel.
void gemm_avx512(const float* x, std::int64_t m, std::int64_t ldx, const float* packed,
                 std::int64_t k, std::int64_t n, const float* bias, bool relu, float* y,
                 std::int64_t ldy) {
  const std::int64_t panels = (n + k_panel - 1) / k_panel;
  std::int64_t p = 0;
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
