#include "onnx/runtime.hpp"
#include "onnx/writer.hpp"
#include "onnx_builder.hpp"
#include "onnx_test_util.hpp"
#include "util/error.hpp"

#include <atomic>
#include <cmath>
#include <doctest/doctest.h>
#include <filesystem>
#include <limits>
#include <thread>

using mlctl::Error;
using mlctl::nn::Activation;
using mlctl::onnx::Model;
using mlctl::onnx::Tensor;
using namespace mlctl::onnx::test;

namespace {

std::vector<float> iota(std::size_t n, float start = 0.0f, float step = 1.0f) {
  std::vector<float> v(n);
  for (std::size_t i = 0; i < n; ++i)
    v[i] = start + step * static_cast<float>(i);
  return v;
}

const Tensor& named(const std::vector<Tensor>& outputs, const std::string& name) {
  for (const auto& t : outputs) {
    if (t.name == name)
      return t;
  }
  FAIL("no output " << name);
  return outputs.front();
}

} // namespace

TEST_CASE("Add Sub Mul and Div broadcast like numpy") {
  Builder b;
  b.input("x", {-1, 3})
      .floats("bias", {3}, {1, 2, 3})
      .floats("s", {}, {0.5f})
      .floats("row", {1, 3}, {2, 4, 8});
  b.floats("planes", {2, 1, 1}, {1, 10});
  b.node("Add", {"x", "bias"}, {"a"});
  b.node("Sub", {"a", "s"}, {"b"});
  b.node("Mul", {"b", "row"}, {"c"});
  b.node("Div", {"c", "planes"}, {"d"});
  b.node("Sub", {"s", "x"}, {"e"}); // scalar on the left
  b.output("d").output("e");
  const Model model = Model::load(b.bytes(), "t.onnx");
  CHECK(model.outputs()[0].shape == std::vector<std::int64_t>{2, -1, 3});
  const auto x = iota(6);
  const auto out = model.run({fp32("x", {2, 3}, x)});
  const auto& d = named(out, "d");
  REQUIRE(d.shape == std::vector<std::int64_t>{2, 2, 3});
  const float bias[3] = {1, 2, 3};
  const float row[3] = {2, 4, 8};
  const float planes[2] = {1, 10};
  for (int p = 0; p < 2; ++p) {
    for (int i = 0; i < 2; ++i) {
      for (int j = 0; j < 3; ++j) {
        const float expected =
            (x[static_cast<std::size_t>(i * 3 + j)] + bias[j] - 0.5f) * row[j] / planes[p];
        CHECK(d.f32[static_cast<std::size_t>(p * 6 + i * 3 + j)] == doctest::Approx(expected));
      }
    }
  }
  const auto& e = named(out, "e");
  CHECK(e.f32 == std::vector<float>{0.5f, -0.5f, -1.5f, -2.5f, -3.5f, -4.5f});
}

TEST_CASE("Reshape with 0 and -1 and Flatten and Identity share the data") {
  Builder b;
  b.input("x", {-1, 2, 6})
      .ints("keep_rest", {2}, {0, -1})
      .ints("split", {3}, {-1, 3, 4})
      .ints("all", {1}, {-1});
  b.node("Reshape", {"x", "keep_rest"}, {"r1"});
  b.node("Reshape", {"x", "split"}, {"r2"});
  b.node("Reshape", {"x", "all"}, {"r3"});
  Builder::attr(b.node("Flatten", {"x"}, {"f"}), "axis", 2);
  b.node("Identity", {"x"}, {"same"});
  b.output("r1").output("r2").output("r3").output("f").output("same");
  const Model model = Model::load(b.bytes(), "t.onnx");
  CHECK(model.outputs()[0].shape == std::vector<std::int64_t>{-1, 12});
  CHECK(model.outputs()[1].shape == std::vector<std::int64_t>{-1, 3, 4});
  CHECK(model.outputs()[2].shape == std::vector<std::int64_t>{-1});
  CHECK(model.outputs()[3].shape == std::vector<std::int64_t>{-1, 6});
  const auto x = iota(36);
  const auto out = model.run({fp32("x", {3, 2, 6}, x)});
  CHECK(out[0].shape == std::vector<std::int64_t>{3, 12});
  CHECK(out[1].shape == std::vector<std::int64_t>{3, 3, 4});
  CHECK(out[2].shape == std::vector<std::int64_t>{36});
  CHECK(out[3].shape == std::vector<std::int64_t>{6, 6});
  CHECK(out[4].shape == std::vector<std::int64_t>{3, 2, 6});
  for (const auto& t : out) {
    CHECK(t.f32 == x);
  }
}

