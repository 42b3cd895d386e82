#include "onnx/writer.hpp"

#include "onnx/onnx_subset.pb.h"
#include "util/error.hpp"

#include <bit>
#include <cstdint>
#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <string>
#include <string_view>

namespace mlctl::onnx {

namespace {

namespace pb = mlctl::onnx_pb;

// ONNX IR version 8 (2021-07-30) with the default operator set 13: what onnx 1.12+ checks
// and every maintained runtime loads.
constexpr std::int64_t k_ir_version = 8;
constexpr std::int64_t k_opset = 13;

void append_float_le(std::string& out, float value) {
  // TensorProto.raw_data is little-endian whatever the host (onnx.proto, "raw_data").
  const auto bits = std::bit_cast<std::uint32_t>(value);
  for (int shift = 0; shift < 32; shift += 8) {
    out.push_back(static_cast<char>((bits >> shift) & 0xffu));
  }
}

void check_network(const nn::Mlp& mlp, std::string_view what) {
  if (mlp.layers.empty()) {
    throw Error(ErrorKind::invalid_input, std::string(what) + ": the network has no layers");
  }
  for (std::size_t i = 0; i < mlp.layers.size(); ++i) {
    const auto& layer = mlp.layers[i];
    const std::string where = std::string(what) + ": layer " + std::to_string(i);
    if (layer.weight.rows() == 0 || layer.weight.cols() == 0) {
      throw Error(ErrorKind::invalid_input, where + ": empty weight matrix");
    }
    if (layer.bias.size() != layer.weight.rows()) {
      throw Error(ErrorKind::invalid_input,
                  where + ": bias has " + std::to_string(layer.bias.size()) +
                      " entries, expected " + std::to_string(layer.weight.rows()));
    }
    if (i > 0 && layer.weight.cols() != mlp.layers[i - 1].weight.rows()) {
      throw Error(ErrorKind::invalid_input,
                  where + ": takes " + std::to_string(layer.weight.cols()) +
                      " inputs but the previous layer has " +
                      std::to_string(mlp.layers[i - 1].weight.rows()) + " outputs");
    }
  }
}

void add_int_attribute(pb::NodeProto& node, const std::string& name, std::int64_t value) {
  auto* attr = node.add_attribute();
  attr->set_name(name);
  attr->set_type(pb::AttributeProto::INT);
  attr->set_i(value);
}

pb::NodeProto& add_node(pb::GraphProto& graph, const std::string& op, const std::string& name,
                        std::initializer_list<std::string> inputs, const std::string& output) {
  auto* node = graph.add_node();
  node->set_op_type(op);
  node->set_name(name);
  for (const auto& input : inputs) {
    node->add_input(input);
  }
  node->add_output(output);
  return *node;
}

void set_tensor_type(pb::ValueInfoProto& value, const std::string& name,
                     pb::TensorProto::DataType type,
                     std::initializer_list<std::int64_t> dims /* -1 = the batch dim "N" */) {
  value.set_name(name);
  auto* tensor = value.mutable_type()->mutable_tensor_type();
  tensor->set_elem_type(type);
  auto* shape = tensor->mutable_shape();
  for (const auto d : dims) {
    auto* dim = shape->add_dim();
    if (d < 0) {
      dim->set_dim_param("N");
    } else {
      dim->set_dim_value(d);
    }
  }
}

void add_weights(pb::GraphProto& graph, const nn::DenseLayer& layer, const std::string& weight_name,
                 const std::string& bias_name) {
  // Gemm's B with transB = 1: shape [out, in], row-major (C order) as ONNX stores every tensor.
  auto* weight = graph.add_initializer();
  weight->set_name(weight_name);
  weight->set_data_type(pb::TensorProto::FLOAT);
  weight->add_dims(layer.weight.rows());
  weight->add_dims(layer.weight.cols());
  std::string raw;
  raw.reserve(static_cast<std::size_t>(layer.weight.size()) * 4);
  for (Eigen::Index r = 0; r < layer.weight.rows(); ++r) {
    for (Eigen::Index c = 0; c < layer.weight.cols(); ++c) {
      append_float_le(raw, layer.weight(r, c));
    }
  }
  weight->set_raw_data(std::move(raw));

  auto* bias = graph.add_initializer();
  bias->set_name(bias_name);
  bias->set_data_type(pb::TensorProto::FLOAT);
  bias->add_dims(layer.bias.size());
  std::string braw;
  braw.reserve(static_cast<std::size_t>(layer.bias.size()) * 4);
  for (Eigen::Index i = 0; i < layer.bias.size(); ++i) {
    append_float_le(braw, layer.bias(i));
  }
  bias->set_raw_data(std::move(braw));
}

// Adds the Gemm + activation chain of every layer, reading `input`; the last layer's output is
// named `last_output` (its activation is applied unless `skip_last_activation`). Returns the
// name of the value the chain ends with.
std::string add_layers(pb::GraphProto& graph, const nn::Mlp& mlp, const std::string& last_output,
                       bool skip_last_activation) {
  std::string current = "input";
  for (std::size_t i = 0; i < mlp.layers.size(); ++i) {
    const auto& layer = mlp.layers[i];
    const std::string prefix = "layer" + std::to_string(i);
    add_weights(graph, layer, prefix + ".weight", prefix + ".bias");
    const bool last = i + 1 == mlp.layers.size();
    const bool has_activation =
        layer.activation != nn::Activation::none && !(last && skip_last_activation);
    const std::string gemm_out = last && !has_activation ? last_output : prefix + ".gemm";
    auto& gemm = add_node(graph, "Gemm", prefix + ".gemm",
                          {current, prefix + ".weight", prefix + ".bias"}, gemm_out);
    add_int_attribute(gemm, "transB", 1);
    current = gemm_out;
    if (!has_activation) {
      continue;
    }
    const std::string act_out = last ? last_output : prefix + "." + nn::to_string(layer.activation);
    switch (layer.activation) {
    case nn::Activation::relu:
      add_node(graph, "Relu", prefix + ".relu", {current}, act_out);
      break;
    case nn::Activation::sigmoid:
      add_node(graph, "Sigmoid", prefix + ".sigmoid", {current}, act_out);
      break;
    case nn::Activation::tanh:
      add_node(graph, "Tanh", prefix + ".tanh", {current}, act_out);
      break;
    case nn::Activation::softmax:
      add_int_attribute(add_node(graph, "Softmax", prefix + ".softmax", {current}, act_out), "axis",
                        1);
      break;
    case nn::Activation::none:
      break;
    }
    current = act_out;
  }
  return current;
}

pb::ModelProto new_model(const OnnxExportOptions& options, const std::string& graph_name) {
  pb::ModelProto model;
  model.set_ir_version(k_ir_version);
  auto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(k_opset);
  model.set_producer_name("mlctl");
  model.set_producer_version(options.producer_version);
  if (!options.doc.empty()) {
    model.set_doc_string(options.doc);
  }
  model.mutable_graph()->set_name(graph_name);
  return model;
}

std::string serialize(const pb::ModelProto& model) {
  // Deterministic serialization: the same message gives the same bytes (reproducible models).
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    if (!model.SerializeToCodedStream(&coded)) {
      throw Error(ErrorKind::internal, "onnx export: protobuf serialization failed");
    }
  }
  return bytes;
}

} // namespace

