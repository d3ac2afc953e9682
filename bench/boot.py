"""Boot figures of the sandbox's machines (real Linux containers): image, first boot, cost.

Prints:
  - the base image's build time (from the cached image's `ready` file; with --rebuild it
    builds one into a temporary cache folder, times it and deletes it)
  - for N machines launched at once (--counts, default 1 and 40; one run_instances per
    machine with its own user-data and pinned host key, as labtui launches): per machine the
    seconds from its run_instances call until its sshd accepts a key login with the pinned
    host key, and until its console says "Reached target Multi-User System." (cloud-init's
    final stage done); median, p90 (nearest rank) and max, and the wall time from the first
    launch to the last machine
  - CPU seconds per boot: user+sys of every process of the machine (found in /proc: the
    unshare process started with LT_LAYER=<its instance folder> and all its descendants),
    including the reaped ones (cutime+cstime), sampled once every machine has booted
  - memory per running machine after boot: PSS (and RSS) of those processes
Needs root (the machines are containers). Loopback only; the sandbox lives in a temporary
folder and is stopped at the end.

    sudo python bench/boot.py [--counts 1,40] [--rebuild] [--timeout 600]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import FAKE_AWS  # noqa: E402

BOOTED = "Reached target Multi-User System."
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Boot:
    instance_id: str = ""
    launched: float = 0.0          # perf_counter before its run_instances call
    ssh: float | None = None       # seconds from launched to a pinned-key login
    booted: float | None = None    # seconds from launched to BOOTED on the console
    error: str = ""


# ---------------------------------------------------------------------------- /proc


def _stat(pid: int) -> tuple[int, float] | None:
    """(ppid, user+sys+cutime+cstime in seconds) of a process, None when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()  # after "pid (comm)": field 3 is fields[0]
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return int(fields[1]), ticks / CLK_TCK


def _layer(pid: int) -> str | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    for item in env.split(b"\0"):
        if item.startswith(b"LT_LAYER="):
            return item[9:].decode(errors="replace")
    return None


def machine_processes(instances: Path) -> dict[str, set[int]]:
    """Instance id -> pids of its machine: the processes started with LT_LAYER in
    ``instances`` (setpriv/unshare; init clears its environment) and all their descendants
    (orphans of a machine are reparented to its init, inside its PID namespace)."""
    children: dict[int, list[int]] = {}
    roots: dict[str, list[int]] = {}
    prefix = str(instances) + os.sep
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        stat = _stat(pid)
        if stat is None:
            continue
        children.setdefault(stat[0], []).append(pid)
        layer = _layer(pid)
        if layer and layer.startswith(prefix):
            roots.setdefault(layer[len(prefix):].split(os.sep)[0], []).append(pid)
    found: dict[str, set[int]] = {}
    for iid, pids in roots.items():
        seen: set[int] = set()
        todo = list(pids)
        while todo:
            pid = todo.pop()
            if pid not in seen:
                seen.add(pid)
                todo.extend(children.get(pid, ()))
        found[iid] = seen
    return found


def cpu_seconds(pids: set[int]) -> float:
    """user+sys of the live processes plus what their reaped children used: a dead child
    counts in its parent's cutime/cstime once waited for, a live one only in its own."""
    return sum(stat[1] for pid in pids if (stat := _stat(pid)) is not None)


def memory_kib(pids: set[int]) -> tuple[int, int]:
    """(PSS, RSS) in KiB of the processes, from smaps_rollup."""
    pss = rss = 0
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()
        except OSError:
            continue
        for line in lines:
            if line.startswith("Pss:"):
                pss += int(line.split()[1])
            elif line.startswith("Rss:"):
                rss += int(line.split()[1])
    return pss, rss


def mounts_under(folder: Path) -> list[str]:
    prefix = str(folder.resolve()) + os.sep
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f if line.split()[1].startswith(prefix)]


# ---------------------------------------------------------------------------- image


