#pragma once
// Internal to lib/onnx: the numeric kernels of the runtime. Not a public header.
//
// Matrix products use weights packed once at load time into panels of 16 output columns and a
// register-blocked micro-kernel selected at run time: AVX-512F (12 rows × 2 panels), AVX2/FMA
// (6 rows × 1 panel), or portable code. On the x86-64-v3 build machine Eigen's own GEMM reaches
// about a third of the FMA peak while this kernel reaches about its peak, and it never starts
// threads.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace mlctl::onnx::kernels {

// Width of a packed panel, in output columns.
inline constexpr std::int64_t k_panel = 16;

// A k×n right-hand matrix stored as ceil(n/16) panels, each k rows of 16 floats (zero-padded),
// plus an optional bias of n entries (padded to the panel width).
struct PackedMatrix {
  std::int64_t k = 0;
  std::int64_t n = 0;
  std::vector<float> data;
  std::vector<float> bias; // empty, or panels*16 entries
  bool finite = false;     // every weight is finite: see `gemv_skip_zeros`

  std::int64_t panels() const { return (n + k_panel - 1) / k_panel; }
};

// Returns the number of floats `pack` writes for a k×n matrix.
std::size_t packed_size(std::int64_t k, std::int64_t n);

// Packs `scale * B` into `out` (resized to `packed_size`). `b` is row-major: k×n, or n×k when
// `transposed` (the Gemm transB = 1 layout of dense-layer weights).
void pack(const float* b, std::int64_t k, std::int64_t n, bool transposed, float scale,
          std::vector<float>& out);

// y (m×n, row stride ldy) = x (m×k, row stride ldx) · B + bias (when non-empty), then
// max(0, ·) when `relu`. `packed` holds B as written by `pack`; `bias` has panels*16 entries
// or is null.
void gemm(const float* x, std::int64_t m, std::int64_t ldx, const float* packed, std::int64_t k,
          std::int64_t n, const float* bias, bool relu, float* y, std::int64_t ldy);

// y (1×n) = x (1×k) · B + bias, then max(0, ·) when `relu`, reading only the rows of B where
// x is non-zero: the same bits as `gemm` with m = 1 when every weight of B is finite (a zero
// term adds nothing to a sum, and the others are added in the same order). For inputs that are
// mostly zeros, like MNIST digits (about 81% black pixels). Returns false without writing y
// when more than half of x is non-zero, on a CPU without AVX2, or for more than 2^18 inputs:
// then `gemm` is the way.
bool gemv_skip_zeros(const float* x, const float* packed, std::int64_t k, std::int64_t n,
                     const float* bias, bool relu, float* y);

// Element-wise activations over `count` floats; `y` may equal `x`.
void relu(const float* x, float* y, std::size_t count);
void sigmoid(const float* x, float* y, std::size_t count);
void tanh(const float* x, float* y, std::size_t count);

// Softmax (or log-softmax) over the middle axis of an outer×len×inner array.
void softmax(const float* x, float* y, std::int64_t outer, std::int64_t len, std::int64_t inner,
             bool log);

// The instruction sets `gemm` can use, in increasing order.
enum class Isa { generic, avx2, avx512 };
// Returns the kernel `gemm` uses on this CPU: AVX-512F, else AVX2+FMA, else portable code.
Isa isa();
// Test and benchmark hook: makes `gemm` use at most `max` (the portable path with `generic`).
void limit_isa(Isa max);

} // namespace mlctl::onnx::kernels
