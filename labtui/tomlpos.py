"""Find the line of a key in a TOML file, for error messages.

tomllib gives values, not positions, so this scans the text: table headers (``[a.b]``,
``[[a.b]]`` with their index) and ``key = value`` lines. Keys inside inline tables or
multi-line arrays are not located one by one; ``line_of`` falls back to the nearest enclosing
key it knows, which is where a reader would look anyway.
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_PART = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_KEY = re.compile(rf"^\s*({_PART}(?:\s*\.\s*{_PART})*)\s*=")


def _split_key(text: str) -> list[str]:
    parts = re.findall(r"""[A-Za-z0-9_-]+|"[^"]*"|'[^']*'""", text)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


class KeyLines:
    """Maps dotted key paths (``roster.students[2].email``) to 1-based line numbers."""

    def __init__(self, text: str) -> None:
        self.lines: dict[str, int] = {}
        self._scan(text)

    def _scan(self, text: str) -> None:
        table = ""
        counts: dict[str, int] = {}
        in_multiline: str | None = None
        depth = 0  # bracket depth of a multi-line array or inline table value
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw
            if in_multiline:
                if line.count(in_multiline) % 2 == 1:
                    in_multiline = None
                continue
            if depth > 0:
                depth += _bracket_balance(line)
                continue
            header = _HEADER.match(line)
            if header:
                path = ".".join(_split_key(header.group(2)))
                if header.group(1) == "[[":
                    index = counts.get(path, 0)
                    counts[path] = index + 1
                    self.lines.setdefault(path, number)
                    table = f"{path}[{index}]"
                else:
                    table = path
                self.lines.setdefault(table, number)
                continue
            key = _KEY.match(line)
            if key:
                full = ".".join(p for p in (table, ".".join(_split_key(key.group(1)))) if p)
                self.lines.setdefault(full, number)
                value = line[key.end():]
                for quote in ('"""', "'''"):
                    if value.count(quote) % 2 == 1:
                        in_multiline = quote
                depth = max(0, _bracket_balance(value))

    def line_of(self, path: str) -> int | None:
        """The line of ``path`` or of the nearest enclosing key or table that is known."""
        while path:
            if path in self.lines:
                return self.lines[path]
            # drop the last component: ".name" or "[3]"
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""
        return None


def _bracket_balance(text: str) -> int:
    text = re.sub(r'"(?:\\.|[^"\\])*"|\'[^\']*\'', "", text.split("#", 1)[0])
    return text.count("[") + text.count("{") - text.count("]") - text.count("}")
