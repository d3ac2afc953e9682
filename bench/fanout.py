"""Fan-out figures on the sandbox: setup wall time as the class grows, and AWS API calls.

For N seats (default 1, 10, 50, 100) whose setup takes a fixed time (one `sleep` as the
setup command, key login, no packages: the simulated machines all share this computer's
cores, so the course keeps their own work out of the figure and measures labtui's fan-out:
connections, host-key checks, step round trips, tags), prints the wall time of `up`'s
launch and of setup against the one-seat time, and the AWS API calls that `up`, one `status`
refresh and `down` make.
Aim: 100 seats in under 1.5x the time of one; status calls constant in N (per region).
Everything runs on loopback (moto and the sandbox's machines) in a temporary folder.

    python bench/fanout.py [--seats 1 10 50 100] [--setup-seconds 5] [--concurrency N]
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import bare_course  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seats", type=int, nargs="+", default=[1, 10, 50, 100])
    parser.add_argument("--setup-seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=None,
                        help="seats set up at once (default: every seat, as labtui does)")
    args = parser.parse_args()
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    logging.disable(logging.WARNING)

    from labtui import lifecycle
    from labtui.context import open_context
    from labtui.course import load

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        # The machines run in their own process (as real ones run elsewhere): a foreground
        # `labtui sandbox` that this script starts and ends by its PID.
        server = subprocess.Popen([sys.executable, "-m", "labtui", "sandbox", "--state-dir",
                                   folder, "--json"], stdout=subprocess.PIPE, text=True,
                                  cwd=ROOT)
        assert server.stdout is not None
        server.stdout.readline()
        ctx = open_context(None, sandbox=True, state_dir=folder)
        try:
            for n in args.seats:
                path = Path(folder) / f"bench{n}.toml"
                path.write_text(bare_course(f"bench-{n}", n, f"sleep {args.setup_seconds}"))
                course = load(path)
                ctx.aws.calls.reset()
                start = time.perf_counter()
                lifecycle.up(ctx, course, skip_setup=True)
                launch_s = time.perf_counter() - start
                up_calls = ctx.aws.calls.total
                start = time.perf_counter()
                outcomes = lifecycle.setup(ctx, course, concurrency=args.concurrency, wait=120)
                setup_s = time.perf_counter() - start
                failed = sum(not o.ok for o in outcomes)
                ctx.aws.calls.reset()
                lifecycle.status(ctx, course)
                status_calls = ctx.aws.calls.total
                ctx.aws.calls.reset()
                lifecycle.down(ctx, course)
                down_calls = ctx.aws.calls.total
                rows.append((n, launch_s, setup_s, failed, up_calls, status_calls, down_calls))
                print(f"  N={n}: launch {launch_s:.2f} s, setup {setup_s:.2f} s", flush=True)
        finally:
            ctx.close()
            os.kill(server.pid, signal.SIGINT)
            server.wait(timeout=30)
    base = rows[0][2]
    print(f"\nsetup of N sandbox seats, each setup ~{args.setup_seconds:g} s of sleep, "
          f"concurrency {args.concurrency or 'every seat'}, {os.cpu_count()} cores")
    print(f"{'N':>5} {'launch s':>9} {'setup s':>8} {'x one seat':>11} {'failed':>7} "
          f"{'up calls':>9} {'status calls':>13} {'down calls':>11}")
    for n, launch_s, setup_s, failed, up_calls, status_calls, down_calls in rows:
        print(f"{n:>5} {launch_s:>9.2f} {setup_s:>8.2f} {setup_s / base:>11.2f} {failed:>7} "
              f"{up_calls:>9} {status_calls:>13} {down_calls:>11}")


if __name__ == "__main__":
    main()