def image_figure(rebuild: bool, timeout: float) -> str:
    from labtui.sandbox.image import BaseImage

    image = BaseImage()
    lines = []
    if image.ready:
        built = (image.root / image.key / "ready").read_text().strip()
        lines.append(f"base image (cached, {image.root / image.key}): {built}")
    else:
        start = time.perf_counter()
        image.ensure()
        lines.append(f"base image (not cached, built now into {image.root / image.key}): "
                     f"built in {time.perf_counter() - start:.1f} s")
    if rebuild:
        lines.append("base image rebuilt into a temporary cache folder: "
                     + rebuild_seconds(timeout))
    return "\n".join(lines)


def rebuild_seconds(timeout: float) -> str:
    """Build the image from scratch in a child process (so a timeout can end it, by its
    process group) with LABTUI_IMAGE_CACHE pointing at a temporary folder."""
    cache = Path(tempfile.mkdtemp(prefix="labtui-bench-image-"))
    code = ("from labtui.sandbox.image import BaseImage; "
            "BaseImage().ensure(lambda line: print(line, flush=True))")
    env = {**os.environ, "LABTUI_IMAGE_CACHE": str(cache)}
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        _, err = proc.communicate(timeout=timeout)
        wall = time.perf_counter() - start
        if proc.returncode != 0:
            return f"FAILED (exit {proc.returncode}): {err.strip()[-300:]}"
        ready = list(cache.glob("*/ready"))
        inner = ready[0].read_text().strip() if ready else "no ready file"
        return f"{wall:.1f} s wall ({inner})"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        return f"did not finish within {timeout:.0f} s (stopped)"
    finally:
        left = mounts_under(cache)
        if left:
            print(f"  warning: {cache} still has mounts ({', '.join(left[:3])}); not deleted",
                  flush=True)
        else:
            shutil.rmtree(cache, ignore_errors=True)


# ---------------------------------------------------------------------------- boots


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def address(hosts_file: Path, iid: str) -> tuple[str, int] | None:
    try:
        entry = json.loads(hosts_file.read_text() or "{}").get(iid)
    except (OSError, ValueError):
        return None
    return (entry["host"], int(entry["port"])) if entry else None


def wait_ssh(boot: Boot, host_key: str, user: str, pkey: Any, hosts_file: Path,
             deadline: float) -> None:
    from labtui.services import ssh

    last = "no address in hosts.json"
    while time.perf_counter() < deadline:
        where = address(hosts_file, boot.instance_id)
        if where is not None:
            try:
                client = ssh.connect(ssh.SshTarget(where[0], where[1], user, host_key,
                                                   pkey=pkey), timeout=10, attempts=1)
            except ssh.SshError as exc:
                last = str(exc)
                if "does not match" in last:  # the pinned key was refused: no retry helps
                    break
            else:
                boot.ssh = time.perf_counter() - boot.launched
                client.close()
                return
        time.sleep(0.1)
    boot.error = boot.error or f"no SSH login: {last}"


def wait_consoles(boots: list[Boot], instances: Path, deadline: float) -> None:
    pending = [b for b in boots if b.instance_id]
    while pending and time.perf_counter() < deadline:
        for boot in list(pending):
            try:
                text = (instances / boot.instance_id / "console.log").read_bytes()
            except OSError:
                continue
            if BOOTED.encode() in text:
                boot.booted = time.perf_counter() - boot.launched
                pending.remove(boot)
        time.sleep(0.05)
    for boot in pending:
        boot.error = boot.error or "console never said it booted"


@dataclass
class Round:
    n: int
    boots: list[Boot]
    wall_ssh: float | None
    wall_booted: float | None
    cpu: list[float]
    pss: list[int]
    rss: list[int]
    host_cpu: float


