"""Jupyter on the sandbox's real machines: the environment, templates, data from the data
bucket and a URL, the notebook server under labtui-notebook (127.0.0.1 only, the seat's own
token), reached through a paramiko tunnel and OpenSSH's ``ssh -L`` over the seat's sshd;
push keeps a student's changes, collect brings notebooks home, a reboot brings it back."""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from labtui import lifecycle
from labtui.course import load
from labtui.services import notebooks
from labtui.services.remote import Remote

from .courses import write_course
from .test_lifecycle import eventually
from .test_setup import on_seat

DATA = Path(__file__).parent / "data"
pytestmark = pytest.mark.sshd


def notebook(text: str) -> str:
    return json.dumps({"cells": [{"cell_type": "markdown", "metadata": {},
                                  "source": [text]}],
                       "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


@pytest.fixture
def web(tmp_path):
    """A plain HTTP server on 127.0.0.1 serving one file (data fetched by URL)."""
    body = b"sepal,petal\n5.1,1.4\n"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/iris.csv" else 404)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *_):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/iris.csv", body
    server.shutdown()
    server.server_close()


def stand_in_course(tmp_path: Path, web_url: str, body: bytes, students: int = 2) -> Path:
    templates = tmp_path / "notebooks"
    (templates / "week2").mkdir(parents=True)
    (templates / "lab1.ipynb").write_text(notebook("lab 1"))
    (templates / "week2" / "lab2.ipynb").write_text(notebook("lab 2"))
    (tmp_path / "upload").mkdir()
    (tmp_path / "upload" / "words.txt").write_text("alpha beta\n")
    shutil.copy(DATA / "notebook_standin.py", tmp_path / "standin.py")
    return write_course(tmp_path, "nb", students=students, machines="""
login = "key"
[[machines.files]]
source = "standin.py"
dest = "~/standin.py"
""", extra=f"""
[storage]
data_bucket = "nb-data"
scratch_bucket = "nb-scratch"
upload = "upload"

[jupyter]
port = 8899
templates = "notebooks"
command = "python3 ~/standin.py"
[[jupyter.data]]
source = "s3://nb-data/words.txt"
dest = "data/words.txt"
[[jupyter.data]]
source = "{web_url}"
dest = "data/iris.csv"
sha256 = "{hashlib.sha256(body).hexdigest()}"
""")


def test_setup_serves_templates_data_and_a_tunnel(ctx, sandbox, tmp_path, web) -> None:
    course = load(stand_in_course(tmp_path, *web))
    result = lifecycle.up(ctx, course, setup_wait=90)
    assert sorted(result.set_up) == ["s01", "s02"], result.setup_failed
    code, out = on_seat(ctx, course, "s01", "cd work && find . -type f | sort && "
                        "cat data/words.txt data/iris.csv")
    assert code == 0
    assert out.splitlines() == ["./.labtui-templates.json", "./data/iris.csv",
                                "./data/words.txt", "./lab1.ipynb", "./week2/lab2.ipynb",
                                "alpha beta", "sepal,petal", "5.1,1.4"]
    state = ctx.state.course("nb")
    machine = lifecycle.seat_machine(ctx, course, "s01")
    remote = lifecycle.remote_for(ctx, course) if hasattr(lifecycle, "remote_for") else None
    print(remote)
    remote = lifecycle.remote_for(ctx, course)
    found = notebooks.status(remote, machine, state)
    assert found.state == "up" and found.kernels == 0, found
    tunnel = notebooks.open_tunnel(remote, machine, course, state)
    try:
        assert tunnel.check().answers
    finally:
        tunnel.close()
