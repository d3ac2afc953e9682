"""A small typed reader over parsed TOML that collects one Problem per mistake.

Each section is read key by key with the type and constraints it must have; whatever is left
over at ``finish()`` is an unknown key, reported with a did-you-mean from the keys the section
does know. Nothing here knows about courses: course.py describes the sections.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from labtui.errors import Problem
from labtui.tomlpos import KeyLines

_MISSING = object()

# A check returns None when the value is fine, else a message or (message, fix).
Check = Callable[[Any], "str | tuple[str, str] | None"]

_TYPE_NAMES = {
    str: "a string",
    int: "a whole number",
    float: "a number",
    bool: "true or false",
    list: "a list",
    dict: "a table",
}


def describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int):
        return f"the whole number {value}"
    if isinstance(value, float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a table"
    return type(value).__name__


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # all but tab and newline


def _not_finite(value: Any) -> bool:
    """TOML allows nan, inf and -inf; no number in a course file means any of them."""
    return isinstance(value, float) and not math.isfinite(value)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else ""


class Reader:
    """Collects problems for one file, with line numbers from its text."""

    def __init__(self, file: str, text: str | None = None) -> None:
        self.file = file
        self.lines = KeyLines(text) if text is not None else None
        self.problems: list[Problem] = []

    def problem(self, key: str, message: str, fix: str = "", line: int | None = None) -> None:
        if line is None and self.lines is not None:
            line = self.lines.line_of(key)
        self.problems.append(Problem(self.file, line, key, message, fix))

    def table(self, data: dict[str, Any], path: str = "") -> Table:
        return Table(self, data, path)


class Table:
    """One TOML table being read; remembers which keys were asked for."""

    def __init__(self, reader: Reader, data: dict[str, Any], path: str) -> None:
        self.reader = reader
        self.data = data
        self.path = path
        self.known: list[str] = []
        self.missing: dict[str, Problem] = {}

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def problem(self, name: str, message: str, fix: str = "") -> None:
        self.reader.problem(self.key(name), message, fix)

    def has(self, name: str) -> bool:
        return name in self.data

    def value(self, name: str, kinds: tuple[type, ...], *, required: bool = False,
              default: Any = None, example: str = "") -> Any:
        self.known.append(name)
        value = self.data.get(name, _MISSING)
        if value is _MISSING:
            if required:
                fix = f"add it, e.g. {example}" if example else "add it"
                self.problem(name, "is required but missing", fix)
                self.missing[name] = self.reader.problems[-1]
            return default
        if int in kinds and float not in kinds and isinstance(value, bool):
            ok = False
        elif float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        else:
            ok = isinstance(value, kinds) and not (bool not in kinds and isinstance(value, bool))
        if not ok:
            wanted = " or ".join(_TYPE_NAMES[k] for k in kinds)
            fix = f"write it like {example}" if example else f"give {wanted}"
            self.problem(name, f"must be {wanted}, not {describe(value)}", fix)
            return default
        if _not_finite(value):
            self.problem(name, f"must be a finite number, not {value}",
                         f"write it like {example}" if example else "give a number such as 1.5")
            return default
        return value

    def text(self, name: str, *, required: bool = False, default: str | None = None,
            example: str = "", choices: Sequence[str] | None = None,
            check: Check | None = None) -> Any:
        value = self.value(name, (str,), required=required, default=_MISSING, example=example)
        if value is _MISSING or value is None:
            return default
        control = _CONTROL.search(value)
        if control:
            self.problem(name, f"holds a control character ({control.group()!r} at position "
                         f"{control.start()}), which would reach terminals and mail as is",
                         "remove it (write text only)")
            return default
        if required and not value.strip():
            # an empty required string is as missing as no key at all
            self.problem(name, "is empty",
                         f"give it a value, e.g. {example}" if example else "give it a value")
            return default
        if choices is not None and value not in choices:
            hint = did_you_mean(value, choices)
            listed = ", ".join(repr(c) for c in choices)
            self.problem(name, f"{value!r} is not one of {listed}",
                         hint or f"use one of {listed}")
            return default
        if check is not None and self._failed(name, check(value), example):
            return default
        return value

    def _failed(self, name: str, result: str | tuple[str, str] | None, example: str) -> bool:
        """Report what a check function returned: None, a message, or (message, fix)."""
        if not result:
            return False
        message, fix = result if isinstance(result, tuple) else (
            result, f"write it like {example}" if example else "")
        self.problem(name, message, fix)
        return True

    def integer(self, name: str, *, required: bool = False, default: int | None = None,
            minimum: int | None = None, maximum: int | None = None, example: str = "") -> Any:
        value = self.value(name, (int,), required=required, default=_MISSING, example=example)
        if value is _MISSING or value is None:
            return default
        return self._bounded(name, value, minimum, maximum, default)

    def number(self, name: str, *, required: bool = False, default: float | None = None,
              minimum: float | None = None, maximum: float | None = None,
              example: str = "") -> Any:
        value = self.value(name, (float,), required=required, default=_MISSING,
                           example=example)
        if value is _MISSING or value is None:
            return default
        return self._bounded(name, value, minimum, maximum, default)

    def _bounded(self, name: str, value: Any, minimum: Any, maximum: Any, default: Any) -> Any:
        if minimum is not None and value < minimum:
            self.problem(name, f"must be at least {minimum}, not {value}",
                         f"set it to {minimum} or more")
            return default
        if maximum is not None and value > maximum:
            self.problem(name, f"must be at most {maximum}, not {value}",
                         f"set it to {maximum} or less")
            return default
        return value

    def flag(self, name: str, *, default: bool = False) -> bool:
        value = self.value(name, (bool,), default=default, example=f"{name} = true")
        return bool(value)

    def str_list(self, name: str, *, required: bool = False, example: str = "",
                 check: Check | None = None) -> tuple[str, ...]:
        return self._list(name, str, required=required, example=example, check=check)

    def int_list(self, name: str, *, example: str = "") -> tuple[int, ...]:
        return self._list(name, int, example=example)

    def num_list(self, name: str, *, example: str = "") -> tuple[float, ...]:
        return tuple(float(v) for v in self._list(name, float, example=example))

    def _list(self, name: str, kind: type, *, required: bool = False, example: str = "",
              check: Check | None = None) -> tuple[Any, ...]:
        values = self.value(name, (list,), required=required, default=[], example=example)
        out = []
        for index, item in enumerate(values):
            good = isinstance(item, kind) and not isinstance(item, bool)
            if kind is float and isinstance(item, int) and not isinstance(item, bool):
                good = True
            if not good:
                self.problem(f"{name}[{index}]",
                             f"must be {_TYPE_NAMES[kind]}, not {describe(item)}",
                             f"write it like {example}" if example else "")
                continue
            if _not_finite(item):
                self.problem(f"{name}[{index}]", f"must be a finite number, not {item}",
                             f"write it like {example}" if example else "give a number")
                continue
            if check is not None and self._failed(f"{name}[{index}]", check(item), example):
                continue
            out.append(item)
        return tuple(out)

    def table(self, name: str, *, required: bool = False, example: str = "") -> Table | None:
        value = self.value(name, (dict,), required=required, default=None,
                           example=example or f"[{self.key(name)}]")
        return None if value is None else Table(self.reader, value, self.key(name))

    def tables(self, name: str, *, example: str = "") -> list[Table]:
        """An array of tables: ``[[name]]`` blocks or a list of inline tables."""
        values = self.value(name, (list,), default=[], example=example or f"[[{self.key(name)}]]")
        out = []
        for index, item in enumerate(values):
            key = f"{self.key(name)}[{index}]"
            if not isinstance(item, dict):
                self.reader.problem(key, f"must be a table, not {describe(item)}",
                                    f"write it as [[{self.key(name)}]] with keys below it")
                continue
            out.append(Table(self.reader, item, key))
        return out

    def mapping(self, name: str) -> dict[str, str]:
        """A table of string keys to scalar values, e.g. Hadoop properties."""
        value = self.value(name, (dict,), default={})
        out = {}
        for key, item in value.items():
            if isinstance(item, (dict, list)):
                self.problem(f"{name}.{key}", f"must be a single value, not {describe(item)}",
                             'write it like "spark.executor.memory" = "2g"')
                continue
            if _not_finite(item):
                self.problem(f"{name}.{key}", f"must be a finite number, not {item}",
                             'write a number, or quote it: "spark.x" = "nan"')
                continue
            out[str(key)] = str(item).lower() if isinstance(item, bool) else str(item)
        return out

    def finish(self) -> None:
        """Report every key nobody asked for."""
        for name in self.data:
            if name in self.known:
                continue
            hint = did_you_mean(name, self.known)
            close = hint.split("'")[1] if hint else ""
            if close in self.missing:
                # a misspelt required key: one problem, not "missing" plus "unknown"
                self.reader.problems.remove(self.missing.pop(close))
            known = ", ".join(self.known)
            self.reader.problem(self.key(name), "is not a known key",
                                hint or f"remove it; keys here are: {known}")
