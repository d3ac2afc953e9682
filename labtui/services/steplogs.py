"""Why an EMR step failed, read from its logs the way mrjob does (mrjob 0.7, mrjob/logs/).

EMR copies a cluster's logs to its LogUri every five minutes::

    <LogUri>/<cluster>/steps/<step>/{controller,stderr,stdout,syslog}.gz
    <LogUri>/<cluster>/containers/<application>/<container>/{stderr,stdout,syslog}.gz
    <LogUri>/<cluster>/task-attempts/<job>/<attempt>/{stderr,syslog}.gz   (old AMIs)

and until then the master node has them, uncompressed, under
/mnt/var/log/hadoop/steps/<step>/ and /var/log/hadoop-yarn/containers/. A ``LogReader``
reads either place (``S3Reader``; ``SftpReader`` over an SFTP session someone else opened),
and ``probable_cause`` reads as few files as it can, in mrjob's order:

1. the step's syslog, for the YARN application(s) it submitted (so only their containers
   are listed, once per folder);
2. each task's stderr, most recent task first, paired with its syslog: a Python traceback,
   a failing ``+ command`` of a setup script (``set -x``) and what it printed, or the rest
   of the stderr, once the syslog shows the task died of it (a Java exception); the first
   such pair wins. A container without a syslog (Spark) has a log4j stderr: an ``ERROR``
   with a stack trace there (``Exception in task ...``) wins the same way;
3. else the syslogs not read yet, for a Java exception alone;
4. else the step's own logs: its stderr (a command-runner step's process), its syslog
   (``Task Id : ..., Status : FAILED``), its controller (the exit code).

None means there was nothing to read at all: the logs are not there yet (``NOT_YET``).
"""

from __future__ import annotations

import gzip
import re
import stat
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

from labtui.errors import AwsError
from labtui.services.aws import Aws, translate_errors

if TYPE_CHECKING:
    import paramiko

Kind = Literal["python", "command", "java", "output", "exit"]

NOT_YET = ("the step's logs are not in S3 yet: EMR copies them there about five minutes "
           "after the step ends. Fix: try again in a few minutes, or read them on the "
           "master node over SSH.")
MASTER_STEP_DIR = "/mnt/var/log/hadoop/steps"
MASTER_CONTAINER_DIR = "/var/log/hadoop-yarn/containers"
MAX_LINES = 25  # of an error that is not a traceback: its first line and the last ones


