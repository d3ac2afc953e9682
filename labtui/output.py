"""Writing to stdout from a command: JSON lines, and a reader that went away.

Both the light commands (labtui/cli.py) and the headless ones (labtui/headless.py) write
through these, so a closed pipe (``| head -1``) ends every command the same quiet way.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def emit_json(obj: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj, default=str) + "\n")


def stdout_closed() -> None:
    """Whoever read stdout is gone (``| head -1``): send the rest to /dev/null, so neither a
    later write nor the flush at exit raises again (Python docs, "Note on SIGPIPE")."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
