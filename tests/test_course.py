"""The course file: the sample parses into the expected objects; every kind of bad input
gets one message naming the file, the line (or key) and the fix."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labtui import course as course_mod
from labtui.errors import CourseError

from .conftest import DATA, SAMPLE

BAD = DATA / "bad"


def problems_of(path: Path) -> list[str]:
    with pytest.raises(CourseError) as info:
        course_mod.load(path)
    return [str(p) for p in info.value.problems]


def test_sample_course_uses_every_section() -> None:
    course = course_mod.load(SAMPLE)
    assert course.id == "cloud101-demo"
    assert course.regions == ("us-east-1", "eu-west-1", "sa-east-1")
    # five from the CSV, one inline
    assert [s.id for s in course.students] == ["ta01", "s01", "s02", "s03", "s04", "s05"]
    assert len(course.seats) == 6 and course.machines and course.machines.per == "student"
    assert course.machines.files[0].source.name == "WELCOME.md"
    assert course.clusters and course.clusters.nodes == 2
    assert [g.role for g in course.clusters.groups] == ["MASTER", "CORE"]
    assert course.clusters.groups[1].market == "spot"
    assert course.clusters.configurations[0].properties["spark.executor.memory"] == "2g"
    assert course.instance_count == 6 + 6 * 2
    assert course.storage and course.storage.data_bucket == "cloud101-demo-data"
    assert course.access and "submit-steps" in course.access.permissions
    assert course.billing and course.billing.alarms_usd == (25.0, 50.0, 100.0)
    assert course.network.ssh_cidr == "203.0.113.0/24"
    assert course.jupyter and [n for _, n in course.jupyter.template_files()] == ["lab1.ipynb"]
    assert course.jupyter.requirements and course.jupyter.requirements.name == "requirements.txt"
    assert course.jobs and len(course.jobs.entries) == 3
    assert course.jobs.entries[2].command == "python3 simulate.py --seed 3 --big"
    with pytest.raises(dataclasses.FrozenInstanceError):
        course.id = "other"  # type: ignore[misc]


def test_seats_per_group(tmp_path: Path) -> None:
    text = SAMPLE.read_text().replace('per = "student"', 'per = "group"')
    path = tmp_path / "c.toml"
    # the files it names stay inside the course's folder (one outside it is refused)
    shutil.copytree(SAMPLE.parent / "examples", tmp_path / "examples")
    path.write_text(text)
    course = course_mod.load(path)
    assert {s.id: len(s.students) for s in course.seats} == {
        "team-a": 2, "team-b": 2, "team-c": 2}
    # the replace made clusters one per group too: three machines, three clusters of two
    assert sorted(course.cluster_units) == ["team-a", "team-b", "team-c"]
    assert course.instance_count == 3 + 3 * 2


@pytest.mark.parametrize(("name", "expected"), [
    ("syntax.toml", ["syntax.toml:3: TOML syntax error"]),
    ("unknown_key.toml",
     ["unknown_key.toml:13: machines.instance_typ: is not a known key. "
      "Fix: did you mean 'instance_type'?"]),
    ("wrong_type.toml",
     ["wrong_type.toml:5: course.max_instances: must be a whole number, not the string "
      "'forty'. Fix: write it like max_instances = 40."]),
    ("duplicate_id.toml",
     ["duplicate_id.toml:13: roster.students[1].id: student id 's1' is already used at "
      "duplicate_id.toml:7"]),
    ("over_cap.toml",
     ["over_cap.toml:5: course.max_instances: the class needs 3 instances (3 machines) but "
      "max_instances is 2"]),
    ("bad_region.toml",
     ["bad_region.toml:4: course.regions[1]: 'eu-west-9' is not an AWS region. "
      "Fix: did you mean 'eu-west-3'?",
      "bad_region.toml:4: course.regions[2]: 'us-est-2' is not an AWS region. "
      "Fix: did you mean 'us-west-2'?"]),
    ("bad_email.toml",
     ["bad_email.toml:10: roster.students[0].email: 'one-at-example.edu' is not an email "
      "address"]),
    ("missing_roster.toml",
     ["missing_roster.toml:8: roster.file: 'no_such_students.csv' does not exist"]),
    ("roster_header.toml",
     ["bad_header.csv:1: unknown column 'nmae' in the header. Fix: did you mean 'name'?"]),
    ("roster_row.toml",
     ["bad_row.csv:3: 'two@example' is not an email address",
      "bad_row.csv:4: has 5 fields but the header has 4"]),
])
def test_bad_course_files(name: str, expected: list[str]) -> None:
    found = problems_of(BAD / name)
    for want in expected:
        assert any(want in p for p in found), f"{want!r} not in {found}"
    assert len(found) == len(expected), found


@pytest.mark.parametrize(("snippet", "want"), [
    ('[machines]\ninstance_type = "t3.micro"\nmarket = "spot-ish"\n',
     "machines.market: 'spot-ish' is not one of 'on-demand', 'spot'. Fix: did you mean 'spot'?"),
    ('[machines]\ninstance_type = "t3.micro"\n',
     "network.ssh_cidr: is required when the course has machines"),
    ('[network]\nssh_cidr = "10.0.0.0/33"\n', "network.ssh_cidr: '10.0.0.0/33' is not a network"),
    ('[clusters]\nrelease = "emr-7.2.0"\napplications = ["Sprak"]\n'
     '[clusters.master]\ninstance_type = "m5.xlarge"\n',
     "clusters.applications[0]: 'Sprak' is not an EMR application. Fix: did you mean 'Spark'?"),
    ('[storage]\ndata_bucket = "Bad_Bucket"\n', "storage.data_bucket: 'Bad_Bucket' is not a valid"),
    ('[billing]\nalarms_usd = [10]\n', "billing.notify: is required when billing.alarms_usd"),
    ('[sections]\nx = 1\n', "sections: is not a known key. Fix: did you mean 'sections'"),
    ('[machines]\ninstance_type = "t3.micro"\nper = "group"\n[network]\nssh_cidr = "0.0.0.0/0"\n',
     'machines.per: is "group" but student \'s1\' has no group'),
])
def test_more_bad_sections(tmp_path: Path, snippet: str, want: str) -> None:
    base = (DATA / "good_minimal.toml").read_text()
    base = base.split("[machines]")[0]
    path = tmp_path / "c.toml"
    path.write_text(base + snippet)
    found = problems_of(path)
    assert any(want.split(". Fix")[0] in p for p in found), found
    if "Fix:" in want and "sections" not in want:
        assert any(want in p for p in found), found


def test_unknown_section_names_close_match(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text((DATA / "good_minimal.toml").read_text() + '\n[storge]\ndata_bucket = "x"\n')
    assert problems_of(path) == [
        f"{path}:18: storge: is not a known key. Fix: did you mean 'storage'?"]


def test_missing_course_file() -> None:
    assert problems_of(Path("no/such/course.toml"))[0].startswith(
        "no/such/course.toml: file not found")


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labtui", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=60)


@pytest.mark.parametrize("name", sorted(p.name for p in BAD.glob("*.toml")))
def test_validate_cli_exit_2_no_traceback(name: str) -> None:
    result = _run("validate", str(BAD / name))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith("error: ") and "nothing was created" in result.stderr
    assert result.stdout == ""