@dataclass(frozen=True)
class Cause:
    """The probable cause of a step's failure, and where it was read.

    ``kind``: a Python traceback, a failing setup ``command`` and its output, a ``java``
    exception, other task or step ``output``, or only the step's ``exit`` status.
    ``source``: the file (s3:// URI or path); ``task``: the container or task attempt;
    ``split``: the input the task was reading (``hdfs://...:0+1234``); ``exit_code``: the
    task's (``subprocess failed with code N``) or the step's (its controller)."""

    kind: Kind
    lines: tuple[str, ...]
    source: str
    task: str | None = None
    split: str | None = None
    exit_code: int | None = None

    @property
    def message(self) -> str:
        return "\n".join(self.lines)

    def render(self) -> str:
        """The text labtui prints, as mrjob does."""
        out = ["Probable cause of failure:", "", *self.lines, "", f"(from {self.source})"]
        if self.split:
            out.append(f"while reading input {self.split}")
        if self.exit_code is not None and self.kind in ("python", "command", "output"):
            out.append(f"the {'task' if self.task else 'step'} exited with code "
                       f"{self.exit_code}")
        return "\n".join(out)

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (headless --json)."""
        return {"kind": self.kind, "message": self.message, "lines": list(self.lines),
                "source": self.source, "task": self.task, "split": self.split,
                "exit_code": self.exit_code}


# -- where logs are, and reading them ----------------------------------------------------

class LogReader(Protocol):
    """Where logs are read from: S3, or the master node (over SFTP)."""

    def list(self, prefix: str) -> list[str]:
        """Every file under the folder ``prefix`` (ends in "/"), at any depth, as full
        paths or URIs; [] when there is no such folder."""
        ...

    def read(self, path: str) -> bytes:
        """The bytes of a file ``list`` gave, gzip-compressed or not. Raises
        FileNotFoundError when it is gone."""
        ...


@dataclass(frozen=True)
class LogDirs:
    """The folders of one step's logs: the step's own, and those holding task logs (the
    first that has any is used)."""

    step: str
    tasks: tuple[str, ...]


def s3_log_dirs(log_uri: str, cluster_id: str, step_id: str) -> LogDirs:
    """Where EMR puts a step's logs under the cluster's LogUri (``s3n://`` too)."""
    root = re.sub(r"^s3[an]?://", "s3://", log_uri.strip()).rstrip("/")
    root = f"{root}/{cluster_id}"
    return LogDirs(step=f"{root}/steps/{step_id}/",
                   tasks=(f"{root}/containers/", f"{root}/task-attempts/"))


def master_log_dirs(step_id: str, root: str = "/") -> LogDirs:
    """Where the master node keeps them until they are in S3 (``root``: for tests)."""
    base = root.rstrip("/")
    return LogDirs(step=f"{base}{MASTER_STEP_DIR}/{step_id}/",
                   tasks=(f"{base}{MASTER_CONTAINER_DIR}/",))


def split_s3_uri(uri: str) -> tuple[str, str]:
    match = re.match(r"^s3[an]?://([^/]+)/?(.*)$", uri)
    if not match:
        raise ValueError(f"not an s3:// URI: {uri!r}")
    return match.group(1), match.group(2)


class S3Reader:
    """Reads logs from S3 through the Aws facade (paginated listing, one GetObject each)."""

    def __init__(self, aws: Aws, region: str) -> None:
        self.aws = aws
        self.region = region

    def list(self, prefix: str) -> list[str]:
        bucket, key = split_s3_uri(prefix)
        try:
            return [f"s3://{bucket}/{item['Key']}" for item in self.aws.paginate(
                "s3", self.region, "list_objects_v2", "Contents", Bucket=bucket, Prefix=key)
                if not item["Key"].endswith(("/", "_$folder$"))]
        except AwsError as exc:
            raise _with_fix(exc, f"listing s3://{bucket}/{key}", bucket, key,
                            "s3:ListBucket") from exc

    def read(self, path: str) -> bytes:
        bucket, key = split_s3_uri(path)
        s3 = self.aws.client("s3", self.region)
        try:
            with translate_errors(f"s3.GetObject {path}"):
                body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
                return body
        except AwsError as exc:
            if exc.code in ("NoSuchKey", "404"):
                raise FileNotFoundError(path) from exc
            raise _with_fix(exc, f"reading {path}", bucket, key, "s3:GetObject") from exc


def _with_fix(exc: AwsError, doing: str, bucket: str, key: str, action: str) -> AwsError:
    """An S3 refusal said as what to grant (or where else to look)."""
    if exc.code in ("AccessDenied", "AllAccessDisabled", "403"):
        cluster = re.match(r"^(.*?/)?j-[0-9A-Z]+/", key)
        objects = f"arn:aws:s3:::{bucket}/{cluster.group(0) if cluster else ''}*"
        message = (f"cannot read the step's logs ({doing}): access denied ({action}). Fix: "
                   f"allow labtui's AWS identity s3:ListBucket on arn:aws:s3:::{bucket} and "
                   f"s3:GetObject on {objects} (and kms:Decrypt if the bucket uses a KMS "
                   "key), or read the logs on the master node over SSH.")
    elif exc.code == "NoSuchBucket":
        message = (f"the cluster's log bucket {bucket} does not exist ({doing}). Fix: check "
                   "the cluster's LogUri (`aws emr describe-cluster`); if the bucket was "
                   "deleted, read the logs on the master node over SSH.")
    else:
        return exc
    return AwsError(message, operation=exc.operation, code=exc.code, original=exc.original)


class SftpReader:
    """Reads logs on a machine (the master node) through an SFTP session the caller opened
    and closes (``paramiko.SSHClient.open_sftp()``)."""

    def __init__(self, sftp: paramiko.SFTPClient) -> None:
        self.sftp = sftp

    def list(self, prefix: str) -> list[str]:
        top = prefix.rstrip("/") or "/"
        found: list[str] = []
        folders = [top]
        while folders:
            folder = folders.pop()
            try:
                entries = self.sftp.listdir_attr(folder)
            except FileNotFoundError:
                continue
            except PermissionError:
                if folder != top:
                    continue  # one container's folder (mrjob warns and goes on)
                from labtui.services.ssh import SshError

                raise SshError(f"cannot list {folder} on the master node: permission "
                               "denied. Fix: log in as the hadoop user (EMR's login), or "
                               "wait for the logs in S3.") from None
            for entry in entries:
                path = f"{folder.rstrip('/')}/{entry.filename}"
                if stat.S_ISDIR(entry.st_mode or 0):
                    folders.append(path)
                elif stat.S_ISREG(entry.st_mode or 0):
                    found.append(path)
        return sorted(found)

    def read(self, path: str) -> bytes:
        with self.sftp.open(path, "rb") as f:
            data: bytes = f.read()
            return data


def decode(data: bytes) -> list[str]:
    """The lines of a log file, gunzipped if it is gzip (a cut-off one as far as it goes)."""
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error):
            try:
                data = zlib.decompressobj(31).decompress(data)
            except zlib.error:
                data = b""
    return data.decode("utf-8", errors="replace").splitlines()