def boot_round(sandbox: Any, ec2: Any, n: int, timeout: float) -> Round:
    from labtui.sandbox import flavors
    from labtui.services import cloudinit, ssh
    from labtui.services.hostkeys import HostKey
    from labtui.services.machines import LAUNCH_CONCURRENCY

    flavor = flavors.FLAVORS["ubuntu-24.04"]
    course_key = HostKey.generate()
    key_name = f"bench-{n}-{time.time_ns()}"
    ec2.import_key_pair(KeyName=key_name, PublicKeyMaterial=course_key.public_line.encode())
    pkey = ssh.load_private_key(course_key.private_openssh())
    instances = sandbox.folder / "instances"
    host_keys = [HostKey.generate() for _ in range(n)]
    boots = [Boot() for _ in range(n)]
    cpu_before = sum(os.times()[:2])

    def launch(i: int) -> None:
        key = host_keys[i]
        text = cloudinit.user_data(key.private_openssh(), key.public_line)
        boots[i].launched = time.perf_counter()
        try:
            reply = ec2.run_instances(ImageId=flavor.image_id, InstanceType="t3.small",
                                      MinCount=1, MaxCount=1, KeyName=key_name, UserData=text,
                                      MetadataOptions={"HttpTokens": "required"})
            boots[i].instance_id = reply["Instances"][0]["InstanceId"]
        except Exception as exc:  # a benchmark reports, it does not stop
            boots[i].error = f"run_instances: {type(exc).__name__}: {exc}"

    start = time.perf_counter()
    deadline = start + timeout
    with ThreadPoolExecutor(max_workers=min(LAUNCH_CONCURRENCY, n)) as pool:
        list(pool.map(launch, range(n)))
    launched = [b for b in boots if b.instance_id]
    consoles = threading.Thread(target=wait_consoles, args=(launched, instances, deadline),
                                daemon=True)
    consoles.start()
    with ThreadPoolExecutor(max_workers=max(1, len(launched))) as pool:
        for i, boot in enumerate(boots):
            if boot.instance_id:
                pool.submit(wait_ssh, boot, host_keys[i].public_line, flavor.user, pkey,
                            sandbox.hosts_file, deadline)
    consoles.join(timeout=max(0.0, deadline - time.perf_counter()) + 5)
    host_cpu = sum(os.times()[:2]) - cpu_before

    def wall(attr: str) -> float | None:
        ends = [b.launched + getattr(b, attr) for b in boots if getattr(b, attr) is not None]
        return max(ends) - start if ends else None

    tree = machine_processes(instances)
    cpu, pss, rss = [], [], []
    for boot in launched:
        if boot.booted is None:
            continue
        pids = tree.get(boot.instance_id, set())
        cpu.append(cpu_seconds(pids))
        mem = memory_kib(pids)
        pss.append(mem[0])
        rss.append(mem[1])
    return Round(n, boots, wall("ssh"), wall("booted"), cpu, pss, rss, host_cpu)


def terminate(sandbox: Any, ec2: Any, boots: list[Boot], timeout: float = 120) -> None:
    """Terminate the round's instances and wait until their machines are gone."""
    ids = [b.instance_id for b in boots if b.instance_id]
    if not ids:
        return
    ec2.terminate_instances(InstanceIds=ids)
    instances = sandbox.folder / "instances"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not set(ids) & set(machine_processes(instances)):
            return
        time.sleep(0.2)
    print(f"  warning: machines of {len(ids)} terminated instances still run after "
          f"{timeout:.0f} s", flush=True)


def stop_leftovers(instances: Path) -> None:
    """Machines still running after Sandbox.stop (it should leave none): this process
    started them; end them by pid."""
    for pids in machine_processes(instances).values():
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


# ---------------------------------------------------------------------------- report


def stats(values: list[float]) -> str:
    if not values:
        return f"{'-':>7} {'-':>6} {'-':>6}"
    return (f"{statistics.median(values):>7.2f} {nearest_rank(values, 0.9):>6.2f} "
            f"{max(values):>6.2f}")


