#pragma once
// Internal to lib/onnx: parses ONNX protobuf bytes into plain structs the runtime plans from,
// validating what can be validated without knowing the operators (sizes, tensor data, limits).

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace mlctl::onnx::detail {

// TensorProto.DataType codes (onnx.proto).
enum OnnxType : std::int32_t {
  k_type_undefined = 0,
  k_type_float = 1,
  k_type_uint8 = 2,
  k_type_int8 = 3,
  k_type_uint16 = 4,
  k_type_int16 = 5,
  k_type_int32 = 6,
  k_type_int64 = 7,
  k_type_string = 8,
  k_type_bool = 9,
  k_type_float16 = 10,
  k_type_double = 11,
  k_type_uint32 = 12,
  k_type_uint64 = 13,
  k_type_complex64 = 14,
  k_type_complex128 = 15,
  k_type_bfloat16 = 16,
};

// Returns the ONNX name of a data type code ("FLOAT", "INT64", ... or "type 42").
std::string onnx_type_name(std::int32_t type);

// Largest model file accepted: protobuf messages are limited to 2 GiB.
inline constexpr std::uint64_t k_max_model_bytes = (std::uint64_t{1} << 31) - 1;

// A tensor from an initializer or an attribute. Only FLOAT and INT64 data are decoded; the
// sizes of every other type are still checked.
struct TensorData {
  std::string name;
  std::int32_t type = k_type_undefined;
  std::vector<std::int64_t> dims;
  std::vector<float> f32;        // FLOAT
  std::vector<std::int64_t> i64; // INT64
  bool decoded = false;          // true for FLOAT and INT64
};

struct Attribute {
  enum class Kind { f, i, s, t, floats, ints, other };
  std::string name;
  Kind kind = Kind::other;
  float f = 0.0f;
  std::int64_t i = 0;
  std::string s;
  TensorData t;
  std::vector<float> floats;
  std::vector<std::int64_t> ints;
};

struct NodeDef {
  std::size_t index = 0; // position in GraphProto.node
  std::string name;
  std::string op_type;
  std::string domain;
  std::vector<std::string> inputs; // "" marks an omitted optional input
  std::vector<std::string> outputs;
  std::vector<Attribute> attributes;

  // Returns the attribute called `name`, or null.
  const Attribute* attribute(std::string_view attr) const;
};

struct DimDecl {
  bool fixed = false;
  std::int64_t value = 0; // when fixed
  std::string param;      // the dim_param, when there is one
};

struct ValueDecl {
  std::string name;
  std::int32_t type = k_type_undefined;
  bool has_shape = false;
  std::vector<DimDecl> dims;
};

struct ModelDef {
  std::int64_t ir_version = 0;
  std::int64_t opset = 0; // version of the default ("" / "ai.onnx") operator set
  std::string producer_name;
  std::string producer_version;
  std::string doc_string;
  std::string graph_name;
  std::map<std::string, std::string> metadata;
  std::vector<ValueDecl> inputs; // graph inputs, initializers excluded
  std::vector<ValueDecl> outputs;
  std::vector<TensorData> initializers;
  std::vector<NodeDef> nodes;
};

// Parses and validates ONNX bytes; `name` prefixes every message. Throws `Error{corrupt}`
// "<name>: ..." for bytes that are not an ONNX ModelProto, negative or overflowing dims,
// tensors whose data does not match their dims and type, files over 2 GiB, a missing graph or
// operator set; `Error{invalid_input}` for external data or segments (valid ONNX that mlctl
// does not load).
ModelDef read_model(std::string_view bytes, std::string_view name);

// Returns `text` made printable for a one-line message: control characters become '?', and
// more than 120 bytes are cut with "...".
std::string printable(std::string_view text);

} // namespace mlctl::onnx::detail
