"""`mlctl apply`, `get`, `describe`, `delete` and `rollout` against a real `mlctl serve`:
created / unchanged / configured like kubectl, manifests from a file, a directory and stdin,
bad manifests refused whole with the field path, aliases resolved at apply time, versions
pinned while served, numbered revisions with history and undo, the audit log, and
applications served again after a restart."""

import json
import unittest

from harness import Server, TestCase, make_model_dir, mlctl
from registry_fixtures import request, request_json

HEADER = "apiVersion: mlctl/v1\nkind: Application\nmetadata:\n  name: {name}\nspec:\n"


def manifest(name, spec):
    return HEADER.format(name=name) + spec


def singular(name, model):
    return manifest(name, f"  singular:\n    model: {model}\n")


class ApplyTest(TestCase):
    def setUp(self):
        super().setUp()
        self.server = Server(self.tmp / "data").__enter__()
        self.env = {**self.server.env(), "XDG_CONFIG_HOME": str(self.tmp / "config")}
        for seed in (1, 2, 3):
            self.ok("catalog", "upload", make_model_dir(self.tmp / f"m{seed}", name="mnist", seed=seed))

    def tearDown(self):
        self.server.__exit__(None, None, None)
        super().tearDown()

    def ok(self, *args, **kw):
        r = mlctl(*args, env=self.env, **kw)
        self.assertOk(r)
        return r

    def write(self, name, text):
        path = self.tmp / name
        path.write_text(text)
        return path

    def predict_model(self, app):
        status, reply = request_json(self.server, "POST", f"/api/v1/applications/{app}/predict",
                                     {"images": [[0.5] * 784]})
        self.assertEqual(status, 200, reply)
        return reply["model"]

    def test_apply_is_declarative_and_idempotent(self):
        f = self.write("app.yaml", singular("demo", "mnist:1"))
        self.assertEqual(self.ok("apply", "-f", f).stdout, "application/demo created\n")
        self.assertEqual(self.ok("apply", "-f", f).stdout, "application/demo unchanged\n")
        self.assertEqual(self.predict_model("demo"), "mnist:1")
        self.write("app.yaml", singular("demo", "mnist:2"))
        self.assertEqual(self.ok("apply", "-f", f).stdout, "application/demo configured\n")
        self.assertEqual(self.predict_model("demo"), "mnist:2")

        d = self.ok("describe", "application", "demo", "-o", "json").json()
        self.assertEqual((d["name"], d["revision"], d["singular"], d["ready"]), ("demo", 2, True, True))
        v = d["stages"][0]["variants"][0]
        self.assertEqual((v["model"], v["requested"], v["role"], v["weight"]), ("mnist:2", "mnist:2", "primary", 100))
        self.assertEqual(v["requests"], 1)
        self.assertEqual(d["endpoints"], {"v2_infer": "/v2/models/demo/infer", "v2_metadata": "/v2/models/demo",
                                          "predict": "/api/v1/applications/demo/predict"})
        self.assertEqual(d["capture"], {"sample": 1.0})
        if "health" in d:  # present once a monitor reports it (issue 6)
            self.assertIsInstance(d["health"], dict)
        table = self.ok("describe", "application", "demo").stdout
        for text in ("revision", "mnist:2", "primary", "100%", "/v2/models/demo/infer", self.server.url):
            self.assertIn(text, table)

        listing = self.ok("get", "applications", "-o", "json").json()["applications"]
        self.assertEqual([a["name"] for a in listing], ["demo"])
        table = self.ok("get", "applications").stdout.splitlines()
        self.assertEqual(table[0].split(), ["NAME", "REVISION", "MODELS", "READY", "UPDATED"])
        self.assertEqual(table[1].split()[:5], ["demo", "2", "mnist:2", "100%", "yes"])
        # Either form of the kind, as kubectl takes them.
        self.assertEqual(self.ok("get", "application", "demo").stdout.splitlines(), table)
        self.assertEqual(self.ok("describe", "applications", "demo", "-o", "json").json()["revision"], 2)

    def test_directory_several_documents_and_stdin(self):
        d = self.tmp / "apps"
        d.mkdir()
        (d / "a.yaml").write_text(singular("alpha", "mnist:1") + "---\n" + singular("beta", "mnist:2"))
        (d / "b.yml").write_text(manifest("gamma", "  stages:\n    - variants:\n"
                                                  "        - {model: mnist:1, weight: 50}\n"
                                                  "        - {model: mnist:2, weight: 50}\n"))
        (d / "README.txt").write_text("not a manifest")
        self.assertEqual(self.ok("apply", "-f", d).stdout.splitlines(),
                         ["application/alpha created", "application/beta created", "application/gamma created"])
        r = self.ok("apply", "-f", "-", input=singular("alpha", "mnist:3"))
        self.assertEqual(r.stdout, "application/alpha configured\n")
        r = self.ok("apply", "-f", "-", "-o", "json", input=singular("alpha", "mnist:3"))
        self.assertEqual((r.json()["result"], r.json()["revision"]), ("unchanged", 2))
        self.assertEqual(self.predict_model("alpha"), "mnist:3")
        names = [a["name"] for a in self.ok("get", "applications", "-o", "json").json()["applications"]]
        self.assertEqual(names, ["alpha", "beta", "gamma"])

    def test_bad_manifests_are_refused_whole_with_the_field_path(self):
        bad = self.write("app.yaml", manifest("demo", "  stages:\n    - variants:\n"
                                                      "        - {model: mnist:1, weight: 30}\n"
                                                      "        - {model: mnist:2, weight: 150}\n"))
        self.assertFails(mlctl("apply", "-f", bad, env=self.env), 1,
                         "mlctl: error: " + str(bad) + ": spec.stages[0].variants[1].weight: must be 0..100, got 150")
        missing = self.write("missing.yaml", singular("demo", "mnist:9"))
        self.assertFails(mlctl("apply", "-f", missing, env=self.env), 1,
                         str(missing) + ": spec.singular.model: mnist:9 does not exist")
        alias = self.write("alias.yaml", singular("demo", "mnist@nope"))
        # What the reference could have named is said with it.
        self.assertFails(mlctl("apply", "-f", alias, env=self.env), 1,
                         "spec.singular.model: mnist@nope does not exist (mnist's latest version is ")
        self.assertFails(mlctl("apply", "application", "demo", "--model", "mnsit:1", env=self.env), 1,
                         "spec.singular.model: mnsit:1 does not exist (no model 'mnsit' is registered)")
        # A valid document followed by a bad one: nothing is applied.
        two = self.write("two.yaml", singular("first", "mnist:1") + "---\n" +
                         manifest("second", "  singular: {model: mnist:1}\n  capture: {sample: 2}\n"))
        self.assertFails(mlctl("apply", "-f", two, env=self.env), 1,
                         str(two) + " (document 2): spec.capture.sample: must be 0..1, got 2")
        self.assertFails(mlctl("describe", "application", "first", env=self.env), 1, "application 'first' not found")
        # Every problem of a document is named, not only the first.
        many = self.write("many.yaml", manifest("demo", "  stages:\n    - variants:\n"
                                                        "        - {model: mnist:1, weight: 150}\n"
                                                        "        - {model: mnist:2, shadow: 200}\n"))
        self.assertFails(mlctl("apply", "-f", many, env=self.env), 1,
                         str(many) + ": spec.stages[0].variants[0].weight: must be 0..100, got 150; "
                         "spec.stages[0].variants[1].shadow: must be a percentage in (0, 100], got 200")
        # What only the server knows (the versions) is checked for every document before the
        # first is applied: nothing is applied, every missing version is named.
        gone = self.write("gone.yaml", singular("first", "mnist:1") + "---\n" +
                          manifest("second", "  stages:\n    - variants:\n"
                                             "        - {model: mnist:8, weight: 50}\n"
                                             "        - {model: mnist:9, weight: 50}\n"))
        r = mlctl("apply", "-f", gone, env=self.env)
        self.assertFails(r, 1, str(gone) + " (document 2): spec.stages[0].variants[0].model: mnist:8 does not "
                         "exist (mnist's latest version is 3; it has no aliases); "
                         "spec.stages[0].variants[1].model: mnist:9 does not exist\n")
        self.assertIn("mlctl: error: 1 of 2 application(s) refused by the server; nothing applied", r.stderr)
        self.assertEqual(r.stdout, "")
        self.assertFails(mlctl("describe", "application", "first", env=self.env), 1, "application 'first' not found")
        typo = self.write("typo.yaml", manifest("demo", "  singlar: {model: mnist:1}\n"))
        self.assertFails(mlctl("apply", "-f", typo, env=self.env), 1, "spec.singlar: unknown field")
        self.assertFails(mlctl("apply", "-f", self.tmp / "nope.yaml", env=self.env), 1, "nope.yaml")
        self.assertFails(mlctl("apply", env=self.env), 2)
        # The server validates too (the same rules, for other clients).
        status, reply = request_json(self.server, "PUT", "/api/v1/applications/demo",
                                     {"apiVersion": "mlctl/v1", "kind": "Application", "metadata": {"name": "demo"},
                                      "spec": {"stages": [{"variants": [{"model": "mnist:1", "weight": 90}]}]}})
        self.assertEqual((status, reply["error"]["message"]), (400, "spec.stages[0]: weights must sum to 100, got 90"))
        status, reply = request_json(self.server, "PUT", "/api/v1/applications/other",
                                     {"apiVersion": "mlctl/v1", "kind": "Application", "metadata": {"name": "demo"},
                                      "spec": {"singular": {"model": "mnist:1"}}})
        self.assertEqual(status, 400)
        self.assertIn("does not match", reply["error"]["message"])
        self.assertEqual(self.ok("get", "applications", "-o", "json").json()["applications"], [])

    def test_dry_runs_change_nothing(self):
        f = self.write("app.yaml", singular("demo", "mnist:1"))
        # --dry-run checks the manifest here: no server needed.
        r = mlctl("apply", "-f", f, "--dry-run", env={**self.env, "MLCTL_SERVER": "http://127.0.0.1:1"})
        self.assertOk(r)
        self.assertEqual(r.stdout, "application/demo valid (dry run)\n")
        # --dry-run=server also asks the server: what an apply would do, the versions resolved.
        self.assertEqual(self.ok("apply", "-f", f, "--dry-run=server").stdout,
                         "application/demo created (server dry run)\n")
        self.assertEqual(self.ok("get", "applications", "-o", "json").json()["applications"], [])
        self.ok("apply", "-f", f)
        r = self.ok("apply", "-f", f, "--dry-run=server", "-o", "json").json()
        self.assertEqual(r, {"name": "demo", "result": "unchanged", "dry_run": True, "models": [["mnist:1"]]})
        self.ok("catalog", "alias", "mnist:2", "production")
        self.write("app.yaml", singular("demo", "mnist@production"))
        r = self.ok("apply", "-f", f, "--dry-run=server", "-o", "json").json()
        self.assertEqual((r["result"], r["models"]), ("configured", [["mnist:2"]]))
        self.assertEqual(self.predict_model("demo"), "mnist:1")
        self.assertEqual(self.ok("describe", "application", "demo", "-o", "json").json()["revision"], 1)
        self.write("app.yaml", singular("demo", "mnist:7"))
        self.assertFails(mlctl("apply", "-f", f, "--dry-run=server", env=self.env), 1,
                         "spec.singular.model: mnist:7 does not exist")
        self.assertFails(mlctl("apply", "-f", f, "--dry-run=maybe", env=self.env), 2)

    def test_shortcut_aliases_and_pinned_versions(self):
        self.ok("catalog", "alias", "mnist:2", "production")
        r = self.ok("apply", "application", "demo", "--model", "mnist@production")
        self.assertEqual(r.stdout, "application/demo created\n")
        v = self.ok("describe", "application", "demo", "-o", "json").json()["stages"][0]["variants"][0]
        self.assertEqual((v["model"], v["requested"]), ("mnist:2", "mnist@production"))
        self.assertEqual(self.ok("apply", "application", "demo", "--model", "mnist@production").stdout,
                         "application/demo unchanged\n")
        # Moving the alias changes what the same manifest means: the next apply follows it.
        self.ok("catalog", "alias", "mnist:3", "production")
        self.assertEqual(self.ok("apply", "application", "demo", "--model", "mnist@production").stdout,
                         "application/demo configured\n")
        self.assertEqual(self.predict_model("demo"), "mnist:3")
        # A served version cannot be deleted (409); one no longer served can.
        self.assertFails(mlctl("catalog", "rm", "mnist:3", env=self.env), 1, "mnist:3 is in use by application/demo")
        status, reply = request_json(self.server, "DELETE", "/api/v1/models/mnist/versions/3")
        self.assertEqual((status, reply["error"]["code"]), (409, "conflict"))
        self.ok("catalog", "rm", "mnist:2")
        self.assertFails(mlctl("apply", "application", "demo", "--model", "mnist", env=self.env), 1,
                         "expected NAME:VERSION or NAME@ALIAS")

    def test_shortcut_changes_the_model_and_keeps_the_rest(self):
        # A canary application with monitoring and a capture sample: the shortcut makes it serve
        # one version and leaves monitoring and capture as they were (a deploy script must not
        # turn monitoring off); --capture-sample given changes the sample.
        f = self.write("app.yaml", manifest("demo", "  stages:\n  - variants:\n    - {model: mnist:1, weight: 80}\n"
                                                    "    - {model: mnist:2, weight: 20}\n"
                                                    "  capture:\n    sample: 0.25\n"
                                                    "  monitoring:\n    min_accuracy: 0.9\n    window: 200\n"))
        self.ok("apply", "-f", f)
        self.assertEqual(self.ok("apply", "application", "demo", "--model", "mnist:3").stdout,
                         "application/demo configured\n")
        spec = self.ok("describe", "application", "demo", "-o", "json").json()["manifest"]["spec"]
        self.assertEqual(spec, {"singular": {"model": "mnist:3"}, "capture": {"sample": 0.25},
                                "monitoring": {"min_accuracy": 0.9, "window": 200}})
        self.assertEqual(self.ok("apply", "application", "demo", "--model", "mnist:3").stdout,
                         "application/demo unchanged\n")
        self.ok("apply", "application", "demo", "--model", "mnist:3", "--capture-sample", "1")
        spec = self.ok("describe", "application", "demo", "-o", "json").json()["manifest"]["spec"]
        self.assertEqual((spec["capture"], spec["monitoring"]["window"]), ({"sample": 1.0}, 200))
        # A new application gets the defaults; a bad name is refused before the server is asked.
        self.ok("apply", "application", "fresh", "--model", "mnist:1")
        spec = self.ok("describe", "application", "fresh", "-o", "json").json()["manifest"]["spec"]
        self.assertEqual(spec, {"singular": {"model": "mnist:1"}, "capture": {"sample": 1.0}})
        self.assertFails(mlctl("apply", "application", "Bad_Name", "--model", "mnist:1", env=self.env), 1,
                         "application Bad_Name: metadata.name")

    def test_delete(self):
        self.ok("apply", "application", "demo", "--model", "mnist:1")
        self.assertEqual(self.ok("delete", "application", "demo").stdout, "application/demo deleted\n")
        self.assertFails(mlctl("describe", "application", "demo", env=self.env), 1, "application 'demo' not found")
        self.assertFails(mlctl("delete", "application", "demo", env=self.env), 1,
                         "application 'demo' not found (no application exists: mlctl apply creates one)")
        # A name near the ones that exist shows next to them.
        self.ok("apply", "application", "demo-a", "--model", "mnist:1")
        self.ok("apply", "application", "demo-b", "--model", "mnist:1")
        self.assertFails(mlctl("describe", "application", "demo", env=self.env), 1,
                         "application 'demo' not found (applications: demo-a, demo-b)")
        self.ok("delete", "application", "demo-a")
        self.ok("delete", "application", "demo-b")
        self.assertEqual(self.ok("delete", "application", "demo", "--ignore-not-found").stdout,
                         "application/demo not found\n")
        # None left: the table's header, and on stderr how to make one.
        r = self.ok("get", "applications")
        self.assertEqual(r.stdout.split(), ["NAME", "REVISION", "MODELS", "READY", "UPDATED"])
        self.assertIn("no applications yet: mlctl apply -f FILE", r.stderr)
        status, reply = request_json(self.server, "POST", "/api/v1/applications/demo/predict", {"images": [[0] * 784]})
        self.assertEqual((status, reply["error"]["code"]), (404, "not_found"))
        # Its version is free again.
        self.ok("catalog", "rm", "mnist:1")
        # The audit log has the apply and the delete.
        events = self.ok("catalog", "history", "demo", "-o", "json").json()["events"]
        self.assertEqual([e["action"] for e in events], ["application.applied", "application.deleted"])
        self.assertEqual(events[0]["detail"]["models"], [["mnist:1"]])

    def test_rollout_history_and_undo(self):
        for v in (1, 2, 3):
            self.ok("apply", "application", "demo", "--model", f"mnist:{v}")
        h = self.ok("rollout", "history", "demo", "-o", "json").json()
        self.assertEqual(h["current"], 3)
        self.assertEqual([(r["revision"], r["variants"][0]["model"], r["current"]) for r in h["revisions"]],
                         [(1, "mnist:1", False), (2, "mnist:2", False), (3, "mnist:3", True)])
        self.assertEqual([r.get("changes") for r in h["revisions"]],
                         [None, [{"field": "singular.model", "from": "mnist:1", "to": "mnist:2"}],
                          [{"field": "singular.model", "from": "mnist:2", "to": "mnist:3"}]])
        table = self.ok("rollout", "history", "demo").stdout.splitlines()
        self.assertEqual(table[0].split(), ["REVISION", "TIME", "ACTOR", "CAUSE", "MODELS", "CHANGE", "CURRENT"])
        self.assertIn("mnist:3 100%", table[3])
        self.assertIn("created", table[1])
        self.assertIn("singular.model: mnist:2 -> mnist:3", table[3])

        self.assertEqual(self.ok("rollout", "undo", "demo").stdout,
                         "application/demo rolled back to revision 2 (now revision 4)\n")
        self.assertEqual(self.predict_model("demo"), "mnist:2")
        self.assertEqual(self.ok("rollout", "undo", "demo", "--to-revision", "1").stdout,
                         "application/demo rolled back to revision 1 (now revision 5)\n")
        self.assertEqual(self.predict_model("demo"), "mnist:1")
        h = self.ok("rollout", "history", "demo", "-o", "json").json()
        self.assertEqual([r["cause"] for r in h["revisions"]][-2:], ["rollback to revision 2", "rollback to revision 1"])
        self.assertFails(mlctl("rollout", "undo", "demo", "--to-revision", "9", env=self.env), 1,
                         "application 'demo' has no revision 9 (its history holds revisions 1 to 5: "
                         "mlctl rollout history demo)")
        self.ok("apply", "application", "solo", "--model", "mnist:1")
        self.assertFails(mlctl("rollout", "undo", "solo", env=self.env), 1,
                         "application 'solo' has no revision before 1 (nothing to undo)")
        self.assertFails(mlctl("rollout", "history", "nope", env=self.env), 1, "application 'nope' not found")

    def test_applications_are_served_again_after_a_restart(self):
        self.ok("apply", "-f", self.write("c.yaml", manifest("demo", "  stages:\n    - variants:\n"
                                                                     "        - {model: mnist:1, weight: 70}\n"
                                                                     "        - {model: mnist:2, weight: 30}\n")))
        self.server.__exit__(None, None, None)
        self.server = Server(self.tmp / "data", port=self.server.port).__enter__()
        d = self.ok("describe", "application", "demo", "-o", "json").json()
        self.assertTrue(d["ready"])
        self.assertEqual([v["model"] for v in d["stages"][0]["variants"]], ["mnist:1", "mnist:2"])
        self.assertIn(self.predict_model("demo"), ("mnist:1", "mnist:2"))


if __name__ == "__main__":
    unittest.main()
