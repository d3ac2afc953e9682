"""Local state: only what AWS cannot give back.

Secrets (private keys, passwords), the event log and where a running sandbox listens live in
one folder under platformdirs' user data dir, overridable with ``--state-dir`` or the
``LABTUI_STATE_DIR`` environment variable. Folders are 0700, files holding secrets 0600.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs

ENV_VAR = "LABTUI_STATE_DIR"


def default_state_dir() -> Path:
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir("labtui", appauthor=False))


def private_dir(path: Path) -> Path:
    """Create ``path`` as a 0700 folder, and each missing parent the same way; tighten it
    if it exists (callers pass folders inside the state folder, which labtui made)."""
    missing = []
    for folder in (path, *path.parents):  # up to the first that exists (most calls: path)
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)  # mkdir's mode is masked by the umask
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, data: bytes | str) -> Path:
    """Write a file only its owner can read (0600), atomically, never world-readable."""
    private_dir(path.parent)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(raw)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def append_private(path: Path, text: str) -> None:
    """Append to a file only its owner can read (0600): a log or the event log."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0),
                 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)  # one written by an older labtui, or under another umask
        os.write(fd, text.encode("utf-8"))
    finally:
        os.close(fd)


def write_json(path: Path, value: Any) -> Path:
    return write_private(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def read_json(path: Path) -> Any | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


@dataclass(frozen=True)
class StateDir:
    """The root of labtui's local state."""

    root: Path

    @classmethod
    def resolve(cls, override: str | os.PathLike[str] | None = None) -> StateDir:
        root = Path(override).expanduser() if override else default_state_dir()
        return cls(root.resolve())

    def ensure(self) -> StateDir:
        """Create the folder (0700); one that is not a folder, or cannot be made, is bad
        input (exit 2) naming where it came from."""
        from labtui.errors import InputError

        fix = (f"Fix: give --state-dir (or ${ENV_VAR}) a folder of your own, or leave it "
               "out for the default")
        if self.root.exists() and not self.root.is_dir():
            raise InputError(f"state folder {self.root}: is not a folder. {fix}")
        try:
            if self.root.is_dir():
                # A folder labtui did not make keeps its mode; one others may write to (or
                # someone else's) would let them swap the keys and passwords kept in it.
                info = self.root.stat()
                if info.st_mode & 0o022 or info.st_uid != os.geteuid():
                    who = ("belongs to another user" if info.st_uid != os.geteuid()
                           else f"can be written by others (mode {info.st_mode & 0o777:o})")
                    raise InputError(f"state folder {self.root}: {who}, so the secrets kept "
                                     f"in it would not be safe. {fix}")
            else:
                private_dir(self.root)
        except OSError as exc:
            raise InputError(f"state folder {self.root}: cannot be created "
                             f"({exc.strerror or exc.__class__.__name__}). {fix}") from None
        return self

    def course(self, course_id: str) -> CourseState:
        return CourseState(private_dir(self.root / "courses" / course_id))

    @property
    def sandbox_dir(self) -> Path:
        return self.root / "sandbox"

    @property
    def sandbox_file(self) -> Path:
        """Where a running ``labtui sandbox`` says it listens."""
        return self.sandbox_dir / "sandbox.json"


@dataclass(frozen=True)
class CourseState:
    """One course's folder: secrets, per-seat logs, the event log."""

    root: Path

    @property
    def secrets(self) -> Path:
        return private_dir(self.root / "secrets")

    @property
    def logs(self) -> Path:
        return private_dir(self.root / "logs")

    @property
    def event_log(self) -> Path:
        return self.root / "events.jsonl"

    def write_secret(self, name: str, data: bytes | str) -> Path:
        return write_private(self.secrets / name, data)

    def read_secret(self, name: str) -> str | None:
        path = self.secrets / name
        return path.read_text(encoding="utf-8") if path.exists() else None
