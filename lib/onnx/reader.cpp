#include "onnx/reader.hpp"

#include "onnx/onnx_subset.pb.h"
#include "util/error.hpp"
#include "util/huge_pages.hpp"

#include <bit>
#include <climits>
#include <cstring>
#include <optional>
#include <set>
#include <vector>

namespace mlctl::onnx::detail {

namespace {

namespace pb = mlctl::onnx_pb;

// Largest element count of one tensor: anything bigger cannot be inside a 2 GiB file.
constexpr std::int64_t k_max_tensor_elements = std::int64_t{1} << 31;

[[noreturn]] void corrupt(std::string_view model, const std::string& what) {
  throw Error(ErrorKind::corrupt, std::string(model) + ": " + what);
}

std::string dims_text(const google::protobuf::RepeatedField<std::int64_t>& dims) {
  std::string s = "[";
  for (int i = 0; i < dims.size(); ++i) {
    s += (i ? "," : "") + std::to_string(dims.Get(i));
  }
  return s + "]";
}

// Bytes per element in raw_data (onnx.proto, TensorProto.raw_data); 0 for STRING and
// unknown types.
std::size_t raw_element_size(std::int32_t type) {
  switch (type) {
  case k_type_uint8:
  case k_type_int8:
  case k_type_bool:
    return 1;
  case k_type_uint16:
  case k_type_int16:
  case k_type_float16:
  case k_type_bfloat16:
    return 2;
  case k_type_float:
  case k_type_int32:
  case k_type_uint32:
    return 4;
  case k_type_int64:
  case k_type_double:
  case k_type_uint64:
  case k_type_complex64:
    return 8;
  case k_type_complex128:
    return 16;
  default:
    return 0;
  }
}

// Number of entries of the typed field that holds `count` elements of `type` (onnx.proto: which
// field each type uses), or -1 for a type this reader does not know.
std::int64_t typed_entries(const pb::TensorProto& t, std::int32_t type, std::int64_t& per_element) {
  per_element = 1;
  switch (type) {
  case k_type_float:
    return t.float_data_size();
  case k_type_complex64:
    per_element = 2;
    return t.float_data_size();
  case k_type_uint8:
  case k_type_int8:
  case k_type_uint16:
  case k_type_int16:
  case k_type_int32:
  case k_type_bool:
  case k_type_float16:
  case k_type_bfloat16:
    return t.int32_data_size();
  case k_type_int64:
    return t.int64_data_size();
  case k_type_string:
    return t.string_data_size();
  case k_type_double:
    return t.double_data_size();
  case k_type_complex128:
    per_element = 2;
    return t.double_data_size();
  case k_type_uint32:
  case k_type_uint64:
    return t.uint64_data_size();
  default:
    return -1;
  }
}

template <class T> T load_le(const char* p) {
  using Bits = std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>;
  Bits bits = 0;
  std::memcpy(&bits, p, sizeof bits);
  if constexpr (std::endian::native == std::endian::big) {
    Bits swapped = 0;
    for (std::size_t i = 0; i < sizeof bits; ++i) {
      swapped = (swapped << 8) | ((bits >> (8 * i)) & 0xffu);
    }
    bits = swapped;
  }
  return std::bit_cast<T>(bits);
}

// Decodes `n` little-endian values from `bytes` into `out`.
template <class T> void decode_le(std::string_view bytes, std::size_t n, std::vector<T>& out) {
  util::reserve_huge(out, n);
  out.resize(n);
  if constexpr (std::endian::native == std::endian::little) {
    std::memcpy(out.data(), bytes.data(), n * sizeof(T));
  } else {
    for (std::size_t i = 0; i < n; ++i) {
      out[i] = load_le<T>(bytes.data() + sizeof(T) * i);
    }
  }
}

// ---- The wire pre-pass -----------------------------------------------------------------
// libprotobuf copies every bytes field out of the buffer it parses. The raw_data of the graph's
// initializers is nearly all of a model file, so before parsing, the pre-pass copies the file
// without those payloads and keeps them as views of the original bytes: the weights are then
// copied once, straight into their tensors. Field numbers are onnx.proto's: ModelProto.graph 7,
// GraphProto.initializer 5, TensorProto.raw_data 9. Anything unexpected (malformed wire data,
// groups) abandons the pre-pass, and the file is parsed as it is (which reports the error).

struct WireField {
  std::uint64_t number = 0;
  int type = 0;
  std::string_view whole;   // tag, length and payload
  std::string_view payload; // of a length-delimited field
};

bool read_varint(std::string_view& in, std::uint64_t& value) {
  value = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    const auto byte = static_cast<std::uint8_t>(in.front());
    in.remove_prefix(1);
    value |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) {
      return true;
    }
  }
  return false;
}