TEST_CASE("Reshape refuses shapes that do not fit") {
  Builder b;
  b.input("x", {-1, 10}).ints("bad", {2}, {-1, 3});
  b.node("Reshape", {"x", "bad"}, {"y"}, "reshape");
  b.output("y");
  CHECK_THROWS_WITH_AS(Model::load(b.bytes(), "t.onnx"),
                       "t.onnx: node 'reshape' (Reshape): cannot reshape [N,10] to [-1,3]", Error);
}

TEST_CASE("Cast and ArgMax") {
  Builder b;
  b.input("x", {-1, 4});
  Builder::attr(b.node("Cast", {"x"}, {"i"}), "to", 7);
  auto& back = b.node("Cast", {"i"}, {"f"});
  Builder::attr(back, "to", 1);
  auto& first = b.node("ArgMax", {"x"}, {"first"});
  Builder::attr(first, "axis", -1);
  Builder::attr(first, "keepdims", 0);
  auto& last = b.node("ArgMax", {"x"}, {"last"});
  Builder::attr(last, "axis", 1);
  Builder::attr(last, "select_last_index", 1);
  b.output("i", 7).output("f").output("first", 7).output("last", 7);
  const Model model = Model::load(b.bytes(), "t.onnx");
  CHECK(model.outputs()[0].datatype == "INT64");
  CHECK(model.outputs()[2].shape == std::vector<std::int64_t>{-1});
  CHECK(model.outputs()[3].shape == std::vector<std::int64_t>{-1, 1});
  const auto out =
      model.run({fp32("x", {2, 4}, {1.9f, -2.7f, 3.0f, 3.0f, 0.5f, 0.5f, -1.0f, 0.0f})});
  CHECK(out[0].i64 == std::vector<std::int64_t>{1, -2, 3, 3, 0, 0, -1, 0});
  CHECK(out[1].f32 == std::vector<float>{1, -2, 3, 3, 0, 0, -1, 0});
  CHECK(out[2].i64 == std::vector<std::int64_t>{2, 0});
  CHECK(out[3].i64 == std::vector<std::int64_t>{3, 1});
}

TEST_CASE("MatMul on a rank-3 input with a constant and with a fed second input") {
  Builder b;
  b.input("x", {-1, 2, 4}).input("w", {4, 3});
  b.floats("k", {4, 3}, iota(12, -1.0f, 0.25f));
  b.node("MatMul", {"x", "k"}, {"y"});
  b.node("MatMul", {"x", "w"}, {"z"});
  b.output("y").output("z");
  const Model model = Model::load(b.bytes(), "t.onnx");
  CHECK(model.outputs()[0].shape == std::vector<std::int64_t>{-1, 2, 3});
  const auto x = iota(16, 0.5f);
  const auto k = iota(12, -1.0f, 0.25f);
  const auto out = model.run({fp32("x", {2, 2, 4}, x), fp32("w", {4, 3}, k)});
  REQUIRE(out[0].shape == std::vector<std::int64_t>{2, 2, 3});
  for (int r = 0; r < 4; ++r) {
    for (int c = 0; c < 3; ++c) {
      float s = 0;
      for (int i = 0; i < 4; ++i)
        s += x[static_cast<std::size_t>(r * 4 + i)] * k[static_cast<std::size_t>(i * 3 + c)];
      CHECK(out[0].f32[static_cast<std::size_t>(r * 3 + c)] == doctest::Approx(s));
      CHECK(out[1].f32[static_cast<std::size_t>(r * 3 + c)] == doctest::Approx(s));
    }
  }
}

