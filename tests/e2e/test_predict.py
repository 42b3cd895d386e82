"""mlctl predict: offline prediction with a model directory made by `mlctl train` and with a
bare .onnx exported by PyTorch (N×1×28×28 input), on a labelled split (accuracy, confusion
matrix, --limit, a dataset directory) and on pictures (PNG gray, RGB, wrong size, not a PNG,
a photo fitted with --fit);
usage errors and the --help example."""

import json
import shutil
import struct
import tempfile
import unittest
import zlib
from pathlib import Path

import numpy as np

from harness import TestCase, make_dataset, mlctl


def write_png(path: Path, pixels: np.ndarray):
    """Writes an 8-bit PNG (gray for H×W; gray+alpha, RGB, RGBA for H×W×2, ×3, ×4) with zlib and
    struct: no PIL needed."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    height, width = pixels.shape[:2]
    color_type = {2: 4, 3: 2, 4: 6}[pixels.shape[2]] if pixels.ndim == 3 else 0
    raw = b"".join(b"\x00" + pixels[y].tobytes() for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) +
                     chunk(b"IEND", b""))


DATA = Path(__file__).resolve().parent / "data"


def seven_photo() -> np.ndarray:
    """A "7" 6× larger, dark ink on gray paper lit unevenly (to 70% across), with noise: 200×230."""
    rng = np.random.default_rng(7)
    seven = np.zeros((28, 28))
    seven[4:7, 7:21] = 255
    for row in range(7, 24):
        col = 20 - (row - 7) // 2
        seven[row, col - 2:col + 1] = 255
    sheet = np.zeros((200, 230))
    sheet[20:188, 40:208] = np.kron(seven, np.ones((6, 6)))
    light = np.linspace(1.0, 0.7, 230)[None, :]
    return np.clip((215 - 185 * sheet / 255) * light + rng.normal(0, 4, sheet.shape), 0, 255).round()


class PredictTest(TestCase):
    @classmethod
    def setUpClass(cls):
        cls._root = tempfile.TemporaryDirectory(prefix="mlctl-e2e-predict-")
        root = Path(cls._root.name)
        cls.data = make_dataset(root / "data", 3000, 1000)
        test = np.load(cls.data / "test.npz")
        cls.x, cls.y = test["x"], test["y"]

        # A model directory from mlctl train.
        cls.model_dir = root / "models" / "fashion"
        r = mlctl("train", "--data", cls.data, "--out", cls.model_dir, "--epochs", "2", "--no-autoencoder",
                  "-o", "json")
        if r.code != 0:
            raise AssertionError(repr(r))
        cls.train_json = r.json()

        # A bare .onnx exported by PyTorch, input N×1×28×28 (nn.Flatten first), outputs logits.
        import torch
        from torch import nn
        torch.manual_seed(3)
        torch.set_num_threads(1)
        train = np.load(cls.data / "train.npz")
        xt = torch.from_numpy(train["x"].astype(np.float32) / 255.0).unsqueeze(1)
        yt = torch.from_numpy(train["y"].astype(np.int64))
        net = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10))
        opt = torch.optim.Adam(net.parameters(), lr=0.01)
        for _ in range(3):
            for i in range(0, len(xt), 100):
                opt.zero_grad()
                nn.functional.cross_entropy(net(xt[i:i + 100]), yt[i:i + 100]).backward()
                opt.step()
        net.eval()
        cls.torch_onnx = root / "torch_nchw.onnx"
        torch.onnx.export(net, xt[:1], str(cls.torch_onnx), opset_version=13, input_names=["images"],
                          output_names=["logits"], dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
        with torch.no_grad():
            logits = net(torch.from_numpy(cls.x.astype(np.float32) / 255.0).unsqueeze(1))
        cls.torch_logits = logits.numpy()
        cls.torch_pred = cls.torch_logits.argmax(1)

    @classmethod
    def tearDownClass(cls):
        cls._root.cleanup()

    def confusion(self, pred, count):
        m = np.zeros((10, 10), dtype=np.int64)
        for t, p in zip(self.y[:count], pred[:count]):
            m[t, p] += 1
        return m

    def test_model_directory_accuracy_matches_training(self):
        r = mlctl("predict", "--model", self.model_dir, "--data", self.data / "test.npz", "-o", "json")
        self.assertOk(r)
        j = r.json()
        self.assertEqual(set(j), {"model", "data", "count", "correct", "accuracy", "labels", "confusion_matrix"})
        self.assertEqual(j["count"], 1000)
        self.assertTrue(0.0 <= j["accuracy"] <= 1.0)
        self.assertAlmostEqual(j["accuracy"], j["correct"] / 1000)
        # The runtime and the trainer's own forward pass agree (a near-tie may flip one image).
        self.assertLessEqual(abs(j["accuracy"] - self.train_json["metrics"]["test_accuracy"]), 0.0011)
        m = np.array(j["confusion_matrix"])
        self.assertEqual(m.shape, (10, 10))
        self.assertEqual(m.sum(), 1000)
        self.assertEqual(m.trace(), j["correct"])
        self.assertEqual(m.sum(1).tolist(), np.bincount(self.y, minlength=10).tolist())
        self.assertEqual(j["labels"], [str(i) for i in range(10)])
        self.assertEqual(r.stderr, "")

        # A dataset directory means its test split; --limit takes the first images.
        d = mlctl("predict", "--model", self.model_dir, "--data", self.data, "-o", "json").json()
        self.assertEqual(d["confusion_matrix"], j["confusion_matrix"])
        lim = mlctl("predict", "--model", self.model_dir, "--data", self.data, "--limit", "100", "-o", "json").json()
        self.assertEqual(lim["count"], 100)
        self.assertEqual(np.array(lim["confusion_matrix"]).sum(1).tolist(),
                         np.bincount(self.y[:100], minlength=10).tolist())

    def test_bare_torch_onnx_with_nchw_input_matches_pytorch(self):
        r = mlctl("predict", "--model", self.torch_onnx, "--data", self.data / "test.npz", "-o", "json")
        self.assertOk(r)
        j = r.json()
        expected = self.confusion(self.torch_pred, 1000)
        got = np.array(j["confusion_matrix"])
        # Same predictions as PyTorch, image for image (a near-tie may flip one).
        self.assertLessEqual(np.abs(got - expected).sum(), 2)
        self.assertLessEqual(abs(j["correct"] - int((self.torch_pred == self.y).sum())), 1)

    def test_table_output(self):
        r = mlctl("predict", "--model", self.torch_onnx, "--data", self.data / "test.npz", "--limit", "50")
        self.assertOk(r)
        self.assertRegex(r.stdout, r"accuracy:\s+0\.\d{4} \(\d+/50\)")
        self.assertIn("confusion matrix (rows: true label, columns: predicted label):", r.stdout)
        self.assertIn("true\\pred", r.stdout)

    def test_png_image_gives_pytorch_class_and_probabilities(self):
        for i in range(3):
            png = self.tmp / f"item{i}.png"
            write_png(png, self.x[i])
            r = mlctl("predict", "--model", self.torch_onnx, "--image", png, "-o", "json")
            self.assertOk(r)
            j = r.json()
            self.assertEqual(set(j), {"model", "image", "class", "label", "probabilities"})
            self.assertEqual(j["class"], int(self.torch_pred[i]))
            self.assertEqual(j["label"], str(self.torch_pred[i]))
            logits = self.torch_logits[i].astype(np.float64)
            probs = np.exp(logits - logits.max())
            probs /= probs.sum()
            np.testing.assert_allclose(j["probabilities"], probs, atol=1e-5)
        r = mlctl("predict", "--model", self.model_dir, "--image", self.tmp / "item0.png")
        self.assertOk(r)
        self.assertRegex(r.stdout, r"class:\s+\d")
        self.assertIn("probability", r.stdout)

    def test_rgb_png_is_converted_to_gray(self):
        gray, rgb = self.tmp / "gray.png", self.tmp / "rgb.png"
        write_png(gray, self.x[5])
        write_png(rgb, np.repeat(self.x[5][:, :, None], 3, axis=2))
        a = mlctl("predict", "--model", self.model_dir, "--image", gray, "-o", "json").json()
        b = mlctl("predict", "--model", self.model_dir, "--image", rgb, "-o", "json").json()
        self.assertEqual(a["class"], b["class"])
        np.testing.assert_allclose(a["probabilities"], b["probabilities"], atol=0.02)

    def test_fit_reads_a_photo_of_a_digit_at_any_size(self):
        # A "7" in the MNIST form, and a photo of it: 9× larger, dark ink on gray paper, off
        # centre on a larger sheet. --fit finds it, inverts it and scales its box back: the
        # answer is that of the 28×28 drawing, fitted the same way.
        seven = np.zeros((28, 28), np.uint8)
        seven[4:7, 7:21] = 255
        for row in range(7, 24):
            col = 20 - (row - 7) // 2
            seven[row, col - 2:col + 1] = 255
        item, photo = self.tmp / "fit-item.png", self.tmp / "fit-photo.png"
        write_png(item, seven)
        sheet = np.full((300, 280), 230, dtype=np.uint8)
        sheet[40:40 + 252, 10:10 + 252] = 230 - (np.kron(seven, np.ones((9, 9))) * (200 / 255)).round().astype(np.uint8)
        write_png(photo, sheet)
        a = mlctl("predict", "--model", self.model_dir, "--image", item, "--fit", "-o", "json")
        b = mlctl("predict", "--model", self.model_dir, "--image", photo, "--fit", "-o", "json")
        self.assertOk(a)
        self.assertOk(b)
        a, b = a.json(), b.json()
        self.assertEqual(set(b), {"model", "image", "class", "label", "probabilities", "fit"})
        self.assertEqual(b["fit"]["size"], [280, 300])
        self.assertTrue(b["fit"]["inverted"])
        self.assertFalse(a["fit"]["inverted"])
        self.assertEqual(b["fit"]["scaled"], a["fit"]["scaled"])
        self.assertEqual(b["fit"]["box"], [10 + 7 * 9, 40 + 4 * 9, 14 * 9, 20 * 9])
        self.assertEqual(b["class"], a["class"])
        np.testing.assert_allclose(b["probabilities"], a["probabilities"], atol=0.01)
        # A drawing in black ink on a transparent sheet (as a browser canvas exports it): the
        # sheet shows white, so it reads as the same drawing on white paper.
        ink = np.zeros((120, 100), np.uint8)
        ink[20:100, 45:55] = 255
        ink[20:30, 30:55] = 255
        drawing, paper = self.tmp / "drawing.png", self.tmp / "paper.png"
        write_png(drawing, np.stack([np.zeros_like(ink), ink], axis=2))
        write_png(paper, 255 - ink)
        a = mlctl("predict", "--model", self.model_dir, "--image", drawing, "--fit", "-o", "json")
        b = mlctl("predict", "--model", self.model_dir, "--image", paper, "--fit", "-o", "json")
        self.assertOk(a)
        self.assertOk(b)
        self.assertEqual(a.json()["probabilities"], b.json()["probabilities"])
        self.assertEqual(a.json()["fit"]["box"], [30, 20, 25, 80])
        # A phone's JPEG: data/seven-exif6.jpg is seven_photo() turned a quarter counter-clockwise
        # and stored with EXIF orientation 6 (libjpeg-turbo, quality 90), as a camera held
        # sideways stores it. It is read upright: the same box, and the answer of the same photo
        # as a PNG, but for what JPEG lost.
        upright = self.tmp / "seven-photo.png"
        write_png(upright, seven_photo())
        a = mlctl("predict", "--model", self.model_dir, "--image", DATA / "seven-exif6.jpg", "--fit", "-o", "json")
        b = mlctl("predict", "--model", self.model_dir, "--image", upright, "--fit", "-o", "json")
        self.assertOk(a)
        self.assertOk(b)
        a, b = a.json(), b.json()
        self.assertEqual(a["fit"]["size"], [230, 200])
        self.assertEqual((a["fit"]["box"], a["fit"]["scaled"]), (b["fit"]["box"], b["fit"]["scaled"]))
        np.testing.assert_allclose(a["probabilities"], b["probabilities"], atol=0.05)
        # A JPEG that is not one is refused with libjpeg's word; a GIF is named as one.
        jpeg = self.tmp / "photo.jpg"
        jpeg.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(100))
        self.assertFails(mlctl("predict", "--model", self.model_dir, "--image", jpeg, "--fit"), 1,
                         f"{jpeg}: not a JPEG image (")
        gif = self.tmp / "photo.gif"
        gif.write_bytes(b"GIF89a" + bytes(100))
        self.assertFails(mlctl("predict", "--model", self.model_dir, "--image", gif, "--fit"), 1,
                         f"{gif}: not a PNG or JPEG image: a GIF (convert it first")
        # A blank sheet has no digit; --fit needs --image.
        blank = self.tmp / "blank.png"
        write_png(blank, np.full((50, 40), 230, dtype=np.uint8))
        self.assertFails(mlctl("predict", "--model", self.model_dir, "--image", blank, "--fit"), 1,
                         f"{blank}: no digit found: the image is nearly uniform")
        self.assertFails(mlctl("predict", "--model", self.model_dir, "--data", self.data, "--fit"), 2, "--image")

    def test_bad_images_are_refused_clearly(self):
        big = self.tmp / "big.png"
        write_png(big, np.zeros((32, 32), dtype=np.uint8))
        self.assertFails(mlctl("predict", "--model", self.model_dir, "--image", big), 1,
                         f"{big}: the image is 32×32; the model takes 28×28 images; --fit brings any picture of "
                         "a digit to the model's form")
        fake = self.tmp / "fake.png"
        fake.write_bytes(b"GIF89a" + bytes(100))
        self.assertFails(mlctl("predict", "--model", self.model_dir, "--image", fake), 1,
                         f"{fake}: not a PNG or JPEG image")  # the path as given, not just its name
        self.assertFails(mlctl("predict", "--model", self.model_dir, "--image", self.tmp / "none.png"), 1,
                         "none.png")

    def test_bad_models_and_usage(self):
        self.assertFails(mlctl("predict", "--model", self.tmp / "missing", "--data", self.data), 1,
                         "missing: no such file or directory")
        self.assertFails(mlctl("predict", "--model", self.tmp, "--data", self.data), 1,
                         "not a model directory (no model.yaml)")
        truncated = self.tmp / "cut.onnx"
        truncated.write_bytes(self.torch_onnx.read_bytes()[:5000])
        self.assertFails(mlctl("predict", "--model", truncated, "--data", self.data), 1, "cut.onnx: ")

        import torch
        conv = self.tmp / "conv.onnx"
        torch.onnx.export(torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.Flatten()).eval(),
                          torch.zeros(1, 1, 28, 28), str(conv), opset_version=13)
        self.assertFails(mlctl("predict", "--model", conv, "--data", self.data), 1,
                         "conv.onnx: unsupported operator 'Conv'")

        self.assertFails(mlctl("predict", "--model", self.model_dir), 2, "--data or --image is required")
        self.assertFails(mlctl("predict", "--model", self.model_dir, "--data", self.data, "--image", "x.png"), 2)
        self.assertFails(mlctl("predict", "--data", self.data), 2, "--model")
        self.assertFails(mlctl("predict", "--model", self.model_dir, "--image", "x.png", "--limit", "3"), 2)

    def test_help_example_runs(self):
        help_text = mlctl("predict", "--help").stdout
        example = help_text.split("Examples:")[1].strip().splitlines()[0].split()
        self.assertEqual(example[:2], ["mlctl", "predict"])
        (self.tmp / "models").mkdir()
        shutil.copytree(self.model_dir, self.tmp / "models" / "mnist")
        shutil.copytree(self.data, self.tmp / "data" / "mnist")
        r = mlctl(*example[1:], cwd=self.tmp)
        self.assertOk(r)
        self.assertEqual(json.loads(r.stdout)["count"], 1000)


if __name__ == "__main__":
    unittest.main()
