"""Running on a cluster: the Kubernetes and Argo Workflows manifests validate against real
schemas (tests/manifests/validate.mjs with the npm packages kubernetes-models and
@kubernetes-models/argo-workflows), every mlctl command and flag they use exists in the
CLI, and packaging/Dockerfile is well-formed and names real Debian 12 packages that cover
the libraries the binary links."""

import json
import os
import re
import shlex
import shutil
import subprocess
import unittest
from fnmatch import fnmatch
from functools import lru_cache
from pathlib import Path

import yaml

from harness import MLCTL, SOURCE_DIR, TestCase, mlctl

# Commands the manifests already use but that mlctl does not have yet (later issues add them).
# Remove an entry as each command lands: the test fails while a listed command exists, and
# for any command that neither exists nor is listed here.
PENDING_COMMANDS: set[str] = set()
# Flags the manifests use on commands that exist, before the flag itself lands
# ({"train": {"--merge"}}). Same rule: remove each as it lands.
PENDING_FLAGS: dict[str, set[str]] = {}

MANIFEST_DIRS = [SOURCE_DIR / "manifests" / "k8s", SOURCE_DIR / "manifests" / "argo"]
PIPELINE_SCRIPTS = sorted((SOURCE_DIR / "manifests" / "pipelines").glob("*.sh"))
VALIDATOR_DIR = SOURCE_DIR / "tests" / "manifests"
DOCKERFILE = SOURCE_DIR / "packaging" / "Dockerfile"
NODE = shutil.which("node")


def manifest_files() -> list[Path]:
    return sorted(p for d in MANIFEST_DIRS for p in d.glob("*.y*ml"))


def documents(path: Path) -> list[dict]:
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


# ---- mlctl invocations in the manifests and pipeline scripts ------------------------------


def shell_invocations(text: str, origin: str) -> list[tuple[str, list[str]]]:
    """Every `mlctl ...` (or "$mlctl ...") command in shell text, up to the next operator."""
    found = []
    logical = re.sub(r"\\\n", " ", text)
    for number, line in enumerate(logical.splitlines(), 1):
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        try:
            tokens = list(lexer)
        except ValueError as e:
            raise AssertionError(f"{origin}:{number}: cannot split shell line: {e}") from e
        for i, token in enumerate(tokens):
            if "=" in token:
                continue
            if os.path.basename(token) == "mlctl" or re.fullmatch(r"\$\{?(mlctl|MLCTL|MLCTL_BIN)\}?", token):
                args = []
                for t in tokens[i + 1:]:
                    if re.fullmatch(r"[;&|()<>]+", t):
                        break
                    args.append(t)
                if args:
                    found.append((f"{origin}:{number}", args))
    return found


def container_invocations(node, origin: str, found: list):
    """Walks a manifest: containers running the mlctl image or the mlctl command, shell
    commands and Argo script sources that call mlctl."""
    if isinstance(node, list):
        for item in node:
            container_invocations(item, origin, found)
        return
    if not isinstance(node, dict):
        return
    image = node.get("image")
    if isinstance(image, str) and ("args" in node or "command" in node or "source" in node):
        name = node.get("name", "?")
        where = f"{origin} container {name}"
        command = node.get("command")
        args = [str(a) for a in node.get("args") or []]
        repository = image.rsplit("@", 1)[0].rsplit(":", 1)[0]
        if command is None and repository.split("/")[-1] == "mlctl" and args:
            found.append((where, args))  # the image's entrypoint is mlctl
        elif command and os.path.basename(str(command[0])) == "mlctl":
            found.append((where, [str(c) for c in command[1:]] + args))
        elif command and os.path.basename(str(command[0])) in ("sh", "bash") and "-c" in command + args:
            words = [str(c) for c in command] + args
            found.extend(shell_invocations(words[words.index("-c") + 1], where))
        if isinstance(node.get("source"), str):
            found.extend(shell_invocations(node["source"], where))
    for value in node.values():
        container_invocations(value, origin, found)


