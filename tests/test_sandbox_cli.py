"""`labtui sandbox` in the foreground, and --sandbox attaching to it or starting its own."""

from __future__ import annotations

import ctypes
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import boto3

from .conftest import ROOT, SAMPLE, _free_port
from .test_cli import json_lines, run


def test_foreground_sandbox_serves_and_others_attach(tmp_path: Path) -> None:
    state = tmp_path / "state"
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "labtui", "sandbox", "--port", str(port), "--state-dir",
         str(state), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=ROOT, stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        first = json.loads(proc.stdout.readline())
        assert first["type"] == "sandbox"
        assert first["endpoint_url"] == f"http://127.0.0.1:{port}"
        record = json.loads((state / "sandbox" / "sandbox.json").read_text())
        assert record["pid"] == proc.pid and record["port"] == port
        assert (state / "sandbox" / "sandbox.json").stat().st_mode & 0o077 == 0

        ec2 = boto3.client("ec2", region_name="us-east-1", endpoint_url=first["endpoint_url"],
                           aws_access_key_id="testing", aws_secret_access_key="testing")
        assert len(ec2.describe_regions()["Regions"]) > 10

        plan = run("plan", str(SAMPLE), "--sandbox", "--json", "--state-dir", str(state))
        assert plan.returncode == 0, plan.stderr
        where = json_lines(plan.stdout)[-1]["where"]
        assert where.startswith(f"sandbox http://127.0.0.1:{port} · machines: Debian 12")

        second = run("sandbox", "--state-dir", str(state))
        assert second.returncode == 2
        assert f"a sandbox already runs at http://127.0.0.1:{port} (pid {proc.pid})" in \
            second.stderr
    finally:
        os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert not (state / "sandbox" / "sandbox.json").exists()


def test_a_ctrl_c_that_lands_on_any_thread_stops_the_sandbox(tmp_path: Path) -> None:
    """The kernel hands a process's SIGINT to any of its threads. Sent here to one of the
    sandbox's other threads (tgkill), as it sometimes landed under load: the foreground
    sandbox still stops. With an untimed wait in the main thread it served on."""
    state = tmp_path / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "labtui", "sandbox", "--state-dir", str(state), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
        stdin=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        assert json.loads(proc.stdout.readline())["type"] == "sandbox"
        others = sorted(int(t) for t in os.listdir(f"/proc/{proc.pid}/task")
                        if int(t) != proc.pid)
        assert others, "the sandbox runs its servers in threads of their own"
        tgkill = ctypes.CDLL(None, use_errno=True).tgkill
        assert tgkill(proc.pid, others[-1], signal.SIGINT) == 0, ctypes.get_errno()
        out, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert not (state / "sandbox" / "sandbox.json").exists()


def test_private_sandbox_lives_and_dies_with_the_command(tmp_path: Path) -> None:
    state = tmp_path / "state"
    result = run("plan", str(SAMPLE), "--sandbox", "--json", "--state-dir", str(state))
    assert result.returncode == 0, result.stderr
    where = json_lines(result.stdout)[-1]["where"]
    assert where.startswith("sandbox http://127.0.0.1:")
    assert not list(state.glob("private-sandbox-*"))  # its folder is gone with it
