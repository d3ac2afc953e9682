"""Text from machines and course files made safe to print on a terminal.

A seat's output or a course's string may hold escape sequences that would move the cursor,
retitle the window, rewrite what was printed or talk to the terminal (OSC 52 clipboard
writes). The headless mode prints everything through :class:`PlainStream`, which drops them
and every other control character but tab and newline; the TUI shows such text as text.
"""

from __future__ import annotations

import io
import re
from typing import IO

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), DCS/SOS/PM/APC (ESC P/X/^/_ ... ST),
# two-character escapes, the 8-bit CSI/OSC forms, then any other C0/C1 control but \t \n.
_CONTROL = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]?"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[ -~]?"
    r"|\x9b[0-?]*[ -/]*[@-~]?"
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
)


def plain(text: str) -> str:
    """``text`` without terminal control sequences or control characters (tab, newline
    kept)."""
    return _CONTROL.sub("", text)


class PlainStream(io.TextIOBase):
    """A text stream that writes :func:`plain` text to the stream it wraps."""

    def __init__(self, inner: IO[str]) -> None:
        self._inner = inner

    def write(self, text: str) -> int:
        self._inner.write(plain(text))
        return len(text)

    def flush(self) -> None:
        self._inner.flush()

    def isatty(self) -> bool:
        return self._inner.isatty()

    def fileno(self) -> int:
        return self._inner.fileno()

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._inner, "encoding", "utf-8")

    @property
    def inner(self) -> IO[str]:
        return self._inner