TEST_CASE("Gemm with transA alpha beta and a full C") {
  Builder b;
  b.input("a", {3, 2});
  b.floats("b", {3, 2}, {1, 2, 3, 4, 5, 6}).floats("c", {2, 2}, {10, 20, 30, 40});
  auto& g = b.node("Gemm", {"a", "b", "c"}, {"y"});
  Builder::attr(g, "transA", 1);
  Builder::attr_f(g, "alpha", 2.0f);
  Builder::attr_f(g, "beta", 0.5f);
  b.output("y");
  const Model model = Model::load(b.bytes(), "t.onnx");
  // A^T = [[1,3,5],[2,4,6]] with a = [[1,2],[3,4],[5,6]]; A^T B = [[35,44],[44,56]].
  const auto out = model.run({fp32("a", {3, 2}, {1, 2, 3, 4, 5, 6})});
  CHECK(out[0].f32 == std::vector<float>{2 * 35 + 5, 2 * 44 + 10, 2 * 44 + 15, 2 * 56 + 20});
}

TEST_CASE("a one-row Gemm over mostly-zero inputs skips their weights only when all are finite") {
  // 0 * inf is NaN: with an infinite weight the zero inputs' rows must still be read.
  const float inf = std::numeric_limits<float>::infinity();
  for (const float w0 : {2.0f, inf}) {
    Builder b;
    b.input("x", {-1, 8});
    b.floats("w", {1, 8}, {w0, 1, 1, 1, 1, 1, 1, 3});
    Builder::attr(b.node("Gemm", {"x", "w"}, {"y"}), "transB", 1);
    b.output("y");
    const Model model = Model::load(b.bytes(), "t.onnx");
    const auto out = model.run({fp32("x", {1, 8}, {0, 0, 0, 0, 0, 0, 0, 2})});
    if (w0 == inf) {
      CHECK(std::isnan(out[0].f32[0]));
    } else {
      CHECK(out[0].f32[0] == 6.0f);
    }
  }
}

TEST_CASE("Softmax follows the opset: along the axis from 13 and flattened from the axis before") {
  for (const std::int64_t opset : {11, 13}) {
    Builder b(opset);
    b.input("x", {-1, 2, 3});
    Builder::attr(b.node("Softmax", {"x"}, {"y"}), "axis", 1);
    b.output("y");
    const Model model = Model::load(b.bytes(), "t.onnx");
    const auto out = model.run({fp32("x", {1, 2, 3}, {0, 1, 2, 3, 4, 5})});
    if (opset == 11) {
      float sum = 0;
      for (float v : out[0].f32)
        sum += v;
      CHECK(sum == doctest::Approx(1.0));
    } else {
      CHECK(out[0].f32[0] + out[0].f32[3] == doctest::Approx(1.0));
      CHECK(out[0].f32[2] + out[0].f32[5] == doctest::Approx(1.0));
    }
  }
}

