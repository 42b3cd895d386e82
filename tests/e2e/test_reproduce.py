"""`mlctl reproduce NAME:VERSION` against a real `mlctl serve`: a version trained by mlctl is
reproduced byte for byte (exit 0); other data give exit 3 naming the data digest; an imported
model without hyper-parameters in its lineage cannot be retrained (exit 1). Also step caching of `train` itself."""

import json
import unittest

from harness import Server, TestCase, make_model_dir, mlctl
from pipeline_data import write_idx_source


class ReproduceTest(TestCase):
    def test_reproduce_a_trained_version_and_explain_a_mismatch(self):
        source = write_idx_source(self.tmp / "idx", 1000, 200)
        cache = {"MLCTL_CACHE_DIR": str(self.tmp / "cache")}
        data = self.tmp / "data"
        self.assertOk(mlctl("fetch-mnist", "--source", source, "--out", data, env=cache))
        model = self.tmp / "model"
        train = ["train", "--data", data, "--out", model, "--steps", "30", "--batch-size", "100",
                 "--ae-epochs", "1", "--seed", "7", "-o", "json"]
        first = mlctl(*train, env=cache)
        self.assertOk(first)
        self.assertFalse(first.json()["cached"])
        again = mlctl(*train, env=cache)
        self.assertOk(again)
        self.assertTrue(again.json()["cached"])
        self.assertIn("mlctl: train: cached (key ", again.stderr)
        self.assertEqual(again.json()["digest"], first.json()["digest"])
        forced = mlctl(*train, "--no-cache", env=cache)
        self.assertFalse(forced.json()["cached"])
        self.assertEqual(forced.json()["digest"].split(":")[0], "sha256")
        # A hand-edited output is not served from the cache.
        (model / "model.onnx").write_bytes(b"edited")
        self.assertFalse(mlctl(*train, env=cache).json()["cached"])

        with Server(self.tmp / "server") as server:
            env = {**server.env(), **cache}
            up = mlctl("catalog", "upload", model, "-o", "json", env=env)
            self.assertOk(up)
            self.assertFalse(up.json()["cached"])
            again = mlctl("catalog", "upload", model, "-o", "json", env=env)
            self.assertOk(again)
            self.assertTrue(again.json()["cached"])
            self.assertEqual(again.json()["version"]["version"], 1)

            work = self.tmp / "work"
            r = mlctl("reproduce", "mnist:1", "--workdir", work, "-o", "json", env=env)
            self.assertOk(r)
            j = r.json()
            self.assertTrue(j["reproduced"])
            self.assertEqual(j["registered"]["model_sha256"], j["retrained"]["model_sha256"])
            self.assertEqual(j["dataset"]["from"], str(source))
            self.assertEqual(j["differences"], [])
            self.assertTrue((work / "model" / "model.onnx").is_file())

            other = self.tmp / "other"
            self.assertOk(mlctl("fetch-mnist", "--source", write_idx_source(self.tmp / "idx2", 900, 200),
                                "--out", other, env=cache))
            r = mlctl("reproduce", "mnist:1", "--data-dir", other, env=env)
            self.assertEqual(r.code, 3, repr(r))
            self.assertIn("differs: data digest", r.stdout)
            self.assertIn("mnist:1: not reproduced: data digest (recorded sha256:", r.stderr)

            tiny = make_model_dir(self.tmp / "tiny", name="tiny")
            self.assertOk(mlctl("catalog", "upload", tiny, env=env))
            self.assertFails(mlctl("reproduce", "tiny:1", env=env), 1,
                             "tiny:1: the lineage has no hyper-parameters: there is nothing to retrain from")


if __name__ == "__main__":
    unittest.main()
