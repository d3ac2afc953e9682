"""`labtui up` as a whole process, 1 seat against 40, on a fresh sandbox.

For each class size (--seats, default 1 and 40) on a bare course (key login, no packages,
one region, setup `sleep 3`), runs `labtui up COURSE --sandbox --yes` as a process of its own
and prints its wall time with where it went, read from the time each line of its output
arrived:
  - start: process start, sandbox attach, discovery and plan (until the first line)
  - launched: network, key pair and run_instances for every seat, waited to running
  - SSH: until the first and the last seat's machine took a login (their boot)
  - setup: until the last seat was set up (the boot's cloud-init finishing, `sleep 3`)
then, on the machines now booted, `labtui rerun-setup COURSE SEAT...` of every seat with a
changed setup command (so the `sleep 3` step runs again): labtui's own fan-out as a whole
process, with no boot in it. Each round ends with `labtui down`. The sandbox (moto and a
real Linux container per machine) runs in a temporary folder and is stopped at the end.
Needs root (the machines are containers); loopback only. 40 machines booting at once are
heavy on a small computer: run it a few times only, one bench at a time:

    flock /tmp/labtui-bench.lock python bench/up.py [--seats 1 40] [--runs 1]
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bare_course, env, remove  # noqa: E402


@dataclass
class Run:
    wall: float = 0.0
    first_line: float | None = None
    running: float | None = None
    ssh: list[float] = field(default_factory=list)
    exit: int | None = None
    tail: list[str] = field(default_factory=list)




def watched(args: list[str], timeout: float = 900) -> Run:
    """Run a labtui command, stamping each line of its output as it arrives."""
    run = Run()
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "labtui", *args], cwd=ROOT, env=env(),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    for line in proc.stdout:
        now = time.perf_counter() - start
        if run.first_line is None:
            run.first_line = now
        if re.search(r"\d+ machine\(s\) running", line):
            run.running = now
        if re.match(r"s\d+: setup \(running\)", line):
            run.ssh.append(now)
        run.tail = (run.tail + [line.rstrip()])[-5:]
        if now > timeout:
            proc.kill()
    run.exit = proc.wait()
    run.wall = time.perf_counter() - start
    return run


def labtui(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labtui", *args], cwd=ROOT, env=env(),
                          capture_output=True, text=True, timeout=900)




def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seats", type=int, nargs="+", default=[1, 40])
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="labtui-bench-up-"))
    server = subprocess.Popen([sys.executable, "-m", "labtui", "sandbox", "--state-dir",
                               str(folder), "--json"], stdout=subprocess.PIPE, text=True,
                              cwd=ROOT, env=env())
    results: dict[int, list[tuple[Run, Run]]] = {}
    try:
        assert server.stdout is not None
        if not server.stdout.readline():
            raise SystemExit("the sandbox did not start")
        common = ["--sandbox", "--state-dir", str(folder)]
        for n in args.seats:
            path = folder / f"up-{n}.toml"
            seats = [f"s{i:03}" for i in range(1, n + 1)]
            for attempt in range(args.runs):
                path.write_text(bare_course(f"up-{n}", n, "sleep 3"))
                up = watched(["up", str(path), *common, "--yes"])
                if up.exit != 0:
                    print(f"  N={n}: up exited {up.exit}: {' / '.join(up.tail)}", flush=True)
                # the same class again on booted machines: a changed command runs again
                path.write_text(bare_course(f"up-{n}", n, f"sleep 3 # again {attempt}"))
                rerun = watched(["rerun-setup", str(path), *common, *seats])
                if rerun.exit != 0:
                    print(f"  N={n}: rerun-setup exited {rerun.exit}: "
                          f"{' / '.join(rerun.tail)}", flush=True)
                results.setdefault(n, []).append((up, rerun))
                print(f"  N={n}: up {up.wall:.2f} s, rerun-setup {rerun.wall:.2f} s",
                      flush=True)
                down = labtui("down", str(path), *common, "--yes", "--no-save")
                if down.returncode != 0:
                    print(f"  N={n}: down exited {down.returncode}", flush=True)
    finally:
        os.kill(server.pid, signal.SIGINT)
        server.wait(timeout=120)
        remove(folder)

    def med(values: list[float | None]) -> str:
        got = [v for v in values if v is not None]
        return f"{statistics.median(got):.2f}" if got else "-"

    print(f"\nlabtui up as a whole process, bare course (key login, no packages, setup "
          f"`sleep 3`), median of {args.runs} run(s), {os.cpu_count()} cores")
    print(f"{'N':>4} {'up s':>7} {'x 1':>5} {'start':>6} {'running':>8} {'SSH first':>10} "
          f"{'SSH last':>9} {'rerun-setup s':>14} {'x 1':>5}")
    base = results[args.seats[0]]
    base_up = statistics.median(u.wall for u, _ in base)
    base_rerun = statistics.median(r.wall for _, r in base)
    for n, rounds in results.items():
        up_s = statistics.median(u.wall for u, _ in rounds)
        rerun_s = statistics.median(r.wall for _, r in rounds)
        print(f"{n:>4} {up_s:>7.2f} {up_s / base_up:>5.2f} "
              f"{med([u.first_line for u, _ in rounds]):>6} "
              f"{med([u.running for u, _ in rounds]):>8} "
              f"{med([min(u.ssh) if u.ssh else None for u, _ in rounds]):>10} "
              f"{med([max(u.ssh) if u.ssh else None for u, _ in rounds]):>9} "
              f"{rerun_s:>14.2f} {rerun_s / base_rerun:>5.2f}")
    print("start: until the first line (process, attach, plan); running: all launched and "
          "running; SSH: a seat's first login (its machine booted); rerun-setup: every "
          "seat's setup again on the booted machines.")


if __name__ == "__main__":
    main()