bool next_field(std::string_view& in, WireField& f) {
  const auto start = in;
  std::uint64_t tag = 0;
  if (!read_varint(in, tag)) {
    return false;
  }
  f.number = tag >> 3;
  f.type = static_cast<int>(tag & 7);
  std::uint64_t value = 0;
  switch (f.type) {
  case 0:
    if (!read_varint(in, value)) {
      return false;
    }
    break;
  case 1:
  case 5: {
    const std::size_t size = f.type == 1 ? 8 : 4;
    if (in.size() < size) {
      return false;
    }
    in.remove_prefix(size);
    break;
  }
  case 2:
    if (!read_varint(in, value) || value > in.size()) {
      return false;
    }
    f.payload = in.substr(0, static_cast<std::size_t>(value));
    in.remove_prefix(static_cast<std::size_t>(value));
    break;
  default:
    return false; // groups (3, 4) are not in onnx.proto
  }
  f.whole = start.substr(0, start.size() - in.size());
  return true;
}

void put_varint(std::string& out, std::uint64_t v) {
  while (v >= 0x80) {
    out += static_cast<char>((v & 0x7f) | 0x80);
    v >>= 7;
  }
  out += static_cast<char>(v);
}

void put_message(std::string& out, std::uint64_t number, std::string_view payload) {
  put_varint(out, (number << 3) | 2);
  put_varint(out, payload.size());
  out.append(payload);
}

// Copies the fields of `message` to `out`, giving each field `number` (length-delimited) to
// `nested` to copy instead. False when the wire data is malformed.
template <class Nested>
bool copy_fields(std::string_view message, std::string& out, std::uint64_t number,
                 Nested&& nested) {
  WireField f;
  while (!message.empty()) {
    if (!next_field(message, f)) {
      return false;
    }
    if (f.number == number && f.type == 2) {
      if (!nested(f.payload)) {
        return false;
      }
    } else {
      out.append(f.whole);
    }
  }
  return true;
}

struct Stripped {
  std::string bytes;                                // the model without initializer payloads
  std::vector<std::optional<std::string_view>> raw; // per initializer, in order
};

std::optional<Stripped> strip_initializer_data(std::string_view model) {
  Stripped s;
  std::size_t outside = 0;
  std::string graph;
  std::string tensor;
  const bool ok = copy_fields(model, s.bytes, 7, [&](std::string_view g) {
    graph.clear();
    const bool graph_ok = copy_fields(g, graph, 5, [&](std::string_view t) {
      tensor.clear();
      std::optional<std::string_view> raw;
      const bool tensor_ok = copy_fields(t, tensor, 9, [&](std::string_view r) {
        raw = r; // the last occurrence wins, as in protobuf
        return true;
      });
      if (raw) {
        outside += raw->size();
      }
      s.raw.push_back(raw);
      put_message(graph, 5, tensor);
      return tensor_ok;
    });
    put_message(s.bytes, 7, graph);
    return graph_ok;
  });
  if (!ok || outside < (std::size_t{1} << 20)) {
    return std::nullopt; // malformed, or too little to be worth it
  }
  return s;
}