class _Files:
    """Reads each file once."""

    def __init__(self, reader: LogReader) -> None:
        self.reader = reader
        self._cache: dict[str, list[str]] = {}

    def lines(self, path: str) -> list[str]:
        if path not in self._cache:
            try:
                self._cache[path] = decode(self.reader.read(path))
            except FileNotFoundError:  # listed, then rotated away
                self._cache[path] = []
        return self._cache[path]


# -- log4j records ---------------------------------------------------------------------

# "2024-05-10 09:31:14,402 INFO org.apache...YarnClientImpl (main): Submitted ..." (step),
# "24/05/10 11:15:11 ERROR Executor: Exception in task ..." (Spark), as mrjob/logs/log4j.py
_LOG4J = re.compile(r"^\s*(?P<time>\d[\d/:,.\- TZ]*?)\s+(?P<level>[A-Z]+)\s+(?P<logger>\S+)"
                    r"(?:\s+\((?P<thread>.*?)\))?(?: - |: )(?P<message>.*)$")
# "2024-05-10 09:31:27,420 WARN [main] org.apache.hadoop.mapred.YarnChild: ..." (task)
_LOG4J_ALT = re.compile(r"^\s*(?P<time>\d[\d/:,.\- TZ]*?)\s+(?P<level>[A-Z]+)\s+"
                        r"\[(?P<thread>.*?)\]\s+(?P<logger>\S+)(?:\s+\(\S+\))?(?: - |: )"
                        r"(?P<message>.*)$")


@dataclass
class _Record:
    level: str
    logger: str
    lines: list[str] = field(default_factory=list)


def _log4j_start(line: str) -> re.Match[str] | None:
    return _LOG4J_ALT.match(line) or _LOG4J.match(line)


def _records(lines: Iterable[str]) -> list[_Record]:
    """log4j records; the lines that follow one (a stack trace) belong to it."""
    records: list[_Record] = []
    for line in lines:
        match = _log4j_start(line)
        if match:
            records.append(_Record(match["level"], match["logger"], [match["message"]]))
        elif records:
            records[-1].lines.append(line)
        else:
            records.append(_Record("", "", [line]))
    return records


# -- Java and Python errors ------------------------------------------------------------

_FRAME = re.compile(r"^\s+at \S.*\((?:.*\.(?:java|scala|kt):\d+|Native Method|"
                    r"Unknown Source)\)$")
