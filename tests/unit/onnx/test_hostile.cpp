// Corrupt and hostile ONNX files: every one is refused with a clear error, none crashes.

#include "onnx/runtime.hpp"
#include "onnx/writer.hpp"
#include "onnx_builder.hpp"
#include "onnx_test_util.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <functional>
#include <unistd.h>

using mlctl::Error;
using mlctl::ErrorKind;
using mlctl::nn::Activation;
using mlctl::onnx::Model;
using namespace mlctl::onnx::test;

namespace {

std::string small_model() {
  return mlctl::onnx::export_classifier(make_mlp({20, 8, 3}, Activation::relu, Activation::softmax),
                                        {"1", ""});
}

pb::ModelProto parsed(const std::string& bytes) {
  pb::ModelProto m;
  REQUIRE(m.ParseFromString(bytes));
  return m;
}

pb::TensorProto& initializer(pb::ModelProto& m, const std::string& name) {
  for (auto& t : *m.mutable_graph()->mutable_initializer()) {
    if (t.name() == name)
      return t;
  }
  FAIL("no initializer " << name);
  return *m.mutable_graph()->mutable_initializer(0);
}

// Returns the kind and message of the error `load` throws for `bytes`.
std::pair<ErrorKind, std::string> load_error(const std::string& bytes) {
  try {
    Model::load(bytes, "bad.onnx");
  } catch (const Error& e) {
    return {e.kind(), e.what()};
  }
  FAIL("the model loaded");
  return {ErrorKind::internal, ""};
}

} // namespace

TEST_CASE("every truncation of a model is refused as corrupt") {
  const std::string bytes = small_model();
  CHECK_NOTHROW(Model::load(bytes, "ok.onnx"));
  for (std::size_t len = 0; len < bytes.size(); ++len) {
    CAPTURE(len);
    const auto [kind, message] = load_error(bytes.substr(0, len));
    REQUIRE(kind == ErrorKind::corrupt);
    REQUIRE(message.rfind("bad.onnx: ", 0) == 0);
  }
  CHECK(load_error("").second == "bad.onnx: not an ONNX model (no graph)");
  CHECK(load_error(std::string("\xff\xff\xff\xff", 4)).second ==
        "bad.onnx: not a valid ONNX file (protobuf parsing failed: truncated or not ONNX)");
}

TEST_CASE(
    "a large model cut anywhere, or with its graph split in two, is read as protobuf reads it") {
  // Over 1 MB of weights: the reader's wire pre-pass takes them out before protobuf parses.
  const std::string bytes = mlctl::onnx::export_classifier(
      make_mlp({784, 400, 10}, Activation::relu, Activation::softmax), {"1", ""});
  REQUIRE(bytes.size() > (1u << 20));
  CHECK_NOTHROW(Model::load(bytes, "ok.onnx"));
  for (std::size_t len = 0; len < bytes.size(); len += bytes.size() / 97 + 1) {
    CAPTURE(len);
    REQUIRE(load_error(bytes.substr(0, len)).first == ErrorKind::corrupt);
  }
  // Protobuf merges a message field that occurs twice: the second graph's initializers follow
  // the first's. Here the second graph holds the first layer's bias.
  auto whole = parsed(bytes);
  pb::ModelProto second;
  auto* moved = second.mutable_graph()->add_initializer();
  const auto& graph = whole.graph();
  int bias_index = -1;
  for (int i = 0; i < graph.initializer_size(); ++i) {
    if (graph.initializer(i).dims_size() == 1 && graph.initializer(i).dims(0) == 400) {
      bias_index = i;
    }
  }
  REQUIRE(bias_index >= 0);
  *moved = graph.initializer(bias_index);
  whole.mutable_graph()->mutable_initializer()->DeleteSubrange(bias_index, 1);
  const std::string split = whole.SerializeAsString() + second.SerializeAsString();
  const auto x = make_input(2, 784);
  CHECK(Model::load(split, "split.onnx").run({fp32("input", {2, 784}, x)})[0].f32 ==
        Model::load(bytes, "ok.onnx").run({fp32("input", {2, 784}, x)})[0].f32);
}

