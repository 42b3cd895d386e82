#include "onnx/runtime.hpp"
#include "onnx/writer.hpp"
#include "onnx_test_util.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <cstdlib>
#include <doctest/doctest.h>
#include <filesystem>

using mlctl::Error;
using mlctl::nn::Activation;
using mlctl::onnx::Model;
using mlctl::onnx::OnnxExportOptions;
using namespace mlctl::onnx::test;

TEST_CASE("an exported classifier loads with the agreed contract and computes the network") {
  const auto mlp = make_mlp({784, 32, 16, 10}, Activation::relu, Activation::softmax);
  const std::string bytes = mlctl::onnx::export_classifier(mlp, {"0.1.0", "a test classifier"});
  const Model model = Model::load(bytes, "model.onnx");

  REQUIRE(model.inputs().size() == 1);
  CHECK(model.inputs()[0].name == "input");
  CHECK(model.inputs()[0].datatype == "FP32");
  CHECK(model.inputs()[0].shape == std::vector<std::int64_t>{-1, 784});
  REQUIRE(model.outputs().size() == 2);
  CHECK(model.outputs()[0].name == "probabilities");
  CHECK(model.outputs()[0].shape == std::vector<std::int64_t>{-1, 10});
  CHECK(model.outputs()[1].name == "class");
  CHECK(model.outputs()[1].datatype == "INT64");
  CHECK(model.outputs()[1].shape == std::vector<std::int64_t>{-1});
  CHECK(model.metadata().producer_name == "mlctl");
  CHECK(model.metadata().producer_version == "0.1.0");
  CHECK(model.metadata().doc_string == "a test classifier");
  CHECK(model.metadata().ir_version == 8);
  CHECK(model.metadata().opset == 13);

  for (int n : {1, 7}) {
    const auto x = make_input(n, 784);
    const auto expected = reference_forward(mlp, x, n);
    const auto out = model.run({fp32("input", {n, 784}, x)});
    REQUIRE(out.size() == 2);
    CHECK(out[0].shape == std::vector<std::int64_t>{n, 10});
    CHECK(out[1].shape == std::vector<std::int64_t>{n});
    for (int i = 0; i < n; ++i) {
      int best = 0;
      for (int c = 0; c < 10; ++c) {
        const auto idx = static_cast<std::size_t>(i * 10 + c);
        CHECK(out[0].f32[idx] == doctest::Approx(expected[idx]).epsilon(1e-5));
        if (expected[idx] > expected[static_cast<std::size_t>(i * 10 + best)]) {
          best = c;
        }
      }
      CHECK(out[1].i64[static_cast<std::size_t>(i)] == best);
    }
  }
}

TEST_CASE("a classifier without a softmax layer still outputs probabilities") {
  const auto mlp = make_mlp({20, 8, 3}, Activation::tanh, Activation::none);
  const Model model = Model::load(mlctl::onnx::export_classifier(mlp, {}), "m.onnx");
  const auto x = make_input(2, 20);
  const auto logits = reference_forward(mlp, x, 2);
  const auto out = model.run({fp32("input", {2, 20}, x)});
  double sum = 0;
  for (int c = 0; c < 3; ++c)
    sum += out[0].f32[static_cast<std::size_t>(c)];
  CHECK(sum == doctest::Approx(1.0));
  CHECK(out[0].f32[1] / out[0].f32[0] ==
        doctest::Approx(std::exp(logits[1] - logits[0])).epsilon(1e-4));
}

TEST_CASE("export is deterministic and depends on the options") {
  const auto mlp = make_mlp({784, 16, 10}, Activation::relu, Activation::softmax);
  const auto a = mlctl::onnx::export_classifier(mlp, {"1.0", ""});
  const auto b = mlctl::onnx::export_classifier(
      make_mlp({784, 16, 10}, Activation::relu, Activation::softmax), {"1.0", ""});
  CHECK(a == b);
  CHECK(a != mlctl::onnx::export_classifier(mlp, {"1.1", ""}));
}