def all_invocations() -> list[tuple[str, list[str]]]:
    found = []
    for path in manifest_files():
        rel = path.relative_to(SOURCE_DIR)
        for i, doc in enumerate(documents(path)):
            container_invocations(doc, f"{rel}[{i}]", found)
    for script in PIPELINE_SCRIPTS:
        found.extend(shell_invocations(script.read_text(), str(script.relative_to(SOURCE_DIR))))
    return found


# ---- the CLI, read from `mlctl ... --help` ------------------------------------------------


class Help:
    """The options (name -> takes a value), subcommands and positionals of one command."""

    def __init__(self, text: str):
        self.options: dict[str, bool] = {}
        self.subcommands: set[str] = set()
        self.positionals: set[str] = set()
        section = ""
        for line in text.splitlines():
            if line and not line.startswith(" "):
                section = line.rstrip(":").strip().lower() if line.rstrip().endswith(":") else ""
                continue
            if not line.startswith("  ") or line.startswith("   "):
                continue  # blank lines, wrapped descriptions
            head = re.split(r"\s{2,}", line.strip())[0].split()
            if section == "options" and head[0].startswith("-"):
                takes_value = len(head) > 1 and not head[1].startswith("(")
                for name in head[0].split(","):
                    self.options[name] = takes_value
            elif section == "subcommands":  # "application, applications": a name and its aliases
                self.subcommands.update(name.strip(",") for name in head)
            elif section == "positionals":
                self.positionals.add(head[0])


@lru_cache(maxsize=None)
def help_of(path: tuple[str, ...]) -> Help:
    r = mlctl(*path, "--help")
    if r.code != 0:
        raise AssertionError(f"mlctl {' '.join(path)} --help failed: {r!r}")
    return Help(r.stdout)


def command_exists(words: str) -> bool:
    path: tuple[str, ...] = ()
    for word in words.split():
        if word not in help_of(path).subcommands:
            return False
        path += (word,)
    return True


def command_words(args: list[str]) -> list[str]:
    """The leading words of an invocation that are not options (global options skipped)."""
    root = help_of(())
    words, i = [], 0
    while i < len(args):
        a = args[i]
        if a.startswith("-") and len(a) > 1:
            name, eq, _ = a.partition("=")
            if not words and root.options.get(name) and not eq:
                i += 1
            if words:
                break
        else:
            words.append(a)
        i += 1
    return words


def pending_command(args: list[str]) -> str | None:
    words = command_words(args)
    for pending in sorted(PENDING_COMMANDS, key=len, reverse=True):
        if words[: len(pending.split())] == pending.split():
            return pending
    return None


def check_invocation(args: list[str]) -> list[str]:
    """Problems of one invocation: an unknown command or subcommand, an unknown option,
    an option missing its value. Options of the enclosing commands count (CLI11 fallthrough)."""
    problems = []
    path: tuple[str, ...] = ()
    node = help_of(path)
    allowed = dict(node.options)
    positional_seen = False
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            break
        if a.startswith("-") and len(a) > 1 and not re.fullmatch(r"-[0-9.]+", a):
            name, eq, _ = a.partition("=")
            pending = PENDING_FLAGS.get(" ".join(path), set())
            if name in pending:
                i += 1 if eq else 2
                continue
            if name not in allowed:
                problems.append(f"mlctl {' '.join(path)}: unknown option {name}".replace("mlctl :", "mlctl:"))
            elif allowed[name] and not eq:
                if i + 1 >= len(args):
                    problems.append(f"mlctl {' '.join(path)}: {name} needs a value")
                i += 1
            i += 1
            continue
        if not positional_seen and a in node.subcommands:
            path += (a,)
            node = help_of(path)
            allowed.update(node.options)
        elif not positional_seen and node.subcommands and not node.positionals:
            problems.append(f"unknown command: mlctl {' '.join(path + (a,))}")
            break
        else:
            positional_seen = True
        i += 1
    if not path and not problems:
        problems.append("no command")
    elif node.subcommands and not positional_seen and not problems:
        problems.append(f"mlctl {' '.join(path)} needs a subcommand")
    return problems


