"""What the benches share: fake AWS credentials and the bare course they run on.

Bare: key login, no packages, one region, one setup command, so a figure measures labtui's
own fan-out (connections, host-key checks, step round trips, tags) and the machines' boot,
not package installs.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_SECURITY_TOKEN": "testing", "AWS_SESSION_TOKEN": "testing",
            "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true"}


PYCACHE = Path(os.environ.get("TMPDIR", "/tmp")) / "labtui-bench-pycache"


def env() -> dict[str, str]:
    """This process's environment with the fake credentials, for a labtui subprocess.

    With bytecode caching on (in a folder of the bench's own, not the repository): pip
    compiles an installed labtui's modules once, at install, and a labtui process measured
    here should load them the same way. Where PYTHONDONTWRITEBYTECODE is set (this
    development machine sets it), every labtui process compiled its ~100 modules anew,
    about 0.3 s of each run's start."""
    kept = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    return {**kept, **FAKE_AWS, "PYTHONPYCACHEPREFIX": str(PYCACHE)}


def bare_course(course_id: str, seats: int, setup: str) -> str:
    """A course file of ``seats`` students on t3.small machines running ``setup``."""
    rows = "\n".join(f'[[roster.students]]\nid = "s{i:03}"\nname = "Student {i}"\n'
                     f'email = "s{i}@example.edu"\n' for i in range(1, seats + 1))
    return f"""
[course]
id = "{course_id}"
name = "Bench {course_id}"
regions = ["us-east-1"]
max_instances = {seats}
{rows}
[machines]
instance_type = "t3.small"
login = "key"
setup = ["{setup}"]
[network]
ssh_cidr = "198.51.100.0/24"
"""


def remove(folder: Path) -> None:
    """Delete the bench's folder, unless something is still mounted under it."""
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()
              if line.split()[1].startswith(str(folder))]
    if mounts:
        print(f"warning: {folder} still has mounts ({', '.join(mounts[:3])}); not deleted")
    else:
        shutil.rmtree(folder, ignore_errors=True)
