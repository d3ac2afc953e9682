"""The end-of-run check finds what a run left running (tests/leftovers.py)."""

from __future__ import annotations

import os
import subprocess
import sys

from . import leftovers


def test_a_process_the_run_started_is_found_and_ended() -> None:
    token = os.environ[leftovers.MARKER]  # set for this run by conftest
    # detached from pytest (its own session, parent gone): found by the marker it inherited
    outer = subprocess.run(
        [sys.executable, "-c", "import subprocess, sys; print(subprocess.Popen("
         "['sleep', '60'], start_new_session=True, stdout=subprocess.DEVNULL, "
         "stderr=subprocess.DEVNULL).pid)"],
        capture_output=True, text=True, check=True, timeout=30)
    orphan = int(outer.stdout)
    found = dict(leftovers.left_behind(token))
    assert orphan in found and found[orphan] == "sleep 60"
    leftovers.end([orphan])
    assert orphan not in dict(leftovers.left_behind(token))
    assert orphan not in dict(leftovers.left_behind("another-run"))
