"""ONNX interoperability: what mlctl writes is standard ONNX and what others write runs in mlctl.

- model.onnx and autoencoder.onnx from `mlctl train` pass onnx.checker (full check, strict
  shape inference) and declare IR 8 / opset 13;
- an independent evaluation of mlctl's model.onnx with numpy, straight from the ONNX operator
  definitions (Gemm, Relu, Softmax, ArgMax), gives the probabilities `mlctl predict` prints;
- the committed PyTorch fixtures (tests/fixtures/torch) pass the checker and `mlctl predict`
  runs them.
Skips when python3-onnx is not installed."""

import tempfile
import unittest
from pathlib import Path

import numpy as np

from harness import SOURCE_DIR, TestCase, make_dataset, mlctl
from test_predict import write_png

try:
    import onnx
    from onnx import numpy_helper
except ImportError:  # pragma: no cover
    onnx = None


def attribute(node, name, default):
    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def evaluate(model, feeds):
    """Runs an ONNX graph of Gemm/Relu/Sigmoid/Tanh/Softmax/ArgMax nodes with numpy (float64),
    following the operator specifications."""
    values = {i.name: numpy_helper.to_array(i).astype(np.float64) for i in model.graph.initializer}
    values.update(feeds)
    for node in model.graph.node:
        x = [values[name] for name in node.input]
        if node.op_type == "Gemm":
            a = x[0].T if attribute(node, "transA", 0) else x[0]
            b = x[1].T if attribute(node, "transB", 0) else x[1]
            y = attribute(node, "alpha", 1.0) * a @ b
            if len(x) > 2:
                y = y + attribute(node, "beta", 1.0) * x[2]
        elif node.op_type == "Relu":
            y = np.maximum(x[0], 0)
        elif node.op_type == "Sigmoid":
            y = 1 / (1 + np.exp(-x[0]))
        elif node.op_type == "Tanh":
            y = np.tanh(x[0])
        elif node.op_type == "Softmax":
            axis = attribute(node, "axis", -1)
            e = np.exp(x[0] - x[0].max(axis=axis, keepdims=True))
            y = e / e.sum(axis=axis, keepdims=True)
        elif node.op_type == "ArgMax":
            y = np.argmax(x[0], axis=attribute(node, "axis", 0))
            if attribute(node, "keepdims", 1):
                y = np.expand_dims(y, attribute(node, "axis", 0))
        else:
            raise AssertionError(f"unexpected operator {node.op_type} in an mlctl model")
        values[node.output[0]] = y
    return {o.name: values[o.name] for o in model.graph.output}


@unittest.skipIf(onnx is None, "python3-onnx is not installed")
class OnnxInteropTest(TestCase):
    @classmethod
    def setUpClass(cls):
        cls._root = tempfile.TemporaryDirectory(prefix="mlctl-e2e-onnx-")
        root = Path(cls._root.name)
        cls.data = make_dataset(root / "data", 2000, 200)
        cls.model_dir = root / "models" / "fashion"
        r = mlctl("train", "--data", cls.data, "--out", cls.model_dir, "--epochs", "1", "--ae-epochs", "1",
                  "--hidden", "64,32")
        if r.code != 0:
            raise AssertionError(repr(r))

    @classmethod
    def tearDownClass(cls):
        cls._root.cleanup()

    def test_trained_models_pass_the_onnx_checker(self):
        for name, outputs in (("model.onnx", ["probabilities", "class"]), ("autoencoder.onnx", ["reconstruction"])):
            with self.subTest(name):
                model = onnx.load(str(self.model_dir / name))
                onnx.checker.check_model(model, full_check=True)
                onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
                self.assertEqual(model.ir_version, 8)
                self.assertEqual([(o.domain, o.version) for o in model.opset_import], [("", 13)])
                self.assertEqual(model.producer_name, "mlctl")
                self.assertEqual([o.name for o in model.graph.output], outputs)
                self.assertEqual([i.name for i in model.graph.input], ["input"])
                dims = model.graph.input[0].type.tensor_type.shape.dim
                self.assertEqual((dims[0].dim_param, dims[1].dim_value), ("N", 784))
                for init in model.graph.initializer:
                    self.assertTrue(init.raw_data, f"{init.name} is not stored as raw_data")

    def test_numpy_evaluation_of_model_onnx_matches_mlctl(self):
        model = onnx.load(str(self.model_dir / "model.onnx"))
        x = np.load(self.data / "test.npz")["x"][:5]
        expected = evaluate(model, {"input": x.reshape(5, 784).astype(np.float64) / 255.0})
        for i in range(5):
            png = self.tmp / f"{i}.png"
            write_png(png, x[i])
            j = mlctl("predict", "--model", self.model_dir / "model.onnx", "--image", png, "-o", "json").json()
            np.testing.assert_allclose(j["probabilities"], expected["probabilities"][i], atol=1e-5)
            self.assertEqual(j["class"], int(expected["class"][i]))

    def test_pytorch_fixtures_are_valid_onnx_that_mlctl_runs(self):
        fixtures = sorted((SOURCE_DIR / "tests" / "fixtures" / "torch").glob("*.onnx"))
        self.assertGreaterEqual(len(fixtures), 3)
        png = self.tmp / "x.png"
        write_png(png, np.load(self.data / "test.npz")["x"][0])
        for path in fixtures:
            with self.subTest(path.name):
                model = onnx.load(str(path))
                onnx.checker.check_model(model, full_check=True)
                self.assertEqual(model.opset_import[0].version, 13)
                self.assertTrue(model.graph.input[0].type.tensor_type.shape.dim[0].dim_param)
                r = mlctl("predict", "--model", path, "--image", png, "-o", "json")
                self.assertOk(r)
                self.assertAlmostEqual(sum(r.json()["probabilities"]), 1.0, places=5)


if __name__ == "__main__":
    unittest.main()
