"""``labtui new``: a starter course file, written with tomli-w and checked by the loader."""

from __future__ import annotations

from pathlib import Path

import tomli_w

HEADER = """\
# A labtui course file. The full reference with every section is sample_course.toml
# (and the README). Check this file with `labtui validate {name}` and see what it would
# create with `labtui plan {name} --sandbox`.

"""


def starter(course_id: str, name: str, regions: list[str]) -> dict:
    return {
        "course": {"id": course_id, "name": name, "regions": regions, "max_instances": 10},
        "roster": {"students": [
            {"id": "s01", "name": "First Student", "email": "first@example.edu"},
            {"id": "s02", "name": "Second Student", "email": "second@example.edu"},
        ]},
        "machines": {"instance_type": "t3.small", "ami": "ubuntu-24.04", "login": "password",
                     "packages": ["git"], "setup": []},
        "network": {"ssh_cidr": "0.0.0.0/0"},
    }


def render(path: Path, course_id: str, name: str, regions: list[str]) -> str:
    return HEADER.format(name=path.name) + tomli_w.dumps(starter(course_id, name, regions))
