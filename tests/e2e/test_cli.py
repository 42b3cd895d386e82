"""The command line itself: help, version, global options, usage errors and exit codes."""

import unittest

from harness import TestCase, mlctl


class CliTest(TestCase):
    def test_root_help_lists_subcommands(self):
        r = mlctl("--help")
        self.assertOk(r)
        self.assertIn("version", r.stdout)
        self.assertIn("--output", r.stdout)

    def test_no_arguments_prints_help(self):
        r = mlctl()
        self.assertOk(r)
        self.assertIn("Usage", r.stdout)

    def test_version_table_and_json(self):
        r = mlctl("version")
        self.assertOk(r)
        self.assertTrue(r.stdout.startswith("mlctl "), r.stdout)
        j = mlctl("version", "-o", "json").json()
        self.assertEqual(set(j), {"version", "git_commit", "build_type", "target_cpu"})
        y = mlctl("-o", "yaml", "version")
        self.assertOk(y)
        self.assertIn("version: ", y.stdout)

    def test_unknown_command_is_a_usage_error(self):
        r = mlctl("no-such-command")
        self.assertFails(r, 2)
        self.assertEqual(r.stdout, "")

    def test_usage_errors_name_the_command_the_word_and_the_help(self):
        # Each: the arguments, then what stderr says (exit 2, nothing on stdout).
        cases = [
            (["trian"], "unknown command 'trian' for 'mlctl' (did you mean 'train'?); see 'mlctl --help'"),
            (["get", "aplications"],
             "unknown command 'aplications' for 'mlctl get' (did you mean 'applications'?); see 'mlctl get --help'"),
            (["catalog", "uplod", "x"], "unknown command 'uplod' for 'mlctl catalog' (did you mean 'upload'?)"),
            (["no-such-command"], "unknown command 'no-such-command' for 'mlctl'; see 'mlctl --help'"),
            (["version", "--outptu=json"],
             "unknown option '--outptu' for 'mlctl version' (did you mean '--output'?); see 'mlctl version --help'"),
            (["serve", "--data-dir", "unused", "--port", "5"], "unknown option '--port' for 'mlctl serve'; see"),
            (["version", "extra"], "unexpected argument 'extra' for 'mlctl version'; see 'mlctl version --help'"),
            (["rollout"], "'mlctl rollout' needs a command: canary, status, abort, history, undo; see"),
            (["predict", "--app"], "--app: 1 required APP missing; see 'mlctl predict --help'"),
            # Numeric options name their bounds, and unsigned ones refuse a negative value.
            (["serve", "--data-dir", "unused", "--threads", "0"],
             "--threads: must be 1..1024, got 0; see 'mlctl serve --help'"),
            (["feedback", "--app", "a", "--trace-id", "0" * 32, "--label", "-1"], "--label: must be >= 0, got -1;"),
            (["train", "--data", "d", "--out", "m", "--seed", "-3"], "--seed: must be a whole number >= 0, got -3;"),
            (["test", "--app", "a", "--data", "d", "--samples", "ten"], "--samples: must be a whole number >= 0, got ten;"),
            (["explain", "--app", "a", "--data", "d", "--p", "1.5"], "--p: must be > 0 and < 1, got 1.5;"),
            (["catalog", "download", "mnist:3", "-o", "models/m3"],
             "--output: models/m3 not in {table,json,yaml} (-o is the output format; the path goes to '--out');"
             " see 'mlctl catalog download --help'"),
        ]
        for args, message in cases:
            with self.subTest(args=args):
                r = mlctl(*args)
                self.assertFails(r, 2, message)
                self.assertEqual(r.stdout, "")
        # A word that is near no name gets no guess; an option's nearness goes by its name without
        # the dashes ("size" is 2 edits from "since", too many for 4 letters).
        self.assertNotIn("did you mean", mlctl("serve", "--data-dir", "unused", "--port", "5").stderr)
        r = mlctl("subsample", "--app", "a", "--out", "o", "--size", "3")
        self.assertFails(r, 2, "unknown option '--size' for 'mlctl subsample'; see")
        self.assertNotIn("did you mean", r.stderr)


    def test_a_bad_value_from_the_environment_names_the_variable(self):
        # A step container's settings come as environment variables (the original tutorial's).
        env = {"ACCEPTABLE_ACCURACY": "95"}
        r = mlctl("test", "--app", "a", "--data", "d", env=env)
        self.assertFails(r, 2, "--min-accuracy: must be 0..1, got 95 (from the environment variable "
                               "ACCEPTABLE_ACCURACY); see 'mlctl test --help'")
        # Given on the command line too, the option's own value is the one refused.
        r = mlctl("test", "--app", "a", "--data", "d", "--min-accuracy", "95", env=env)
        self.assertFails(r, 2, "--min-accuracy: must be 0..1, got 95; see")
    def test_bad_output_format_is_a_usage_error(self):
        self.assertFails(mlctl("-o", "xml", "version"), 2, "xml")

    def test_every_subcommand_help_ends_with_an_example(self):
        root = mlctl("--help").stdout
        commands = []
        in_sub = False
        for line in root.splitlines():
            if line.strip().lower().startswith("subcommands"):
                in_sub = True
                continue
            if in_sub:
                if not line.strip():
                    break
                commands.append(line.split()[0])
        self.assertIn("version", commands)
        for cmd in commands:
            r = mlctl(cmd, "--help")
            self.assertOk(r)
            self.assertIn("Example", r.stdout, f"{cmd} --help has no example")


if __name__ == "__main__":
    unittest.main()