_TRACEBACK = "Traceback (most recent call last):"
_CHAINED = ("During handling of the above exception, another exception occurred:",
            "The above exception was the direct cause of the following exception:")


def _java_summary(lines: Sequence[str]) -> list[str] | None:
    """The exception and its first stack line; with ``Caused by:``, the root cause (the
    last one) and its first stack line instead of the outer one's."""
    frames = [i for i, line in enumerate(lines) if _FRAME.match(line)]
    if not frames:
        return None
    head = [line for line in lines[:frames[0]] if line.strip()][:3]
    causes = [i for i, line in enumerate(lines) if line.startswith("Caused by: ")]
    if not causes:
        return [*head, lines[frames[0]]]
    root = causes[-1]
    first = next((lines[i] for i in frames if i > root), None)
    return [*head, lines[root], *([first] if first else [])]


def _traceback(lines: Sequence[str]) -> list[str] | None:
    """The last Python traceback (with the ones it was chained to), to its last line."""
    headers = [i for i, line in enumerate(lines) if line.rstrip().endswith(_TRACEBACK)]
    if not headers:
        return None
    start = headers[-1]
    end = start + 1
    while end < len(lines) and lines[end][:1] in (" ", "\t"):
        end += 1
    if end < len(lines) and lines[end].strip():
        end += 1  # the exception line: "ValueError: ..."
    while True:  # "During handling of the above exception, ..." before this one
        before = start - 1
        while before >= 0 and not lines[before].strip():
            before -= 1
        earlier = [i for i in headers if i < before]
        if before < 0 or lines[before].strip() not in _CHAINED or not earlier:
            break
        start = earlier[-1]
    block = list(lines[start:end])
    block[0] = block[0].strip()  # or "org.apache.spark.api.python.PythonException: Tra..."
    return block


# -- task stderr (a streaming task's, or a command-runner step's) --------------------

_NOISE = [
    re.compile(r"^log4j:(WARN|ERROR|INFO) "),  # log4j not set up
    re.compile(r"^SLF4J: "),  # binding chatter
    re.compile(r"^reporter:(counter|status):"),  # streaming counters
    re.compile(r"^(packageJobJar: .*|Streaming Command Failed!)$"),  # hadoop-streaming
]
_PY_WARNING = re.compile(r"^\S.*:\d+: \w*Warning: ")  # then the line that warned, indented
_SUBPROCESS_FAILED = re.compile(r"^java\.lang\.RuntimeException: PipeMapRed\."
                                r"waitOutputThreads\(\): subprocess failed with code")
_COMMAND = re.compile(r"^\++ ")
_EXIT_CODE = re.compile(r"subprocess failed with code (\d+)")


def _plain_lines(lines: Sequence[str]) -> list[str]:
    """stderr without noise: log4j warnings, counters, log4j records, Python warnings (and
    their source line), Hadoop 1's "subprocess failed" stack trace (mrjob #1430)."""
    kept: list[str] = []
    skip_indented = False
    for line in lines:
        line = line.rstrip("\r\n")
        if skip_indented:
            if line[:1] in (" ", "\t"):
                continue
            skip_indented = False
        if _SUBPROCESS_FAILED.match(line) or _PY_WARNING.match(line):
            skip_indented = True
            continue
        if any(rule.match(line) for rule in _NOISE) or _log4j_start(line):
            continue
        kept.append(line)
    return kept


def _clip(lines: Sequence[str]) -> list[str]:
    lines = list(lines)
    while lines and not lines[-1].strip():
        lines.pop()
    if len(lines) > MAX_LINES:
        lines = [lines[0], "...", *lines[-(MAX_LINES - 2):]]
    return lines


