"""manifests/pipelines/mnist.sh end to end against a real `mlctl serve`: a first run registers
version 1 and passes the staging gate; a second run is fully cached and registers nothing;
`mlctl reproduce` of version 1 exits 0; a run with ACCEPTABLE_ACCURACY=0.999 fails the gate
with exit 3, removes staging and leaves production on version 1. Then
manifests/pipelines/retrain.sh under labelled traffic: subsample -> train --merge -> upload ->
`rollout canary` promotes the retrained version (exit 0); a version trained for one step is
rolled back (exit 3); no request fails during either move."""

import json
import os
import subprocess
import time
import unittest

import numpy as np

from harness import MLCTL, SOURCE_DIR, Server, TestCase, mlctl
from pipeline_data import write_idx_source
from traffic import Traffic

SCRIPT = SOURCE_DIR / "manifests" / "pipelines" / "mnist.sh"
RETRAIN = SOURCE_DIR / "manifests" / "pipelines" / "retrain.sh"


class MnistPipelineTest(TestCase):
    def run_pipeline(self, server, script=SCRIPT, cwd=None, **extra):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLCTL_")}
        env.update({"MLCTL": MLCTL, "MLCTL_SERVER": server.url, "WORK_DIR": str(self.tmp / "state"),
                    "DATA_SOURCE": str(self.source), "LEARNING_STEPS": "60", "BATCH_SIZE": "100",
                    "ACCEPTABLE_ACCURACY": "0.5", "TEST_SAMPLES": "200",
                    "XDG_CACHE_HOME": str(self.tmp / "xdg")})
        env.update({k: str(v) for k, v in extra.items()})
        start = time.monotonic()
        p = subprocess.run(["bash", str(script)], capture_output=True, text=True, env=env, timeout=300, cwd=cwd)
        return p, time.monotonic() - start

    def app_json(self, server, name):
        return mlctl("-o", "json", "describe", "application", name, env=server.env())

    def serving(self, server, name="mnist-app"):
        r = self.app_json(server, name)
        self.assertOk(r)
        return [v["model"] for stage in r.json()["stages"] for v in stage["variants"]]

    def test_first_run_cached_rerun_reproduce_and_failed_gate(self):
        self.source = write_idx_source(self.tmp / "idx")
        run_json = self.tmp / "state" / "runs" / "mnist" / "run.json"
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

            # The same directories spelled another way (relative, from another working
            # directory) are the same steps: a relative DATA_DIR used to miss train's record.
            second, t2 = self.run_pipeline(server, cwd=self.tmp, WORK_DIR="./state/")
            self.assertEqual(second.returncode, 0, second.stderr)
            run = json.loads(run_json.read_text())
            self.assertEqual([s["cached"] for s in run["steps"]][:3], [True, True, True], second.stderr)
            self.assertEqual(run["latency_p50_ms"], round(run["latency_p50_ms"], 3))  # not 0.0679539999...
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

            # The maintenance loop, while labelled production traffic flows.
            test = np.load(self.tmp / "state" / "data" / "mnist" / "test.npz")
            traffic = Traffic(server.port, "mnist-app", test["x"].astype(np.float32) / 255.0, test["y"])
            self.addCleanup(traffic.stop)
            while sum(traffic.statuses.values()) < 600:  # labelled rows for the subsample
                time.sleep(0.1)
            retrain = dict(script=RETRAIN, SUBSAMPLE_SIZE=300, CANARY_WEIGHT=20, CANARY_MIN_REQUESTS=100,
                           CANARY_MIN_LABELLED=60, CANARY_TIMEOUT="120s", CANARY_CONFIDENCE=0.999,
                           CANARY_GATES="accuracy>=0.5 error_rate<=0.01 reconstruction<=threshold")
            promoted, t_promote = self.run_pipeline(server, **retrain)
            self.assertEqual(promoted.returncode, 0, promoted.stderr)
            self.assertIn("== [4/4] rollout canary", promoted.stderr)
            self.assertIn("retrain: mnist:3 promoted on mnist-app", promoted.stderr)
            self.assertEqual(self.serving(server), ["mnist:3"])
            lineage = mlctl("-o", "json", "catalog", "get", "mnist:3", env=server.env())
            self.assertOk(lineage)
            self.assertIn("retrain", lineage.stdout)  # trained on the subsample merged with the original

            # The retrained version reproduces: the subsample is taken again (same window, same
            # seed) and merged with the original dataset fetched again.
            r = mlctl("reproduce", "mnist:3", "-o", "json", env=server.env(), timeout=300)
            self.assertOk(r)
            self.assertTrue(r.json()["reproduced"], r.json())
            self.assertIn("subsample of mnist-app", r.json()["dataset"]["from"])

            rolled_back, t_rollback = self.run_pipeline(server, **retrain, LEARNING_STEPS=1)
            self.assertEqual(rolled_back.returncode, 3, rolled_back.stderr)
            self.assertIn("retrain: mnist:4 rolled back; mnist-app is on its previous revision",
                          rolled_back.stderr)
            self.assertEqual(self.serving(server), ["mnist:3"])
            traffic.stop()
            self.assertEqual(traffic.errors, [])
            self.assertEqual(set(traffic.statuses), {200}, traffic.statuses)
            print(f"retrain: promoted in {t_promote:.1f} s, rolled back in {t_rollback:.1f} s; "
                  f"{sum(traffic.statuses.values())} requests, 0 failed")


if __name__ == "__main__":
    unittest.main()
