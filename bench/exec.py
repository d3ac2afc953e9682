"""`labtui exec --all` against parallel-ssh on the same sandbox machines.

Brings up N seats (default 40; key login, no packages, setup `true`) on a fresh sandbox in a
temporary folder, then for each command (default `true` and `sleep 3`) prints the median
wall time over --runs runs of:
  - `labtui exec COURSE --all -- CMD` as a whole process (start, sandbox attach, discovery
    from tags, pinned host-key checks, streamed output, exit status per seat)
  - parallel-ssh's ParallelSSHClient running CMD on the same machines, as a whole process
    (a small script: import, connect, run, join) and in this process (client made, run,
    joined); it checks no host keys
  - labtui's lifecycle.exec_command in this process (what the console's exec runs)
and the ratio of labtui's whole process to parallel-ssh's (whole process and in process).
parallel-ssh is a bench-only tool (`pip install parallel-ssh`), not a labtui dependency.

The machines' addresses come from labtui's resolver (the sandbox's loopback addresses),
never from the emulator; everything dials loopback only. The 40 machines share this
computer's cores: run it a few times only, one bench at a time:

    flock /tmp/labtui-bench.lock python bench/exec.py [--seats 40] [--runs 3]
        [--commands true "sleep 3"] [--state-dir DIR]

With --state-dir DIR the bench uses the sandbox that already runs there (`labtui sandbox
--state-dir DIR`) and the course's machines if they are up, and leaves them up.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FAKE_AWS, bare_course, env, remove  # noqa: E402

# parallel-ssh in a process of its own, as a user's script would run it.
PSSH_SCRIPT = """
import json, sys
from pssh.clients import ParallelSSHClient
from pssh.config import HostConfig
hosts, user, key, command = json.loads(sys.argv[1])
client = ParallelSSHClient([h for h, _ in hosts], user=user, pkey=key,
                           host_config=[HostConfig(port=p) for _, p in hosts],
                           pool_size=len(hosts), num_retries=1, timeout=60)
output = client.run_command(command)
client.join(output)
for host in output:
    for _ in host.stdout:
        pass