TEST_CASE("an exported autoencoder reconstructs through its layers") {
  const auto mlp = make_mlp({784, 32, 8, 32, 784}, Activation::relu, Activation::sigmoid);
  const Model model =
      Model::load(mlctl::onnx::export_autoencoder(mlp, {"0.1.0", ""}), "autoencoder.onnx");
  REQUIRE(model.outputs().size() == 1);
  CHECK(model.outputs()[0].name == "reconstruction");
  CHECK(model.outputs()[0].shape == std::vector<std::int64_t>{-1, 784});
  const auto x = make_input(3, 784);
  const auto expected = reference_forward(mlp, x, 3);
  const auto out = model.run({fp32("input", {3, 784}, x)});
  for (std::size_t i = 0; i < expected.size(); ++i) {
    REQUIRE(out[0].f32[i] == doctest::Approx(expected[i]).epsilon(1e-5));
  }
}

TEST_CASE("export refuses inconsistent networks") {
  CHECK_THROWS_WITH_AS(mlctl::onnx::export_classifier({}, {}),
                       "onnx export: the network has no layers", Error);
  auto mlp = make_mlp({10, 4, 3}, Activation::relu, Activation::softmax);
  mlp.layers[1].bias.resize(2);
  CHECK_THROWS_WITH_AS(mlctl::onnx::export_classifier(mlp, {}),
                       "onnx export: layer 1: bias has 2 entries, expected 3", Error);
  mlp = make_mlp({10, 4, 3}, Activation::relu, Activation::softmax);
  mlp.layers[1].weight.resize(3, 5);
  CHECK_THROWS_WITH_AS(mlctl::onnx::export_autoencoder(mlp, {}),
                       "onnx export: layer 1: takes 5 inputs but the previous layer has 4 outputs",
                       Error);
  mlp = make_mlp({10, 4, 3}, Activation::relu, Activation::relu);
  CHECK_THROWS_WITH_AS(
      mlctl::onnx::export_classifier(mlp, {}),
      "onnx export: a classifier's last layer must have the softmax or no activation, not relu",
      Error);
}

TEST_CASE("exported models pass onnx.checker.check_model") {
  // The ONNX reference checker (Debian python3-onnx); skipped where it is not installed.
  if (std::system("/usr/bin/python3 -c 'import onnx' >/dev/null 2>&1") != 0) {
    MESSAGE("python3-onnx is not installed: skipping the onnx.checker test");
    return;
  }
  mlctl::util::TempDir dir;
  const auto classifier = dir.path() / "model.onnx";
  const auto autoencoder = dir.path() / "autoencoder.onnx";
  mlctl::util::write_file_atomic(
      classifier,
      mlctl::onnx::export_classifier(make_mlp({784, 32, 10}, Activation::relu, Activation::softmax),
                                     {"0.1.0", "doc"}));
  mlctl::util::write_file_atomic(
      autoencoder, mlctl::onnx::export_autoencoder(
                       make_mlp({784, 16, 784}, Activation::relu, Activation::sigmoid), {}));
  const std::string script = "import onnx, sys\n"
                             "for p in sys.argv[1:]:\n"
                             "    m = onnx.load(p)\n"
                             "    onnx.checker.check_model(m, full_check=True)\n";
  mlctl::util::write_file_atomic(dir.path() / "check.py", script);
  const std::string command = "/usr/bin/python3 " + (dir.path() / "check.py").string() + " " +
                              classifier.string() + " " + autoencoder.string();
  CHECK(std::system(command.c_str()) == 0);
}

TEST_CASE(
    "a model with megabytes of weights loads through the wire pre-pass with the same numbers") {
  // 784×512 + 512×10 floats: ~1.6 MB of raw_data, enough for the reader to take the weights
  // out of the message before protobuf parses it.
  const auto mlp = make_mlp({784, 512, 10}, Activation::relu, Activation::softmax, 7);
  const std::string bytes = mlctl::onnx::export_classifier(mlp, {"1", ""});
  REQUIRE(bytes.size() > (1u << 20));
  const Model model = Model::load(bytes, "big.onnx");
  const int n = 3;
  const auto x = make_input(n, 784);
  const auto expected = reference_forward(mlp, x, n);
  const auto out = model.run({fp32("input", {n, 784}, x)});
  REQUIRE(out[0].f32.size() == expected.size());
  for (std::size_t i = 0; i < expected.size(); ++i) {
    CHECK(out[0].f32[i] == doctest::Approx(expected[i]).epsilon(1e-5));
  }
}
