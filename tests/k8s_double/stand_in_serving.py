"""A stand-in serving image for pods in the double: a few lines of stdlib HTTP server that answer
GET (the model's name and version, like the serving app's /ping and /version) and POST
`dataframe_split` with one prediction per row, computed by a Python expression over `row` and `os`.
Tests that check rollouts and smoke tests use it where starting the real serving app is not the point."""

from __future__ import annotations

_TEMPLATE = """
import http.server, json, os
class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass
    def _send(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def do_GET(self):
        self._send({"name": os.environ.get("SKYLIFT_MODEL_NAME", "m"), "version": os.environ["SKYLIFT_MODEL_VERSION"]})
    def do_POST(self):
        rows = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["dataframe_split"]["data"]
        self._send({"predictions": [PREDICTION for row in rows]})
http.server.ThreadingHTTPServer((os.environ["POD_IP"], 8080), Handler).serve_forever()
"""


def stand_in_command(prediction: str) -> list[str]:
    """The container command of a pod that scores each `row` (a list of feature values) as `prediction`."""
    return ["python", "-c", _TEMPLATE.replace("PREDICTION", prediction)]