def _stderr_error(lines: Sequence[str]) -> tuple[Kind, list[str]] | None:
    """A task's own error in its stderr: the traceback; else the last ``+ command`` (a
    setup script under ``set -x``) and what followed; else what is left (mrjob)."""
    kept = _plain_lines(lines)
    tb = _traceback(kept)
    if tb:
        return "python", tb
    commands = [i for i, line in enumerate(kept) if _COMMAND.match(line)]
    if commands:
        return "command", _clip(kept[commands[-1]:])
    text = [line for line in kept if line.strip()]
    if not text:
        return None
    java = _java_summary(text)  # "Exception in thread "main" java.lang...."
    if java:
        return "java", java
    return "output", _clip(text)


# -- log4j logs: a Spark container's stderr, a task's syslog, the step's syslog ------

_SPLIT = re.compile(r"^(?:Processing split|Input split):\s+(?P<split>\S.*?)\s*$")
_OPENING = re.compile(r"^Opening '(?P<split>.*?)' for reading$")
_APPLICATION = re.compile(r"\bSubmitted application (application_\d+_\d+)")
_ATTEMPT_FAILED = re.compile(r"^Task Id *: (?P<attempt>attempt_\d+_\d+_[mr]_\d+_\d+), "
                             r"Status *: FAILED")


def _split_of(record: _Record, before: str | None) -> str | None:
    """The input split a record names, else ``before``: "Opening 's3://...' for reading"
    of the split already known (with its offsets) keeps that one."""
    match = _SPLIT.match(record.lines[0]) or _OPENING.match(record.lines[0])
    if not match or (before and before.startswith(f"{match['split']}:")):
        return before
    return match["split"]


@dataclass(frozen=True)
class _Found:
    kind: Kind
    lines: list[str]
    split: str | None = None
    exit_code: int | None = None
    task: str | None = None


def _log4j_error(lines: Sequence[str]) -> _Found | None:
    """A Spark log's error (mrjob/logs/spark.py): an ERROR, or a WARN of several lines,
    with a stack trace; one with a Python traceback first, then the shortest."""
    best: tuple[tuple[bool, bool, int], _Found] | None = None
    split = None
    for record in _records(lines):
        split = _split_of(record, split)
        if record.level not in ("ERROR", "FATAL", "WARN") or len(record.lines) < 2:
            continue
        tb = _traceback(record.lines)
        found: _Found | None
        if tb:
            head = [] if record.lines[0].rstrip().endswith(_TRACEBACK) else [record.lines[0]]
            found = _Found("python", [*head, *tb], split)
        else:
            java = _java_summary(record.lines)
            found = _Found("java", java, split) if java else None
        if found is None:
            continue
        rank = (found.kind == "python", record.level != "WARN", -len(record.lines))
        if best is None or rank > best[0]:
            best = (rank, found)
    return best[1] if best else None


def _syslog_error(lines: Sequence[str]) -> _Found | None:
    """A task syslog's Java exception (mrjob/logs/task.py): the one the task died of
    (YarnChild's "Exception running child"), else the first ERROR, else the first; and
    the input split it was reading."""
    split = None
    exit_code = None
    candidates: list[tuple[int, int, _Record]] = []
    for number, record in enumerate(_records(lines)):
        split = _split_of(record, split)
        text = "\n".join(record.lines)
        code = _EXIT_CODE.search(text)
        if code and exit_code is None:
            exit_code = int(code.group(1))
        if any(_FRAME.match(line) for line in record.lines):
            rank = (0 if record.logger.endswith("YarnChild") else
                    1 if record.level in ("ERROR", "FATAL") else 2)
            candidates.append((rank, number, record))
    if not candidates:
        return None
    record = min(candidates, key=lambda c: (c[0], c[1]))[2]
    summary = _java_summary(record.lines) or record.lines[:2]
    return _Found("java", summary, split, exit_code)


def _step_syslog(lines: Sequence[str]) -> tuple[list[str], _Found | None]:
    """The applications the step submitted, and its last failed task attempt's error
    (``Task Id : attempt_..., Status : FAILED`` and what YARN said)."""
    applications: list[str] = []
    error = None
    for record in _records(lines):
        match = _APPLICATION.search(record.lines[0])
        if match and match.group(1) not in applications:
            applications.append(match.group(1))
        failed = _ATTEMPT_FAILED.match(record.lines[0])
        if failed:
            body = [line for line in record.lines[1:] if line.strip()]
            java = _java_summary(body)
            code = _EXIT_CODE.search("\n".join(body))
            error = _Found("java" if java else "output", java or body[:3] or record.lines[:1],
                           exit_code=int(code.group(1)) if code else None,
                           task=failed["attempt"])
    return applications, error


