"""Start-up figures: how long until the instructor can act.

Prints median wall times (over --runs runs) of:
  - `labtui --version`            (interpreter + CLI import)
  - `labtui validate COURSE`      (course file, roster and job list parsed and checked)
  - sandbox start                 (moto emulator + SSH host manager on 127.0.0.1)
  - console ready                 (LabApp mounted in a headless terminal, roster shown,
                                   context open on a private sandbox, first workers done)
Loopback only; nothing is written outside a temporary state folder.

    python bench/startup.py [--runs 5] [--course sample_course.toml]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def timed_process(args: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "labtui", *args], check=True, cwd=ROOT,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sandbox_start(runs: int) -> float:
    from labtui.sandbox.runtime import Sandbox

    times = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            box = Sandbox(Path(folder)).start()
            times.append(time.perf_counter() - start)
            box.stop()
    return statistics.median(times)


async def console_ready(course_path: Path) -> tuple[float, float]:
    from labtui.app import LabApp
    from labtui.course import load

    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        app = LabApp(load(course_path), sandbox=True, state_dir=folder)
        async with app.run_test(size=(120, 40)) as pilot:
            mounted = time.perf_counter() - start
            await app.workers.wait_for_complete()
            await pilot.pause()
            ready = time.perf_counter() - start
    return mounted, ready


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--course", default=str(ROOT / "sample_course.toml"))
    args = parser.parse_args()
    os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
    print(f"labtui start-up, median of {args.runs} runs on {os.cpu_count()} cores")
    print(f"  labtui --version           {timed_process(['--version'], args.runs):6.3f} s")
    print(f"  labtui validate COURSE     "
          f"{timed_process(['validate', args.course], args.runs):6.3f} s")
    print(f"  sandbox start              {sandbox_start(args.runs):6.3f} s")
    mounted, ready = asyncio.run(console_ready(Path(args.course)))
    print(f"  console mounted            {mounted:6.3f} s")
    print(f"  console ready (data shown) {ready:6.3f} s")


if __name__ == "__main__":
    main()
