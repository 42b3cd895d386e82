"""`mlctl catalog` and `mlctl cluster` against a real `mlctl serve`: the upload/list/get/download
round trip, idempotent uploads, bare ONNX imports, concurrent uploads, hostile artifacts,
aliases, tags, the audit log, deletion (refused while in use), garbage collection, paging and
the cluster config file."""

import concurrent.futures
import filecmp
import hashlib
import os
import sqlite3
import tarfile
import unittest
from pathlib import Path

from harness import Server, TestCase, make_model_dir, mlctl
from registry_fixtures import hostile_artifacts, request, request_json


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def same_tree(a: Path, b: Path) -> bool:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    return files_a == files_b and all(filecmp.cmp(a / f, b / f, shallow=False) for f in files_a)


class CatalogTest(TestCase):
    def setUp(self):
        super().setUp()
        self.server = Server(self.tmp / "data", args=["--max-body-mb", "16"]).__enter__()
        self.env = {**self.server.env(), "XDG_CONFIG_HOME": str(self.tmp / "config")}

    def tearDown(self):
        self.server.__exit__(None, None, None)
        super().tearDown()

    def run_ok(self, *args):
        r = mlctl(*args, env=self.env)
        self.assertOk(r)
        return r

    def test_round_trip_is_byte_identical(self):
        model = make_model_dir(self.tmp / "model", name="mnist", seed=1)
        r = self.run_ok("catalog", "upload", model, "--version-file", self.tmp / "version.txt")
        self.assertEqual(r.stdout, "mnist:1\n")
        self.assertEqual((self.tmp / "version.txt").read_text(), "1")
        models = self.run_ok("catalog", "list", "-o", "json").json()["models"]
        self.assertEqual([(m["name"], m["latest_version"], m["version_count"]) for m in models], [("mnist", 1, 1)])
        versions = self.run_ok("catalog", "list", "mnist", "-o", "json").json()["versions"]
        self.assertEqual([v["ref"] for v in versions], ["mnist:1"])
        info = self.run_ok("catalog", "get", "mnist:1", "-o", "json").json()
        self.assertEqual(info["files"], ["model.onnx", "model.yaml"])
        self.assertEqual(info["contract"]["inputs"][0]["name"], "input")
        self.assertEqual(info["lineage"]["seed"], 1)
        self.assertEqual(info["uploader"], os.environ.get("USER", "anonymous") or "anonymous")
        out = self.tmp / "downloaded"
        d = self.run_ok("catalog", "download", "mnist:1", "--out", out, "--artifact", self.tmp / "a.tgz",
                        "-o", "json").json()
        self.assertTrue(same_tree(model, out))
        self.assertEqual(d["sha256"], info["sha256"])
        self.assertEqual(sha256(self.tmp / "a.tgz"), info["sha256"])
        # The artifact route: ETag is the sha256, and a matching If-None-Match is a 304.
        status, headers, body = request(self.server, "GET", "/api/v1/models/mnist/versions/1/artifact")
        self.assertEqual(status, 200)
        self.assertEqual(headers["etag"].strip('"'), info["sha256"])
        self.assertEqual(hashlib.sha256(body).hexdigest(), info["sha256"])
        status, _, _ = request(self.server, "GET", "/api/v1/models/mnist/versions/1/artifact",
                               headers={"If-None-Match": headers["etag"]})
        self.assertEqual(status, 304)
        # A download into a non-empty directory is refused.
        self.assertFails(mlctl("catalog", "download", "mnist:1", "--out", out, env=self.env), 1, "not an empty")
        # Table and YAML forms.
        self.assertIn("mnist:1", self.run_ok("catalog", "list", "mnist").stdout)
        self.assertIn('sha256: "', self.run_ok("catalog", "get", "mnist", "-o", "yaml").stdout)

    def test_same_bytes_give_the_same_version_unless_force_new(self):
        model = make_model_dir(self.tmp / "model", name="m")
        first = self.run_ok("catalog", "upload", model, "-o", "json").json()
        self.assertTrue(first["created"])
        again = self.run_ok("catalog", "upload", model, "-o", "json").json()
        self.assertFalse(again["created"])
        self.assertEqual(again["version"]["version"], 1)
        self.assertIn("already registered", mlctl("catalog", "upload", model, env=self.env).stderr)
        forced = self.run_ok("catalog", "upload", model, "--force-new", "-o", "json").json()
        self.assertEqual((forced["created"], forced["version"]["version"]), (True, 2))
        self.assertEqual(forced["version"]["sha256"], first["version"]["sha256"])
        # Both versions share one file; deleting one keeps the bytes, deleting both frees them.
        r = self.run_ok("catalog", "rm", "m:1", "-o", "json").json()
        self.assertFalse(r["artifact_removed"])
        self.run_ok("catalog", "download", "m:2", "--out", self.tmp / "still-there")
        r = self.run_ok("catalog", "rm", "m:2", "-o", "json").json()
        self.assertTrue(r["artifact_removed"])
        self.assertGreater(r["bytes_freed"], 0)
        self.assertEqual([p for p in (self.tmp / "data" / "artifacts").rglob("*") if p.is_file()], [])
        # Numbers are never reused.
        self.assertEqual(self.run_ok("catalog", "upload", model, "-o", "json").json()["version"]["version"], 3)

    def test_bare_onnx_gets_a_generated_card(self):
        model = make_model_dir(self.tmp / "model", classes=3)
        r = self.run_ok("catalog", "upload", model / "model.onnx", "--name", "imported")
        self.assertEqual(r.stdout, "imported:1\n")
        info = self.run_ok("catalog", "get", "imported:1", "-o", "json").json()
        self.assertTrue(info["lineage"]["imported"])
        self.assertEqual(info["contract"]["labels"], ["0", "1", "2"])
        self.assertEqual(info["contract"]["outputs"][0]["shape"], [-1, 3])
        self.assertFails(mlctl("catalog", "upload", model / "model.onnx", "--name", "Bad Name", env=self.env), 1,
                         "must match")
        # What is neither: said before anything is sent.
        (self.tmp / "empty").mkdir()
        self.assertFails(mlctl("catalog", "upload", self.tmp / "empty", env=self.env), 1,
                         f"{self.tmp / 'empty'}: not a model directory (no model.yaml; `mlctl train --out DIR` "
                         "writes one), nor a .onnx file")
        self.assertFails(mlctl("catalog", "upload", model / "model.yaml", env=self.env), 1,
                         "expected a model directory (model.yaml + model.onnx) or a .onnx file")

    def test_eight_concurrent_uploads_get_distinct_gap_free_versions(self):
        models = [make_model_dir(self.tmp / f"m{i}", name="busy", seed=i) for i in range(8)]
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda m: mlctl("catalog", "upload", m, "-o", "json", env=self.env), models))
        for r in results:
            self.assertOk(r)
        versions = sorted(r.json()["version"]["version"] for r in results)
        self.assertEqual(versions, list(range(1, 9)))
        by_version = {r.json()["version"]["version"]: (m, r.json()["version"]["sha256"]) for r, m in zip(results, models)}
        for version, (model, sha) in by_version.items():
            out = self.tmp / f"out{version}"
            d = self.run_ok("catalog", "download", f"busy:{version}", "--out", out, "-o", "json").json()
            self.assertEqual(d["sha256"], sha)
            self.assertTrue(same_tree(model, out), f"busy:{version} differs from its upload")

    def test_hostile_artifacts_are_refused_with_400_and_a_message(self):
        model = make_model_dir(self.tmp / "model")
        for label, body, words in hostile_artifacts(model, bomb_bytes=200 << 20):
            with self.subTest(label):
                status, reply = request_json(self.server, "POST", "/api/v1/models/evil/versions", body)
                self.assertEqual(status, 400, f"{label}: {reply}")
                self.assertEqual(reply["error"]["code"], "invalid_input")
                message = reply["error"]["message"]
                self.assertTrue(message.startswith("artifact: "), message)
                for w in words:
                    self.assertIn(w, message)
        self.assertFalse(Path("/tmp/mlctl-abs-x").exists())
        self.assertEqual(request_json(self.server, "GET", "/api/v1/models/evil/versions")[0], 404)
        self.assertEqual(list((self.tmp / "data" / "tmp").iterdir()), [])
        self.assertEqual([p for p in (self.tmp / "data" / "artifacts").rglob("*") if p.is_file()], [])
        # An empty body and a model.yaml that does not match the graph.
        status, reply = request_json(self.server, "POST", "/api/v1/models/evil/versions", b"")
        self.assertEqual(status, 400)
        self.assertIn("empty body", reply["error"]["message"])
        text = (model / "model.yaml").read_text().replace("name: input", "name: pixels")
        (model / "model.yaml").write_text(text)
        r = mlctl("catalog", "upload", model, env=self.env)
        self.assertFails(r, 1, "spec.contract.inputs[0].name: 'pixels' is not an input of model.onnx")

    def test_aliases_tags_and_history(self):
        for i in (1, 2):
            self.run_ok("catalog", "upload", make_model_dir(self.tmp / f"m{i}", name="mnist", seed=i))
        self.assertEqual(self.run_ok("catalog", "alias", "mnist:1", "production").stdout,
                         "mnist@production -> mnist:1\n")
        self.assertEqual(self.run_ok("catalog", "get", "mnist@production", "-o", "json").json()["version"], 1)
        self.run_ok("catalog", "alias", "mnist:2", "production")  # moves atomically
        self.assertEqual(self.run_ok("catalog", "get", "mnist@production", "-o", "json").json()["version"], 2)
        self.run_ok("catalog", "alias", "mnist@production", "champion")
        aliases = self.run_ok("catalog", "alias", "mnist", "-o", "json").json()["aliases"]
        self.assertEqual({a["alias"]: a["version"] for a in aliases}, {"production": 2, "champion": 2})
        self.assertFails(mlctl("catalog", "alias", "mnist:9", "staging", env=self.env), 1, "mnist:9 not found")
        self.assertFails(mlctl("catalog", "alias", "mnist:1", "123", env=self.env), 1, "must not be a number")
        self.assertFails(mlctl("catalog", "get", "mnist@nope", env=self.env), 1, "no such alias")
        self.run_ok("catalog", "alias", "mnist", "champion", "--delete")

        tagged = self.run_ok("catalog", "tag", "mnist:1", "stage=staging", "team=vision", "-o", "json").json()
        self.assertEqual(tagged["tags"], {"stage": "staging", "team": "vision"})
        self.run_ok("catalog", "tag", "mnist:1", "--remove", "team")
        only = self.run_ok("catalog", "list", "mnist", "--tag", "stage=staging", "-o", "json").json()["versions"]
        self.assertEqual([(v["version"], v["tags"]) for v in only], [(1, {"stage": "staging"})])
        self.assertEqual(
            [m["name"] for m in self.run_ok("catalog", "list", "--tag", "stage=staging", "-o", "json").json()["models"]],
            ["mnist"])

        events = self.run_ok("catalog", "history", "mnist", "-o", "json").json()["events"]
        actions = [(e["action"], e["version"], e["alias"]) for e in events]
        self.assertEqual(actions, [
            ("version.created", 1, ""), ("version.created", 2, ""), ("alias.set", 1, "production"),
            ("alias.set", 2, "production"), ("alias.set", 2, "champion"), ("alias.deleted", 2, "champion"),
            ("tags.updated", 1, ""), ("tags.updated", 1, "")])
        self.assertEqual(events[3]["detail"]["previous"], 1)
        # "Which version served production at time T": the last alias.set before T.
        t = events[3]["time"]
        later = self.run_ok("catalog", "history", "mnist", "--since", t, "-o", "json").json()["events"]
        self.assertEqual(later[0]["id"], events[3]["id"])
        after_id = self.run_ok("catalog", "history", "--since", str(events[-2]["id"]), "-o", "json").json()["events"]
        self.assertEqual([e["id"] for e in after_id], [events[-1]["id"]])
        self.assertIn("alias.set", self.run_ok("catalog", "history", "mnist").stdout)

    def test_delete_is_refused_while_in_use(self):
        self.run_ok("catalog", "upload", make_model_dir(self.tmp / "m", name="mnist"))
        # The usage table is the hook applications fill; mark the version as a deployment would.
        db = sqlite3.connect(self.tmp / "data" / "registry.db", timeout=10)
        db.execute("INSERT INTO version_usage VALUES ('mnist', 1, 'application/mnist-app')")
        db.commit()
        r = mlctl("catalog", "rm", "mnist:1", env=self.env)
        self.assertFails(r, 1, "mnist:1 is in use by application/mnist-app")
        status, reply = request_json(self.server, "DELETE", "/api/v1/models/mnist/versions/1")
        self.assertEqual((status, reply["error"]["code"]), (409, "conflict"))
        self.assertEqual(self.run_ok("catalog", "get", "mnist:1", "-o", "json").json()["used_by"],
                         ["application/mnist-app"])
        db.execute("DELETE FROM version_usage")
        db.commit()
        db.close()
        self.assertEqual(self.run_ok("catalog", "rm", "mnist:1").stdout.split()[:2], ["deleted", "mnist:1"])
        self.assertFails(mlctl("catalog", "get", "mnist:1", env=self.env), 1, "mnist:1 not found")
        self.assertFails(mlctl("catalog", "rm", "mnist", env=self.env), 1, "expected NAME:VERSION")

    def test_gc_frees_unreferenced_bytes(self):
        self.run_ok("catalog", "upload", make_model_dir(self.tmp / "m", name="mnist"))
        stray = self.tmp / "data" / "artifacts" / "sha256" / "ab" / ("ab" + "0" * 62)
        stray.parent.mkdir(parents=True, exist_ok=True)
        stray.write_bytes(b"x" * 1000)
        dry = self.run_ok("catalog", "gc", "--dry-run", "-o", "json").json()
        self.assertEqual((dry["dry_run"], dry["files_removed"], dry["bytes_freed"]), (True, 1, 1000))
        self.assertTrue(stray.exists())
        done = self.run_ok("catalog", "gc", "-o", "json").json()
        self.assertEqual((done["files_removed"], done["bytes_freed"]), (1, 1000))
        self.assertEqual(done["removed"], [str(stray.relative_to(self.tmp / "data"))])
        self.assertFalse(stray.exists())
        self.run_ok("catalog", "download", "mnist:1", "--out", self.tmp / "intact")
        self.assertIn("freed 0 file(s)", self.run_ok("catalog", "gc").stdout)

    def test_lost_artifact_bytes_come_back_with_an_upload_of_the_same_model(self):
        model = make_model_dir(self.tmp / "m", name="mnist")
        info = self.run_ok("catalog", "upload", model, "-o", "json").json()["version"]
        self.run_ok("apply", "application", "lost", "--model", "mnist:1")
        stored = self.tmp / "data" / "artifacts" / "sha256" / info["sha256"][:2] / info["sha256"]
        stored.unlink()  # a disk mishap, a bad restore
        # At start the server says what is missing and how to get it back; the application is
        # not served.
        self.server.__exit__(None, None, None)
        self.server = Server(self.tmp / "data").__enter__()
        self.env.update(self.server.env())
        log = self.server.stderr()
        self.assertIn("warning: model mnist:1: artifact bytes are missing from", log)
        self.assertIn("(an upload of the same model restores them: mlctl catalog upload DIR)", log)
        self.assertIn("warning: application lost (revision 1) is not served: spec.singular.model: cannot load "
                      f"mnist:1: its artifact file is missing from the data directory ({stored})", log)
        # Applying refuses with 409 (nothing a retry changes) and the way out.
        r = mlctl("apply", "application", "lost2", "--model", "mnist:1", env=self.env)
        self.assertFails(r, 1, "application lost2: spec.singular.model: cannot load mnist:1: its artifact file is missing")
        self.assertIn("upload the same model again to restore it (mlctl catalog upload DIR), then "
                      "apply again", r.stderr)
        self.assertNotIn("retry", r.stderr)
        r = mlctl("catalog", "download", "mnist:1", "--out", self.tmp / "out", env=self.env)
        self.assertFails(r, 1, "mnist:1: its artifact file cannot be read from the data directory: No such file "
                               "or directory (an upload of the same model restores it: mlctl catalog upload "
                               "DIR)")
        self.assertNotIn("retry", r.stderr)
        got = self.run_ok("catalog", "get", "mnist:1")
        self.assertRegex(got.stdout, r"\nartifact: +MISSING from the server's data directory \(an upload of the same "
                                     r"model restores it: mlctl catalog upload DIR\)\n")
        self.assertTrue(self.run_ok("catalog", "get", "mnist:1", "-o", "json").json()["artifact_missing"])
        # The same bytes, uploaded again, restore the file under the same version (the recorded
        # upload of the step cache does not count while the bytes are missing).
        again = self.run_ok("catalog", "upload", model, "-o", "json")
        self.assertEqual((again.json()["created"], again.json()["restored"], again.json()["version"]["version"]),
                         (False, True, 1))
        self.assertIn("restored the lost artifact bytes of mnist:1", again.stderr)
        self.assertEqual(sha256(stored), info["sha256"])
        self.assertIn("unchanged", self.run_ok("apply", "application", "lost", "--model", "mnist:1").stdout)
        self.assertEqual(self.run_ok("get", "applications", "-o", "json").json()["applications"][0]["ready"], True)
        history = self.run_ok("catalog", "history", "mnist", "-o", "json").json()["events"]
        self.assertEqual([e["action"] for e in history][-2:], ["version.created", "version.restored"])
        # Once present, the bytes are not replaced: a further upload changes nothing.
        third = self.run_ok("catalog", "upload", model, "--no-cache", "-o", "json").json()
        self.assertEqual((third["created"], third["restored"]), (False, False))
        self.assertFalse(self.run_ok("catalog", "get", "mnist:1", "-o", "json").json()["artifact_missing"])

    def test_paging(self):
        model = make_model_dir(self.tmp / "m", name="paged")
        for _ in range(5):
            self.run_ok("catalog", "upload", model, "--force-new", "-q")
        status, page = request_json(self.server, "GET", "/api/v1/models/paged/versions?limit=2")
        self.assertEqual(([v["version"] for v in page["versions"]], page["next_page_token"]), ([1, 2], "2"))
        status, page = request_json(self.server, "GET", "/api/v1/models/paged/versions?limit=2&page_token=4")
        self.assertEqual(([v["version"] for v in page["versions"]], page["next_page_token"]), ([5], ""))
        status, page = request_json(self.server, "GET", "/api/v1/models/paged/versions?order=desc&limit=3")
        self.assertEqual([v["version"] for v in page["versions"]], [5, 4, 3])
        self.assertEqual(request_json(self.server, "GET", "/api/v1/models/paged/versions?limit=0")[0], 400)
        everything = self.run_ok("catalog", "list", "paged", "-o", "json").json()["versions"]
        self.assertEqual(len(everything), 5)
        self.assertEqual(len(self.run_ok("catalog", "list", "paged", "--limit", "2", "-o", "json").json()["versions"]), 2)
        self.run_ok("catalog", "upload", make_model_dir(self.tmp / "o", name="other"))
        names = [m["name"] for m in self.run_ok("catalog", "list", "--prefix", "pag", "-o", "json").json()["models"]]
        self.assertEqual(names, ["paged"])