TEST_CASE("initializers whose data does not match their dims are refused") {
  auto m = parsed(small_model());
  auto& w = initializer(m, "layer0.weight");
  w.set_dims(1, 21);
  CHECK(load_error(m.SerializeAsString()) ==
        std::pair{ErrorKind::corrupt,
                  std::string("bad.onnx: initializer 'layer0.weight': dims [8,21] of FLOAT need "
                              "672 bytes of raw data, found 640")});
  w.set_dims(1, -20);
  CHECK(load_error(m.SerializeAsString()).second ==
        "bad.onnx: initializer 'layer0.weight': negative dimension in [8,-20]");

  auto typed = parsed(small_model());
  auto& b = initializer(typed, "layer0.bias");
  b.clear_raw_data();
  b.add_float_data(1.0f);
  CHECK(load_error(typed.SerializeAsString()).second ==
        "bad.onnx: initializer 'layer0.bias': dims [8] declare 8 elements, found 1");
}

TEST_CASE("huge declared sizes are refused before any allocation") {
  auto m = parsed(small_model());
  auto& w = initializer(m, "layer0.weight");
  w.set_dims(0, std::int64_t{1} << 40);
  w.set_dims(1, std::int64_t{1} << 40);
  CHECK(load_error(m.SerializeAsString()).second ==
        "bad.onnx: initializer 'layer0.weight': dims [1099511627776,1099511627776] declare more "
        "elements than a "
        "model file can hold");

  Builder b;
  b.input("x", {-1, std::int64_t{1} << 40});
  b.node("Relu", {"x"}, {"y"});
  b.output("y");
  CHECK(load_error(b.bytes()) ==
        std::pair{ErrorKind::corrupt,
                  std::string("bad.onnx: input 'x': shape [N,1099511627776] is too large")});

  // A constant-folded broadcast that would explode: [65536,1] * [1,65536].
  Builder c;
  c.input("x", {-1, 1}).floats("col", {65536, 1}, std::vector<float>(65536, 1.0f));
  c.floats("row", {1, 65536}, std::vector<float>(65536, 1.0f));
  c.node("Mul", {"col", "row"}, {"big"});
  c.node("Add", {"x", "big"}, {"y"});
  c.output("y");
  const auto [kind, message] = load_error(c.bytes());
  CHECK(kind == ErrorKind::corrupt);
  CHECK(message == "bad.onnx: node 0 (Mul): shape [65536,65536] is too large");
}

TEST_CASE("a graph with a cycle is refused") {
  Builder b;
  b.input("x", {-1, 2});
  b.node("Add", {"x", "b"}, {"a"}, "first");
  b.node("Relu", {"a"}, {"b"}, "second");
  b.output("b");
  CHECK(load_error(b.bytes()) ==
        std::pair{ErrorKind::corrupt,
                  std::string("bad.onnx: the graph has a cycle (through node 'first' (Add))")});
}

TEST_CASE("unsupported operators are refused by name at load time") {
  auto m = parsed(small_model());
  m.mutable_graph()->mutable_node(0)->set_op_type("Conv");
  CHECK(load_error(m.SerializeAsString()) ==
        std::pair{ErrorKind::invalid_input,
                  std::string("bad.onnx: unsupported operator 'Conv' (node 'layer0.gemm')")});
  m.mutable_graph()->mutable_node(0)->clear_name();
  CHECK(load_error(m.SerializeAsString()).second ==
        "bad.onnx: unsupported operator 'Conv' (node 0)");
  auto d = parsed(small_model());
  d.mutable_graph()->mutable_node(1)->set_domain("com.microsoft");
  CHECK(load_error(d.SerializeAsString()).second ==
        "bad.onnx: unsupported operator 'com.microsoft.Relu' (node 'layer0.relu')");
}

