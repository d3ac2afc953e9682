"""Read a CSV input file (a roster, a job list) with its header checked and rows numbered.

Files are UTF-8, with or without a byte-order mark (Excel writes one). The separator is a
comma unless the caller says otherwise; ``sniff_delimiter`` picks ``,``, ``;`` (Excel in
locales with a decimal comma) or a tab from the file's first line.
"""

from __future__ import annotations

import csv
from collections.abc import Generator, Iterator, Sequence
from pathlib import Path

from labtui.errors import Problem
from labtui.schema import did_you_mean

DELIMITERS = (",", ";", "\t")
_SEPARATOR_NAMES = {",": "a comma", ";": "a ';'", "\t": "a tab"}


def sniff_delimiter(path: Path) -> str:
    """The one of ``,`` ``;`` and tab that splits the file's first line into the most fields
    (quotes respected), a comma on a tie. A file that cannot be read gives a comma: reading
    it with ``records`` then reports why."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            first = handle.readline()
    except (OSError, UnicodeError):
        return ","
    best, most = ",", 0
    for delimiter in DELIMITERS:
        fields = next(csv.reader([first], delimiter=delimiter), [])
        if len(fields) > most:
            best, most = delimiter, len(fields)
    return best


def records(path: Path, shown: str, problems: list[Problem], *,
            delimiter: str = ",") -> Generator[tuple[int, list[str]], None, None]:
    """Yield (line number, fields) for every record, the header included, blank lines too;
    append a Problem when the file cannot be opened or parsed, and stop there."""
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
    with handle:
        reader = csv.reader(handle, delimiter=delimiter)
        started = False
        try:
            for fields in reader:
                started = True
                yield reader.line_num, fields
        except (csv.Error, UnicodeError) as exc:
            if started:
                problems.append(Problem(shown, reader.line_num, "", f"cannot be parsed ({exc})",
                                        "fix the quoting on that line"))
            else:
                problems.append(Problem(shown, 1, "", f"is not a readable CSV file ({exc})",
                                        "save it as UTF-8 CSV"))


def read_rows(path: Path, shown: str, required: Sequence[str], optional: Sequence[str],
              problems: list[Problem], *,
              delimiter: str = ",") -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, row) for each data row; append a Problem for each bad one.

    ``shown`` is how the file is named in messages (as written in the course file).
    """
    columns = list(required) + list(optional)
    expected = delimiter.join(columns) if delimiter != "\t" else ",".join(columns)
    before = len(problems)
    rows = records(path, shown, problems, delimiter=delimiter)
    first = next(rows, None)
    if first is None:
        if len(problems) == before:  # nothing in it, rather than unreadable
            problems.append(Problem(shown, 1, "", "is empty",
                                    f"start it with the header line {expected}"))
        return
    header = first[1]
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
        rows.close()
        return
    for line, fields in rows:
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != len(names):
            problems.append(Problem(
                shown, line, "",
                f"has {len(fields)} fields but the header has {len(names)}",
                f"give every row the columns {','.join(names)} "
                f"(quote a value that contains {_SEPARATOR_NAMES.get(delimiter, delimiter)})"))
            continue
        yield line, {n: f.strip() for n, f in zip(names, fields, strict=True)}
