"""Jupyter on the sandbox's real machines: the environment, templates, data from the data
bucket and a URL, the notebook server under labtui-notebook (127.0.0.1 only, the seat's own
token), reached through a paramiko tunnel and OpenSSH's ``ssh -L`` over the seat's sshd;
push keeps a student's changes, collect brings notebooks home, a reboot brings it back."""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from labtui import lifecycle
from labtui.course import load
from labtui.services import handout, notebooks
from labtui.services import machines as ec2

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



def get_kernels(port: int, token: str) -> int | None:
    """The HTTP status of /api/kernels on a local port (None: nothing answers)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(f"http://127.0.0.1:{port}/api/kernels",
                                     headers={"Authorization": f"token {token}"})
    try:
        with opener.open(request, timeout=3) as answer:
            return answer.status
    except OSError:
        return None


def cli(capsys, *args: str) -> tuple[int, str, str]:
    from labtui.cli import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.timeout(300)
def test_notebook_journey(ctx, sandbox, tmp_path, web, capsys) -> None:
    path = stand_in_course(tmp_path, *web)
    course = load(path)
    result = lifecycle.up(ctx, course, setup_wait=90)
    assert sorted(result.set_up) == ["s01", "s02"], result.setup_failed

    # -- setup: the working folder with the templates and both data files
    code, out = on_seat(ctx, course, "s01", "cd work && find . -type f | sort && "
                        "cat data/words.txt data/iris.csv")
    assert code == 0
    assert out.splitlines() == ["./.labtui-templates.json", "./data/iris.csv",
                                "./data/words.txt", "./lab1.ipynb", "./week2/lab2.ipynb",
                                "alpha beta", "sepal,petal", "5.1,1.4"]
    state = ctx.state.course("nb")
    machine = lifecycle.seat_machine(ctx, course, "s01")
    remote = lifecycle.remote_for(ctx, course)
    found = notebooks.status(remote, machine, state)
    assert (found.state, found.kernels, found.busy) == ("up", 0, 0), found

    # -- bound to the machine's loopback (the sandbox's stand-in for 127.0.0.1) only
    host = notebooks.listen_host(remote, machine)
    assert found.address == host and host.startswith("127.") and host != "127.0.0.1"
    code, out = on_seat(ctx, course, "s01", "stat -c %a ~/.config/labtui/notebook.token; "
                        "ss -ltnH 'sport = :8899' | awk '{print $4}' | sort")
    # the machines share the host's loopback: each seat's server on its own address, none
    # on every interface
    assert out.splitlines()[0] == "600" and f"{host}:8899" in out.splitlines()[1:]
    assert all(line.startswith("127.") and not line.startswith("127.0.0.1:")
               for line in out.splitlines()[1:]), out

    # -- the instructor's tunnel: it answers, and sees a busy kernel
    tunnel = notebooks.open_tunnel(remote, machine, course, state)
    try:
        assert tunnel.check().answers and tunnel.check().kernels == 0
        on_seat(ctx, course, "s01", "echo '[{\"name\": \"python3\", \"execution_state\": "
                "\"busy\"}, {\"name\": \"ir\", \"execution_state\": \"idle\"}]' "
                "> ~/.standin-kernels.json")
        check = tunnel.check()
        assert (check.answers, check.kernels, check.busy) == (True, 2, ("python3",))
    finally:
        tunnel.close()
    assert notebooks.status(remote, machine, state).short == "up, 1 busy"

    # -- the token: on the card, in its 0600 file, nowhere else labtui writes or shows
    token = notebooks.token(state, "s01")
    assert token and token != notebooks.token(state, "s02")
    assert oct(notebooks.token_path(state, "s01").stat().st_mode & 0o777) == "0o600"
    cards = {c.seat: c for c in handout.cards(ctx, course)}
    card = cards["s01"]
    assert card.notebook_url == f"http://127.0.0.1:8899/lab?token={token}"
    assert f"-N -L 8899:{host}:8899" in card.tunnel_command
    assert "StrictHostKeyChecking=yes" in card.tunnel_command
    assert ("Notebook URL", card.notebook_url) in card.lines()
    code, out, err = cli(capsys, "notebook", str(path), "s01", "--sandbox")
    assert code == 0, err
    assert "notebook up (2 kernel(s), 1 busy)" in out and card.tunnel_command in out
    assert str(notebooks.token_path(state, "s01")) in out
    code, out_json, err = cli(capsys, "notebook", str(path), "s02", "--sandbox", "--json")
    assert code == 0 and json.loads(out_json)["status"]["state"] == "up"
    shown = out + err + out_json + "\n".join(
        p.read_text() for p in state.logs.glob("*") if p.is_file())
    shown += state.event_log.read_text() if state.event_log.exists() else ""
    shown += lifecycle.console(ctx, machine)
    tags = ec2.describe(ctx.aws, machine).get("Tags", [])
    assert token not in shown and token not in json.dumps(tags)
    code, out = on_seat(ctx, course, "s01", "cat ~/.local/state/labtui/notebook/server.log")
    assert token in out   # the server printed its URL; labtui never repeats it

    # -- the student's own OpenSSH, with the card's exact command: the pinned host key
    folder = tmp_path / "student"
    folder.mkdir()
    (folder / card.known_hosts_file).write_text(card.known_hosts_line + "\n")
    shutil.copy(card.key_file, folder / card.key_name)
    os.chmod(folder / card.key_name, 0o600)
    argv = shlex.split(card.tunnel_command)
    argv[1:1] = ["-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes"]
    ssh_l = subprocess.Popen(argv, cwd=folder, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert eventually(lambda: get_kernels(8899, token), lambda v: v == 200,
                          timeout=20) == 200
        assert get_kernels(8899, "wrong-token") is None   # 403: urllib raises, an OSError
    finally:
        ssh_l.terminate()
        ssh_l.wait(timeout=10)

    # -- push: a notebook the student changed is kept, the new one lands beside it
    on_seat(ctx, course, "s01", "echo '{\"student\": 1}' > work/lab1.ipynb")
    (tmp_path / "notebooks" / "lab1.ipynb").write_text(notebook("lab 1, corrected"))
    (tmp_path / "notebooks" / "lab3.ipynb").write_text(notebook("lab 3"))
    code, out, err = cli(capsys, "notebooks", "push", str(path), "--sandbox")
    assert code == 0, err
    assert "notebooks pushed to 2 of 2 seat(s)" in out
    new_digest = hashlib.sha256((tmp_path / "notebooks" / "lab1.ipynb").read_bytes()
                                ).hexdigest()[:8]
    code, out = on_seat(ctx, course, "s01", "cd work && cat lab1.ipynb && ls")
    assert out.splitlines()[0] == '{"student": 1}'
    assert f"lab1.{new_digest}.ipynb" in out and "lab3.ipynb" in out
    code, out = on_seat(ctx, course, "s02", "cd work && cat lab1.ipynb && ls")
    assert "lab 1, corrected" in out and new_digest not in out   # untouched: updated

    # -- collect: every seat's notebooks, no data, no checkpoints
    on_seat(ctx, course, "s02", "mkdir -p work/.ipynb_checkpoints && "
            "echo x > work/.ipynb_checkpoints/lab1-checkpoint.ipynb")
    to = tmp_path / "collected"
    code, out, err = cli(capsys, "notebooks", "collect", str(path), "--sandbox", "--to",
                         str(to))
    assert code == 0, err
    got = sorted(p.relative_to(to).as_posix() for p in to.rglob("*") if p.is_file())
    assert got == [f"s01/lab1.{new_digest}.ipynb", "s01/lab1.ipynb", "s01/lab3.ipynb",
                   "s01/week2/lab2.ipynb", "s02/lab1.ipynb", "s02/lab3.ipynb",
                   "s02/week2/lab2.ipynb"]
    assert (to / "s01" / "lab1.ipynb").read_text() == '{"student": 1}\n'

    # -- the server restarts when it dies, and comes back after a reboot
    on_seat(ctx, course, "s01", "pkill -f standin.py")
    back = eventually(lambda: notebooks.status(remote, machine, state),
                      lambda s: s.state == "up" and s.restarts >= 1, timeout=30)
    assert back.state == "up" and back.restarts >= 1, back
    lifecycle.reboot(ctx, course, ["s01"])
    machine = lifecycle.seat_machine(ctx, course, "s01")

    def after_reboot():
        try:
            return notebooks.status(remote, machine, state)
        except Exception as e:   # still rebooting: SSH refuses
            return notebooks.Status("s01", "rebooting", error=str(e))
    again = eventually(after_reboot, lambda s: s.state == "up" and s.restarts == 0,
                       timeout=120)
    assert again.state == "up" and again.restarts == 0, again


def test_open_tunnel_from_the_shell_until_ctrl_c(ctx, sandbox, tmp_path, web) -> None:
    path = stand_in_course(tmp_path, *web, students=1)
    course = load(path)
    assert lifecycle.up(ctx, course, setup_wait=90).set_up == ["s01"]
    token = notebooks.token(ctx.state.course("nb"), "s01")
    run = subprocess.Popen([sys.executable, "-m", "labtui", "notebook", str(path), "s01",
                            "--open", "--sandbox", "--json"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(run.stdout.readline())
        assert first["type"] == "tunnel" and first["url"].endswith("/lab")
        assert json.loads(run.stdout.readline())["answers"] is True
        assert get_kernels(first["local_port"], token) == 200
    finally:
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=10)
    assert run.returncode == 0, err
    assert json.loads(out.splitlines()[-1])["type"] == "closed"
    assert token not in out + err
    assert get_kernels(first["local_port"], token) is None      # closed with the command


@pytest.mark.timeout(300)
def test_a_real_jupyter_server_from_requirements(ctx, sandbox, tmp_path) -> None:
    """pip installs jupyter-server into the environment's venv on the machine (through the
    host's package index), and labtui-notebook runs it: it answers through the tunnel with
    the seat's token, refuses another, and its own log's token never reaches labtui's."""
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "intro.ipynb").write_text(notebook("intro"))
    (tmp_path / "requirements.txt").write_text("jupyter-server\n")
    path = write_course(tmp_path, "jr", students=1, extra="""
[jupyter]
port = 8898
server = "server"
requirements = "requirements.txt"
templates = "notebooks"
daily = true
""")
    course = load(path)
    result = lifecycle.up(ctx, course, setup_wait=90)
    assert result.set_up == ["s01"], result.setup_failed
    state = ctx.state.course("jr")
    machine = lifecycle.seat_machine(ctx, course, "s01")
    remote = lifecycle.remote_for(ctx, course)
    code, out = on_seat(ctx, course, "s01", f"{notebooks.ENV_DIR}/bin/jupyter server "
                        "--version && ls work/*/")
    assert code == 0 and "intro.ipynb" in out, out
    # daily: the day's templates in a folder of the day
    day = time.strftime("%Y-%m-%d")
    assert on_seat(ctx, course, "s01", "ls work")[1].split() == [day]
    tunnel = notebooks.open_tunnel(remote, machine, course, state)
    try:
        check = tunnel.check()
        assert (check.answers, check.kernels) == (True, 0), check
        token = notebooks.token(state, "s01")
        assert get_kernels(tunnel.local_port, token) == 200
        assert get_kernels(tunnel.local_port, "not-the-token") is None   # 403
    finally:
        tunnel.close()
    log = (state.logs / "s01.log").read_text()
    assert "install the notebook environment (pip)" in log and token not in log


