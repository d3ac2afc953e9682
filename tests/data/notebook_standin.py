#!/usr/bin/env python3
"""A light stand-in for a Jupyter server, run on a sandbox machine by labtui-notebook in the
suite's fast tests: the same command line (--ip, --port, --no-browser), the token from
JUPYTER_TOKEN, 403 without it, /api/status and /api/kernels (the kernels listed in
~/.standin-kernels.json), and a start-up line with the token in the URL as Jupyter prints."""

import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if a.startswith("--") and "=" in a)
TOKEN = os.environ.get("JUPYTER_TOKEN", "")


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlparse(self.path)
        given = self.headers.get("Authorization", "").removeprefix("token ")
        given = given or parse_qs(url.query).get("token", [""])[0]
        if not TOKEN or given != TOKEN:
            return self.answer(403, {"message": "Forbidden"})
        if url.path == "/api/kernels":
            try:
                with open(os.path.expanduser("~/.standin-kernels.json")) as f:
                    return self.answer(200, json.load(f))
            except OSError:
                return self.answer(200, [])
        if url.path == "/api/status":
            return self.answer(200, {"started": "now", "kernels": 0})
        return self.answer(200, {"stand-in": "jupyter", "cwd": os.getcwd()})

    def answer(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_):
        pass


server = ThreadingHTTPServer((args["ip"], int(args["port"])), Handler)
print(f"stand-in Jupyter at http://{args['ip']}:{args['port']}/lab?token={TOKEN}", flush=True)
server.serve_forever()
