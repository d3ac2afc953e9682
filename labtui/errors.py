"""labtui's own errors. Services raise these with a message a user can act on; the front ends
print or show them, never a traceback."""

from __future__ import annotations


class LabError(Exception):
    """Something went wrong that the user can understand and act on."""

    exit_code = 1


class InputError(LabError):
    """Bad input from the user: a course file, a roster, a job list, a command-line flag."""

    exit_code = 2


class AwsError(LabError):
    """An AWS call failed; keeps the original botocore error and what was being done."""

    def __init__(self, message: str, *, operation: str = "", code: str = "",
                 original: Exception | None = None) -> None:
        super().__init__(message)
        self.operation = operation
        self.code = code
        self.original = original


class SandboxError(LabError):
    """The local sandbox could not be started or reached."""


class Problem:
    """One problem in an input file: where it is, what is wrong, how to fix it."""

    __slots__ = ("file", "line", "key", "message", "fix")

    def __init__(self, file: str, line: int | None, key: str, message: str,
                 fix: str = "") -> None:
        self.file, self.line, self.key, self.message, self.fix = file, line, key, message, fix

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        key = f" {self.key}:" if self.key else ""
        fix = self.fix if self.fix.endswith(("?", ".")) else f"{self.fix}."
        fix = f" Fix: {fix}" if self.fix else ""
        return f"{where}:{key} {self.message.rstrip('.')}.{fix}"

    def __repr__(self) -> str:
        return f"Problem({str(self)!r})"


class CourseError(InputError):
    """The course file (or a file it names) is not usable; one Problem per mistake."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))
