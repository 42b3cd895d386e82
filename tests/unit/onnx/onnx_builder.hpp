#pragma once
// Builds ONNX models message by message for the runtime tests (the generated protobuf classes
// of lib/onnx/onnx_subset.proto).

#include "onnx/onnx_subset.pb.h"

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

namespace mlctl::onnx::test {

namespace pb = mlctl::onnx_pb;

class Builder {
public:
  explicit Builder(std::int64_t opset = 13) {
    m_model.set_ir_version(8);
    auto* op = m_model.add_opset_import();
    op->set_domain("");
    op->set_version(opset);
    m_model.set_producer_name("test");
    m_model.mutable_graph()->set_name("test");
  }

  pb::GraphProto& graph() { return *m_model.mutable_graph(); }
  pb::ModelProto& model() { return m_model; }

  // dims: -1 for the dynamic (batch) dimension.
  Builder& input(const std::string& name, std::vector<std::int64_t> dims,
                 int type = pb::TensorProto::FLOAT) {
    set_value(*graph().add_input(), name, dims, type);
    return *this;
  }
  Builder& output(const std::string& name, int type = pb::TensorProto::FLOAT) {
    auto* v = graph().add_output();
    v->set_name(name);
    v->mutable_type()->mutable_tensor_type()->set_elem_type(type);
    return *this;
  }
  Builder& floats(const std::string& name, std::vector<std::int64_t> dims,
                  const std::vector<float>& data) {
    auto* t = graph().add_initializer();
    t->set_name(name);
    t->set_data_type(pb::TensorProto::FLOAT);
    for (auto d : dims)
      t->add_dims(d);
    std::string raw(data.size() * 4, '\0');
    std::memcpy(raw.data(), data.data(), raw.size());
    t->set_raw_data(raw);
    return *this;
  }
  Builder& ints(const std::string& name, std::vector<std::int64_t> dims,
                const std::vector<std::int64_t>& data) {
    auto* t = graph().add_initializer();
    t->set_name(name);
    t->set_data_type(pb::TensorProto::INT64);
    for (auto d : dims)
      t->add_dims(d);
    for (auto v : data)
      t->add_int64_data(v);
    return *this;
  }
  pb::NodeProto& node(const std::string& op, std::initializer_list<std::string> inputs,
                      std::initializer_list<std::string> outputs, const std::string& name = "") {
    auto* n = graph().add_node();
    n->set_op_type(op);
    n->set_name(name);
    for (const auto& i : inputs)
      n->add_input(i);
    for (const auto& o : outputs)
      n->add_output(o);
    return *n;
  }
  static void attr(pb::NodeProto& node, const std::string& name, std::int64_t value) {
    auto* a = node.add_attribute();
    a->set_name(name);
    a->set_type(pb::AttributeProto::INT);
    a->set_i(value);
  }
  static void attr_f(pb::NodeProto& node, const std::string& name, float value) {
    auto* a = node.add_attribute();
    a->set_name(name);
    a->set_type(pb::AttributeProto::FLOAT);
    a->set_f(value);
  }

  std::string bytes() const { return m_model.SerializeAsString(); }

  static void set_value(pb::ValueInfoProto& v, const std::string& name,
                        const std::vector<std::int64_t>& dims, int type) {
    v.set_name(name);
    auto* t = v.mutable_type()->mutable_tensor_type();
    t->set_elem_type(type);
    auto* shape = t->mutable_shape();
    for (auto d : dims) {
      auto* dim = shape->add_dim();
      if (d < 0) {
        dim->set_dim_param("N");
      } else {
        dim->set_dim_value(d);
      }
    }
  }

private:
  pb::ModelProto m_model;
};

} // namespace mlctl::onnx::test