TEST_CASE("structural errors name what is wrong") {
  auto missing = parsed(small_model());
  missing.mutable_graph()->mutable_node(1)->set_input(0, "nowhere");
  CHECK(load_error(missing.SerializeAsString()).second ==
        "bad.onnx: node 'layer0.relu' (Relu) reads 'nowhere', which is not a graph input, an "
        "initializer or a node "
        "output");

  auto twice = parsed(small_model());
  twice.mutable_graph()->mutable_node(1)->set_output(0, "layer0.weight");
  CHECK(load_error(twice.SerializeAsString()).second ==
        "bad.onnx: value 'layer0.weight' is defined twice (again by node 'layer0.relu' (Relu))");

  auto output = parsed(small_model());
  output.mutable_graph()->mutable_output(0)->set_name("ghost");
  CHECK(load_error(output.SerializeAsString()).second ==
        "bad.onnx: output 'ghost' is not produced by any node or input");

  auto shapes = parsed(small_model());
  auto& w = initializer(shapes, "layer0.weight");
  w.set_dims(0, 4);
  w.set_dims(1, 40);
  CHECK(load_error(shapes.SerializeAsString()) ==
        std::pair{ErrorKind::corrupt, std::string("bad.onnx: node 'layer0.gemm' (Gemm): inner "
                                                  "dimensions differ: [N,20] times [4,40]")});

  auto attribute = parsed(small_model());
  auto* axis = attribute.mutable_graph()->mutable_node(3)->mutable_attribute(0);
  REQUIRE(axis->name() == "axis");
  axis->set_type(pb::AttributeProto::FLOAT);
  CHECK(load_error(attribute.SerializeAsString()).second ==
        "bad.onnx: node 'softmax' (Softmax): attribute 'axis' must be an integer");

  auto no_opset = parsed(small_model());
  no_opset.clear_opset_import();
  CHECK(load_error(no_opset.SerializeAsString()).second ==
        "bad.onnx: no operator set version for the default ONNX domain (opset_import)");
  auto old = parsed(small_model());
  old.mutable_opset_import(0)->set_version(5);
  CHECK(load_error(old.SerializeAsString()) ==
        std::pair{ErrorKind::invalid_input,
                  std::string("bad.onnx: operator set 5 is not supported (7 to 23)")});
}

TEST_CASE("valid ONNX this runtime does not run is refused as invalid input") {
  auto external = parsed(small_model());
  auto& w = initializer(external, "layer0.weight");
  w.clear_raw_data();
  w.set_data_location(pb::TensorProto::EXTERNAL);
  auto* entry = w.add_external_data();
  entry->set_key("location");
  entry->set_value("weights.bin");
  CHECK(load_error(external.SerializeAsString()) ==
        std::pair{ErrorKind::invalid_input,
                  std::string("bad.onnx: initializer 'layer0.weight': external data is not "
                              "supported; save the model "
                              "with its tensors inside the .onnx file")});

  Builder two;
  two.input("x", {-1, -1});
  two.node("Relu", {"x"}, {"y"});
  two.output("y");
  CHECK(
      load_error(two.bytes()).second ==
      "bad.onnx: input 'x' has 2 dynamic dimensions; only one (the batch dimension) is supported");

  Builder dbl;
  dbl.input("x", {-1, 2}, pb::TensorProto::DOUBLE);
  dbl.node("Relu", {"x"}, {"y"});
  dbl.output("y", pb::TensorProto::DOUBLE);
  CHECK(load_error(dbl.bytes()).second ==
        "bad.onnx: input 'x': data type DOUBLE is not supported (FLOAT or INT64)");
}

TEST_CASE("load_file refuses files over 2 GiB without reading them") {
  mlctl::util::TempDir dir;
  const auto path = dir.path() / "huge.onnx";
  const int fd = ::open(path.c_str(), O_CREAT | O_WRONLY, 0600);
  REQUIRE(fd >= 0);
  REQUIRE(::ftruncate(fd, (off_t{3} << 30)) == 0); // sparse: no disk space used
  ::close(fd);
  CHECK_THROWS_WITH_AS(Model::load_file(path),
                       "huge.onnx: file is 3221225472 bytes, over the 2 GiB limit of ONNX files",
                       Error);
  CHECK_THROWS_AS(Model::load_file(dir.path() / "missing.onnx"), Error);
}