std::string export_classifier(const nn::Mlp& mlp, const OnnxExportOptions& options) {
  check_network(mlp, "onnx export");
  const auto last = mlp.layers.back().activation;
  if (last != nn::Activation::softmax && last != nn::Activation::none) {
    throw Error(ErrorKind::invalid_input,
                "onnx export: a classifier's last layer must have the softmax or no "
                "activation, not " +
                    nn::to_string(last));
  }
  auto model = new_model(options, "mlctl_classifier");
  auto& graph = *model.mutable_graph();
  set_tensor_type(*graph.add_input(), "input", pb::TensorProto::FLOAT, {-1, mlp.input_size()});
  const std::string logits = add_layers(graph, mlp, "logits", /*skip_last_activation=*/true);
  add_int_attribute(add_node(graph, "Softmax", "softmax", {logits}, "probabilities"), "axis", 1);
  auto& argmax = add_node(graph, "ArgMax", "argmax", {"probabilities"}, "class");
  add_int_attribute(argmax, "axis", 1);
  add_int_attribute(argmax, "keepdims", 0);
  set_tensor_type(*graph.add_output(), "probabilities", pb::TensorProto::FLOAT,
                  {-1, mlp.output_size()});
  set_tensor_type(*graph.add_output(), "class", pb::TensorProto::INT64, {-1});
  return serialize(model);
}

std::string export_autoencoder(const nn::Mlp& mlp, const OnnxExportOptions& options) {
  check_network(mlp, "onnx export");
  auto model = new_model(options, "mlctl_autoencoder");
  auto& graph = *model.mutable_graph();
  set_tensor_type(*graph.add_input(), "input", pb::TensorProto::FLOAT, {-1, mlp.input_size()});
  add_layers(graph, mlp, "reconstruction", /*skip_last_activation=*/false);
  set_tensor_type(*graph.add_output(), "reconstruction", pb::TensorProto::FLOAT,
                  {-1, mlp.output_size()});
  return serialize(model);
}

} // namespace mlctl::onnx