def test_bad_jupyter_sections_name_the_line_and_the_fix(tmp_path) -> None:
    from labtui.errors import CourseError

    (tmp_path / "requirements.txt").write_text("jupyterlab\n")
    (tmp_path / "environment.yml").write_text("name: x\n")
    path = write_course(tmp_path, "bad", students=1, extra="""
[jupyter]
port = 80
server = "labb"
templates = "missing/"
workdir = "/srv/work"
requirements = "requirements.txt"
environment = "environment.yml"
[[jupyter.data]]
source = "ftp://example.org/x.csv"
[[jupyter.data]]
source = "s3://nb-data"
[[jupyter.data]]
source = "https://example.org/x.csv"
dest = "../escape.csv"
sha256 = "abc"
""")
    with pytest.raises(CourseError) as info:
        load(path)
    text = "\n".join(str(p) for p in info.value.problems)
    for expected in ("jupyter.port: must be at least 1024",
                     "jupyter.server: 'labb' is not one of 'lab', 'notebook', 'server'. "
                     "Fix: did you mean 'lab'?",
                     "jupyter.templates: 'missing/' is not a folder",
                     "jupyter.workdir: '/srv/work' is not a path in the student's home",
                     "jupyter.environment: and requirements are both given",
                     "jupyter.data[0].source: 'ftp://example.org/x.csv' is neither an s3:// "
                     "path nor a URL",
                     "jupyter.data[1].source: 's3://nb-data' names a bucket, not a file",
                     "jupyter.data[2].sha256: 'abc' is not a SHA-256 digest"):
        assert expected in text, text
    assert all(":" in str(p).split(" ")[0] for p in info.value.problems)  # file:line first
    done = subprocess.run([sys.executable, "-m", "labtui", "validate", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr + done.stdout


def test_a_conda_environment_without_conda_fails_setup_saying_why(ctx, sandbox,
                                                                  tmp_path) -> None:
    (tmp_path / "environment.yml").write_text("name: course\ndependencies: [jupyterlab]\n")
    course = load(write_course(tmp_path, "nc", students=1, extra="""
[jupyter]
environment = "environment.yml"
"""))
    result = lifecycle.up(ctx, course, setup_wait=90)
    assert list(result.setup_failed) == ["s01"]
    assert "notebook environment" in result.setup_failed["s01"]
    log = (ctx.state.course("nc").logs / "s01.log").read_text()
    assert "environment.yml needs conda, mamba or micromamba on the machine" in log
