"""Fan-out: every seat at once by default (one wave for a class), a lower --concurrency when
asked, handshakes paced per address (not across addresses), limits from this computer."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest

from labtui.grammar import build_parser
from labtui.services.fanout import Pacer, capacity, fan_out


class Gauge:
    """Counts items in flight and keeps the highest count seen."""

    def __init__(self) -> None:
        self.now = self.most = 0
        self._lock = threading.Lock()

    def __enter__(self) -> Gauge:
        with self._lock:
            self.now += 1
            self.most = max(self.most, self.now)
        return self

    def __exit__(self, *_: object) -> None:
        with self._lock:
            self.now -= 1


def test_every_item_runs_at_once_by_default() -> None:
    # Each item waits until all 40 are in flight: with a cap below 40 the barrier breaks.
    barrier = threading.Barrier(40, timeout=20)
    gauge = Gauge()

    def work(item: int) -> int:
        with gauge:
            barrier.wait()
        return item * 2

    outcomes = fan_out(range(40), str, work, task="exec")
    assert [o.error for o in outcomes] == [""] * 40
    assert [o.value for o in outcomes] == [i * 2 for i in range(40)]
    assert gauge.most == 40


def test_concurrency_lowers_the_number_in_flight() -> None:
    barrier = threading.Barrier(5, timeout=20)  # groups of 5 meet, so 5 are in flight
    gauge = Gauge()

    def work(item: int) -> None:
        with gauge:
            barrier.wait()

    outcomes = fan_out(range(20), str, work, concurrency=5)
    assert all(o.ok for o in outcomes) and gauge.most == 5


def test_each_failure_is_named_and_the_rest_go_on() -> None:
    def work(item: int) -> int:
        if item % 3 == 0:
            raise RuntimeError(f"item {item} broke")
        return item

    outcomes = fan_out(range(7), lambda i: f"s{i}", work)
    assert [o.key for o in outcomes] == [f"s{i}" for i in range(7)]
    assert {o.key: o.error for o in outcomes if not o.ok} == {
        "s0": "item 0 broke", "s3": "item 3 broke", "s6": "item 6 broke"}


def test_cancelled_while_running_ends_the_running_and_starts_no_queued() -> None:
    """Cancelled (the console closing) mid-way: on_interrupt ends what runs, as Ctrl-C does,
    and the queued items never start; each has its outcome."""
    release = threading.Event()
    started: list[str] = []
    flag = {"cancelled": False}

    both = threading.Barrier(2)

    def work(item: str) -> str:
        started.append(item)
        both.wait(timeout=10)
        flag["cancelled"] = True            # cancelled while a and b run
        if not release.wait(timeout=10):    # what on_interrupt's ending looks like here
            return "ran to its end"
        raise RuntimeError("ended")

    outcomes = fan_out(["a", "b", "c", "d"], str, work, concurrency=2,
                       cancelled=lambda: flag["cancelled"], on_interrupt=release.set)
    assert sorted(started) == ["a", "b"]
    assert [(o.key, o.error) for o in outcomes] == [
        ("a", "ended"), ("b", "ended"), ("c", "cancelled"), ("d", "cancelled")]


def test_handshakes_are_paced_per_address_not_across_addresses() -> None:
    pacer = Pacer(limit=2)
    gauges = {"10.0.0.1": Gauge(), "10.0.0.2": Gauge()}
    # 4 handshakes meet at once: possible only if both addresses have 2 in flight together.
    barrier = threading.Barrier(4, timeout=20)

    def work(item: int) -> None:
        address = "10.0.0.1" if item % 2 else "10.0.0.2"
        with pacer.slot(address), gauges[address]:
            barrier.wait()

    outcomes = fan_out(range(8), str, work)
    assert all(o.ok for o in outcomes), [o.error for o in outcomes]
    assert [g.most for g in gauges.values()] == [2, 2]


def test_capacity_raises_the_open_files_limit_a_class_needs() -> None:
    code = """
import resource
from labtui.services.fanout import FILES_KEPT, FILES_PER_ITEM, capacity
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (128, hard))
low = capacity()
wanted = FILES_KEPT + FILES_PER_ITEM * 500
enough = hard == resource.RLIM_INFINITY or hard >= wanted
print(low, capacity(500), resource.getrlimit(resource.RLIMIT_NOFILE)[0], int(enough))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.split()
    low, high, soft, enough = map(int, out)
    assert low == (128 - 64) // 4  # what 128 open files hold
    if not enough:
        pytest.skip("the hard open-files limit here is below what 500 connections need")
    assert soft >= 64 + 4 * 500 and high >= 500


@pytest.mark.parametrize("command", [["up", "c.toml"], ["rerun-setup", "c.toml", "s01"],
                                     ["exec", "c.toml", "--all"]])
def test_concurrency_defaults_to_every_seat(command: list[str]) -> None:
    assert build_parser().parse_args(command).concurrency is None
    assert build_parser().parse_args([*command[:2], "--concurrency", "7",
                                      *command[2:]]).concurrency == 7
    assert capacity() >= 1