TEST_CASE("constants are folded and dead nodes dropped and a Relu after a Gemm fused") {
  Builder b;
  b.input("x", {-1, 2}).floats("w", {2, 2}, {1, 0, 0, 1}).floats("half", {}, {0.5f});
  auto& c = b.node("Constant", {}, {"two"});
  auto* a = c.add_attribute();
  a->set_name("value_floats");
  a->set_type(pb::AttributeProto::FLOATS);
  a->add_floats(2.0f);
  a->add_floats(2.0f);
  b.node("Mul", {"two", "half"}, {"ones"}); // folded: [1, 1]
  Builder::attr(b.node("Gemm", {"x", "w", "ones"}, {"g"}), "transB", 1);
  b.node("Relu", {"g"}, {"y"});
  b.node("Tanh", {"x"}, {"unused"});
  b.output("y");
  const Model model = Model::load(b.bytes(), "t.onnx");
  CHECK(model.step_count() == 2); // the Gemm (with the Relu fused) and the Relu turned alias
  const auto out = model.run({fp32("x", {2, 2}, {-3, 1, 0.5f, -0.5f})});
  CHECK(out[0].f32 == std::vector<float>{0, 2, 1.5f, 0.5f});
}

TEST_CASE("aliases of a fused Relu keep the Gemm buffer alive") {
  // Gemm -> Relu (fused) -> Flatten (alias of the Relu) -> Gemm -> Sigmoid: the second Gemm
  // reads the first one's buffer through two aliases.
  Builder b;
  b.input("x", {-1, 3}).floats("w1", {3, 2}, {1, -1, 2, 0, -1, 1}).floats("w2", {2, 2}, {0.5f, 1, -1, 2});
  b.node("Gemm", {"x", "w1"}, {"g"});
  b.node("Relu", {"g"}, {"r"});
  b.node("Flatten", {"r"}, {"f"});
  b.node("Gemm", {"f", "w2"}, {"h"});
  b.node("Sigmoid", {"h"}, {"y"});
  b.output("y");
  const Model model = Model::load(b.bytes(), "t.onnx");
  const std::vector<float> x = {1, 2, 3, -1, 0.5f, 2};
  const auto out = model.run({fp32("x", {2, 3}, x)});
  const float w1[3][2] = {{1, -1}, {2, 0}, {-1, 1}};
  const float w2[2][2] = {{0.5f, 1}, {-1, 2}};
  for (int i = 0; i < 2; ++i) {
    float r[2];
    for (int j = 0; j < 2; ++j) {
      float g = 0;
      for (int k = 0; k < 3; ++k) g += x[static_cast<std::size_t>(i * 3 + k)] * w1[k][j];
      r[j] = std::max(g, 0.0f);
    }
    for (int j = 0; j < 2; ++j) {
      const float h = r[0] * w2[0][j] + r[1] * w2[1][j];
      CHECK(out[0].f32[static_cast<std::size_t>(i * 2 + j)] == doctest::Approx(1.0 / (1.0 + std::exp(-h))));
    }
  }
}

TEST_CASE("a Gemm result read by a Relu and by an output is not fused") {
  Builder b;
  b.input("x", {-1, 2}).floats("w", {2, 2}, {1, 0, 0, 1});
  b.node("Gemm", {"x", "w"}, {"g"});
  b.node("Relu", {"g"}, {"y"});
  b.output("y").output("g");
  const Model model = Model::load(b.bytes(), "t.onnx");
  const auto out = model.run({fp32("x", {1, 2}, {-3, 1})});
  CHECK(out[0].f32 == std::vector<float>{0, 1});
  CHECK(out[1].f32 == std::vector<float>{-3, 1});
}

