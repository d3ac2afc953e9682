"""``labtui new``: a starter course file, written with tomli-w and checked by the loader."""

from __future__ import annotations

from pathlib import Path

import tomli_w

HEADER = """\
# A labtui course file. The full reference with every section is sample_course.toml
# (and the README). Check this file with `labtui validate {name}` and see what it would
# create with `labtui plan {name} --sandbox`.

"""


OPEN = ("0.0.0.0/0", "::/0")


def starter(course_id: str, name: str, regions: list[str], ssh_cidr: str | None = None,
            login: str | None = None) -> dict:
    """Password login only from a named address range: a world-open SSH port takes keys
    only (``labtui new`` without ``--ssh-cidr`` writes key login)."""
    login = login or ("password" if ssh_cidr and ssh_cidr not in OPEN else "key")
    return {
        "course": {"id": course_id, "name": name, "regions": regions, "max_instances": 10},
        "roster": {"students": [
            {"id": "s01", "name": "First Student", "email": "first@example.edu"},
            {"id": "s02", "name": "Second Student", "email": "second@example.edu"},
        ]},
        "machines": {"instance_type": "t3.small", "ami": "ubuntu-24.04", "login": login,
                     "packages": ["git"], "setup": []},
        "network": {"ssh_cidr": ssh_cidr or "0.0.0.0/0"},
    }


def refusal(ssh_cidr: str | None, login: str | None) -> str | None:
    """Why the flags cannot go together, or None."""
    if login == "password" and (ssh_cidr is None or ssh_cidr in OPEN):
        return ("--login password needs --ssh-cidr with the range students connect from "
                "(e.g. --ssh-cidr 203.0.113.0/24): password login open to the whole internet "
                "is guessed at within hours. Fix: add --ssh-cidr, or use --login key")
    return None


def render(path: Path, course_id: str, name: str, regions: list[str],
           ssh_cidr: str | None = None, login: str | None = None) -> str:
    header = HEADER.format(name=path.name)
    if (ssh_cidr or OPEN[0]) in OPEN:
        header += ("# SSH is open to any address, so students log in with keys. To hand out\n"
                   "# passwords instead, set [network] ssh_cidr to the range they connect\n"
                   "# from (a campus network) and [machines] login = \"password\".\n\n")
    return header + tomli_w.dumps(starter(course_id, name, regions, ssh_cidr, login))