_CONTROLLER_EXIT = re.compile(r"(?:Step failed with exitCode|ended with exit code) (\d+)")
_CONTROLLER_KEEP = re.compile(r"(startExec |exit code|exitCode|total process run time)")


def _controller(lines: Sequence[str]) -> _Found | None:
    """The step's exit status from its controller log (EMR's step runner)."""
    code = None
    kept = []
    for line in lines:
        match = _CONTROLLER_EXIT.search(line)
        if match:
            code = int(match.group(1))
        if _CONTROLLER_KEEP.search(line):
            kept.append(line.strip())
    if not code:
        return None
    return _Found("exit", kept, exit_code=code)


# -- which files ------------------------------------------------------------------------

_STEP_FILE = re.compile(r"/(?P<type>controller|stderr|stdout|syslog)"
                        r"(?:\.(?P<stamp>\d{4}-\d{2}-\d{2}-\d{2}))?(?:\.gz)?$")
_CONTAINER_FILE = re.compile(r"/(?P<app>application_\d+_\d+)/(?P<task>container_(?:e\d+_)?"
                             r"\d+_\d+_\d+_\d+)/(?P<type>stderr|stdout|syslog)(?:\.gz)?$")
_ATTEMPT_FILE = re.compile(r"/(?P<task>attempt_\d+_\d+_[mr]_\d+_\d+)/"
                           r"(?P<type>stderr|syslog)(?:\.gz)?$")


def _step_files(paths: Iterable[str]) -> dict[str, list[str]]:
    """Log type -> its files, oldest first (rotated ones carry an hour stamp; the
    current one has none)."""
    found: dict[str, list[tuple[str, str]]] = {}
    for path in paths:
        match = _STEP_FILE.search(path)
        if match:
            found.setdefault(match["type"], []).append((match["stamp"] or "9", path))
    return {kind: [p for _, p in sorted(files)] for kind, files in found.items()}


def _recency(task: str) -> tuple[int | str, ...]:
    """Sort key, most recent last: container_[eNN_]<cluster>_<app>_<attempt>_<number>, or
    attempt_<cluster>_<job>_<m|r>_<task>_<attempt> (reduces after maps, retries later)."""
    parts = [p for p in task.split("_")[1:] if not p.startswith("e")]
    if task.startswith("attempt_"):
        return (int(parts[0]), int(parts[1]), parts[2], int(parts[4]), int(parts[3]))
    return tuple(int(p) for p in parts)


def _task_files(paths: Iterable[str]) -> dict[str, dict[str, str]]:
    """Task (container or attempt) -> log type -> file, most recent task first."""
    found: dict[str, dict[str, str]] = {}
    for path in paths:
        match = _CONTAINER_FILE.search(path) or _ATTEMPT_FILE.search(path)
        if match:
            found.setdefault(match["task"], {}).setdefault(match["type"], path)
    return {task: found[task] for task in sorted(found, key=_recency, reverse=True)}


