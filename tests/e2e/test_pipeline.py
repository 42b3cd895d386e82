"""manifests/pipelines/mnist.sh end to end against a real `mlctl serve`: a first run registers
version 1 and passes the staging gate; a second run is fully cached and registers nothing;
`mlctl reproduce` of version 1 exits 0; a run with ACCEPTABLE_ACCURACY=0.999 fails the gate
with exit 3, removes staging and leaves production on version 1."""

import json
import os
import subprocess
import time
import unittest

from harness import MLCTL, SOURCE_DIR, Server, TestCase, mlctl
from pipeline_data import write_idx_source

SCRIPT = SOURCE_DIR / "manifests" / "pipelines" / "mnist.sh"


class MnistPipelineTest(TestCase):
    def run_pipeline(self, server, **extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLCTL_")}
        env.update({"MLCTL": MLCTL, "MLCTL_SERVER": server.url, "WORK_DIR": str(self.tmp / "work"),
                    "DATA_SOURCE": str(self.source), "LEARNING_STEPS": "60", "BATCH_SIZE": "100",
                    "ACCEPTABLE_ACCURACY": "0.5", "TEST_SAMPLES": "200",
                    "XDG_CACHE_HOME": str(self.tmp / "xdg")})
        env.update({k: str(v) for k, v in extra.items()})
        start = time.monotonic()
        p = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=300)
        return p, time.monotonic() - start

    def app_json(self, server, name):
        return mlctl("-o", "json", "describe", "application", name, env=server.env())

    def test_first_run_cached_rerun_reproduce_and_failed_gate(self):
        self.source = write_idx_source(self.tmp / "idx")
        run_json = self.tmp / "work" / "runs" / "mnist" / "run.json"
        with Server(self.tmp / "server") as server:
            first, t1 = self.run_pipeline(server)
            self.assertEqual(first.returncode, 0, first.stderr)
            run = json.loads(run_json.read_text())
            self.assertEqual(run["gate"], "passed", first.stderr)
            self.assertEqual(run["model"]["version"], 1)
            self.assertEqual([s["cached"] for s in run["steps"]][:3], [False, False, False])
            self.assertEqual(len(run["steps"]), 7)
            self.assertIn("== [5/7] test staging", first.stderr)
            self.assertGreater(run["test_accuracy"], 0.5)
            self.assertIn("mnist:1", self.app_json(server, "mnist-app").stdout)
            self.assertFails(self.app_json(server, "mnist-app-staging"), 1)

            second, t2 = self.run_pipeline(server)
            self.assertEqual(second.returncode, 0, second.stderr)
            run = json.loads(run_json.read_text())
            self.assertEqual([s["cached"] for s in run["steps"]][:3], [True, True, True], second.stderr)
            for step in ("fetch-mnist", "train", "catalog-upload"):
                self.assertIn(f"mlctl: {step}: cached (", second.stderr)
            self.assertEqual(run["model"]["version"], 1)
            versions = mlctl("-o", "json", "catalog", "get", "mnist", env=server.env())
            self.assertOk(versions)
            self.assertNotIn('"mnist:2"', versions.stdout)
            print(f"\nfirst run {t1:.1f} s, cached run {t2:.1f} s")

            r = mlctl("reproduce", "mnist:1", "-o", "json", env=server.env(), timeout=300)
            self.assertOk(r)
            self.assertTrue(r.json()["reproduced"])

            # A stricter gate on a new model (other steps): exit 3, production stays on mnist:1.
            failed, _ = self.run_pipeline(server, ACCEPTABLE_ACCURACY="0.999", LEARNING_STEPS="61")
            self.assertEqual(failed.returncode, 3, failed.stderr)
            run = json.loads(run_json.read_text())
            self.assertEqual(run["model"]["version"], 2)
            self.assertTrue(run["gate"].startswith("failed"))
            app = self.app_json(server, "mnist-app")
            self.assertIn("mnist:1", app.stdout)
            self.assertNotIn("mnist:2", app.stdout)
            self.assertFails(self.app_json(server, "mnist-app-staging"), 1)


if __name__ == "__main__":
    unittest.main()
