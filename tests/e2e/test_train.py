"""mlctl train: a real dataset directory (a Fashion-MNIST subset) in, a model directory out;
accuracy, determinism (sha256 of model.onnx), divergence, the ONNX checker, -o json,
--no-autoencoder, environment variables and usage errors."""

import hashlib
import json
import shutil
import tempfile
import unittest
from pathlib import Path

from harness import TestCase, make_dataset, mlctl


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class TrainTest(TestCase):
    @classmethod
    def setUpClass(cls):
        cls._data_tmp = tempfile.TemporaryDirectory(prefix="mlctl-e2e-train-")
        root = Path(cls._data_tmp.name)
        cls.data = make_dataset(root / "fashion-10k", 10000, 2000)
        cls.small = make_dataset(root / "fashion-2k", 2000, 500)

    @classmethod
    def tearDownClass(cls):
        cls._data_tmp.cleanup()

    def test_trains_an_accurate_model_with_a_checked_onnx_graph(self):
        out = self.tmp / "models" / "fashion"
        r = mlctl("train", "--data", self.data, "--out", out, "--epochs", "2", "--ae-epochs", "2",
                  "--name", "fashion", "-o", "json")
        self.assertOk(r)
        j = r.json()
        self.assertEqual(set(j), {"name", "model_dir", "digest", "dataset", "steps", "epochs",
                                  "training_seconds", "metrics", "monitoring", "cached"})
        self.assertEqual(j["name"], "fashion")
        self.assertEqual(Path(j["model_dir"]), out.resolve())
        self.assertRegex(j["digest"], r"^sha256:[0-9a-f]{64}$")
        info = json.loads((self.data / "dataset.json").read_text())
        self.assertEqual(j["dataset"]["digest"], info["digest"])
        self.assertEqual(j["epochs"], 2)
        self.assertEqual(j["steps"], 2 * 40)  # 10,000 images, batch 256
        m = j["metrics"]
        self.assertGreater(m["test_accuracy"], 0.75)
        self.assertEqual(len(m["epochs"]), 2)
        self.assertEqual(set(m["epochs"][0]), {"epoch", "train_loss", "train_accuracy", "test_loss",
                                               "test_accuracy", "seconds"})
        self.assertEqual(sum(map(sum, m["confusion_matrix"])), 2000)
        rec = j["monitoring"]["reconstruction"]
        self.assertEqual(rec["threshold"], rec["p99"])
        self.assertTrue(0 < rec["p50"] <= rec["p90"] <= rec["p99"] <= rec["max"], rec)
        # One log line per epoch on a non-TTY stderr, no progress bar.
        self.assertIn("mlctl: epoch 1/2: loss ", r.stderr)
        self.assertIn("mlctl: autoencoder epoch 2/2: reconstruction error ", r.stderr)
        self.assertNotIn("\r", r.stderr)

        self.assertEqual(sorted(p.name for p in out.iterdir()),
                         ["autoencoder.onnx", "model.onnx", "model.yaml", "profile.json"])
        # The directory digest is the sha256 of the sorted sha256sum listing.
        listing = "".join(f"{sha256(p)}  {p.name}\n" for p in sorted(out.iterdir()))
        self.assertEqual(j["digest"], "sha256:" + hashlib.sha256(listing.encode()).hexdigest())
        self.assertEqual(json.loads((out / "profile.json").read_text()), info["profile"])

        import yaml
        card = yaml.safe_load((out / "model.yaml").read_text())
        self.assertEqual(card["apiVersion"], "mlctl/v1")
        self.assertEqual(card["kind"], "Model")
        self.assertEqual(card["metadata"]["name"], "fashion")
        contract = card["spec"]["contract"]
        self.assertEqual(contract["inputs"], [{"name": "input", "datatype": "FP32", "shape": [-1, 784]}])
        self.assertEqual([o["name"] for o in contract["outputs"]], ["probabilities", "class"])
        self.assertEqual(contract["labels"], [str(i) for i in range(10)])
        lineage = card["spec"]["lineage"]
        self.assertEqual(lineage["dataset"]["digest"], info["digest"])
        self.assertEqual(lineage["hyperparameters"]["hidden"], [256, 64])
        self.assertEqual(lineage["hyperparameters"]["optimizer"], "adam")
        self.assertEqual(lineage["hyperparameters"]["learning_rate"], 0.01)
        self.assertEqual(lineage["hyperparameters"]["batch_size"], 256)
        self.assertEqual(lineage["seed"], 42)
        self.assertEqual(lineage["threads"], 1)
        self.assertIsInstance(lineage["training_seconds"], float)
        self.assertEqual(card["spec"]["metrics"]["test_accuracy"], m["test_accuracy"])
        self.assertEqual(card["spec"]["monitoring"]["autoencoder"], "autoencoder.onnx")

        try:
            import onnx
        except ImportError:
            self.skipTest("python3-onnx is not installed")
        model = onnx.load(str(out / "model.onnx"))
        onnx.checker.check_model(model, full_check=True)
        dims = lambda v: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
        self.assertEqual([(i.name, dims(i)) for i in model.graph.input], [("input", ["N", 784])])
        self.assertEqual([(o.name, dims(o)) for o in model.graph.output],
                         [("probabilities", ["N", 10]), ("class", ["N"])])
        ae = onnx.load(str(out / "autoencoder.onnx"))
        onnx.checker.check_model(ae, full_check=True)
        self.assertEqual([(o.name, dims(o)) for o in ae.graph.output], [("reconstruction", ["N", 784])])

    def test_same_inputs_give_byte_identical_models(self):
        digests = []
        for run in ("a", "b"):
            out = self.tmp / run
            self.assertOk(mlctl("train", "--data", self.small, "--out", out, "--epochs", "2",
                                "--ae-epochs", "1", "--seed", "7", "-q"))
            digests.append((sha256(out / "model.onnx"), sha256(out / "autoencoder.onnx")))
        self.assertEqual(digests[0], digests[1])
        out = self.tmp / "other-seed"
        self.assertOk(mlctl("train", "--data", self.small, "--out", out, "--epochs", "2",
                            "--seed", "8", "--no-autoencoder", "-q"))
        self.assertNotEqual(sha256(out / "model.onnx"), digests[0][0])

    def test_no_autoencoder_skips_the_monitoring_model(self):
        out = self.tmp / "m"
        r = mlctl("train", "--data", self.small, "--out", out, "--epochs", "1", "--no-autoencoder",
                  "--seed", "7", "-o", "json")
        self.assertOk(r)
        self.assertIsNone(r.json()["monitoring"])
        self.assertEqual(sorted(p.name for p in out.iterdir()), ["model.onnx", "model.yaml", "profile.json"])
        self.assertNotIn("monitoring:", (out / "model.yaml").read_text())
        self.assertNotIn("autoencoder", r.stderr)

    def test_a_diverging_run_fails_without_a_model_directory(self):
        out = self.tmp / "diverged"
        r = mlctl("train", "--data", self.small, "--out", out, "--learning-rate", "1e6")
        self.assertFails(r, 1, "training diverged at step ")
        self.assertIn("; lower --learning-rate", r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertFalse(out.exists())
        self.assertEqual(list(self.tmp.iterdir()), [])  # no staging directory left behind

    def test_environment_variables_of_the_tutorial(self):
        out = self.tmp / "env-model"
        r = mlctl("train", "--no-autoencoder", "-o", "json", env={
            "MNIST_DATA_DIR": str(self.small), "MNIST_MODELS_DIR": str(out), "MODEL_NAME": "digits",
            "LEARNING_RATE": "0.002", "BATCH_SIZE": "100", "LEARNING_STEPS": "25"})
        self.assertOk(r)
        j = r.json()
        self.assertEqual(j["name"], "digits")
        self.assertEqual(j["steps"], 25)
        self.assertEqual(j["epochs"], 2)  # 20 steps per epoch, the second one partial
        import yaml
        hp = yaml.safe_load((out / "model.yaml").read_text())["spec"]["lineage"]["hyperparameters"]
        self.assertEqual((hp["learning_rate"], hp["batch_size"], hp["steps"]), (0.002, 100, 25))
        # --epochs on the command line wins over LEARNING_STEPS from the environment.
        r = mlctl("train", "--data", self.small, "--out", out, "--epochs", "1", "--no-autoencoder",
                  "-o", "json", env={"LEARNING_STEPS": "25", "BATCH_SIZE": "100"})
        self.assertOk(r)
        self.assertEqual(r.json()["steps"], 20)

    def test_table_output_and_hidden_layers(self):
        out = self.tmp / "table"
        r = mlctl("train", "--data", self.small, "--out", out, "--epochs", "1", "--hidden", "64,32,16",
                  "--optimizer", "sgd", "--learning-rate", "0.05", "--no-autoencoder")
        self.assertOk(r)
        self.assertIn("test accuracy:", r.stdout)
        self.assertIn("digest:", r.stdout)
        self.assertIn("hidden: [64, 32, 16]", (out / "model.yaml").read_text())
        self.assertIn("optimizer: sgd", (out / "model.yaml").read_text())

    def test_usage_errors_and_missing_data(self):
        self.assertFails(mlctl("train", "--data", self.small, "--steps", "5", "--epochs", "1"), 2,
                         "mutually exclusive")
        self.assertFails(mlctl("train", "--data", self.small, "--optimizer", "rmsprop"), 2, "rmsprop")
        self.assertFails(mlctl("train", "--data", self.small, "--batch-size", "0"), 2)
        missing = self.tmp / "nowhere"
        r = mlctl("train", "--data", missing, "--out", self.tmp / "m")
        self.assertFails(r, 1, f"{missing}: no such dataset directory")
        self.assertFalse((self.tmp / "m").exists())

    def test_help_example_runs(self):
        r = mlctl("train", "--help")
        self.assertOk(r)
        for flag in ("--learning-rate", "LEARNING_RATE", "BATCH_SIZE", "LEARNING_STEPS", "MNIST_DATA_DIR",
                     "MNIST_MODELS_DIR", "MODEL_NAME", "--no-autoencoder", "--threads"):
            self.assertIn(flag, r.stdout)
        example = r.stdout.split("Example:\n", 1)[1].strip().splitlines()[0].split()
        self.assertEqual(example[:2], ["mlctl", "train"])
        shutil.copytree(self.small, self.tmp / "data" / "mnist")
        r = mlctl(*example[1:], cwd=self.tmp)
        self.assertOk(r)
        self.assertGreater(r.json()["metrics"]["test_accuracy"], 0.6)
        self.assertTrue((self.tmp / "models" / "mnist" / "model.onnx").is_file())


if __name__ == "__main__":
    unittest.main()