TEST_CASE("run checks its inputs and names them") {
  Builder b;
  b.input("x", {-1, 3}).input("y", {-1, 3});
  b.node("Add", {"x", "y"}, {"z"});
  b.output("z");
  const Model model = Model::load(b.bytes(), "m.onnx");
  const auto x = fp32("x", {2, 3}, iota(6));
  CHECK_THROWS_WITH_AS(model.run({x}), "m.onnx: input 'y' is missing", Error);
  CHECK_THROWS_WITH_AS(model.run({x, fp32("q", {2, 3}, iota(6))}),
                       "m.onnx: unknown input 'q' (the model's inputs: x, y)", Error);
  CHECK_THROWS_WITH_AS(model.run({x, x}), "m.onnx: input 'x' is given twice", Error);
  CHECK_THROWS_WITH_AS(model.run({x, fp32("y", {2, 4}, iota(8))}),
                       "m.onnx: input 'y': expected shape [-1,3], got [2,4]", Error);
  CHECK_THROWS_WITH_AS(model.run({x, fp32("y", {3, 3}, iota(9))}),
                       "m.onnx: input 'y': batch size 3 differs from the other inputs' 2", Error);
  CHECK_THROWS_WITH_AS(model.run({x, fp32("y", {2, 3}, iota(5))}),
                       "m.onnx: input 'y': shape [2,3] needs 6 values, got 5", Error);
  Tensor wrong = fp32("y", {2, 3}, {});
  wrong.datatype = "INT64";
  wrong.i64.assign(6, 1);
  CHECK_THROWS_WITH_AS(model.run({x, wrong}),
                       "m.onnx: input 'y': expected datatype FP32, got INT64", Error);
  CHECK_THROWS_WITH_AS(model.run({x, fp32("y", {0, 3}, {})}),
                       "m.onnx: input 'y': expected shape [-1,3], got [0,3]", Error);
  const auto out = model.run({x, fp32("y", {2, 3}, iota(6, 10))});
  CHECK(out[0].f32 == std::vector<float>{10, 12, 14, 16, 18, 20});
}

TEST_CASE("a model with static shapes accepts exactly those shapes") {
  Builder b;
  b.input("x", {1, 4});
  b.node("Relu", {"x"}, {"y"});
  b.output("y");
  const Model model = Model::load(b.bytes(), "s.onnx");
  CHECK(model.inputs()[0].shape == std::vector<std::int64_t>{1, 4});
  CHECK(model.run({fp32("", {1, 4}, {-1, 2, -3, 4})})[0].f32 == std::vector<float>{0, 2, 0, 4});
  CHECK_THROWS_AS(model.run({fp32("x", {2, 4}, iota(8))}), Error);
}

TEST_CASE("run is safe from several threads with different batch sizes") {
  const auto mlp = make_mlp({784, 64, 32, 10}, Activation::relu, Activation::softmax);
  const Model model = Model::load(mlctl::onnx::export_classifier(mlp, {}), "model.onnx");
  const std::vector<int> batches = {1, 3, 8, 17};
  std::vector<std::vector<float>> inputs;
  std::vector<std::vector<float>> expected;
  for (int n : batches) {
    inputs.push_back(make_input(n, 784, static_cast<std::uint32_t>(n)));
    expected.push_back(model.run({fp32("input", {n, 784}, inputs.back())})[0].f32);
  }
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 100; ++i) {
        const std::size_t which = static_cast<std::size_t>(t + i) % batches.size();
        const auto out = model.run({fp32("input", {batches[which], 784}, inputs[which])});
        if (out[0].f32 != expected[which]) {
          ++mismatches;
        }
      }
    });
  }
  for (auto& th : threads)
    th.join();
  CHECK(mismatches.load() == 0);
}

TEST_CASE("the committed fuzz seeds load and run") {
  const auto dir = std::filesystem::path(MLCTL_SOURCE_DIR) / "tests" / "fuzz" / "corpus" / "onnx";
  int seen = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    CAPTURE(entry.path());
    const Model model = Model::load_file(entry.path());
    std::vector<Tensor> inputs;
    for (const auto& info : model.inputs()) {
      Tensor t = fp32(info.name, info.shape, {});
      for (auto& d : t.shape)
        d = d < 0 ? 2 : d;
      std::int64_t count = 1;
      for (const auto d : t.shape)
        count *= d;
      t.f32.assign(static_cast<std::size_t>(count), 0.25f);
      inputs.push_back(std::move(t));
    }
    const auto out = model.run(inputs);
    CHECK(out.size() == model.outputs().size());
    ++seen;
  }
  CHECK(seen >= 4);
}
