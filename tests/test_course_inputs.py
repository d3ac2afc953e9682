"""Course-file inputs that validate used to accept (issue 8, item 2): each is one problem naming
the file, the line, the key and a fix, and `labtui validate` exits 2 (the CLI side of every file
in tests/data/bad/ is test_course.py::test_validate_cli_exit_2_no_traceback)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labtui import checks
from labtui import course as course_mod
from labtui.errors import CourseError

from .conftest import DATA, SAMPLE

BAD = DATA / "bad"
OUTSIDE_FIX = ("Fix: move it into the course's folder, or add outside_course = true to this "
               "[[machines.files]] entry if every seat should really get it.")


def problems_of(path: Path) -> list[str]:
    with pytest.raises(CourseError) as info:
        course_mod.load(path)
    return [str(p) for p in info.value.problems]


def bad_file_problems(name: str) -> list[str]:
    """The problems of tests/data/bad/NAME, with that folder left out of the course file's
    name (CSV files are named as the course file writes them)."""
    return [p.removeprefix(f"{BAD}/") for p in problems_of(BAD / name)]


@pytest.mark.parametrize(("name", "expected"), [
    ("empty_name.toml",
     ["empty_name.toml:9: roster.students[0].name: is empty. "
      "Fix: give it a value, e.g. name = \"Ada Lovelace\"."]),
    ("empty_name_csv.toml",
     ["empty_name.csv:3: name is empty. Fix: give the student's name."]),
    ("empty_dest.toml",
     ["empty_dest.toml:17: machines.files[0].dest: is empty. "
      "Fix: give it a value, e.g. dest = \"~/README.md\"."]),
    ("not_finite.toml",
     ["not_finite.toml:6: course.budget_usd: must be a finite number, not nan. "
      "Fix: write it like budget_usd = 120.0.",
      "not_finite.toml:16: machines.max_price: must be a finite number, not inf. "
      "Fix: write it like max_price = 0.05.",
      "not_finite.toml:19: billing.alarms_usd[1]: must be a finite number, not nan. "
      "Fix: write it like alarms_usd = [50, 100, 200].",
      "not_finite.toml:21: billing.monthly_budget_usd: must be a finite number, not -inf. "
      "Fix: write it like monthly_budget_usd = 500."]),
    ("trailing_newline.toml",
     ["trailing_newline.toml:2: course.id: 'cs1\\n' must be 1-32 lowercase letters, digits and "
      "dashes (it goes into tags, key pair and bucket names). "
      "Fix: write it like id = \"cs498-fall26\".",
      "trailing_newline.toml:8: roster.students[0].id: 's1\\n' must be letters, digits, '.', "
      "'_' or '-' (at most 63), no spaces. Fix: write it like id = \"s01\".",
      "trailing_newline.toml:12: roster.students[0].email: 'one@example.edu\\n' is not an "
      "email address. Fix: write it like email = \"ada@example.edu\".",
      "trailing_newline.toml:15: machines.instance_type: 't3.micro\\n' is not an EC2 instance "
      "type. Fix: did you mean 't3.micro'?",
      "trailing_newline.toml:16: machines.user: 'ubuntu\\n' is not a valid Unix user name. "
      "Fix: did you mean 'ubuntu'?"]),
    ("control_character.toml",
     ["control_character.toml:3: course.name: holds a control character ('\\x1b' at position "
      "6), which would reach terminals and mail as is. Fix: remove it (write text only).",
      "control_character.toml:9: roster.students[0].name: holds a control character ('\\x1b' "
      "at position 3), which would reach terminals and mail as is. "
      "Fix: remove it (write text only)."]),
    ("unknown_instance_type.toml",
     ["unknown_instance_type.toml:13: machines.instance_type: 't3.mirco' is not an EC2 "
      "instance type. Fix: did you mean 't3.micro'?",
      "unknown_instance_type.toml:20: clusters.master.instance_type: 'm5.xlarg' is not an EC2 "
      "instance type. Fix: did you mean 'm5.xlarge'?",
      "unknown_instance_type.csv:3: 'c5.larg' is not an EC2 instance type. "
      "Fix: did you mean 'c5.large'?",
      "unknown_instance_type.csv:4: 'q9.huge' is not an EC2 instance type. "
      "Fix: use an EC2 instance type such as \"t3.medium\" (aws ec2 describe-instance-types)."]),
    ("bad_user.toml",
     ["bad_user.toml:14: machines.user: 'Ubuntu' is not a valid Unix user name. "
      "Fix: did you mean 'ubuntu'?"]),
    ("root_user.toml",
     ["root_user.toml:14: machines.user: 'root' cannot be the login user (every student would "
      "be root on their machine). Fix: use the image's own user, e.g. user = \"ubuntu\"."]),
    ("duplicate_column.toml",
     ["duplicate_column.csv:1: the column 'email' appears twice in the header. "
      "Fix: keep one 'email' column; the header must be id,name,email,group.",
      "duplicate_column_jobs.csv:1: the column 'instance_type' appears twice in the header. "
      "Fix: keep one 'instance_type' column; the header must be instance_type,command,name."]),
    ("dash_package.toml",
     ["dash_package.toml:14: machines.packages[1]: '--allow-unauthenticated' is not a package "
      "name (apt would read it as an option). "
      "Fix: write the package's name, e.g. packages = [\"git\", \"python3-pip\"]."]),
    ("outside_source.toml",
     ["outside_source.toml:20: machines.files[1].source: '../good_minimal.toml' is outside the "
      f"course's folder (it is {DATA.resolve() / 'good_minimal.toml'}) and would be copied to "
      f"every seat. {OUTSIDE_FIX}"]),
])
def test_bad_inputs(name: str, expected: list[str]) -> None:
    assert bad_file_problems(name) == expected


def test_validate_cli_names_the_line_and_exits_2() -> None:
    result = subprocess.run([sys.executable, "-m", "labtui", "validate",
                             str(BAD / "unknown_instance_type.toml")],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result
    assert (f"error: {BAD / 'unknown_instance_type.toml'}:13: machines.instance_type: "
            "'t3.mirco' is not an EC2 instance type. Fix: did you mean 't3.micro'?"
            in result.stderr.splitlines())
    assert "4 problems; nothing was created." in result.stderr


def _course(tmp_path: Path, machines: str) -> Path:
    base = (DATA / "good_minimal.toml").read_text().split("[machines]")[0]
    folder = tmp_path / "course"
    folder.mkdir()
    (folder / "hello.txt").write_text("hi\n")
    path = folder / "c.toml"
    path.write_text(base + "[machines]\ninstance_type = \"t3.micro\"\n" + machines
                    + "\n[network]\nssh_cidr = \"0.0.0.0/0\"\n")
    return path


def _files(source: str, extra: str = "") -> str:
    return f'[[machines.files]]\nsource = "{source}"\ndest = "~/x"\n{extra}'


def test_absolute_source_elsewhere_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "credentials"
    secret.write_text("[default]\n")
    path = _course(tmp_path, _files(str(secret)))
    assert problems_of(path) == [
        f"{path}:15: machines.files[0].source: {str(secret)!r} is outside the course's folder "
        f"(it is {secret.resolve()}) and would be copied to every seat. {OUTSIDE_FIX}"]


def test_symlink_out_of_the_course_folder_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "credentials"
    secret.write_text("[default]\n")
    path = _course(tmp_path, _files("aws"))
    os.symlink(secret, path.parent / "aws")
    assert problems_of(path) == [
        f"{path}:15: machines.files[0].source: 'aws' is outside the course's folder "
        f"(it is {secret.resolve()}) and would be copied to every seat. {OUTSIDE_FIX}"]


def test_outside_course_true_allows_it_and_inside_paths_need_nothing(tmp_path: Path) -> None:
    secret = tmp_path / "shared.txt"
    secret.write_text("shared\n")
    path = _course(tmp_path, _files("../shared.txt", "outside_course = true\n")
                   + _files("sub/../hello.txt"))
    (path.parent / "sub").mkdir()
    course = course_mod.load(path)
    assert course.machines and [f.source.name for f in course.machines.files] == [
        "shared.txt", "hello.txt"]
    path.write_text(path.read_text().replace("outside_course = true", "outside_course = 1"))
    # only an explicit true lets a file from elsewhere through
    assert problems_of(path) == [
        f"{path}:17: machines.files[0].outside_course: must be true or false, not the whole "
        "number 1. Fix: write it like outside_course = true.",
        f"{path}:15: machines.files[0].source: '../shared.txt' is outside the course's folder "
        f"(it is {secret.resolve()}) and would be copied to every seat. {OUTSIDE_FIX}"]


@pytest.mark.parametrize("snippet", [
    'properties = { "spark.x" = nan }',
    'properties = { "spark.x" = -inf }',
])
def test_non_finite_mapping_value(tmp_path: Path, snippet: str) -> None:
    path = _course(tmp_path, "")
    path.write_text(path.read_text() + '\n[clusters]\nrelease = "emr-7.2.0"\n'
                    '[clusters.master]\ninstance_type = "m5.xlarge"\n'
                    f'[[clusters.configurations]]\nclassification = "spark-defaults"\n{snippet}\n')
    found = problems_of(path)
    assert len(found) == 1 and "clusters.configurations[0].properties.spark.x: must be a " \
        "finite number" in found[0], found


def test_known_instance_types_cover_the_course_examples_and_price_table() -> None:
    import json
    prices = json.loads((Path(checks.__file__).parent / "data" / "prices.json").read_text())
    named = {t for region in prices["ec2"].values() for t in region}
    assert named and not named - checks.known_instance_types()
    course = course_mod.load(SAMPLE)
    assert course.jobs and {j.instance_type for j in course.jobs.entries} <= (
        checks.known_instance_types())


@pytest.mark.parametrize("user", ["ubuntu", "ec2-user", "admin", "_svc", "a" * 32])
def test_valid_unix_users(user: str) -> None:
    assert checks.unix_user(user) is None


@pytest.mark.parametrize("user", ["root", "Ubuntu", "1abc", "a" * 33, "ubuntu\n", "ab cd", ""])
def test_invalid_unix_users(user: str) -> None:
    assert checks.unix_user(user) is not None


def test_sample_and_minimal_still_load() -> None:
    assert course_mod.load(SAMPLE).machines
    loaded = course_mod.load(DATA / "good_minimal.toml")
    assert dataclasses.replace(loaded).id == "mini"


def test_checking_instance_types_does_not_import_moto() -> None:
    code = ("import sys\nfrom labtui import course\n"
            f"course.load({str(SAMPLE)!r})\nprint('moto' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
