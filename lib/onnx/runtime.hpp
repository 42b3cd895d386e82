#pragma once
// The inference runtime: loads an ONNX model made of the operators dense networks export to
// (whoever exported it: mlctl, PyTorch, tf2onnx, skl2onnx), checks it, plans it once
// (topological order, shapes with a symbolic batch dimension, weights packed for the matrix
// kernel, buffers reused between calls) and runs batches on float32.
//
// Operators: Gemm, MatMul, Add, Sub, Mul, Div (numpy broadcasting), Relu, Sigmoid, Tanh,
// Softmax, LogSoftmax, Flatten, Reshape (shape from a constant), Identity, Constant, Cast (to
// FLOAT or INT64), ArgMax. Tensors are FP32 or INT64. At most one dimension of each graph
// input may be dynamic: it is the batch dimension `N`, shared by all inputs.

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace mlctl::onnx {

// A graph input or output as clients see it (the KServe V2 tensor metadata).
struct TensorInfo {
  std::string name;
  std::string datatype;            // "FP32" or "INT64"
  std::vector<std::int64_t> shape; // -1 for the batch dimension
};

// A tensor passed to or returned by `Model::run`: data in C order, in `f32` for FP32 and in
// `i64` for INT64 (the other vector is empty).
struct Tensor {
  std::string name;
  std::string datatype; // "FP32" or "INT64"
  std::vector<std::int64_t> shape;
  std::vector<float> f32;
  std::vector<std::int64_t> i64;
};

// What the file says about itself.
struct ModelMetadata {
  std::int64_t ir_version = 0;
  std::int64_t opset = 0; // default-domain operator set
  std::string producer_name;
  std::string producer_version;
  std::string graph_name;
  std::string doc_string;
  std::map<std::string, std::string> properties; // metadata_props
};

class Model {
public:
  // Parses, checks and plans the model in `bytes`; `name` (usually the file name) starts every
  // error message. Throws `Error{corrupt}` "<name>: ..." for bytes that are not a valid ONNX
  // model: truncated or not protobuf, tensors whose data does not match their dims, negative
  // or absurd dims, values no node produces, cycles, shapes that do not fit the operators;
  // `Error{invalid_input}` for valid ONNX this runtime does not run: "<name>: unsupported
  // operator 'Conv' (node 'conv1')" (or "(node 3)" for an unnamed node), unsupported data
  // types, external data, more than one dynamic dimension in an input.
  static Model load(std::string_view bytes, std::string_view name);
  // Reads and loads the file at `path`; errors start with its file name. Throws like `load`,
  // plus `Error{not_found}`/`Error{io}` from reading and `Error{corrupt}` for files over 2 GiB.
  static Model load_file(const std::filesystem::path& path);

  // The name given to `load` (the file name for `load_file`).
  const std::string& name() const;
  const ModelMetadata& metadata() const;
  // Graph inputs (initializers excluded) and outputs, in graph order, with inferred shapes.
  const std::vector<TensorInfo>& inputs() const;
  const std::vector<TensorInfo>& outputs() const;
  // Number of planned steps, after constant folding and fusion (for diagnostics).
  std::size_t step_count() const;

  // Runs the graph on `inputs` (matched by name; a single unnamed tensor feeds a single-input
  // model) and returns every graph output in order. Safe to call from several threads at once
  // on the same Model: each call takes its own scratch buffers from a pool. Throws
  // `Error{invalid_input}` "<name>: input 'x': ..." for a missing, unknown or repeated input, a
  // wrong datatype, a shape that does not match (batch dimensions may differ only in the batch
  // size, at least 1, the same for all inputs) or data whose size does not match the shape,
  // and for batches whose scratch memory would exceed 4 GiB.
  std::vector<Tensor> run(const std::vector<Tensor>& inputs) const;

  Model(const Model&) = default;
  Model& operator=(const Model&) = default;
  Model(Model&&) noexcept = default;
  Model& operator=(Model&&) noexcept = default;
  ~Model();

  struct Plan; // internal

private:
  explicit Model(std::shared_ptr<const Plan> plan);
  std::shared_ptr<const Plan> m_plan;
};

} // namespace mlctl::onnx
