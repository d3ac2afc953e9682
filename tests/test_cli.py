"""The headless command line: one grammar, --help everywhere, exit codes, JSON lines."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from labtui.cli import normalize
from labtui.course import load

from .conftest import ROOT, SAMPLE

SUBCOMMANDS = ["open", "validate", "plan", "new", "sandbox"]


def run(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "labtui", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=timeout, env={**os.environ, **(env or {})},
                          stdin=subprocess.DEVNULL)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.startswith("labtui ")


@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_help_for_every_subcommand(sub: str) -> None:
    result = run(sub, "--help")
    assert result.returncode == 0
    assert f"usage: labtui {sub}" in result.stdout


def test_top_level_help_lists_subcommands() -> None:
    result = run("--help")
    assert result.returncode == 0
    for sub in SUBCOMMANDS:
        assert sub in result.stdout


def test_no_arguments_is_a_usage_error() -> None:
    result = run()
    assert result.returncode == 2 and "usage: labtui" in result.stderr


def test_unknown_flag_names_the_flag_and_the_fix() -> None:
    result = run("validate", str(SAMPLE), "--frobnicate")
    assert result.returncode == 2
    assert "unrecognized arguments: --frobnicate" in result.stderr
    assert "Fix: see `labtui validate --help`" in result.stderr
    assert "Traceback" not in result.stderr


def test_one_grammar_options_before_or_after() -> None:
    assert normalize(["--sandbox", "course.toml"]) == ["open", "--sandbox", "course.toml"]
    assert normalize(["course.toml", "--read-only"]) == ["open", "course.toml", "--read-only"]
    assert normalize(["--sandbox", "plan", "c.toml", "--json"]) == [
        "plan", "--sandbox", "c.toml", "--json"]
    assert normalize(["--profile", "plan", "validate", "c.toml"]) == [
        "validate", "--profile", "plan", "c.toml"]


def test_validate_ok_and_json() -> None:
    result = run("validate", str(SAMPLE))
    assert result.returncode == 0
    assert "OK — Cloud Computing 101 (demo) (cloud101-demo): 6 students" in result.stdout
    result = run("validate", str(SAMPLE), "--json")
    [facts] = json_lines(result.stdout)
    assert facts["type"] == "valid" and facts["instances"] == 18 and facts["max_instances"] == 30


def test_validate_json_problems_are_json_lines(tmp_path: Path) -> None:
    bad = tmp_path / "c.toml"
    bad.write_text('[course]\nid = "BAD ID"\n')
    result = run("validate", str(bad), "--json")
    assert result.returncode == 2
    problems = json_lines(result.stdout)
    assert {p["type"] for p in problems} == {"problem"}
    keys = {p["key"] for p in problems}
    assert {"course.id", "course.name", "course.regions", "course.max_instances", "roster"} <= keys
    assert all(p["fix"] for p in problems)


def test_new_writes_a_valid_starter(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    result = run("new", str(path), "--id", "bio-101", "--region", "eu-west-1",
                 "--region", "eu-central-1")
    assert result.returncode == 0, result.stderr
    assert run("validate", str(path)).returncode == 0
    course = load(path)
    assert course.id == "bio-101" and course.regions == ("eu-west-1", "eu-central-1")
    again = run("new", str(path))
    assert again.returncode == 2 and "already exists" in again.stderr and "--force" in again.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--id", "Not Valid"], "--id 'Not Valid' must be 1-32 lowercase"),
    (["--region", "mars-north-1"], "--region 'mars-north-1' is not an AWS region"),
])
def test_new_bad_flags(tmp_path: Path, args: list[str], message: str) -> None:
    path = tmp_path / "x.toml"
    result = run("new", str(path), *args)
    assert result.returncode == 2 and message in result.stderr
    assert not path.exists()


def test_sandbox_bad_port() -> None:
    result = run("sandbox", "--port", "70000")
    assert result.returncode == 2 and "--port 70000 is not a TCP port" in result.stderr


def test_plan_on_the_sandbox(sandbox_state) -> None:
    result = run("plan", str(SAMPLE), "--sandbox", "--json",
                 env={"LABTUI_STATE_DIR": str(sandbox_state.root)})
    assert result.returncode == 0, result.stderr
    lines = json_lines(result.stdout)
    regions = [line for line in lines if line["type"] == "region"]
    assert [r["region"] for r in regions] == ["us-east-1", "eu-west-1", "sa-east-1"]
    first = regions[0]
    # 6 t3.small machines (2 vCPUs) + 6 clusters x 3 m5.xlarge (4 vCPUs)
    assert first["machines_to_create"] == 6 and first["clusters_to_create"] == 6
    assert first["instance_types"] == {"m5.xlarge": 12, "t3.small": 6}
    assert first["vcpus"] == 6 * 2 + 12 * 4
    summary = lines[-1]
    assert summary["type"] == "summary" and summary["instances"] == 18
    assert summary["where"].startswith("sandbox http://127.0.0.1:")


def test_plan_human_output(sandbox_state) -> None:
    result = run("plan", str(SAMPLE), "--sandbox",
                 env={"LABTUI_STATE_DIR": str(sandbox_state.root)})
    assert result.returncode == 0, result.stderr
    assert "us-east-1" in result.stdout and "within the cap" in result.stdout


def test_the_console_views_of_the_grammar_are_the_consoles() -> None:
    """`labtui COURSE --view V` offers exactly the console's views (grammar.py stays light:
    it cannot import the screens to ask them)."""
    from labtui.grammar import CONSOLE_VIEWS
    from labtui.screens.main import DEFAULT_VIEW, VIEW_IDS

    assert sorted(CONSOLE_VIEWS) == sorted(VIEW_IDS)
    from labtui.grammar import build_parser

    assert build_parser().parse_args(["open", "c.toml"]).view == DEFAULT_VIEW
