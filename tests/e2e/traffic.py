"""Labelled production traffic for the rollout tests: a thread that sends one image per request
to an application on 127.0.0.1 and its label as feedback every 50 answers, counting every answer
by HTTP status and by the version that gave it (a failed request is any non-200 answer or a
dropped connection)."""

import http.client
import json
import threading


class Traffic:
    """Production traffic on 127.0.0.1: one image per request, its label sent as feedback every
    50 answers; counts every answer by status and by the version that gave it."""

    def __init__(self, port, app, x, y):
        self.port, self.app, self.x, self.y = port, app, x, y
        self.statuses = {}
        self.models = {}
        self.errors = []
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        labels, i = [], 0
        while not self.stop_flag.is_set():
            k = i % len(self.x)
            i += 1
            try:
                conn.request("POST", f"/api/v1/applications/{self.app}/predict",
                             body=json.dumps({"images": [self.x[k].reshape(-1).tolist()]}),
                             headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                body = json.loads(r.read())
            except Exception as e:  # a dropped connection is a failed request too
                self.errors.append(repr(e))
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                continue
            self.statuses[r.status] = self.statuses.get(r.status, 0) + 1
            if r.status != 200:
                self.errors.append(body)
                continue
            self.models[body["model"]] = self.models.get(body["model"], 0) + 1
            labels.append({"trace_id": body["trace_id"], "label": int(self.y[k])})
            if len(labels) >= 50:
                conn.request("POST", f"/api/v1/feedback?application={self.app}", body=json.dumps(labels),
                             headers={"Content-Type": "application/json"})
                fr = conn.getresponse()
                fr.read()
                if fr.status != 200:
                    self.errors.append(f"feedback: HTTP {fr.status}")
                labels = []
        conn.close()

    def stop(self):
        self.stop_flag.set()
        self.thread.join(timeout=30)