# ---- the tests -----------------------------------------------------------------------------


class ManifestSchemaTest(TestCase):
    """validate.mjs with the real schemas: every document passes; broken ones fail."""

    def setUp(self):
        super().setUp()
        if NODE is None:
            self.skipTest("node is not installed: the manifests were NOT schema-checked")
        if not (VALIDATOR_DIR / "node_modules").is_dir():
            self.skipTest("tests/manifests/node_modules is missing (run packaging/install-deps.sh): "
                          "the manifests were NOT schema-checked")

    def validate(self, *paths) -> subprocess.CompletedProcess:
        return subprocess.run([NODE, str(VALIDATOR_DIR / "validate.mjs"), *map(str, paths)],
                              capture_output=True, text=True, timeout=120, cwd=SOURCE_DIR)

    def test_every_manifest_document_validates(self):
        r = self.validate()
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        lines = [l for l in r.stdout.splitlines() if l.startswith(("ok ", "FAIL "))]
        expected = sum(len(documents(p)) for p in manifest_files())
        self.assertGreaterEqual(expected, 10)
        self.assertEqual(len(lines), expected, f"the validator did not see every document\n{r.stdout}")
        self.assertTrue(all(l.startswith("ok ") for l in lines), r.stdout)
        for kind in ("PersistentVolumeClaim data", "PersistentVolumeClaim models", "Deployment mlctl",
                     "Service mlctl", "HorizontalPodAutoscaler mlctl", "Secret mlctl-token",
                     "ConfigMap mlctl-config", "Workflow mnist-pipeline-", "CronWorkflow mnist-retrain"):
            self.assertIn(kind, r.stdout)

    def test_broken_manifests_fail_with_the_field_named(self):
        server = (SOURCE_DIR / "manifests/k8s/server.yaml").read_text()
        pipeline = (SOURCE_DIR / "manifests/argo/mnist-pipeline.yaml").read_text()
        cron = (SOURCE_DIR / "manifests/argo/retrain-cron.yaml").read_text()
        selector = ("  selector:\n    matchLabels:\n      app.kubernetes.io/name: mlctl\n"
                    "      app.kubernetes.io/component: server\n  template:")
        # file: (original, what to replace, replacement, the message the validator must print)
        cases = {
            "replicas-string.yaml": (server, "\n  replicas: 1\n", '\n  replicas: "1"\n', "spec.replicas: must be integer"),
            "probe-typo.yaml": (server, "livenessProbe:", "livenessProbes:",
                                "spec.template.spec.containers[0].livenessProbes: unknown field"),
            "no-selector.yaml": (server, selector, "  template:", "spec: must have required property selector"),
            "unknown-kind.yaml": (server, "kind: Service\n", "kind: Servise\n", "unknown apiVersion/kind v1/Servise"),
            "namespaced.yaml": (server, "  name: mlctl\n", "  name: mlctl\n  namespace: prod\n", "metadata.namespace"),
            "yaml11.yaml": ("data:\n  FLAG: x\n", "x", "on", 'YAML 1.1 reads true, YAML 1.2 reads "on"'),
            "argo-param.yaml": (pipeline, "workflow.parameters.ACCEPTABLE_ACCURACY",
                                "workflow.parameters.ACCEPTABLE_ACURACY",
                                "{{workflow.parameters.ACCEPTABLE_ACURACY}}: no such workflow parameter"),
            "argo-output.yaml": (pipeline, "- name: model-version\n            valueFrom:",
                                 "- name: model_version\n            valueFrom:",
                                 "template upload has no such output parameter"),
            "cron-schedule.yaml": (cron, '"0 3 1 * *"', '"monthly"', "spec.schedules[0]: must match pattern"),
        }
        for name, (original, old, new, _) in cases.items():
            self.assertIn(old, original, f"{name}: the edit does not apply any more")
            text = original.replace(old, new, 1)
            if name == "yaml11.yaml":
                text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n" + text
            (self.tmp / name).write_text(text)
        good = self.tmp / "good"
        good.mkdir()
        shutil.copy(SOURCE_DIR / "manifests/k8s/configmap.yaml", good / "configmap.yaml")
        r = self.validate(self.tmp, good)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        out = r.stdout
        for name, (*_, message) in cases.items():
            self.assertRegex(out, rf"FAIL  \S*{re.escape(name)}\[\d\]", out)
            self.assertIn(message, out, name)
        self.assertRegex(out, r"ok    \S*good/configmap.yaml\[0\] v1 ConfigMap mlctl-config")
        self.assertIn(f"{len(cases)} invalid", out)

    def test_nothing_to_validate_is_a_usage_error(self):
        r = self.validate(self.tmp)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn("no YAML files", r.stderr)