// `outside`: the tensor's raw_data when the wire pre-pass took it out of the message.
TensorData read_tensor(const pb::TensorProto& t, const std::string& what, std::string_view model,
                       std::optional<std::string_view> outside = std::nullopt) {
  TensorData out;
  out.name = t.name();
  out.type = t.data_type();
  if (t.data_location() == pb::TensorProto::EXTERNAL || t.external_data_size() > 0) {
    throw Error(ErrorKind::invalid_input,
                std::string(model) + ": " + what +
                    ": external data is not supported; save the model with its "
                    "tensors inside the .onnx file");
  }
  if (t.has_segment()) {
    throw Error(ErrorKind::invalid_input,
                std::string(model) + ": " + what + ": segmented tensors are not supported");
  }
  if (out.type == k_type_undefined) {
    corrupt(model, what + ": no data type");
  }
  std::int64_t count = 1;
  for (const auto d : t.dims()) {
    if (d < 0) {
      corrupt(model, what + ": negative dimension in " + dims_text(t.dims()));
    }
    if (d != 0 && count > k_max_tensor_elements / d) {
      corrupt(model, what + ": dims " + dims_text(t.dims()) +
                         " declare more elements than a model file can hold");
    }
    count *= d;
  }
  if (count > k_max_tensor_elements) {
    corrupt(model, what + ": dims " + dims_text(t.dims()) +
                       " declare more elements than a model file can hold");
  }
  out.dims.assign(t.dims().begin(), t.dims().end());

  std::int64_t per_element = 1;
  const std::int64_t entries = typed_entries(t, out.type, per_element);
  if (entries < 0) {
    return out; // a type this reader does not know: kept undecoded; the runtime refuses to use it
  }
  const bool raw = outside.has_value() || t.has_raw_data();
  const std::string_view raw_data = outside ? *outside : std::string_view(t.raw_data());
  if (raw) {
    const std::size_t size = raw_element_size(out.type);
    if (size == 0) {
      corrupt(model, what + ": " + onnx_type_name(out.type) + " data cannot be in raw_data");
    }
    const auto expected = static_cast<std::uint64_t>(count) * size;
    if (raw_data.size() != expected) {
      corrupt(model, what + ": dims " + dims_text(t.dims()) + " of " + onnx_type_name(out.type) +
                         " need " + std::to_string(expected) + " bytes of raw data, found " +
                         std::to_string(raw_data.size()));
    }
    if (entries != 0) {
      corrupt(model, what + ": has both raw_data and typed data");
    }
  } else if (entries != count * per_element) {
    corrupt(model, what + ": dims " + dims_text(t.dims()) + " declare " + std::to_string(count) +
                       " elements, found " + std::to_string(entries / per_element));
  }

  const auto n = static_cast<std::size_t>(count);
  if (out.type == k_type_float) {
    if (raw) {
      decode_le(raw_data, n, out.f32);
    } else {
      out.f32.assign(t.float_data().begin(), t.float_data().end());
    }
    out.decoded = true;
  } else if (out.type == k_type_int64) {
    if (raw) {
      decode_le(raw_data, n, out.i64);
    } else {
      out.i64.assign(t.int64_data().begin(), t.int64_data().end());
    }
    out.decoded = true;
  }
  return out;
}

ValueDecl read_value(const pb::ValueInfoProto& v) {
  ValueDecl out;
  out.name = v.name();
  if (!v.has_type() || !v.type().has_tensor_type()) {
    return out;
  }
  const auto& tensor = v.type().tensor_type();
  out.type = tensor.elem_type();
  if (tensor.has_shape()) {
    out.has_shape = true;
    for (const auto& d : tensor.shape().dim()) {
      DimDecl dim;
      if (d.has_dim_value()) {
        dim.fixed = true;
        dim.value = d.dim_value();
      } else if (d.has_dim_param()) {
        dim.param = d.dim_param();
      }
      out.dims.push_back(std::move(dim));
    }
  }
  return out;
}

Attribute read_attribute(const pb::AttributeProto& a, const std::string& node_what,
                         std::string_view model) {
  Attribute out;
  out.name = a.name();
  switch (a.type()) {
  case pb::AttributeProto::FLOAT:
    out.kind = Attribute::Kind::f;
    out.f = a.f();
    break;
  case pb::AttributeProto::INT:
    out.kind = Attribute::Kind::i;
    out.i = a.i();
    break;
  case pb::AttributeProto::STRING:
    out.kind = Attribute::Kind::s;
    out.s = a.s();
    break;
  case pb::AttributeProto::TENSOR:
    out.kind = Attribute::Kind::t;
    out.t = read_tensor(a.t(), node_what + ": attribute '" + printable(a.name()) + "'", model);
    break;
  case pb::AttributeProto::FLOATS:
    out.kind = Attribute::Kind::floats;
    out.floats.assign(a.floats().begin(), a.floats().end());
    break;
  case pb::AttributeProto::INTS:
    out.kind = Attribute::Kind::ints;
    out.ints.assign(a.ints().begin(), a.ints().end());
    break;
  default:
    out.kind = Attribute::Kind::other;
    break;
  }
  return out;
}

} // namespace

std::string onnx_type_name(std::int32_t type) {
  static constexpr const char* k_names[] = {
      "UNDEFINED", "FLOAT",  "UINT8",     "INT8",       "UINT16",  "INT16",
      "INT32",     "INT64",  "STRING",    "BOOL",       "FLOAT16", "DOUBLE",
      "UINT32",    "UINT64", "COMPLEX64", "COMPLEX128", "BFLOAT16"};
  if (type >= 0 && type <= k_type_bfloat16) {
    return k_names[type];
  }
  return "type " + std::to_string(type);
}