def _task_cause(files: _Files, tasks: dict[str, dict[str, str]]) -> Cause | None:
    """mrjob's order: a task whose stderr has its own error (confirmed by its syslog)
    first, most recent first; then the other syslogs alone."""
    syslog_only: list[str] = []
    for task, logs in tasks.items():
        stderr, syslog = logs.get("stderr"), logs.get("syslog")
        if stderr and syslog:
            own = _stderr_error(files.lines(stderr))
            if own:
                java = _syslog_error(files.lines(syslog))
                if java:
                    return Cause(own[0], tuple(own[1]), stderr, task, java.split,
                                 java.exit_code)
                continue  # no exception in its syslog: it did not die of that
            syslog_only.append(task)
        elif stderr:  # a Spark (or other YARN) container: log4j in stderr; or no syslog yet
            lines = files.lines(stderr)
            found = _log4j_error(lines)
            if found:
                return Cause(found.kind, tuple(found.lines), stderr, task, found.split)
            own = _stderr_error(lines)
            if own and own[0] == "python":
                return Cause("python", tuple(own[1]), stderr, task)
        elif syslog:
            syslog_only.append(task)
    for task in syslog_only:
        syslog = tasks[task]["syslog"]
        java = _syslog_error(files.lines(syslog))
        if java:
            return Cause("java", tuple(java.lines), syslog, task, java.split, java.exit_code)
    return None


def probable_cause(reader: LogReader, dirs: LogDirs, *,
                   application_id: str | None = None) -> Cause | None:
    """The probable cause of a failed step, from its logs in ``dirs`` read with
    ``reader``; None when there are no logs there at all (say ``NOT_YET``). With
    ``application_id`` (the step's YARN application) the step's syslog is not read to
    find it. Each folder is listed once; only the files needed are read."""
    files = _Files(reader)
    step = _step_files(reader.list(dirs.step))
    application = application_id or _application(files, step)
    listed = bool(step)
    for folder in dirs.tasks:
        paths = reader.list(_tasks_of(folder, application))
        listed = listed or bool(paths)
        tasks = _task_files(paths)
        if tasks:
            cause = _task_cause(files, tasks)
            if cause:
                return cause
            break  # the older layout holds no other copy
    return _step_cause(files, step) if listed else None


def _tasks_of(folder: str, application: str | None) -> str:
    """The folder of one application's task logs: containers/<application>/, or
    task-attempts/<job>/ (the job of application_X_N is job_X_N)."""
    if not application:
        return folder
    if folder.rstrip("/").endswith("task-attempts"):
        return f"{folder}job_{application.split('_', 1)[1]}/"
    return f"{folder}{application}/"


def _application(files: _Files, step: dict[str, list[str]]) -> str | None:
    """The last YARN application the step submitted: a failing step stops at it. Its
    syslog says so (Hadoop), or else its stderr (spark-submit)."""
    for kind in ("syslog", "stderr"):
        found: list[str] = [app for path in step.get(kind, [])
                            for app in _APPLICATION.findall("\n".join(files.lines(path)))]
        if found:
            return found[-1]
    return None


def _step_cause(files: _Files, step: dict[str, list[str]]) -> Cause | None:
    """No task said why: the step's own stderr (a traceback, a command; newest first), its
    syslog (the last failed task attempt), the rest of its stderr, its controller."""
    controller = None
    for path in step.get("controller", []):
        controller = _controller(files.lines(path)) or controller
    exit_code = controller.exit_code if controller else None
    output: Cause | None = None
    for path in reversed(step.get("stderr", [])):
        lines = files.lines(path)
        found = _log4j_error(lines)
        own = (found.kind, found.lines) if found else _stderr_error(lines)
        if own is None:
            continue
        cause = Cause(own[0], tuple(own[1]), path, exit_code=exit_code)
        if own[0] != "output":
            return cause
        output = output or cause
    for path in reversed(step.get("syslog", [])):
        error = _step_syslog(files.lines(path))[1]
        if error is not None:
            return Cause(error.kind, tuple(error.lines), path, error.task,
                         exit_code=error.exit_code or exit_code)
    if output is not None:
        return output
    if controller is not None:
        return Cause("exit", tuple(controller.lines), step["controller"][-1],
                     exit_code=exit_code)
    return None


def probable_cause_in_s3(aws: Aws, region: str, log_uri: str, cluster_id: str,
                         step_id: str) -> Cause | None:
    """The probable cause of a failed step, from the cluster's logs in S3 (its LogUri,
    in ``region``); None when they are not there yet (say ``NOT_YET``)."""
    return probable_cause(S3Reader(aws, region), s3_log_dirs(log_uri, cluster_id, step_id))