class ManifestCliTest(TestCase):
    """Every mlctl command and flag used in manifests/ exists (`mlctl ... --help`)."""

    def test_invocations_are_found(self):
        invocations = all_invocations()
        commands = {" ".join(command_words(args)[:2]) for _, args in invocations}
        for expected in ("serve --data-dir", "fetch-mnist --source", "train --data", "catalog upload",
                         "apply application", "test --app", "delete application", "subsample --app",
                         "rollout canary"):
            first = expected.split()[0]
            self.assertTrue(any(c.split()[0] == first for c in commands), f"{expected}: not found in {commands}")
        self.assertGreaterEqual(len(invocations), 10)

    def test_pending_commands_do_not_exist_yet_and_are_used(self):
        used = {pending_command(args) for _, args in all_invocations()}
        stale = []
        for pending in sorted(PENDING_COMMANDS):
            if command_exists(pending):
                stale.append(f"'mlctl {pending}' exists now: remove it from PENDING_COMMANDS")
            elif pending not in used:
                stale.append(f"'{pending}' is in PENDING_COMMANDS but no manifest uses it")
        for command, flags in sorted(PENDING_FLAGS.items()):
            if not command_exists(command):
                stale.append(f"PENDING_FLAGS['{command}']: no such command; list it in PENDING_COMMANDS")
                continue
            for flag in sorted(flags):
                if flag in help_of(tuple(command.split())).options:
                    stale.append(f"'mlctl {command} {flag}' exists now: remove it from PENDING_FLAGS")
        self.assertEqual(stale, [], f"{__file__}: " + "; ".join(stale))

    def test_every_invocation_uses_existing_commands_and_flags(self):
        problems = []
        for where, args in all_invocations():
            if pending_command(args):
                continue
            problems += [f"{where}: {p} (in: mlctl {' '.join(args)})" for p in check_invocation(args)]
        self.assertEqual(problems, [], "\n".join(problems))

    def test_the_check_catches_unknown_commands_and_flags(self):
        self.assertEqual(check_invocation(["version"]), [])
        self.assertEqual(check_invocation(["-o", "json", "version"]), [])
        self.assertEqual(check_invocation(["version", "-o", "json", "--server", "http://x"]), [])
        self.assertEqual(check_invocation(["completion", "bash"]), [])
        self.assertIn("unknown option --no-such-flag", " ".join(check_invocation(["version", "--no-such-flag"])))
        self.assertIn("--output needs a value", " ".join(check_invocation(["version", "--output"])))
        self.assertIn("unknown command: mlctl no-such-command", check_invocation(["no-such-command", "--x"]))
        self.assertIsNone(pending_command(["no-such-command"]))
        found = shell_invocations('set -e\nv=$("$mlctl" -o json catalog upload "$dir" \\\n  --name mnist) # c\n'
                                  'mlctl=$root/build/mlctl\nmlctl version | tee x\n', "x.sh")
        self.assertEqual(found, [("x.sh:2", ["-o", "json", "catalog", "upload", "$dir", "--name", "mnist"]),
                                 ("x.sh:4", ["version"])])


