"""RISE through a real server: `POST /api/v1/applications/{app}/explain` and `mlctl explain`
with a synthetic model whose output depends only on the left half of the image (more than 80%
of the predicted class's saliency mass must fall there), determinism by seed, the grid picture,
`-o json` maps, one PNG with --image (and --fit), and the errors users see."""

import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

from harness import Server, TestCase, TIMEOUT_SCALE, mlctl
from test_predict import write_png

APP = "lefty"


def make_left_half_model(directory):
    """784 -> 10 softmax reading only columns 0..13: class 3 gains from ink on the left, the
    other classes have small random weights there; nothing reads the right half."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(7)
    w = np.zeros((10, 28, 28), np.float32)
    w[:, :, :14] = rng.uniform(-0.01, 0.01, (10, 28, 14))
    w[3, :, :14] += 0.015
    nodes = [helper.make_node("Gemm", ["input", "W", "b"], ["logits"], transB=1),
             helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1)]
    graph = helper.make_graph(
        nodes, "lefty", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 784])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(w.reshape(10, 784), "W"), numpy_helper.from_array(np.zeros(10, np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="test")
    model.ir_version = 8
    onnx.save(model, str(directory / "model.onnx"))
    labels = ", ".join(f'"{i}"' for i in range(10))
    (directory / "model.yaml").write_text(
        "apiVersion: mlctl/v1\nkind: Model\nmetadata: {name: lefty}\n"
        "spec:\n  contract:\n"
        "    inputs: [{name: input, datatype: FP32, shape: [-1, 784]}]\n"
        "    outputs: [{name: probabilities, datatype: FP32, shape: [-1, 10]}]\n"
        f"    labels: [{labels}]\n"
        "  lineage: {imported: false, seed: 7}\n")
    return directory


def left_share(saliency, baseline):
    """Share of the map's mass above its baseline (the level of pixels that do not matter) in
    the left half."""
    m = np.clip(np.asarray(saliency, np.float64).reshape(28, 28) - baseline, 0, None)
    return m[:, :14].sum() / m.sum()


class ExplainTest(TestCase):
    def test_rise_through_the_server(self):
        t0 = time.monotonic()
        model = make_left_half_model(self.tmp / "model")
        rng = np.random.default_rng(3)
        x = rng.integers(0, 256, (4, 28, 28), dtype=np.uint8)
        y = np.array([3, 3, 1, 3], np.uint8)
        np.savez(self.tmp / "test.npz", x=x, y=y)
        with Server(self.tmp / "data") as server:
            env = server.env()
            self.assertOk(mlctl("catalog", "upload", model, env=env))
            self.assertOk(mlctl("apply", "application", APP, "--model", "lefty:1", env=env))

            r = mlctl("explain", "--app", APP, "--data", self.tmp / "test.npz", "--indices", "0,1,2",
                      "--out", self.tmp / "rise.png", "--seed", "1", "-o", "json", env=env)
            self.assertOk(r)
            j = r.json()
            self.assertEqual((j["model"], j["masks"], j["grid"], j["p"]), ("lefty:1", 2000, 7, 0.5))
            self.assertEqual([im["index"] for im in j["images"]], [0, 1, 2])
            for im in j["images"]:
                self.assertEqual(len(im["saliency"]), 10)
                self.assertEqual(len(im["saliency"][0]), 784)
                c = im["predicted"]
                self.assertEqual(c, 3)
                share = left_share(im["saliency"][c], im["baseline"][c])
                self.assertGreater(share, 0.8, f"image {im['index']}: left-half share {share:.3f}")
            self.assertEqual([im["correct"] for im in j["images"]], [True, True, False])
            png = (self.tmp / "rise.png").read_bytes()
            self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
            width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
            self.assertGreater(width, 10 * 112)   # 11 columns of 28x4 pixel cells
            self.assertGreater(height, 3 * 112)   # 3 rows

            # The same seed gives the same maps; another seed other maps.
            again = mlctl("explain", "--app", APP, "--data", self.tmp / "test.npz", "--indices", "0,1,2",
                          "--out", "", "--seed", "1", "-o", "json", env=env)
            self.assertOk(again)
            self.assertEqual(again.json()["images"][0]["saliency"], j["images"][0]["saliency"])
            other = mlctl("explain", "--app", APP, "--data", self.tmp / "test.npz", "--indices", "0",
                          "--out", "", "--seed", "2", "--masks", "500", "-o", "json", env=env)
            self.assertOk(other)
            self.assertNotEqual(other.json()["images"][0]["saliency"], j["images"][0]["saliency"])

            # The table form names the picture.
            r = mlctl("explain", "--app", APP, "--data", self.tmp / "test.npz", "--indices", "2",
                      "--out", self.tmp / "one.png", env=env)
            self.assertOk(r)
            self.assertIn("PREDICTED", r.stdout)
            self.assertIn(str(self.tmp / "one.png"), r.stdout)

            # One PNG instead of --data: the same maps as the same image from the split, no label.
            png = self.tmp / "x0.png"
            write_png(png, x[0])
            r = mlctl("explain", "--app", APP, "--image", png, "--out", "", "--seed", "1", "-o", "json", env=env)
            self.assertOk(r)
            im = r.json()["images"][0]
            self.assertEqual(im["image"], str(png))
            self.assertNotIn("label", im)
            self.assertEqual(im["saliency"], j["images"][0]["saliency"])
            r = mlctl("explain", "--app", APP, "--image", png, "--out", "", env=env)
            self.assertOk(r)
            self.assertRegex(r.stdout, r"x0\.png\s+-\s+3\s+[0-9.]+\s+-")
            # --fit takes any picture (the size from the application); without it, a wrong size
            # is refused with the picture's size and the hint.
            bar = np.zeros((60, 40), np.uint8)
            bar[10:50, 18:22] = 255
            write_png(self.tmp / "bar.png", bar)
            r = mlctl("explain", "--app", APP, "--image", self.tmp / "bar.png", "--fit", "--out", "", "-o", "json",
                      env=env)
            self.assertOk(r)
            self.assertEqual(r.json()["images"][0]["fit"]["scaled"], [2, 20])
            self.assertFails(mlctl("explain", "--app", APP, "--image", self.tmp / "bar.png", env=env), 1,
                             "(" + str(self.tmp / "bar.png") + " is 40×60 pixels); --fit brings")
            self.assertFails(mlctl("explain", "--app", APP, env=env), 2, "--data or --image is required")
            self.assertFails(mlctl("explain", "--app", APP, "--image", png, "--indices", "1", env=env), 2)

            # Errors.
            self.assertFails(mlctl("explain", "--app", APP, "--data", self.tmp / "test.npz", "--indices", "9",
                                   env=env), 1, "--indices: 9 is past the last image")
            self.assertFails(mlctl("explain", "--app", "ghost", "--data", self.tmp / "test.npz", env=env), 1,
                             "not served")
            # It wrote a PNG under any name (rise.jpg was a PNG).
            self.assertFails(mlctl("explain", "--app", APP, "--data", self.tmp / "test.npz", "--out",
                                   self.tmp / "rise.jpg", env=env), 1, "give a name ending in .png")
            self.assertFalse((self.tmp / "rise.jpg").exists())
            # Options are checked before they are converted (1e30 masks said "got 0", -1e30
            # "got 9223372036854775808", and 2.5 ran 2).
            for option, value, message in (("masks", 0, "masks: must be an integer 1..100000, got 0"),
                                           ("masks", 1e30, "masks: must be an integer 1..100000, got 1e+30"),
                                           ("masks", -1e30, "masks: must be an integer 1..100000, got -1e+30"),
                                           ("masks", 2.5, "masks: must be an integer 1..100000, got 2.5"),
                                           ("grid", 29, "grid: must be an integer 2..28, got 29"),
                                           ("seed", -1, "seed: must be an integer 0..18446744073709551615, got -1"),
                                           ("p", 1, "p: must be in (0, 1), got 1"),
                                           ("p", "x", "p: expected a number in (0, 1)")):
                req = urllib.request.Request(server.url + f"/api/v1/applications/{APP}/explain",
                                             data=json.dumps({"images": [x[0].ravel().tolist()], option: value}).encode(),
                                             headers={"Content-Type": "application/json"})
                with self.assertRaises(urllib.error.HTTPError) as cm:
                    urllib.request.urlopen(req)
                self.assertEqual(cm.exception.code, 400)
                self.assertEqual(json.loads(cm.exception.read())["error"]["message"], message)
            req = urllib.request.Request(server.url + f"/api/v1/applications/{APP}/explain",
                                         data=json.dumps({"images": [[1, 2, 3]]}).encode(),
                                         headers={"Content-Type": "application/json"})
            with self.assertRaises(urllib.error.HTTPError) as cm:
                urllib.request.urlopen(req)
            self.assertEqual(cm.exception.code, 400)
            self.assertIn("images[0]: expected 784 values, got 3", cm.exception.read().decode())
        self.assertLess(time.monotonic() - t0, 60 * TIMEOUT_SCALE)


if __name__ == "__main__":
    import unittest
    unittest.main(verbosity=2)
