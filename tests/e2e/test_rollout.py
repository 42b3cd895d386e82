"""Automated canary analysis on a real `mlctl serve`: labelled traffic flows (predict +
feedback) while `mlctl rollout canary --wait` moves 20% of it to a candidate and judges the
gates and the two-proportion comparison. A candidate as good as the primary is promoted (exit
0); one trained for a single step is rolled back (exit 3) with the application on its previous
revision; no request fails during either move. Also: follow a rollout started without --wait
with `rollout status --wait`, abort, refuse a second rollout, supersede by an apply, the gate
syntax, and resuming after a restart."""

import tempfile
import time
import unittest
from pathlib import Path

import numpy as np

from harness import Server, TestCase, fetch_npm_digits, mlctl
from traffic import Traffic

APP = "digits"


class RolloutTest(TestCase):
    @classmethod
    def setUpClass(cls):
        cls._root = tempfile.TemporaryDirectory(prefix="mlctl-e2e-rollout-")
        root = Path(cls._root.name)
        cls.digits = fetch_npm_digits(root / "digits")
        cls.models = {}
        for name, args in {"good": ["--epochs", "2", "--seed", "1"], "good2": ["--epochs", "2", "--seed", "2"],
                           "bad": ["--steps", "1", "--seed", "3"]}.items():
            r = mlctl("train", "--data", cls.digits, "--out", root / name, "--ae-epochs", "2", "--no-cache",
                      *args, "-o", "json", timeout=600)
            assert r.code == 0, r
            cls.models[name] = root / name
        test = np.load(cls.digits / "test.npz")
        cls.x = test["x"].astype(np.float32) / 255.0
        cls.y = test["y"]

    @classmethod
    def tearDownClass(cls):
        cls._root.cleanup()

    def start_platform(self, server):
        env = server.env()
        for name in ("good", "good2", "bad"):  # mnist:1, mnist:2, mnist:3
            self.assertOk(mlctl("catalog", "upload", self.models[name], "--name", "mnist", "--force-new", env=env))
        self.assertOk(mlctl("apply", "application", APP, "--model", "mnist:1", env=env))
        return env

    def canary(self, env, model, *extra, wait=True):
        args = ["rollout", "canary", APP, "--model", model, "--weight", "20",
                "--gate", "accuracy>=0.8", "--gate", "error_rate<=0.01", "--gate", "p99_ms<=1000",
                "--gate", "reconstruction<=threshold", "--min-requests", "150", "--min-labelled", "100",
                # 0.999: two equally good versions are not told apart by chance (5% at 0.95)
                "--confidence", "0.999", "--timeout", "120s", *extra]
        return mlctl(*args, *(["--wait"] if wait else []), "-o", "json", env=env, timeout=300)

    def current_models(self, env):
        r = mlctl("describe", "application", APP, "-o", "json", env=env)
        self.assertOk(r)
        app = r.json()
        return [v["model"] for v in app["stages"][0]["variants"]], app["revision"]

    def test_promote_then_roll_back_with_no_failed_request(self):
        with Server(self.tmp / "data") as server:
            env = self.start_platform(server)
            traffic = Traffic(server.port, APP, self.x, self.y)
            self.addCleanup(traffic.stop)

            t0 = time.monotonic()
            r = self.canary(env, "mnist:2")
            promote_s = time.monotonic() - t0
            self.assertEqual(r.code, 0, r)
            out = r.json()
            self.assertEqual((out["status"], out["model"], out["primary"]), ("promoted", "mnist:2", "mnist:1"), out)
            verdict = out["verdict"]
            self.assertEqual(verdict["decision"], "promote")
            self.assertEqual({g["gate"]: g["status"] for g in verdict["gates"]},
                             {"accuracy>=0.8": "pass", "error_rate<=0.01": "pass", "p99_ms<=1000": "pass",
                              "reconstruction<=threshold": "pass"})
            self.assertEqual(verdict["comparison"]["status"], "pass", verdict)
            canary = verdict["evidence"]["canary"]
            primary = verdict["evidence"]["primary"]
            self.assertGreaterEqual(canary["requests"], 150)
            self.assertGreaterEqual(canary["labelled"], 100)
            self.assertGreater(primary["requests"], canary["requests"])  # 80% vs 20%
            self.assertGreater(canary["accuracy"], 0.8)
            self.assertEqual(self.current_models(env), (["mnist:2"], out["final_revision"]))
            self.assertEqual(traffic.models.get("mnist:2", 0) > 0, True)

            # A candidate trained for one step: the accuracy gate and the comparison fail.
            t0 = time.monotonic()
            r = self.canary(env, "mnist:3")
            rollback_s = time.monotonic() - t0
            self.assertEqual(r.code, 3, r)
            out = r.json()
            self.assertEqual((out["status"], out["model"], out["primary"]), ("rolled_back", "mnist:3", "mnist:2"))
            gates = {g["gate"]: g for g in out["verdict"]["gates"]}
            self.assertEqual(gates["accuracy>=0.8"]["status"], "fail", out)
            self.assertLess(gates["accuracy>=0.8"]["value"], 0.5)
            self.assertEqual(out["verdict"]["comparison"]["status"], "fail", out)
            self.assertLess(out["verdict"]["comparison"]["z"], -out["verdict"]["comparison"]["z_critical"])
            self.assertIn("accuracy>=0.8 failed", out["reason"])
            models, revision = self.current_models(env)
            self.assertEqual(models, ["mnist:2"])
            self.assertEqual(revision, out["final_revision"])

            traffic.stop()
            self.assertEqual(traffic.errors, [])
            self.assertEqual(set(traffic.statuses), {200}, traffic.statuses)
            print(f"\nrollout: promoted in {promote_s:.1f} s, rolled back in {rollback_s:.1f} s; "
                  f"{sum(traffic.statuses.values())} requests, 0 failed; answered by {traffic.models}")

            # The history tells the story, revision by revision.
            r = mlctl("rollout", "history", APP, "-o", "json", env=env)
            self.assertOk(r)
            causes = [rev["cause"] for rev in r.json()["revisions"]]
            self.assertEqual(causes, ["apply", "rollout 1: canary mnist:2 at 20%", "rollout 1: promoted mnist:2",
                                      "rollout 2: canary mnist:3 at 20%",
                                      causes[4] if causes[4].startswith("rollout 2: rolled back mnist:3: ") else "?"])
            r = mlctl("rollout", "status", APP, env=env)
            self.assertOk(r)
            self.assertIn("rollout 2 of digits: rolled back mnist:3; back on mnist:2", r.stdout)
            self.assertIn("canary vs primary accuracy", r.stdout)

    def test_status_wait_abort_conflict_supersede_and_resume(self):
        data = self.tmp / "data"
        with Server(data) as server:
            env = self.start_platform(server)
            # Without --wait: it starts and returns; no traffic, so it stays running.
            r = self.canary(env, "mnist:2", wait=False)
            self.assertEqual(r.code, 0, r)
            self.assertEqual(r.json()["status"], "running")
            self.assertEqual(self.current_models(env)[0], ["mnist:1", "mnist:2"])
            # A second one is refused while it runs.
            r = self.canary(env, "mnist:3", wait=False)
            self.assertFails(r, 1, "has a rollout running (rollout 1: mnist:2 at 20%)")
            r = mlctl("rollout", "status", APP, "-o", "json", env=env)
            self.assertOk(r)
            self.assertEqual(r.json()["verdict"]["decision"], "pending")
            self.assertIn("waiting for canary requests 0/150", r.json()["reason"])
            # Abort: back to the revision before, exit 3 for a follower.
            r = mlctl("rollout", "abort", APP, "-o", "json", env=env)
            self.assertOk(r)
            self.assertEqual(r.json()["status"], "aborted")
            self.assertEqual(self.current_models(env)[0], ["mnist:1"])
            self.assertFails(mlctl("rollout", "abort", APP, env=env), 1, "has no rollout running")

            # An apply during the canary supersedes it; the apply stays.
            self.assertEqual(self.canary(env, "mnist:2", wait=False).code, 0)
            self.assertOk(mlctl("apply", "application", APP, "--model", "mnist:3", env=env))
            r = mlctl("rollout", "status", APP, "--wait", env=env, timeout=60)
            self.assertFails(r, 1, "ended superseded: the application changed to revision")
            self.assertEqual(self.current_models(env)[0], ["mnist:3"])

            # A running rollout survives a restart and is judged after it (here: it times out).
            self.assertOk(mlctl("apply", "application", APP, "--model", "mnist:1", env=env))
            r = mlctl("rollout", "canary", APP, "--model", "mnist:2", "--timeout", "3s", "-o", "json", env=env)
            self.assertOk(r)
            # Started without --gate, it is still judged on its errors.
            self.assertEqual(r.json()["spec"]["gates"], ["error_rate<=0.01"])
        with Server(data) as server:
            env = server.env()
            r = mlctl("rollout", "status", APP, "--wait", "-o", "json", env=env, timeout=60)
            self.assertEqual(r.code, 3, r)
            self.assertEqual(r.json()["status"], "rolled_back")
            self.assertIn("timed out waiting for canary requests 0/500", r.json()["reason"])
            self.assertEqual(self.current_models(env)[0], ["mnist:1"])
            self.assertIn("resumes", server.stderr())
            # The table says where the labels it waited for come from.
            r = mlctl("rollout", "status", APP, env=env)
            self.assertOk(r)
            self.assertIn("hint: the accuracy comparison needs 100 labelled images per variant: send "
                          f"labels with `mlctl feedback --app {APP} --file labels.csv`", r.stdout)

    def test_gate_syntax_and_refusals(self):
        with Server(self.tmp / "data") as server:
            env = self.start_platform(server)
            cases = [
                (["--gate", "latency<=3"], "--gate: gate 'latency<=3': unknown metric 'latency'"),
                (["--gate", "accuracy>=1.5"], "accuracy must be compared with a value in [0, 1]"),
                (["--gate", "p99_ms=20"], "expected METRIC OP VALUE"),
                (["--gate", "accuracy<=threshold"], "only reconstruction compares with 'threshold'"),
                (["--min-labelled", "0", "--gate", "accuracy>=0.9"], "accuracy needs ground truth"),
                (["--timeout", "ten"], "--timeout 'ten': expected a duration"),
            ]
            for extra, message in cases:
                r = mlctl("rollout", "canary", APP, "--model", "mnist:2", *extra, env=env)
                self.assertFails(r, 1, message)
            r = mlctl("rollout", "canary", APP, "--model", "mnist:9", env=env)
            self.assertFails(r, 1, "model: mnist:9 does not exist")
            r = mlctl("rollout", "canary", APP, "--model", "mnist:1", env=env)
            self.assertFails(r, 1, "model: mnist:1 is mnist:1, which already serves application 'digits'")
            r = mlctl("rollout", "canary", APP, "--model", "mnist:2", "--weight", "70", env=env)
            self.assertEqual(r.code, 2, r)
            r = mlctl("rollout", "status", "nothing", env=env)
            self.assertFails(r, 1, "application 'nothing' has no rollout")


if __name__ == "__main__":
    unittest.main(verbosity=2)
