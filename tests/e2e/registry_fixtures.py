"""Helpers shared by the registry e2e tests and the registry benchmark: raw HTTP calls to the
platform and hand-built (also hostile) artifacts."""

import gzip
import http.client
import io
import json
import tarfile
import urllib.parse
from pathlib import Path


def request(server, method, path, body=None, headers=None, token=None, timeout=60):
    """Sends one request to `server` (a harness.Server) and returns (status, headers, bytes)."""
    u = urllib.parse.urlsplit(server.url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    h = dict(headers or {})
    tok = token if token is not None else server.token()
    if tok:
        h["Authorization"] = f"Bearer {tok}"
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        h.setdefault("Content-Type", "application/json")
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, data


def request_json(server, method, path, body=None, **kw):
    status, headers, data = request(server, method, path, body, **kw)
    return status, (json.loads(data) if data else None)


def tar_gz(entries) -> bytes:
    """Builds a tar.gz from (TarInfo-fields dict, data or None) pairs, exactly as given."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in entries:
            ti = tarfile.TarInfo(info["name"])
            ti.type = info.get("type", tarfile.REGTYPE)
            ti.linkname = info.get("linkname", "")
            ti.mode = info.get("mode", 0o644)
            if data is not None:
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
            else:
                tar.addfile(ti)
    return buf.getvalue()


def model_entries(model_dir):
    d = Path(model_dir)
    return [({"name": "model.yaml"}, (d / "model.yaml").read_bytes()),
            ({"name": "model.onnx"}, (d / "model.onnx").read_bytes())]


def gzip_bomb(model_dir, unpacked_bytes) -> bytes:
    """A valid model plus one file of `unpacked_bytes` zeros: a few hundred KiB compressed."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=9) as tar:
        for info, data in model_entries(model_dir):
            ti = tarfile.TarInfo(info["name"])
            ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data))
        ti = tarfile.TarInfo("zeros.bin")
        ti.size = unpacked_bytes

        class Zeros(io.RawIOBase):
            def __init__(self, n):
                self.left = n

            def readable(self):
                return True

            def readinto(self, b):
                n = min(len(b), self.left)
                b[:n] = bytes(n)
                self.left -= n
                return n

        tar.addfile(ti, io.BufferedReader(Zeros(unpacked_bytes), 1 << 20))
    return buf.getvalue()


def hostile_artifacts(model_dir, bomb_bytes):
    """(label, bytes, words the 400 message must contain) for every kind of bad artifact."""
    good = model_entries(model_dir)
    return [
        ("tar-slip", tar_gz(good + [({"name": "../x"}, b"escape")]), ["../x"]),
        ("absolute path", tar_gz(good + [({"name": "/tmp/mlctl-abs-x"}, b"escape")]), ["/tmp/mlctl-abs-x"]),
        ("symlink", tar_gz(good + [({"name": "link", "type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, None)]),
         ["link"]),
        ("gzip bomb", gzip_bomb(model_dir, bomb_bytes), ["zeros.bin"]),
        ("not gzip", b"this is not a tar.gz archive at all" * 10, ["gzip"]),
        ("missing model.yaml", tar_gz([good[1]]), ["model.yaml"]),
        ("onnx that does not load", tar_gz([good[0], ({"name": "model.onnx"}, b"\x08\x07garbage-not-onnx" * 40)]),
         ["model.onnx"]),
    ]