bad = [h.host for h in output if h.exit_code != 0]
sys.exit(f"non-zero exit on {bad}" if bad else 0)
"""






def labtui(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labtui", *args], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=timeout)


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, env=env(), stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True, timeout=300)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{command[:4]} failed (exit {done.returncode}): "
                         f"{done.stderr.strip()[-400:]}")
    return wall


def start_sandbox(folder: str) -> subprocess.Popen:
    server = subprocess.Popen([sys.executable, "-m", "labtui", "sandbox", "--state-dir",
                               folder, "--json"], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT, env=env())
    assert server.stdout is not None
    if not server.stdout.readline():
        raise SystemExit("the sandbox did not start")
    return server




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seats", type=int, default=40)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--commands", nargs="+", default=["true", "sleep 3"])
    parser.add_argument("--state-dir", default=None)
    args = parser.parse_args()
    os.environ.update(FAKE_AWS)
    logging.disable(logging.WARNING)
    try:
        from pssh.clients import ParallelSSHClient
        from pssh.config import HostConfig
    except ImportError:
        raise SystemExit("parallel-ssh is not installed: pip install parallel-ssh (a bench "
                         "tool, not a labtui dependency)") from None

    from labtui import lifecycle
    from labtui.context import open_context
    from labtui.course import load
    from labtui.events import NullSink
    from labtui.services import keys

    own = args.state_dir is None
    scratch = tempfile.mkdtemp(prefix="labtui-bench-exec-")
    folder = scratch if own else args.state_dir
    server = start_sandbox(folder) if own else None
    path = Path(scratch) / "course.toml"
    path.write_text(bare_course(f"exec-{args.seats}", args.seats, "true"))
    course = load(path)
    rows: list[tuple[str, dict[str, float]]] = []
    try:
        print(f"bringing up {args.seats} sandbox seats…", flush=True)
        up = labtui("up", str(path), "--sandbox", "--state-dir", folder, "--yes")
        if up.returncode != 0:
            raise SystemExit(f"labtui up failed (exit {up.returncode}): "
                             f"{(up.stdout + up.stderr).strip()[-600:]}")
        ctx = open_context(course, sandbox=True, state_dir=folder, sink=NullSink())
        try:
            seats = lifecycle.status(ctx, course)
            hosts = []
            for seat in seats:
                if seat.address is None:
                    raise SystemExit(f"{seat.seat} has no address")
                host, port = seat.address.rsplit(":", 1)
                if not ipaddress.ip_address(host).is_loopback:  # only loopback is dialled
                    raise SystemExit(f"{seat.seat}: {host} is not a loopback address")
                hosts.append((host, int(port)))
            private, _ = keys.course_key(ctx.state.course(course.id))
            key_file = Path(scratch) / "course-key"
            key_file.touch(mode=0o600)
            key_file.write_text(private)
            user = course.machines.user if course.machines else "ubuntu"
            pssh_args = json.dumps([hosts, user, str(key_file), ""])

            def pssh_in_process(command: str) -> float:
                start = time.perf_counter()
                client = ParallelSSHClient([h for h, _ in hosts], user=user,
                                           pkey=str(key_file), pool_size=len(hosts),
                                           host_config=[HostConfig(port=p) for _, p in hosts],
                                           num_retries=1, timeout=60)
                output = client.run_command(command)
                client.join(output)
                wall = time.perf_counter() - start
                bad = [h.host for h in output if h.exit_code != 0]
                if bad:
                    raise SystemExit(f"parallel-ssh: non-zero exit on {bad}")
                return wall

            def labtui_in_process(command: str) -> float:
                start = time.perf_counter()
                outcomes = lifecycle.exec_command(ctx, course, None, command)
                wall = time.perf_counter() - start
                if any(o.value != 0 for o in outcomes):
                    raise SystemExit(f"labtui: failed on {[o.key for o in outcomes]}")
                return wall

            for command in args.commands:
                runs: dict[str, list[float]] = {"labtui": [], "pssh": [], "pssh_in": [],
                                                "labtui_in": []}
                whole = json.loads(pssh_args)
                whole[3] = command
                for _ in range(args.runs):
                    runs["labtui"].append(timed(
                        [sys.executable, "-m", "labtui", "exec", str(path), "--all",
                         "--sandbox", "--state-dir", folder, "--", command]))
                    runs["pssh"].append(timed([sys.executable, "-c", PSSH_SCRIPT,
                                               json.dumps(whole)]))
                    runs["pssh_in"].append(pssh_in_process(command))
                    runs["labtui_in"].append(labtui_in_process(command))
                medians = {k: statistics.median(v) for k, v in runs.items()}
                rows.append((command, medians))
                print(f"  {command!r}: " + ", ".join(
                    f"{k} {', '.join(f'{x:.2f}' for x in v)}" for k, v in runs.items()),
                      flush=True)
        finally:
            if own:
                labtui("down", str(path), "--sandbox", "--state-dir", folder, "--yes",
                       "--no-save")
            ctx.close()
    finally:
        if server is not None:
            os.kill(server.pid, signal.SIGINT)
            server.wait(timeout=60)
        remove(Path(scratch))
    print(f"\nexec on {args.seats} sandbox machines, median of {args.runs} runs, "
          f"{os.cpu_count()} cores (labtui checks each pinned host key; parallel-ssh none)")
    print(f"{'command':<12}{'labtui exec':>12}{'pssh script':>12}{'ratio':>7}"
          f"{'labtui in':>11}{'pssh in':>9}{'ratio':>7}")
    for command, m in rows:
        print(f"{command:<12}{m['labtui']:>11.2f}s{m['pssh']:>11.2f}s"
              f"{m['labtui'] / m['pssh']:>7.2f}{m['labtui_in']:>10.2f}s{m['pssh_in']:>8.2f}s"
              f"{m['labtui_in'] / m['pssh_in']:>7.2f}")
    print("labtui exec / pssh script: whole processes; in: the fan-out in one process.")
    print("labtui exec against parallel-ssh in process: " + ", ".join(
        f"{c!r} {m['labtui'] / m['pssh_in']:.2f}x" for c, m in rows))


if __name__ == "__main__":
    main()
