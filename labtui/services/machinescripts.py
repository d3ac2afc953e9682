"""The standard-library scripts labtui ships to machines (labtui-job on a job's worker,
labtui-boot in a seat's user-data), made whole: their shared part — the role's credentials
from IMDSv2 and AWS Signature Version 4, ``labtui/data/machine_aws.py`` — goes in at their
``#@machine_aws`` line, so each is one file on the machine and the signing code exists once."""

from __future__ import annotations

from importlib import resources

MARKER = "#@machine_aws\n"


def script(name: str) -> bytes:
    data = resources.files("labtui").joinpath("data")
    body = data.joinpath(name).read_text(encoding="utf-8")
    shared = data.joinpath("machine_aws.py").read_text(encoding="utf-8")
    shared = shared[shared.index("# ---- from labtui/data/machine_aws.py"):]
    if body.count(MARKER) != 1:
        raise RuntimeError(f"labtui/data/{name} must hold one {MARKER.strip()} line")
    return body.replace(MARKER, shared, 1).encode()