class ClusterTest(TestCase):
    def test_add_use_list_and_commands_follow_the_current_cluster(self):
        token = self.tmp / "token"
        token.write_text("cluster-token-0123456789abcdef\n")
        token.chmod(0o600)
        env = {"XDG_CONFIG_HOME": str(self.tmp / "config")}
        with Server(self.tmp / "data", token_file=token) as s:
            r = mlctl("cluster", "add", "local", "--server", s.url, "--token-file", token, env=env)
            self.assertOk(r)
            self.assertIn("(current)", r.stdout)
            self.assertOk(mlctl("cluster", "add", "other", "--server", "http://127.0.0.1:1", env=env))
            listed = mlctl("cluster", "list", "-o", "json", env=env).json()
            self.assertEqual(listed["current"], "local")
            self.assertEqual([c["name"] for c in listed["clusters"]], ["local", "other"])
            config = self.tmp / "config" / "mlctl" / "config.yaml"
            self.assertTrue(config.exists())
            self.assertEqual(config.stat().st_mode & 0o777, 0o600)
            # No --server, no token flag: the current cluster's URL and token file are used.
            self.assertOk(mlctl("catalog", "upload", make_model_dir(self.tmp / "m", name="viacluster"), env=env))
            self.assertIn("viacluster", mlctl("catalog", "list", env=env).stdout)
            self.assertOk(mlctl("cluster", "use", "other", env=env))
            self.assertIn("*", [l.split()[0] for l in mlctl("cluster", "list", env=env).stdout.splitlines()[1:]
                                if "other" in l][0])
            self.assertFails(mlctl("catalog", "list", env=env), 4, "127.0.0.1:1")
            self.assertFails(mlctl("cluster", "use", "nope", env=env), 1, "known: local, other")
            self.assertFails(mlctl("cluster", "add", "x", "--server", "ftp://h", env=env), 1, "http://")


if __name__ == "__main__":
    unittest.main()
