"""Course files for tests: one writer, so each test states only what it changes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

# One EMR cluster per student: an on-demand m5.xlarge master, two spot m5.xlarge core nodes.
CLUSTER = """
[clusters]
release = "emr-7.2.0"
applications = ["Spark"]
[clusters.master]
instance_type = "m5.xlarge"
[clusters.core]
instance_type = "m5.xlarge"
count = 2
market = "spot"
bid_price = 0.05
"""


def roster(students: int) -> str:
    return "\n".join(f'[[roster.students]]\nid = "s{i:02}"\nname = "Student {i}"\n'
                     f'email = "s{i}@example.edu"\n' for i in range(1, students + 1))


def write_course(tmp_path: Path, course_id: str, *, students: int = 3,
                 regions: Sequence[str] = ("us-east-1",), max_instances: int = 20,
                 course_extra: str = "", machines: str = "", extra: str = "") -> Path:
    """A course with ``students`` inline students and t3.small machines (plus ``machines``
    keys), SSH from a documentation network, and ``extra`` sections at the end."""
    path = tmp_path / "course.toml"
    path.write_text(f"""
[course]
id = "{course_id}"
name = "{course_id.title()}"
regions = [{", ".join(f'"{r}"' for r in regions)}]
max_instances = {max_instances}
{course_extra}

{roster(students)}
[machines]
instance_type = "t3.small"
{machines}
[network]
ssh_cidr = "198.51.100.0/24"
{extra}
""")
    return path