class DockerfileTest(TestCase):
    """packaging/Dockerfile, as far as it can be checked without Docker."""

    INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "MAINTAINER", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT",
                    "VOLUME", "USER", "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}
    # In the debian:12 image already (the essential set and apt's dependencies).
    BASE_IMAGE_PACKAGES = {"libc6", "libgcc-s1", "libstdc++6", "zlib1g"}

    @classmethod
    def setUpClass(cls):
        cls.stages = cls.parse(DOCKERFILE.read_text())

    @staticmethod
    def parse(text: str) -> list[dict]:
        """Stages, each {'from': ..., 'name': ..., 'instructions': [(KEYWORD, args)]}."""
        stages, pending = [], ""
        lines = [l for l in text.splitlines() if not l.lstrip().startswith("#")]
        for line in lines + [""]:
            if line.rstrip().endswith("\\"):
                pending += line.rstrip()[:-1] + " "
                continue
            full, pending = (pending + line).strip(), ""
            if not full:
                continue
            keyword, _, args = full.partition(" ")
            if keyword == "FROM":
                m = re.fullmatch(r"(\S+)(?:\s+AS\s+(\S+))?", args.strip(), re.IGNORECASE)
                assert m, f"FROM {args}: expected 'FROM IMAGE [AS NAME]'"
                stages.append({"from": m.group(1), "name": m.group(2), "instructions": []})
            assert stages, f"{keyword} before the first FROM"
            stages[-1]["instructions"].append((keyword, args.strip()))
        return stages

    def instructions(self, stage: dict, keyword: str) -> list[str]:
        return [a for k, a in stage["instructions"] if k == keyword]

    def apt_packages(self, stage: dict) -> list[str]:
        packages = []
        for run in self.instructions(stage, "RUN"):
            for command in re.split(r"&&|;|\|\|", run):
                words = shlex.split(command)
                if "apt-get" in words and "install" in words:
                    rest = words[words.index("install") + 1:]
                    packages += [w for w in rest if not w.startswith("-")]
        return packages

    def test_instructions_and_stages(self):
        keywords = [k for s in self.stages for k, _ in s["instructions"]]
        self.assertEqual(sorted(set(keywords) - self.INSTRUCTIONS), [])
        self.assertEqual([s["from"] for s in self.stages], ["debian:12", "debian:12"])
        build, runtime = self.stages
        self.assertEqual(build["name"], "build")
        runs = " ".join(self.instructions(build, "RUN"))
        self.assertIn("packaging/install-deps.sh", runs)
        presets = json.loads((SOURCE_DIR / "CMakePresets.json").read_text())
        for kind, preset in re.findall(r"cmake (--build )?--preset (\S+)", runs):
            names = [p["name"] for p in presets["buildPresets" if kind else "configurePresets"]]
            self.assertIn(preset, names)
        self.assertIn("release", re.findall(r"--preset (\S+)", runs))
        # The runtime stage: the binary from the build stage, non-root, mlctl as entrypoint.
        copies = self.instructions(runtime, "COPY")
        self.assertIn("--from=build /staging/usr/bin/mlctl /usr/bin/mlctl", copies)
        self.assertEqual(json.loads(self.instructions(runtime, "ENTRYPOINT")[-1]), ["mlctl"])
        self.assertEqual(json.loads(self.instructions(runtime, "CMD")[-1]), ["--help"])
        self.assertIn("/data", json.loads(self.instructions(runtime, "VOLUME")[-1]))
        self.assertIn("9090", " ".join(self.instructions(runtime, "EXPOSE")).split())
        user = self.instructions(runtime, "USER")[-1].split(":")[0]
        self.assertNotIn(user, ("root", "0"))
        self.assertEqual(self.apt_packages(build), [], "the build stage installs through install-deps.sh")

    def test_build_context_has_what_the_build_stage_copies(self):
        ignore = [l.strip().rstrip("/") for l in (SOURCE_DIR / ".dockerignore").read_text().splitlines()
                  if l.strip() and not l.startswith("#")]
        self.assertIn(".git", ignore)
        self.assertTrue(any("node_modules" in p for p in ignore))
        build = self.stages[0]
        for copy in self.instructions(build, "COPY"):
            *sources, _ = copy.split()
            for src in sources:
                if src.startswith("--"):
                    continue
                self.assertTrue((SOURCE_DIR / src).exists(), src)
                for pattern in ignore:
                    self.assertFalse(src != "." and (fnmatch(src, pattern) or src.startswith(pattern + "/")),
                                     f"{src} is excluded by .dockerignore ({pattern})")
        for needed in ("CMakeLists.txt", "CMakePresets.json", "lib", "cli", "commands", "packaging/install-deps.sh"):
            self.assertFalse(any(fnmatch(needed, p) for p in ignore), f".dockerignore excludes {needed}")

    def test_install_layout_matches_the_copy(self):
        build_dir = os.environ.get("MLCTL_BUILD_DIR")
        if not build_dir:
            self.skipTest("MLCTL_BUILD_DIR is not set (run through ctest)")
        staging = self.tmp / "staging" / "usr"
        r = subprocess.run(["cmake", "--install", build_dir, "--prefix", str(staging)],
                           capture_output=True, text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        binary = self.tmp / "staging/usr/bin/mlctl"  # the path the runtime stage copies
        self.assertTrue(binary.is_file(), r.stdout)
        v = subprocess.run([str(binary), "version"], capture_output=True, text=True, timeout=60)
        self.assertEqual(v.returncode, 0, v.stderr)

    def test_apt_packages_exist_in_debian(self):
        lists = Path("/var/lib/apt/lists")
        if not any(lists.glob("*_Packages*")):
            self.skipTest("apt lists are empty (run apt-get update): package names NOT checked")
        packages = self.apt_packages(self.stages[1])
        self.assertGreaterEqual(len(packages), 5)
        r = subprocess.run(["apt-cache", "policy", *packages], capture_output=True, text=True, timeout=120)
        candidates = dict(re.findall(r"^(\S+):\n\s+Installed: .*\n\s+Candidate: (.*)$", r.stdout, re.MULTILINE))
        for package in packages:
            self.assertIn(package, candidates, f"{package}: not a Debian package (apt-cache policy)")
            self.assertNotEqual(candidates[package], "(none)", f"{package}: no installable version")

    def test_runtime_packages_cover_the_linked_libraries(self):
        if not (shutil.which("objdump") and shutil.which("dpkg") and shutil.which("ldd")):
            self.skipTest("objdump, ldd or dpkg missing")
        needed = re.findall(r"^\s*NEEDED\s+(\S+)$", subprocess.run(
            ["objdump", "-p", MLCTL], capture_output=True, text=True, check=True).stdout, re.MULTILINE)
        resolved = dict(re.findall(r"^\s*(\S+) => (\S+)", subprocess.run(
            ["ldd", MLCTL], capture_output=True, text=True, check=True).stdout, re.MULTILINE))
        self.assertTrue(needed)
        provided = set(self.apt_packages(self.stages[1])) | self.BASE_IMAGE_PACKAGES
        for library in needed:
            if re.match(r"lib(a|ub|t|l)san\.", library):
                continue  # sanitizer builds link their runtimes; the image is a Release build
            path = resolved.get(library)
            self.assertIsNotNone(path, f"{library}: not resolved by ldd")
            owner = None
            for candidate in {path, os.path.realpath(path), path.replace("/usr/lib/", "/lib/"),
                              path.replace("/lib/", "/usr/lib/", 1)}:
                r = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
                if r.returncode == 0:
                    owner = r.stdout.split(":")[0].split(",")[0].strip()
                    break
            self.assertIsNotNone(owner, f"{library} ({path}): no Debian package owns it")
            self.assertIn(owner, provided,
                          f"mlctl links {library} from {owner}, which the runtime stage does not install")


if __name__ == "__main__":
    unittest.main()
