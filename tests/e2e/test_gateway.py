"""The inference gateway of `mlctl serve` on loopback: the Open Inference Protocol (KServe V2)
checked field by field (health, metadata, inference, error bodies), the simple form
`/api/v1/applications/{app}/predict`, input validation (400, never a crash), trace ids,
weighted routing (a 30/30/40 split), pinned variants, shadow variants (measured, never
returned), stage chaining, and a version swap under load from 8 client threads without a
single failed request."""

import concurrent.futures
import http.client
import json
import threading
import time
import unittest
from pathlib import Path

import numpy as np

from harness import Server, TestCase, make_model_dir, mlctl
from registry_fixtures import request

V2_KEYS = {"model_name", "model_version", "id", "parameters", "outputs"}


class Client:
    """One keep-alive HTTP connection to the server."""

    def __init__(self, server):
        self.conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)

    def post(self, path, body, headers=None):
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        self.conn.request("POST", path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        r = self.conn.getresponse()
        raw = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, (json.loads(raw) if raw else None)

    def get(self, path):
        self.conn.request("GET", path)
        r = self.conn.getresponse()
        raw = r.read()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, raw

    def close(self):
        self.conn.close()


def load_weights(model_dir):
    import onnx
    from onnx import numpy_helper
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(Path(model_dir) / "model.onnx")).graph.initializer}
    return inits["W"], inits["b"]