def optional(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def report(rounds: list[Round]) -> None:
    print("\nfirst boot of N machines launched at once; seconds from each machine's "
          "run_instances call")
    print(f"{'':>5} {'SSH login (pinned key)':^21} {'boot finished':^21}")
    print(f"{'N':>5} {'median':>7} {'p90':>6} {'max':>6} {'median':>7} {'p90':>6} {'max':>6}"
          f" {'wall ssh':>9} {'wall booted':>12} {'failed':>7}")
    for r in rounds:
        ssh = [b.ssh for b in r.boots if b.ssh is not None]
        booted = [b.booted for b in r.boots if b.booted is not None]
        failed = sum(1 for b in r.boots if b.ssh is None or b.booted is None)
        print(f"{r.n:>5} {stats(ssh)} {stats(booted)} {optional(r.wall_ssh):>9} "
              f"{optional(r.wall_booted):>12} {failed:>7}")
    print("\ncost per machine, sampled once all N had booted (its processes in /proc)")
    print(f"{'N':>5} {'CPU s/boot':>11} {'max CPU s':>10} {'PSS MiB':>8} {'RSS MiB':>8} "
          f"{'host CPU s/boot':>16}")
    for r in rounds:
        if not r.cpu:
            print(f"{r.n:>5} {'-':>11}")
            continue
        print(f"{r.n:>5} {statistics.mean(r.cpu):>11.2f} {max(r.cpu):>10.2f} "
              f"{statistics.mean(r.pss) / 1024:>8.1f} {statistics.mean(r.rss) / 1024:>8.1f} "
              f"{r.host_cpu / r.n:>16.2f}")
    print("  CPU: user+sys of a machine's processes incl. reaped children (init, cloud-init, "
          "sshd, the login);\n  host CPU: this process (moto, machine manager, metadata "
          "servers, the SSH probes) during the round.")
    for r in rounds:
        for b in r.boots:
            if b.error:
                print(f"  N={r.n} {b.instance_id or '(not launched)'}: {b.error}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1,40",
                        help="machines launched at once per round, comma-separated")
    parser.add_argument("--rebuild", action="store_true",
                        help="also build the base image from scratch in a temporary folder")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="seconds per phase (image build, each round's boots)")
    args = parser.parse_args()
    try:
        counts = [int(c) for c in args.counts.split(",") if c.strip()]
    except ValueError:
        parser.error("--counts takes whole numbers separated by commas, e.g. 1,40")
    if not counts or min(counts) < 1:
        parser.error("--counts needs at least one count of 1 or more")
    if os.geteuid() != 0:
        print("bench/boot.py: the sandbox's machines are Linux containers and need root; "
              "run it as root (e.g. sudo python bench/boot.py).")
        return 2
    from labtui.sandbox.container import runtime_problem

    problem = runtime_problem()
    if problem:
        print(f"bench/boot.py: no sandbox machines here: {problem}")
        return 2
    os.environ.update(FAKE_AWS)
    logging.disable(logging.WARNING)

    import boto3

    from labtui.sandbox.runtime import Sandbox
    from labtui.services import ssh

    ssh.set_loopback_only(True)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"sandbox machine boot, {os.cpu_count()} cores, Linux {platform.release()}, "
          f"load average before: {load}", flush=True)
    print(image_figure(args.rebuild, args.timeout), flush=True)
    folder = Path(tempfile.mkdtemp(prefix="labtui-bench-boot-"))
    sandbox = None
    rounds: list[Round] = []
    try:
        sandbox = Sandbox(folder / "sandbox").start()
        ec2 = boto3.client("ec2", "us-east-1", endpoint_url=sandbox.endpoint_url)
        for n in counts:
            r = boot_round(sandbox, ec2, n, args.timeout)
            rounds.append(r)
            ok = sum(1 for b in r.boots if b.booted is not None and b.ssh is not None)
            print(f"  N={n}: {ok}/{n} booted, last SSH login {optional(r.wall_ssh)} s, "
                  f"last boot finished {optional(r.wall_booted)} s", flush=True)
            terminate(sandbox, ec2, r.boots)
    finally:
        if sandbox is not None:
            sandbox.stop()
            stop_leftovers(sandbox.folder / "instances")
        if mounts_under(folder):
            print(f"  warning: mounts left under {folder}; not deleted")
        else:
            shutil.rmtree(folder, ignore_errors=True)
    report(rounds)
    return 1 if any(b.error for r in rounds for b in r.boots) else 0


if __name__ == "__main__":
    sys.exit(main())