std::string printable(std::string_view text) {
  constexpr std::size_t k_max = 120;
  std::string out;
  for (const char c : text.substr(0, k_max)) {
    const auto u = static_cast<unsigned char>(c);
    out.push_back(u < 0x20 || u == 0x7f ? '?' : c);
  }
  if (text.size() > k_max) {
    out += "...";
  }
  return out;
}

const Attribute* NodeDef::attribute(std::string_view attr) const {
  for (const auto& a : attributes) {
    if (a.name == attr) {
      return &a;
    }
  }
  return nullptr;
}

ModelDef read_model(std::string_view bytes, std::string_view name) {
  if (bytes.size() > k_max_model_bytes) {
    corrupt(name, "file is " + std::to_string(bytes.size()) +
                      " bytes, over the 2 GiB limit of ONNX files");
  }
  pb::ModelProto proto;
  auto stripped = strip_initializer_data(bytes);
  const std::string_view parsed = stripped ? std::string_view(stripped->bytes) : bytes;
  if (!proto.ParseFromArray(parsed.data(), static_cast<int>(parsed.size()))) {
    corrupt(name, "not a valid ONNX file (protobuf parsing failed: truncated or not ONNX)");
  }
  if (stripped &&
      stripped->raw.size() != static_cast<std::size_t>(proto.graph().initializer_size())) {
    stripped.reset(); // cannot happen with well-formed input; parse the file as it is
    proto.Clear();
    if (!proto.ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
      corrupt(name, "not a valid ONNX file (protobuf parsing failed: truncated or not ONNX)");
    }
  }
  if (!proto.has_graph()) {
    corrupt(name, "not an ONNX model (no graph)");
  }
  if (proto.ir_version() <= 0) {
    corrupt(name, "not an ONNX model (no ir_version)");
  }
  ModelDef model;
  model.ir_version = proto.ir_version();
  for (const auto& opset : proto.opset_import()) {
    if (opset.domain().empty() || opset.domain() == "ai.onnx") {
      model.opset = opset.version();
    }
  }
  if (model.opset <= 0) {
    corrupt(name, "no operator set version for the default ONNX domain (opset_import)");
  }
  model.producer_name = proto.producer_name();
  model.producer_version = proto.producer_version();
  model.doc_string = proto.doc_string();
  for (const auto& entry : proto.metadata_props()) {
    model.metadata[entry.key()] = entry.value();
  }

  const auto& graph = proto.graph();
  model.graph_name = graph.name();
  std::set<std::string> initializer_names;
  model.initializers.reserve(static_cast<std::size_t>(graph.initializer_size()));
  for (int i = 0; i < graph.initializer_size(); ++i) {
    const auto& init = graph.initializer(i);
    const std::string what = "initializer '" + printable(init.name()) + "'";
    if (init.name().empty()) {
      corrupt(name, "an initializer has no name");
    }
    if (!initializer_names.insert(init.name()).second) {
      corrupt(name, what + " is defined twice");
    }
    model.initializers.push_back(read_tensor(
        init, what, name, stripped ? stripped->raw[static_cast<std::size_t>(i)] : std::nullopt));
  }
  // Before IR version 4 initializers were also listed as graph inputs (as defaults); they are
  // not inputs a caller must feed.
  for (const auto& input : graph.input()) {
    if (initializer_names.count(input.name()) == 0) {
      model.inputs.push_back(read_value(input));
    }
  }
  for (const auto& output : graph.output()) {
    model.outputs.push_back(read_value(output));
  }
  model.nodes.reserve(static_cast<std::size_t>(graph.node_size()));
  for (int i = 0; i < graph.node_size(); ++i) {
    const auto& n = graph.node(i);
    NodeDef node;
    node.index = static_cast<std::size_t>(i);
    node.name = n.name();
    node.op_type = n.op_type();
    node.domain = n.domain();
    node.inputs.assign(n.input().begin(), n.input().end());
    node.outputs.assign(n.output().begin(), n.output().end());
    const std::string what =
        "node " + (n.name().empty() ? std::to_string(i) : "'" + printable(n.name()) + "'");
    for (const auto& a : n.attribute()) {
      node.attributes.push_back(read_attribute(a, what, name));
    }
    model.nodes.push_back(std::move(node));
  }
  return model;
}

} // namespace mlctl::onnx::detail
