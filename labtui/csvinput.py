"""Read a CSV input file (a roster, a job list) with its header checked and rows numbered."""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from pathlib import Path

from labtui.errors import Problem
from labtui.schema import did_you_mean


def read_rows(path: Path, shown: str, required: Sequence[str], optional: Sequence[str],
              problems: list[Problem]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) for each data row; append a Problem for each bad one.

    ``shown`` is how the file is named in messages (as written in the course file).
    """
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        problems.append(Problem(shown, None, "", "file not found",
                                f"create it, or fix the path (looked in {path.parent})"))
        return
    except (IsADirectoryError, PermissionError, UnicodeError) as exc:
        problems.append(Problem(shown, None, "", f"cannot be read ({exc.__class__.__name__})",
                                "give the path of a readable UTF-8 CSV file"))
        return
    columns = list(required) + list(optional)
    expected = ",".join(columns)
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader, None)
        except (csv.Error, UnicodeError) as exc:
            problems.append(Problem(shown, 1, "", f"is not a readable CSV file ({exc})",
                                    "save it as UTF-8 CSV"))
            return
        if header is None:
            problems.append(Problem(shown, 1, "", "is empty",
                                    f"start it with the header line {expected}"))
            return
        names = [h.strip().lower() for h in header]
        missing = [name for name in required if name not in names]
        bad_header = bool(missing)
        seen: set[str] = set()
        for name in names:
            if name in seen:
                # a row would silently keep only the last of the two values
                bad_header = True
                problems.append(Problem(shown, 1, "",
                                        f"the column {name!r} appears twice in the header",
                                        f"keep one {name!r} column; the header must be "
                                        f"{expected}"))
                continue
            seen.add(name)
            if name in columns:
                continue
            bad_header = True
            hint = did_you_mean(name, columns)
            close = hint.split("'")[1] if hint else ""
            if close in missing:
                missing.remove(close)  # one problem for a misspelt column, not two
            problems.append(Problem(shown, 1, "", f"unknown column {name!r} in the header",
                                    hint or f"the header must be {expected}"))
        for name in missing:
            problems.append(Problem(shown, 1, "", f"the header lacks the column {name!r}",
                                    f"the header must be {expected}"))
        if bad_header:
            return
        try:
            for fields in reader:
                line = reader.line_num
                if not any(f.strip() for f in fields):
                    continue
                if len(fields) != len(names):
                    problems.append(Problem(
                        shown, line, "",
                        f"has {len(fields)} fields but the header has {len(names)}",
                        f"give every row the columns {','.join(names)} "
                        "(quote a value that contains a comma)"))
                    continue
                yield line, {n: f.strip() for n, f in zip(names, fields, strict=True)}
        except (csv.Error, UnicodeError) as exc:
            problems.append(Problem(shown, reader.line_num, "", f"cannot be parsed ({exc})",
                                    "fix the quoting on that line"))
