"""Seat passwords: readable, generated with ``secrets``, kept 0600, never logged."""

from __future__ import annotations

import secrets

from labtui.state import CourseState

_CONSONANTS = "bdfghjkmnprstvz"
_VOWELS = "aeiou"


def generate(words: int = 4) -> str:
    """E.g. ``kamo-ritu-sebe-vazo-47``: 4 pronounceable syllable pairs and two digits,
    about 62 bits of entropy; no look-alike characters."""
    def word() -> str:
        return "".join(secrets.choice(_CONSONANTS) + secrets.choice(_VOWELS) for _ in range(2))
    return "-".join([word() for _ in range(words)] + [f"{secrets.randbelow(100):02d}"])


def path_of(state: CourseState, seat: str):
    return state.secrets / "passwords" / seat


def get(state: CourseState, seat: str) -> str | None:
    path = path_of(state, seat)
    return path.read_text(encoding="utf-8").strip() if path.exists() else None


def ensure(state: CourseState, seat: str) -> str:
    """The seat's password, made and kept on first use (setup sets it, and a rerun sets the
    same one again)."""
    return get(state, seat) or store(state, seat, generate())


def store(state: CourseState, seat: str, password: str) -> str:
    state.write_secret(f"passwords/{seat}", password + "\n")
    return password
