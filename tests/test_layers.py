"""The layers stay apart: the work never imports textual, the screens never import boto3,
botocore or paramiko (DESIGN.md "Layers"). Checked in a fresh interpreter and on the source."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SERVICES = sorted(p.stem for p in (ROOT / "labtui" / "services").glob("*.py")
                  if p.stem != "__init__")
SCREENS = sorted((ROOT / "labtui" / "screens").glob("*.py"))
FORBIDDEN_IN_SCREENS = ("boto3", "botocore", "paramiko", "moto")


def imported_in_fresh_python(modules: list[str]) -> set[str]:
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n"
            "    importlib.import_module(name)\n"
            "print('\\n'.join(sorted(sys.modules)))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_headless_modules_do_not_import_textual() -> None:
    modules = [f"labtui.services.{name}" for name in SERVICES] + [
        "labtui.course", "labtui.events", "labtui.errors", "labtui.context", "labtui.state"]
    loaded = imported_in_fresh_python(modules)
    assert "labtui.services.aws" in loaded
    assert not {m for m in loaded if m == "textual" or m.startswith("textual.")}


def test_cli_does_not_import_textual() -> None:
    if not (ROOT / "labtui" / "cli.py").exists():
        pytest.skip("labtui/cli.py is not written yet")
    loaded = imported_in_fresh_python(["labtui.cli"])
    assert "textual" not in loaded, "labtui.cli must import labtui.app lazily (inside main)"


def test_the_brief_one_liner() -> None:
    done = subprocess.run(
        [sys.executable, "-c",
         "import labtui.services.aws, labtui.services.regions, labtui.services.inventory, "
         "labtui.course; import sys; assert 'textual' not in sys.modules"],
        capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", SCREENS, ids=lambda p: p.name)
def test_screens_do_not_import_aws_or_ssh_libraries(path: Path) -> None:
    bad = {name for name in imports_of(path)
           if name.split(".")[0] in FORBIDDEN_IN_SCREENS}
    assert not bad, f"{path.name} imports {sorted(bad)}: call labtui.services instead"
    text = path.read_text(encoding="utf-8")
    for lib in FORBIDDEN_IN_SCREENS:
        assert f"__import__(\"{lib}" not in text and f"import_module(\"{lib}" not in text


def test_the_app_module_does_not_import_aws_or_ssh_libraries() -> None:
    bad = {name for name in imports_of(ROOT / "labtui" / "app.py")
           if name.split(".")[0] in FORBIDDEN_IN_SCREENS}
    assert not bad


def test_screens_are_found() -> None:
    names = {p.name for p in SCREENS}
    assert {"regions.py", "quotas.py", "roster.py", "machines.py", "clusters.py"} <= names


def test_the_plan_is_made_without_aws_libraries() -> None:
    """plan.py works on plain data (labtui.model): no boto3, botocore or paramiko loaded."""
    loaded = imported_in_fresh_python(["labtui.plan", "labtui.model"])
    assert "labtui.plan" in loaded
    assert not {m for m in loaded if m.split(".")[0] in FORBIDDEN_IN_SCREENS}, sorted(
        m for m in loaded if m.split(".")[0] in FORBIDDEN_IN_SCREENS)


def test_import_linter_contracts_are_kept() -> None:
    """The contracts in pyproject.toml ([tool.importlinter]), over the installed package."""
    done = subprocess.run(
        [sys.executable, "-c",
         "import sys; from importlinter.cli import lint_imports; sys.exit(lint_imports())"],
        capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "broken" in done.stdout and " 0 broken" in done.stdout


def test_the_app_is_what_the_screens_ask_for() -> None:
    """LabApp implements the Protocol the screens type against (screens/host.py)."""
    from labtui.app import LabApp
    from labtui.course import load
    from labtui.screens.host import Lab

    app = LabApp(load(ROOT / "sample_course.toml"), sandbox=True)
    assert isinstance(app, Lab)
    missing = [name for name in ("connected", "refused", "start_job", "confirm_then_job",
                                 "ask_from_thread", "log_event", "load_view")
               if not callable(getattr(LabApp, name, None))]
    assert not missing


def test_every_module_imports_on_its_own() -> None:
    """No import cycle hides behind the order the app happens to import in: each module of
    labtui is imported first, in a Python with no labtui module loaded (a bench or a script
    importing labtui.services.machines alone once met machines → images → teardown →
    bootevents → machines)."""
    names = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts)
                   for p in (ROOT / "labtui").rglob("*.py")
                   if p.stem != "__main__" and "guest" not in p.parts
                   and "data" not in p.parts)
    names = [n.removesuffix(".__init__") for n in names]
    code = ("import importlib, sys, traceback\n"
            f"failed = []\n"
            f"for name in {names!r}:\n"
            "    for loaded in [m for m in sys.modules if m.split('.')[0] == 'labtui']:\n"
            "        del sys.modules[loaded]\n"
            "    try:\n"
            "        importlib.import_module(name)\n"
            "    except Exception as exc:\n"
            "        failed.append(f'{name}: {type(exc).__name__}: {exc}')\n"
            "print('\\n'.join(failed))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert len(names) > 60
    assert done.stdout.strip() == "", done.stdout