def softmax_rows(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def make_permutation_model(directory, name="perm"):
    """A second stage: takes `probabilities` [N, 10] and answers `scores` = softmax(reversed * 50),
    so its class is 9 - the class of the first stage."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    w = np.eye(10, dtype=np.float32)[::-1] * 50
    nodes = [helper.make_node("Gemm", ["probabilities", "W", "b"], ["logits"], transB=1),
             helper.make_node("Softmax", ["logits"], ["scores"], axis=1)]
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 10])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 10])],
        [numpy_helper.from_array(np.ascontiguousarray(w), "W"), numpy_helper.from_array(np.zeros(10, np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="test")
    model.ir_version = 8
    onnx.save(model, str(directory / "model.onnx"))
    labels = ", ".join(f'"{i}"' for i in range(10))
    (directory / "model.yaml").write_text(
        "apiVersion: mlctl/v1\nkind: Model\n"
        f"metadata: {{name: {name}}}\n"
        "spec:\n  contract:\n"
        "    inputs: [{name: probabilities, datatype: FP32, shape: [-1, 10]}]\n"
        "    outputs: [{name: scores, datatype: FP32, shape: [-1, 10]}]\n"
        f"    labels: [{labels}]\n"
        "  lineage: {imported: false, seed: 0}\n")
    return directory


class GatewayTest(TestCase):
    @classmethod
    def setUpClass(cls):
        import tempfile
        cls._dir = tempfile.TemporaryDirectory(prefix="mlctl-e2e-gateway-")
        root = Path(cls._dir.name)
        cls.server = Server(root / "data", args=["--max-batch", "8"]).__enter__()
        cls.env = {**cls.server.env(), "XDG_CONFIG_HOME": str(root / "config")}
        cls.weights = {}
        for seed in (1, 2, 3):
            d = make_model_dir(root / f"m{seed}", name="mnist", seed=seed)
            cls.weights[seed] = load_weights(d)
            r = mlctl("catalog", "upload", d, env=cls.env)
            assert r.code == 0, r
        r = mlctl("catalog", "upload", make_permutation_model(root / "perm"), env=cls.env)
        assert r.code == 0, r
        cls.apply("single", "  singular: {model: mnist:1}\n")

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)
        cls._dir.cleanup()

    @classmethod
    def apply(cls, name, spec):
        text = f"apiVersion: mlctl/v1\nkind: Application\nmetadata: {{name: {name}}}\nspec:\n{spec}"
        r = mlctl("apply", "-f", "-", input=text, env=cls.env)
        assert r.code == 0, r
        return r.stdout

    def setUp(self):
        super().setUp()
        self.client = Client(self.server)

    def tearDown(self):
        self.client.close()
        super().tearDown()

    def expected(self, seed, x):
        w, b = self.weights[seed]
        return softmax_rows(np.asarray(x, dtype=np.float32) @ w.T + b)

    def assertV2Error(self, status, body, want_status, contains):
        self.assertEqual(status, want_status, body)
        self.assertEqual(set(body), {"error"}, body)
        self.assertIsInstance(body["error"], str)
        self.assertIn(contains, body["error"])

    # ---- Open Inference Protocol: health and metadata ------------------------------------

    def test_v2_health_and_metadata(self):
        status, _, raw = self.client.get("/v2")
        meta = json.loads(raw)
        self.assertEqual(status, 200)
        self.assertEqual(set(meta), {"name", "version", "extensions"})
        self.assertEqual(meta["name"], "mlctl")
        self.assertIsInstance(meta["extensions"], list)
        for path in ("/v2/health/live", "/v2/health/ready", "/v2/models/single/ready",
                     "/v2/models/single/versions/1/ready"):
            status, _, raw = self.client.get(path)
            self.assertEqual((path, status, raw), (path, 200, b""))
        # Not ready (4xx) for what is not served; the body says why.
        for path, why in (("/v2/models/single/versions/2/ready", "does not serve version '2'"),
                          ("/v2/models/nope/ready", "application 'nope' not found")):
            status, _, raw = self.client.get(path)
            self.assertV2Error(status, json.loads(raw), 404, why)
        status, _, raw = self.client.get("/v2/models/single")
        self.assertEqual(status, 200)
        self.assertEqual(json.loads(raw), {
            "name": "single", "versions": ["1"], "platform": "onnx_onnxv1",
            "inputs": [{"name": "input", "datatype": "FP32", "shape": [-1, 784]}],
            "outputs": [{"name": "probabilities", "datatype": "FP32", "shape": [-1, 10]}]})
        status, _, raw = self.client.get("/v2/models/nope")
        self.assertV2Error(status, json.loads(raw), 404, "application 'nope' not found")

    # ---- Open Inference Protocol: inference ----------------------------------------------

    def test_v2_infer_shapes_field_by_field(self):
        rng = np.random.default_rng(0)
        x = rng.random((2, 784), dtype=np.float32)
        traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        status, headers, body = self.client.post("/v2/models/single/infer", {
            "id": "req-42", "parameters": {"note": "x"},
            "inputs": [{"name": "input", "shape": [2, 784], "datatype": "FP32", "data": x.ravel().tolist()}]},
            headers={"traceparent": traceparent})
        self.assertEqual(status, 200, body)
        self.assertEqual(set(body), V2_KEYS)
        self.assertEqual((body["model_name"], body["model_version"], body["id"]), ("single", "1", "req-42"))
        self.assertEqual(body["parameters"], {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "model": "mnist:1",
                                              "variant": "primary"})
        self.assertEqual(headers["traceparent"][3:35], "4bf92f3577b34da6a3ce929d0e0e4736")
        self.assertEqual(len(body["outputs"]), 1)
        out = body["outputs"][0]
        self.assertEqual(set(out), {"name", "datatype", "shape", "data"})
        self.assertEqual((out["name"], out["datatype"], out["shape"]), ("probabilities", "FP32", [2, 10]))
        np.testing.assert_allclose(np.array(out["data"]).reshape(2, 10), self.expected(1, x), rtol=1e-4, atol=1e-6)

        # Nested data, no id (none echoed), a fresh trace id in the body and the header,
        # and the outputs list choosing what comes back.
        status, headers, body = self.client.post("/v2/models/single/infer", {
            "inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": [x[0].tolist()]}],
            "outputs": [{"name": "probabilities"}]})
        self.assertEqual(status, 200, body)
        self.assertNotIn("id", body)
        self.assertEqual(body["parameters"]["trace_id"], headers["traceparent"][3:35])
        self.assertRegex(body["parameters"]["trace_id"], "^[0-9a-f]{32}$")
        np.testing.assert_allclose(body["outputs"][0]["data"], self.expected(1, x[:1])[0], rtol=1e-4, atol=1e-6)
        # The version segment of the protocol pins a served version.
        status, _, body = self.client.post("/v2/models/single/versions/1/infer", {
            "inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": x[0].tolist()}]})
        self.assertEqual((status, body["model_version"]), (200, "1"))

    def test_v2_read_by_hand_answers_as_simdjson_does(self):
        # The usual V2 body is read from the text by hand; with "parameters": {} in front (which
        # the hand reader leaves to simdjson) simdjson reads it. Every answer and every error
        # must be the same.
        rng = np.random.default_rng(12)
        x = rng.random((2, 784))
        data = lambda rows, fmt=lambda v: f"{v:.4f}": "[" + ", ".join(fmt(v) for v in np.ravel(rows)) + "]"
        tensor = lambda d, shape="[1, 784]", name='"input"', extra="": (
            '{"name": ' + name + ', "shape": ' + shape + ', "datatype": "FP32", "data": ' + d + extra + "}")
        bodies = {
            "usual": '{"inputs": [' + tensor(data(x[0])) + "]}",
            "id, keys in another order, newlines": '{"id": "r-1",\n "inputs": [{"data": ' + data(x[1])
                                                   + ', "datatype": "FP32", "shape": [1,784], "name": "input"}]}\n',
            "a batch of 2": '{"inputs": [' + tensor(data(x), shape="[2, 784]") + '], "id": "two"}',
            "an id in UTF-8": '{"id": "é", "inputs": [' + tensor(data(x[0])) + "]}",
            "an id with an escape": '{"id": "a\\"b", "inputs": [' + tensor(data(x[0])) + "]}",
            "outputs asked": '{"inputs": [' + tensor(data(x[0])) + '], "outputs": [{"name": "probabilities"}]}',
            "parameters": '{"inputs": [' + tensor(data(x[0]), extra=', "parameters": {}') + "]}",
            "a long number": '{"inputs": [' + tensor(data(x[0], fmt=repr)) + "]}",
            "783 values": '{"inputs": [' + tensor(data(x[0][:783]), shape="[1, 783]") + "]}",
            "data and shape disagree": '{"inputs": [' + tensor(data(x[0]), shape="[2, 784]") + "]}",
            "an unknown input": '{"inputs": [' + tensor(data(x[0]), name='"pixels"') + "]}",
            "a negative dimension": '{"inputs": [' + tensor(data(x[0]), shape="[-1, 784]") + "]}",
            "a leading zero": '{"inputs": [' + tensor(data(x[0]), shape="[01, 784]") + "]}",
            "no shape": '{"inputs": [{"name": "input", "datatype": "FP32", "data": ' + data(x[0]) + "}]}",
            "a batch over the limit": '{"inputs": [' + tensor(data(np.tile(x[0], 9)), shape="[9, 784]") + "]}",
            "no inputs": '{"inputs": []}',
            "id only": '{"id": "x"}',
            "two inputs keys": '{"inputs": [' + tensor(data(x[0])) + '], "inputs": [' + tensor(data(x[1])) + "]}",
            "after the body": '{"inputs": [' + tensor(data(x[0])) + "]} {}",
            "the body closed by ]": '{"inputs": [' + tensor(data(x[0])) + "]]",
            "a tensor closed by ]": '{"inputs": [' + tensor(data(x[0]))[:-1] + "]]}",
        }
        for what, body in bodies.items():
            with self.subTest(body=what):
                by_hand = self.client.post("/v2/models/single/infer", body)
                general = self.client.post("/v2/models/single/infer", body.replace("{", '{"parameters": {}, ', 1))
                self.assertEqual(by_hand[0], general[0], (what, by_hand, general))
                for reply in (by_hand[2], general[2]):
                    reply.pop("parameters", None)  # the trace id
                self.assertEqual(by_hand[2], general[2])

    def test_v2_errors_are_400_404_with_an_error_string(self):
        row = [0.5] * 784
        good = {"name": "input", "shape": [1, 784], "datatype": "FP32", "data": row}
        cases = [
            ({"inputs": [{**good, "datatype": "INT32"}]}, 400, "input 'input': datatype INT32 does not match the model's FP32"),
            ({"inputs": [{**good, "shape": [1, 783], "data": row[:783]}]}, 400, "shape [1×783] does not match the model's [-1×784]"),
            ({"inputs": [{**good, "shape": [2, 784]}]}, 400, "data holds 784 values; shape [2×784] needs 1568"),
            ({"inputs": [{**good, "name": "pixels"}]}, 400, "the model has no input 'pixels'"),
            ({"inputs": []}, 400, "at least one input tensor is required"),
            ({}, 400, "at least one input tensor is required"),
            ({"inputs": [{**good, "shape": [0, 784], "data": []}]}, 400, "the batch is empty"),
            ({"inputs": [{**good, "shape": [9, 784], "data": row * 9}]}, 400, "over the server's limit of 8"),
            ({"inputs": [{**good, "data": ["a"] * 784}]}, 400, "expected numbers, got a string"),
            ({"inputs": [{"name": "input", "datatype": "FP32", "data": row}]}, 400, "'shape' is required"),
            ({"inputs": [good], "outputs": [{"name": "logits"}]}, 400, "output 'logits': the model has no such output"),
            (b'{"inputs": [', 400, "not valid JSON"),
            ('{"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": [NaN'
             + ", 0" * 783 + "]}]}", 400, "not valid JSON"),
            ('{"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": [1e999'
             + ", 0" * 783 + "]}]}", 400, ""),
            (json.dumps({"inputs": [good]}) + " {}", 400, "not valid JSON (text after its end)"),
        ]
        for body, want, contains in cases:
            with self.subTest(body=str(body)[:80]):
                status, _, reply = self.client.post("/v2/models/single/infer", body)
                self.assertV2Error(status, reply, want, contains)
        status, _, reply = self.client.post("/v2/models/nope/infer", {"inputs": [good]})
        self.assertV2Error(status, reply, 404, "application 'nope' not found")
        status, _, reply = self.client.post("/v2/models/single/versions/7/infer", {"inputs": [good]})
        self.assertV2Error(status, reply, 404, "does not serve version '7'")
        # What cpp-httplib refuses before a route runs is in V2's form under /v2 too; an
        # inference route asked with another method is a 405 that says which it takes.
        for method, path, want, message in (
                ("GET", "/v2/nothing", 404, "no route for GET /v2/nothing"),
                ("DELETE", "/v2/models/single/infer", 405, "DELETE /v2/models/single/infer: this route takes POST"),
                ("GET", "/api/v1/applications/single/predict", 405, None)):
            self.client.conn.request(method, path)
            r = self.client.conn.getresponse()
            reply = json.loads(r.read())
            if message:
                self.assertV2Error(r.status, reply, want, message)
            else:
                self.assertEqual((r.status, reply["error"]["code"]), (want, "method_not_allowed"), reply)
            if want == 405:
                self.assertEqual(r.getheader("Allow"), "POST")
        # The server is still fine.
        status, _, _ = self.client.post("/v2/models/single/infer", {"inputs": [good]})
        self.assertEqual(status, 200)

    # ---- Open Inference Protocol: the binary tensor data extension ------------------------

    def post_binary(self, request, tensors, extra=b"", header=None):
        """A request as Triton's client sends it by default: the JSON, then the tensors' bytes,
        with the JSON's size in Inference-Header-Content-Length. Returns (status, headers, the
        JSON part, the bytes after it)."""
        body = json.dumps(request).encode()
        headers = {"Inference-Header-Content-Length": str(len(body)) if header is None else header}
        if header is False:
            headers = {}
        self.client.conn.request("POST", "/v2/models/single/infer",
                                 body=body + b"".join(t.tobytes() for t in tensors) + extra, headers=headers)
        r = self.client.conn.getresponse()
        raw = r.read()
        headers = {k.lower(): v for k, v in r.getheaders()}
        n = int(headers.get("inference-header-content-length", len(raw)))
        return r.status, headers, json.loads(raw[:n]), raw[n:]

    def test_v2_binary_tensor_data(self):
        status, _, raw = self.client.get("/v2")
        self.assertIn("binary_tensor_data", json.loads(raw)["extensions"])
        x = np.random.default_rng(5).random((2, 784), dtype=np.float32)
        binary_input = {"name": "input", "shape": [2, 784], "datatype": "FP32",
                        "parameters": {"binary_data_size": x.nbytes}}
        # The JSON answer, to which every binary one must be equal bit for bit.
        status, _, body = self.client.post("/v2/models/single/infer", {
            "inputs": [{"name": "input", "shape": [2, 784], "datatype": "FP32", "data": x.ravel().tolist()}]})
        self.assertEqual(status, 200, body)
        want = np.array(body["outputs"][0]["data"], dtype=np.float32)
        np.testing.assert_allclose(want.reshape(2, 10), self.expected(1, x), rtol=1e-4, atol=1e-6)

        # Triton's client by default: binary inputs, and no outputs list but binary_data_output.
        status, headers, body, rest = self.post_binary(
            {"id": "b-1", "inputs": [binary_input], "parameters": {"binary_data_output": True}}, [x])
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["content-type"], "application/octet-stream")
        self.assertEqual(set(body), V2_KEYS)
        self.assertEqual(body["id"], "b-1")
        self.assertEqual(body["parameters"]["trace_id"], headers["traceparent"][3:35])
        self.assertEqual(body["outputs"], [{"name": "probabilities", "datatype": "FP32", "shape": [2, 10],
                                            "parameters": {"binary_data_size": 80}}])
        self.assertEqual(rest, want.astype("<f4").tobytes())
        # Binary inputs, JSON outputs (none asked as binary); an output's own binary_data wins
        # over the request's binary_data_output.
        for outputs, params in (([{"name": "probabilities"}], {}),
                                ([{"name": "probabilities", "parameters": {"binary_data": False}}],
                                 {"binary_data_output": True})):
            status, headers, body, rest = self.post_binary(
                {"inputs": [binary_input], "outputs": outputs, "parameters": params}, [x])
            self.assertEqual((status, rest), (200, b""), body)
            self.assertNotIn("inference-header-content-length", headers)
            self.assertEqual(headers["content-type"], "application/json")
            self.assertEqual(np.array(body["outputs"][0]["data"], dtype=np.float32).tobytes(), want.tobytes())
        # JSON inputs, a binary output asked by name.
        status, headers, body, rest = self.post_binary(
            {"inputs": [{"name": "input", "shape": [2, 784], "datatype": "FP32", "data": x.ravel().tolist()}],
             "outputs": [{"name": "probabilities", "parameters": {"binary_data": True}}]}, [])
        self.assertEqual((status, rest), (200, want.tobytes()), body)
        # The stored request holds the image the model saw (its bytes: round(x * 255)).
        trace = self.post_binary({"inputs": [binary_input]}, [x])[2]["parameters"]["trace_id"]
        deadline = time.monotonic() + 10
        while (reply := request(self.server, "GET", f"/api/v1/requests/{trace}?include=input"))[0] == 404:
            self.assertLess(time.monotonic(), deadline, "the request was not stored")
            time.sleep(0.05)
        stored = json.loads(reply[2])["requests"]
        self.assertEqual([r["input"] for r in stored], np.rint(x * 255).astype(int).tolist())

        nan, inf = x.copy(), x.copy()
        nan[1, 3] = np.nan
        inf[0, 0] = -np.inf
        cases = [
            (({"inputs": [binary_input]}, [x], b"", False), "needs the Inference-Header-Content-Length header"),
            (({"inputs": [binary_input]}, [x], b"abcd", None), "4 bytes of binary data after the JSON header belong to no input"),
            (({"inputs": [binary_input]}, [x[:1]], b"", None), "binary_data_size is 6272 but 3136 bytes of binary data are left"),
            (({"inputs": [{**binary_input, "shape": [1, 784]}]}, [x], b"", None), "binary_data_size is 6272; shape [1×784] of FP32 needs 3136 bytes"),
            (({"inputs": [binary_input]}, [nan], b"", None), "binary data holds NaN at element 787"),
            (({"inputs": [binary_input]}, [inf], b"", None), "binary data holds infinity at element 0"),
            (({"inputs": [{**binary_input, "data": [0] * 1568}]}, [x], b"", None), "'data' and parameters.binary_data_size both given"),
            (({"inputs": [{**binary_input, "parameters": {"binary_data_size": -1}}]}, [x], b"", None), "binary_data_size: expected an integer >= 0"),
            (({"inputs": [binary_input]}, [x], b"", "x"), "Inference-Header-Content-Length: expected the size of the body's JSON header"),
            (({"inputs": [binary_input]}, [x], b"", "99999"), "Inference-Header-Content-Length: expected"),
            (({"inputs": [binary_input], "outputs": [{"name": "probabilities", "parameters": {"classification": 3}}]},
              [x], b"", None), "the classification extension is not supported"),
            (({"inputs": [binary_input], "parameters": {"binary_data_output": 1}}, [x], b"", None),
             "parameters.binary_data_output: expected true or false"),
        ]
        for (request_json, tensors, extra, header), contains in cases:
            with self.subTest(contains=contains):
                status, _, body, _ = self.post_binary(request_json, tensors, extra, header)
                self.assertV2Error(status, body, 400, contains)
        status, _, body, _ = self.post_binary({"inputs": [binary_input]}, [x])
        self.assertEqual(status, 200, body)

    # ---- The simple form -----------------------------------------------------------------

    def test_simple_form(self):
        rng = np.random.default_rng(1)
        pixels = rng.integers(0, 256, (3, 28, 28), dtype=np.uint8)
        x = pixels.reshape(3, 784).astype(np.float32) / 255
        want = self.expected(1, x)
        for images in (x.tolist(),                       # flat floats in [0, 1]
                       (x.reshape(3, 28, 28)).tolist(),  # 28×28 nested
                       pixels.reshape(3, 784).tolist(),  # integers 0-255
                       pixels.tolist()):
            status, headers, body = self.client.post("/api/v1/applications/single/predict", {"images": images})
            self.assertEqual(status, 200, body)
            self.assertEqual(set(body), {"predictions", "model", "variant", "trace_id"})
            self.assertEqual(body["model"], "mnist:1")
            self.assertEqual(body["trace_id"], headers["traceparent"][3:35])
            self.assertEqual([p["class"] for p in body["predictions"]], want.argmax(1).tolist())
            got = np.array([p["probabilities"] for p in body["predictions"]])
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(got.sum(1), 1, rtol=1e-5)

    def test_a_body_declared_as_a_form_is_read_as_json_whatever_its_size(self):
        # `curl -d` and urllib declare application/x-www-form-urlencoded. A batch that does not
        # fit the server's 128 KB input buffer goes through cpp-httplib, which refused such a
        # body over 8 KB with 413, "larger than the server's limit".
        x = np.random.default_rng(2).random((8, 784), dtype=np.float32)  # the test server's --max-batch
        body = json.dumps({"images": x.tolist()}, indent=2)
        self.assertGreater(len(body), 150_000)
        for content_type in ("application/x-www-form-urlencoded", "Application/X-WWW-Form-Urlencoded ; charset=utf-8"):
            status, _, reply = self.client.post("/api/v1/applications/single/predict", body,
                                                {"Content-Type": content_type})
            self.assertEqual(status, 200, reply)
            self.assertEqual([p["class"] for p in reply["predictions"]], self.expected(1, x).argmax(1).tolist())
        # A non-inference route, over 8 KB: the server reads the JSON and judges it.
        labels = json.dumps([{"trace_id": "1" * 32, "label": 1}] * 400)
        status, _, reply = self.client.post("/api/v1/feedback", labels,
                                            {"Content-Type": "application/x-www-form-urlencoded"})
        self.assertEqual((status, reply["received"], reply["unknown"]), (200, 400, 400), reply)

    def test_mostly_black_images_in_every_spelling_of_zero(self):
        # An MNIST-like image (83% zeros): the runtime skips the weights of zero pixels and the
        # decoder skips parsing the tokens 0 and 0.0; any other spelling of zero takes the
        # general path. Every spelling gives the same bits, and the numpy answer.
        rng = np.random.default_rng(7)
        x = np.zeros(784, dtype=np.float32)
        lit = rng.choice(784, 133, replace=False)
        x[lit] = rng.integers(1, 256, 133) / 255
        want = self.expected(1, x[None, :])
        answers = []
        for zero in ("0", "0.0", "-0", "0e0", "0.00", " 0 ", "0.0 "):
            text = ",".join(repr(float(v)) if v else zero for v in x)
            status, _, body = self.client.post("/api/v1/applications/single/predict", '{"images": [[' + text + "]]}")
            self.assertEqual(status, 200, (zero, body))
            answers.append(body["predictions"][0]["probabilities"])
            np.testing.assert_allclose(answers[-1], want[0], rtol=1e-4, atol=1e-6)
        self.assertTrue(all(a == answers[0] for a in answers), answers)
        for bad in ("00", "0.", "-", "0x", "0-"):
            with self.subTest(zero=bad):
                status, _, body = self.client.post("/api/v1/applications/single/predict",
                                                   '{"images": [[' + ",".join([bad] + ["0"] * 783) + "]]}")
                self.assertEqual(status, 400, body)
                self.assertEqual(body["error"]["message"], "images[0]: a value is not a finite number")

    def test_simple_form_read_by_hand_answers_as_simdjson_does(self):
        # The usual body, {"images": [[short numbers]]}, is read from the text by hand; the same
        # body with the key spelt "\u0069mages" is not, so simdjson reads it. Every answer and
        # every error must be the same (the probabilities to the last bit of their text).
        rng = np.random.default_rng(11)
        x = rng.random((3, 784))
        short = lambda v: f"{v:.4f}".rstrip("0").rstrip(".") or "0"
        image = lambda row, fmt=short, sep=",": "[" + sep.join(fmt(v) for v in row) + "]"
        bodies = {
            "4 digits": '{"images": [' + image(x[0]) + "]}",
            "no spaces, a batch of 3": '{"images":[' + ",".join(image(r) for r in x) + "]}",
            "spaces and newlines": ' \n{ "images" :\t[ ' + image(x[0], sep=" ,\r\n ") + " ] }\n",
            "integers 0-255": '{"images": [' + image(np.round(x[1] * 255), fmt=lambda v: str(int(v))) + "]}",
            "15 digits, -0": '{"images": [' + image(x[2][:783], fmt=lambda v: f"{v:.14f}")[:-1] + ",-0]]}",
            "a long number in the 2nd image": '{"images": [' + image(x[0]) + "," + image(x[1], fmt=repr) + "]}",
            "a batch over the limit": '{"images": [' + ",".join([image(x[0])] * 9) + "]}",
            "1.5": '{"images": [' + image(np.r_[1.5, x[0][1:]]) + "]}",
            "300": '{"images": [' + image(np.r_[300, np.zeros(783)], fmt=lambda v: str(int(v))) + "]}",
            "-0.5 in the 2nd image": '{"images": [' + image(x[0]) + "," + image(np.r_[-0.5, x[1][1:]]) + "]}",
            "783 values": '{"images": [' + image(x[0][:783]) + "]}",
            "an empty batch": '{"images": []}',
            "after the body": '{"images": [' + image(x[0]) + "]} x",
            "two keys": '{"images": [' + image(x[0]) + '], "images": [' + image(x[1]) + "]}",
        }
        for what, body in bodies.items():
            with self.subTest(body=what):
                by_hand = self.client.post("/api/v1/applications/single/predict", body)
                general = self.client.post("/api/v1/applications/single/predict",
                                           body.replace('"images"', '"\\u0069mages"'))
                self.assertEqual(by_hand[0], general[0], (by_hand, general))
                for reply in (by_hand[2], general[2]):
                    reply.pop("trace_id", None)
                self.assertEqual(by_hand[2], general[2])
                if what == "a long number in the 2nd image":
                    self.assertEqual(len(by_hand[2]["predictions"]), 2)

    def test_simple_form_refuses_bad_input_with_400(self):
        cases = [
            ({"images": [[0.5] * 783]}, "images[0]: expected 784 values (flat, or 28×28 nested), got 783"),
            ({"images": [[[0.5] * 28] * 27]}, "expected 784 values"),
            ({"images": [[0.5] * 784, [0.5] * 10]}, "images[1]: expected 784 values"),
            ({"images": []}, "images: the batch is empty"),
            ({"images": [[0.5] * 784] * 9}, "over the server's limit (mlctl serve --max-batch)"),
            ({"images": [[1.5] + [0] * 783]}, "values must be floats in [0, 1] or integers 0-255"),
            ({"images": [[256] + [0] * 783]}, "values must be floats in [0, 1] or integers 0-255"),
            ({"images": [[-0.5] + [0] * 783]}, "values must be floats in [0, 1] or integers 0-255"),
            # The range is checked over several lanes: offending values in other positions.
            ({"images": [[0] * 783 + [-0.5]]}, "values must be floats in [0, 1] or integers 0-255"),
            ({"images": [[0] * 6 + [1.5] + [0] * 777]}, "values must be floats in [0, 1] or integers 0-255"),
            ({"images": [[0] * 781 + [256, 0, 0]]}, "values must be floats in [0, 1] or integers 0-255"),
            ({"images": [["a"] * 784]}, "expected numbers, got a string"),
            ({"images": [[[0.5] * 28, 0.5] + [[0.5] * 28] * 26]}, "ragged array"),
            ({"pictures": []}, "unknown field 'pictures'"),
            ({}, "expected {\"images\": [...]}"),
            ("[NaN]", "expected a JSON object"),
            ('{"images": [[NaN' + ", 0" * 783 + "]]}", "not valid JSON"),
            ("", "not valid JSON"),
            (json.dumps({"images": [[0.5] * 784]}) + " {}", "not valid JSON (text after its end)"),
        ]
        for body, contains in cases:
            with self.subTest(body=str(body)[:60]):
                status, _, reply = self.client.post("/api/v1/applications/single/predict", body)
                self.assertEqual(status, 400, reply)
                self.assertEqual(reply["error"]["code"], "invalid_input")
                self.assertIn(contains, reply["error"]["message"])
        # An image whose only value over 1 is in the last lane is read as integers 0-255.
        answers = [self.client.post("/api/v1/applications/single/predict", {"images": [[0] * 3 + [v] + [0] * 780]})
                   for v in (255, 1.0)]
        self.assertEqual([a[0] for a in answers], [200, 200])
        self.assertEqual(answers[0][2]["predictions"], answers[1][2]["predictions"])
        status, _, reply = self.client.post("/api/v1/applications/nope/predict", {"images": [[0] * 784]})
        self.assertEqual((status, reply["error"]["code"]), (404, "not_found"))
        status, _, reply = self.client.post("/api/v1/applications/single/predict", {"images": [[0] * 784]},
                                            headers={"x-mlctl-variant": "mnist:3"})
        self.assertEqual(status, 400)
        self.assertIn("x-mlctl-variant 'mnist:3': application 'single' does not serve it", reply["error"]["message"])
        # All-zero and all-one images answer.
        for v in (0, 1):
            status, _, reply = self.client.post("/api/v1/applications/single/predict", {"images": [[v] * 784]})
            self.assertEqual(status, 200, reply)

    # ---- Routing -------------------------------------------------------------------------

    def test_weighted_split_30_30_40(self):
        # 10,000 requests: the standard deviation of an observed share is at most
        # sqrt(0.4 * 0.6 / 10000) = 0.49 pp, so ±3 pp is over 6 sd (a false failure has a
        # probability below 1e-9). Routing draws from a seeded sequence, one draw per request.
        self.apply("split", "  stages:\n    - variants:\n"
                            "        - {model: mnist:1, weight: 30}\n"
                            "        - {model: mnist:2, weight: 30}\n"
                            "        - {model: mnist:3, weight: 40}\n")
        n, threads = 10000, 4
        body = json.dumps({"images": [[0.25] * 784]})

        def worker(count):
            c = Client(self.server)
            seen = {}
            try:
                for _ in range(count):
                    status, _, reply = c.post("/api/v1/applications/split/predict", body)
                    assert status == 200, reply
                    seen[reply["model"]] = seen.get(reply["model"], 0) + 1
            finally:
                c.close()
            return seen

        with concurrent.futures.ThreadPoolExecutor(threads) as pool:
            parts = list(pool.map(worker, [n // threads] * threads))
        counts = {m: sum(p.get(m, 0) for p in parts) for m in ("mnist:1", "mnist:2", "mnist:3")}
        self.assertEqual(sum(counts.values()), n)
        for model, share in (("mnist:1", 0.30), ("mnist:2", 0.30), ("mnist:3", 0.40)):
            self.assertLess(abs(counts[model] / n - share), 0.03, counts)
        d = mlctl("describe", "application", "split", "-o", "json", env=self.env).json()
        roles = [(v["model"], v["role"], v["requests"]) for v in d["stages"][0]["variants"]]
        self.assertEqual(roles, [("mnist:1", "canary", counts["mnist:1"]), ("mnist:2", "canary", counts["mnist:2"]),
                                 ("mnist:3", "primary", counts["mnist:3"])])
        # A pinned variant takes every request.
        for _ in range(20):
            status, _, reply = self.client.post("/api/v1/applications/split/predict", body,
                                                headers={"x-mlctl-variant": "mnist:2"})
            self.assertEqual((status, reply["model"], reply["variant"]), (200, "mnist:2", "canary"))

    def test_shadow_answers_are_measured_never_returned(self):
        self.apply("shadowed", "  stages:\n    - variants:\n"
                               "        - {model: mnist:1, weight: 100}\n"
                               "        - {model: mnist:2, shadow: 100}\n")
        x = [0.75] * 784
        for _ in range(50):
            status, _, reply = self.client.post("/api/v1/applications/shadowed/predict", {"images": [x]})
            self.assertEqual((status, reply["model"]), (200, "mnist:1"))
            status, _, reply = self.client.post("/v2/models/shadowed/infer", {
                "inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": x}]})
            self.assertEqual((status, reply["model_version"], reply["parameters"]["model"]), (200, "1", "mnist:1"))
        # The shadow runs off the request path: wait for its 100 calls to be counted.
        deadline = time.monotonic() + 10
        while True:
            d = mlctl("describe", "application", "shadowed", "-o", "json", env=self.env).json()
            shadow = d["stages"][0]["variants"][1]
            if shadow["requests"] >= 100 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        self.assertEqual((shadow["model"], shadow["role"], shadow["shadow"]), ("mnist:2", "shadow", 100.0))
        self.assertEqual((shadow["requests"], shadow["errors"]), (100, 0))
        self.assertEqual(d["stages"][0]["variants"][0]["requests"], 100)
        # Pinned, the shadow answers (to check it by hand).
        status, _, reply = self.client.post("/api/v1/applications/shadowed/predict", {"images": [x]},
                                            headers={"x-mlctl-variant": "mnist:2"})
        self.assertEqual((status, reply["model"], reply["variant"]), (200, "mnist:2", "shadow"))

    def test_stages_chain_outputs_to_inputs_by_name(self):
        self.apply("chain", "  stages:\n    - variants: [{model: mnist:1, weight: 100}]\n"
                            "    - variants: [{model: perm:1, weight: 100}]\n")
        x = np.random.default_rng(2).random((4, 784), dtype=np.float32)
        status, _, reply = self.client.post("/api/v1/applications/chain/predict", {"images": x.tolist()})
        self.assertEqual(status, 200, reply)
        self.assertEqual(reply["model"], "perm:1")
        self.assertEqual([p["class"] for p in reply["predictions"]], (9 - self.expected(1, x).argmax(1)).tolist())
        status, _, raw = self.client.get("/v2/models/chain")
        meta = json.loads(raw)
        self.assertEqual((meta["inputs"][0]["name"], meta["outputs"][0]["name"]), ("input", "scores"))
        # A stage whose inputs the stage before does not produce is refused at apply time.
        text = ("apiVersion: mlctl/v1\nkind: Application\nmetadata: {name: broken}\nspec:\n  stages:\n"
                "    - variants: [{model: perm:1, weight: 100}]\n    - variants: [{model: mnist:1, weight: 100}]\n")
        r = mlctl("apply", "-f", "-", input=text, env=self.env)
        self.assertFails(r, 1, "spec.stages[1].variants[0].model: mnist:1 takes input 'input' (FP32), which perm:1 "
                               "in stage 0 does not produce")

    def test_version_swap_under_load_loses_no_request(self):
        self.apply("swap", "  singular: {model: mnist:1}\n")
        stop = threading.Event()
        failures, answers = [], []
        lock = threading.Lock()
        body = json.dumps({"images": [[0.5] * 784]})

        def load():
            c = Client(self.server)
            local = []
            try:
                while not stop.is_set():
                    try:
                        status, _, reply = c.post("/api/v1/applications/swap/predict", body)
                        if status != 200:
                            failures.append((status, reply))
                        else:
                            local.append(reply["model"])
                    except Exception as e:  # a dropped connection is a failure too
                        failures.append(repr(e))
                        c.close()
                        c = Client(self.server)
            finally:
                c.close()
                with lock:
                    answers.extend(local)

        threads = [threading.Thread(target=load) for _ in range(8)]
        for t in threads:
            t.start()
        try:
            time.sleep(0.3)
            for v in (2, 3, 1, 2):
                self.assertIn("configured", self.apply("swap", f"  singular: {{model: mnist:{v}}}\n"))
                time.sleep(0.3)
        finally:
            stop.set()
            for t in threads:
                t.join()
        self.assertEqual(failures, [])
        self.assertGreater(len(answers), 200)
        self.assertEqual(set(answers), {"mnist:1", "mnist:2", "mnist:3"})
        status, _, reply = self.client.post("/api/v1/applications/swap/predict", body)
        self.assertEqual((status, reply["model"]), (200, "mnist:2"))


class CompressedBodyTest(TestCase):
    """Inference request bodies sent with `Content-Encoding: gzip` or `deflate`, as Triton's
    clients send them when asked (`request_compression_algorithm`): the same answers as
    uncompressed, on the fast path and cpp-httplib's (chunked); damaged data is a 400 in each
    route's error form; data inflating past the body limit a 413, with memory bounded; other
    codings and other routes a 415."""

    def test_gzip_and_deflate_bodies_are_answered_as_uncompressed_ones(self):
        import gzip
        import zlib

        def raw_deflate(data):
            c = zlib.compressobj(wbits=-15)
            return c.compress(data) + c.flush()

        with Server(self.tmp / "data", args=["--max-body-mb", "1"]) as server:
            env = {**server.env(), "XDG_CONFIG_HOME": str(self.tmp / "config")}
            self.assertOk(mlctl("catalog", "upload", make_model_dir(self.tmp / "m", name="mnist"), env=env))
            self.assertOk(mlctl("apply", "application", "demo", "--model", "mnist:1", env=env))
            x = np.random.default_rng(3).random((2, 784), dtype=np.float32)
            simple = ("/api/v1/applications/demo/predict", json.dumps({"images": x.tolist()}).encode())
            v2 = ("/v2/models/demo/infer", json.dumps({"id": "z", "inputs": [
                {"name": "input", "shape": [2, 784], "datatype": "FP32", "data": x.ravel().tolist()}]}).encode())
            header = json.dumps({"inputs": [{"name": "input", "shape": [2, 784], "datatype": "FP32",
                                             "parameters": {"binary_data_size": x.nbytes}}]}).encode()
            binary = ("/v2/models/demo/infer", header + x.astype("<f4").tobytes(),
                      {"Inference-Header-Content-Length": str(len(header))})

            def post(path, body, headers):
                # Accept-Encoding as Python's requests sends it: inference answers stay
                # uncompressed on both paths (cpp-httplib's compressed them with brotli).
                inference = path.endswith(("/infer", "/predict"))
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
                conn.request("POST", path, body=body, encode_chunked=not isinstance(body, bytes),
                             headers={"Content-Type": "application/json", **headers,
                                      **({"Accept-Encoding": "gzip, deflate, br"} if inference else {})})
                r = conn.getresponse()
                raw = r.read()
                conn.close()
                self.assertIsNone(r.getheader("Content-Encoding"))
                return r.status, json.loads(raw)

            def answers(body):  # without the per-request fields
                return {k: v for k, v in body.items() if k not in ("trace_id", "parameters")}

            for path, body, *extra in (simple, v2, binary):
                headers = extra[0] if extra else {}
                status, want = post(path, body, headers)
                self.assertEqual(status, 200, want)
                for coding, pack in (("gzip", gzip.compress), ("x-gzip", gzip.compress), ("GZip", gzip.compress),
                                     ("deflate", zlib.compress), ("deflate", raw_deflate)):
                    with self.subTest(path=path, coding=coding, pack=pack.__name__):
                        packed = pack(body)
                        status, got = post(path, packed, {**headers, "Content-Encoding": coding})
                        self.assertEqual(status, 200, got)
                        self.assertEqual(answers(got), answers(want))
                        # cpp-httplib's path: the same bytes chunked.
                        status, got = post(path, iter([packed[:100], packed[100:]]),
                                           {**headers, "Content-Encoding": coding})
                        self.assertEqual(status, 200, got)
                        self.assertEqual(answers(got), answers(want))

            # Damaged data: 400, in the project's error form and V2's.
            cut = gzip.compress(simple[1])[:-20]
            status, body = post(simple[0], cut, {"Content-Encoding": "gzip"})
            self.assertEqual(status, 400, body)
            self.assertEqual(body["error"]["code"], "invalid_input")
            self.assertEqual(body["error"]["message"],
                             f"request body (Content-Encoding: gzip): truncated gzip data at byte {len(cut)}")
            status, body = post(v2[0], b"not gzip", {"Content-Encoding": "gzip"})
            self.assertEqual(status, 400, body)
            self.assertEqual(set(body), {"error"})
            self.assertIn("request body (Content-Encoding: gzip): corrupt gzip data", body["error"])
            status, body = post(v2[0], gzip.compress(v2[1]) + b"tail", {"Content-Encoding": "gzip"})
            self.assertEqual(status, 400, body)
            self.assertIn("4 trailing bytes after the gzip data", body["error"])

            # 100 MB of zeros in 100 KB of gzip: inflated only up to the 1 MiB limit.
            peak = lambda: int(Path(f"/proc/{server.pid}/status").read_text().split("VmHWM:")[1].split()[0])
            before = peak()
            bomb = gzip.compress(b"\0" * (100 << 20), compresslevel=9)
            status, body = post(simple[0], bomb, {"Content-Encoding": "gzip"})
            self.assertEqual(status, 413, body)
            self.assertEqual(body["error"]["code"], "too_large")
            self.assertIn("inflates to more than the server's limit of 1 MiB", body["error"]["message"])
            self.assertLess(peak() - before, 64 << 10)

            # Other codings, and compressed bodies on other routes: 415 before the body is read.
            status, body = post(simple[0], simple[1], {"Content-Encoding": "br"})
            self.assertEqual((status, body["error"]["code"]), (415, "unsupported"), body)
            self.assertIn("send the body as gzip, deflate or uncompressed", body["error"]["message"])
            status, body = post(v2[0], v2[1], {"Content-Encoding": "br"})  # V2's error form
            self.assertEqual((status, list(body)), (415, ["error"]), body)
            self.assertIn("send the body as gzip, deflate or uncompressed", body["error"])
            status, body = post("/api/v1/feedback", gzip.compress(b"[]"), {"Content-Encoding": "gzip"})
            self.assertEqual(status, 415, body)
            self.assertIn("only the inference routes", body["error"]["message"])


class GatewayTokenTest(TestCase):
    def test_inference_needs_the_token_probes_do_not(self):
        token = self.tmp / "token"
        token.write_text("s3cret-token-for-the-gateway-test\n")
        token.chmod(0o600)
        with Server(self.tmp / "data", token_file=token) as server:
            env = {**server.env(), "XDG_CONFIG_HOME": str(self.tmp / "config")}
            self.assertOk(mlctl("catalog", "upload", make_model_dir(self.tmp / "m", name="mnist"), env=env))
            self.assertOk(mlctl("apply", "application", "demo", "--model", "mnist:1", env=env))
            body = {"inputs": [{"name": "input", "shape": [1, 784], "datatype": "FP32", "data": [0.5] * 784}]}
            for path, payload in (("/v2/models/demo/infer", body), ("/api/v1/applications/demo/predict",
                                                                     {"images": [[0.5] * 784]})):
                status, _, raw = request(server, "POST", path, payload, token="")
                self.assertEqual(status, 401, path)
                # Each in its protocol's error form.
                reply = json.loads(raw)["error"]
                self.assertIn("bearer token", reply if path.startswith("/v2/") else reply["message"])
                status, _, _ = request(server, "POST", path, payload)
                self.assertEqual(status, 200, path)
            status, _, _ = request(server, "GET", "/v2/models/demo", token="")
            self.assertEqual(status, 401)
            for path in ("/v2", "/v2/health/live", "/v2/health/ready"):
                status, _, _ = request(server, "GET", path, token="")
                self.assertEqual(status, 200, path)


if __name__ == "__main__":
    unittest.main()
