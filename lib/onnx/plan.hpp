#pragma once
// Internal to lib/onnx: the planned form of a model (values with symbolic shapes, constants,
// packed weights, steps) that the planner builds once and `Model::run` executes, and the
// per-call workspace. Not a public header.

#include "onnx/kernels.hpp"
#include "onnx/reader.hpp"
#include "onnx/runtime.hpp"

#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

namespace mlctl::onnx::detail {

// Operator-set versions whose semantics this runtime implements for its operators.
constexpr std::int64_t k_min_opset = 7;
constexpr std::int64_t k_max_opset = 23;
// Largest value, in elements per batch row (or in total for values without a batch
// dimension): 2^28 floats = 1 GiB. Hostile shapes fail at load time instead of at malloc.
constexpr std::int64_t k_max_value_elements = std::int64_t{1} << 28;
// Largest scratch memory of one call.
constexpr std::uint64_t k_max_scratch_bytes = std::uint64_t{4} << 30;
constexpr std::int64_t k_max_batch = std::int64_t{1} << 31;
// Workspaces kept for reuse per model (one per concurrently running thread, bounded); one
// sized for a huge batch is freed after its call rather than kept.
constexpr std::size_t k_max_pooled_workspaces = 64;
constexpr std::uint64_t k_max_pooled_bytes = std::uint64_t{64} << 20;

enum class DType { f32, i64 };

inline std::string datatype_name(DType t) {
  return t == DType::f32 ? "FP32" : "INT64";
}

// A dimension: `v`, or `v` times the batch size N when `batch`.
struct Dim {
  std::int64_t v = 1;
  bool batch = false;
  bool operator==(const Dim&) const = default;
};
using Shape = std::vector<Dim>;

inline std::string dim_text(const Dim& d) {
  if (!d.batch) {
    return std::to_string(d.v);
  }
  return d.v == 1 ? "N" : std::to_string(d.v) + "N";
}

inline std::string shape_text(const Shape& s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) {
    out += (i ? "," : "") + dim_text(s[i]);
  }
  return out + "]";
}

inline std::string shape_text(std::span<const std::int64_t> s) {
  std::string out = "[";
  for (std::size_t i = 0; i < s.size(); ++i) {
    out += (i ? "," : "") + std::to_string(s[i]);
  }
  return out + "]";
}

enum class Op {
  gemm,
  add,
  sub,
  mul,
  div,
  relu,
  sigmoid,
  tanh,
  softmax,
  log_softmax,
  alias,
  cast,
  argmax
};

struct Value {
  enum class Kind { input, constant, computed };
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
  Kind kind = Kind::computed;
  int index = -1; // input number or constant number
  int root = -1; // computed values: the value whose buffer this one shares (itself, or via aliases)
  int slot = -1; // computed roots: the workspace buffer
};

struct Constant {
  std::vector<std::int64_t> dims;
  std::vector<float> f32;
  std::vector<std::int64_t> i64;
};

struct Step {
  Op op = Op::alias;
  std::vector<int> in; // value ids; -1 for an omitted optional input
  int out = -1;
  std::string what; // "node 'fc1' (Gemm)", for messages
  // Gemm / MatMul
  bool matmul = false;
  bool trans_a = false;
  bool trans_b = false;
  float alpha = 1.0f;
  float beta = 1.0f;
  int packed = -1;          // index of the packed constant B (alpha folded in), or -1
  bool bias_folded = false; // C (times beta) is the packed bias
  bool relu = false;        // a following Relu fused into the kernel
  // Softmax / LogSoftmax / ArgMax
  std::int64_t axis = 0;
  bool legacy_softmax = false; // opset < 13: softmax over the flattened dims from `axis`
  bool keepdims = true;
  bool select_last = false;
  // Cast
  DType to = DType::f32;
};

inline std::int64_t product(std::span<const std::int64_t> dims) {
  std::int64_t n = 1;
  for (const auto d : dims) {
    n *= d;
  }
  return n;
}

// Per-call scratch state: concrete shapes for one batch size, buffers, value pointers.
struct Workspace {
  std::int64_t batch = -1;
  std::vector<std::vector<std::int64_t>> shapes; // per value
  std::vector<std::vector<float>> f32;           // per slot
  std::vector<std::vector<std::int64_t>> i64;    // per slot
  std::vector<const void*> ptr;                  // per value, set while running
  std::vector<float> scratch_a;                  // transposed A of a Gemm with transA
  std::vector<float> scratch_b;                  // B packed per call when it is not a constant
  std::uint64_t bytes = 0;                       // size of the slot buffers
};

struct PlanData {
  std::string name;
  ModelMetadata metadata;
  std::vector<TensorInfo> inputs;
  std::vector<TensorInfo> outputs;
  std::vector<Value> values;
  std::vector<Constant> constants;
  std::vector<kernels::PackedMatrix> packed;
  std::vector<Step> steps;
  std::vector<int> input_values;
  std::vector<int> output_values;
  int f32_slots = 0;
  int i64_slots = 0;

  mutable std::mutex pool_mutex;
  mutable std::vector<std::unique_ptr<Workspace>> pool;
};

} // namespace mlctl::onnx::detail

namespace mlctl::onnx {

// The plan behind a `Model` (runtime.hpp declares it opaque).
struct Model::Plan : detail::PlanData {};

} // namespace mlctl::onnx

namespace mlctl::onnx::detail {

using Plan = Model::Plan;

// Builds `plan` from the parsed model: checks the operators, orders the nodes, infers shapes,
// folds constants, packs weights, drops dead steps, fuses Relu into Gemm and assigns buffers.
// Throws like `Model::load`.
void build_plan(Plan& plan, ModelDef& def);

// Runs one step; `out` is the output buffer (unused by aliases, which only share pointers).
void execute(const Plan& plan, const Step& step, Workspace& ws, void* out);

// Sizes `ws` for `batch`: concrete shapes, slot buffers, constant pointers. Throws
// `Error{invalid_input}` when the buffers would exceed `k_max_scratch_bytes`.
void prepare(const Plan& plan, Workspace& ws, std::int64_t batch);

} // namespace mlctl::onnx::detail
