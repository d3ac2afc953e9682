"""The course file: TOML parsed once into frozen dataclasses.

``load(path)`` reads and validates the whole file (and the CSV files it names) and either
returns a ``Course`` or raises ``CourseError`` with one Problem per mistake, each naming the
file, the line (or key path) and the fix. Everything downstream takes these objects.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labtui import checks, rosters
from labtui.csvinput import read_rows
from labtui.errors import CourseError, Problem
from labtui.schedule import DAYS, SESSION, WEEKLY, Schedule, Weekly, parse_clock
from labtui.schema import Reader, Table, did_you_mean

MARKETS = ("on-demand", "spot")
BAKED = "baked"  # machines.ami: the newest image `labtui bake` made of this setup
# machines.setup_mode: setup over SSH after boot, or run at boot by the user-data's robot
SETUP_MODES = ("ssh", "user-data")


@dataclass(frozen=True)
class Student:
    id: str
    name: str
    email: str
    group: str = ""


@dataclass(frozen=True)
class Seat:
    """What gets one machine: a student, or a group when machines.per = "group"."""

    id: str
    students: tuple[Student, ...]


@dataclass(frozen=True)
class CopyFile:
    source: Path
    dest: str
    mode: str = "0644"


@dataclass(frozen=True)
class Machines:
    instance_type: str
    per: str = "student"
    ami: str = "ubuntu-24.04"
    market: str = "on-demand"
    max_price: float | None = None
    user: str = "ubuntu"
    login: str = "password"
    disk_gb: int = 16
    packages: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()
    files: tuple[CopyFile, ...] = ()
    # with ami = "baked": the image `labtui bake` starts its template machine from
    bake_from: str = "ubuntu-24.04"
    setup_mode: str = "ssh"   # SETUP_MODES: "user-data" runs the course's setup at boot

    @property
    def baked(self) -> bool:
        return self.ami == BAKED

    @property
    def base_ami(self) -> str:
        """The image seats boot from without baking, and the template's with it."""
        return self.bake_from if self.baked else self.ami


@dataclass(frozen=True)
class InstanceGroup:
    role: str  # MASTER | CORE | TASK
    instance_type: str
    count: int
    market: str = "on-demand"
    bid_price: float | None = None
    ebs_gb: int | None = None  # one gp3 volume per node besides the root, as EMR's console sets


@dataclass(frozen=True)
class EmrConfiguration:
    classification: str
    properties: Mapping[str, str]
    configurations: tuple[EmrConfiguration, ...] = ()  # nested, e.g. hadoop-env > export


@dataclass(frozen=True)
class BootstrapAction:
    name: str
    path: str                 # s3://... as given, or a file of the course (uploaded first)
    args: tuple[str, ...] = ()


@dataclass(frozen=True)
class Step:
    name: str
    args: tuple[str, ...]
    jar: str = "command-runner.jar"
    on_failure: str = "CONTINUE"
    script: str | None = None  # s3://... or a file of the course: run by script-runner.jar


CLUSTER_PER = ("student", "group", "shared")
SHARED_CLUSTER = "class"  # the seat tag of the one cluster of a course with per = "shared"


@dataclass(frozen=True)
class Clusters:
    """EMR clusters started before class: one per student (default), group or class."""

    release: str
    applications: tuple[str, ...]
    groups: tuple[InstanceGroup, ...]
    idle_timeout_minutes: int = 60
    configurations: tuple[EmrConfiguration, ...] = ()
    bootstrap: tuple[BootstrapAction, ...] = ()
    steps: tuple[Step, ...] = ()
    per: str = "student"
    log_uri: str | None = None    # default: s3://<bucket>/emr-logs/
    bucket: str | None = None     # where the course's scripts go; default [storage]'s buckets
    keep_alive: bool = True       # KeepJobFlowAliveWhenNoSteps
    visible_to_all_users: bool = True

    @property
    def nodes(self) -> int:
        return sum(g.count for g in self.groups)

    def local_files(self) -> tuple[str, ...]:
        """The course files its bootstrap actions and steps name (uploaded before launch)."""
        paths = [b.path for b in self.bootstrap] + [s.script for s in self.steps if s.script]
        return tuple(dict.fromkeys(p for p in paths if not p.startswith("s3://")))


@dataclass(frozen=True)
class Storage:
    data_bucket: str | None = None
    scratch_bucket: str | None = None
    scratch_expire_days: int = 30
    upload: Path | None = None    # a folder of the course uploaded to the data bucket by up


@dataclass(frozen=True)
class Access:
    """Students' AWS identities: one IAM user per seat (``identity = "student"``, the
    default: each student's, or a group's when its students share a machine) or one for the
    class (``"shared"``)."""

    users: bool = False
    console: bool = False
    permissions: tuple[str, ...] = ()
    identity: str = "student"
    # "keys": an IAM user whose access key setup writes to ~/.aws/credentials on the seat;
    # "instance-profile": the seat's machine gets a role instead (no key anywhere), for
    # students who use AWS only from their machine.
    credentials: str = "keys"


@dataclass(frozen=True)
class Database:
    """``[database]``: the result store (RDS MySQL or MariaDB) with its two users: ``pipeline``
    (creates databases, tables, indexes; any DML) and ``api`` (reads only), utf8mb4 with a
    binary collation throughout."""

    engine: str = "mysql"
    version: str = "8.0"
    instance_class: str = "db.t3.micro"
    storage_gb: int = 20
    name: str = "results"
    pipeline_user: str = "pipeline"
    api_user: str = "api"
    backup_days: int = 7
    deletion_protection: bool = False

    @property
    def family(self) -> str:
        """The DB parameter group family of the engine version."""
        major = ".".join(self.version.split(".")[:2])
        return f"{self.engine}{major}"


@dataclass(frozen=True)
class Mail:
    """How handout cards are mailed: SMTP (password from $LABTUI_SMTP_PASSWORD) or SES."""

    sender: str
    via: str = "smtp"              # "smtp" or "ses"
    smtp_host: str = "localhost"
    smtp_port: int = 587
    starttls: bool = True
    user: str | None = None
    ses_region: str | None = None  # default: the course's first region


@dataclass(frozen=True)
class Billing:
    alarms_usd: tuple[float, ...] = ()
    notify: str | None = None
    monthly_budget_usd: float | None = None


@dataclass(frozen=True)
class Network:
    ssh_cidr: str = ""
    open_ports: tuple[int, ...] = ()
    vpc_id: str | None = None
    subnet_id: str | None = None


@dataclass(frozen=True)
class DataFile:
    """A file fetched onto every machine into the notebooks' folder: from the data bucket
    (``s3://``; the machine downloads it through a short-lived presigned URL, no key) or a
    URL, checked against ``sha256`` when given."""

    source: str
    dest: str              # relative to the working folder
    sha256: str | None = None


@dataclass(frozen=True)
class Jupyter:
    """``[jupyter]``: a notebook server on each machine, on 127.0.0.1 only, reached through
    an SSH tunnel. The environment is a pip ``requirements`` file (installed into a venv at
    ``ENV_DIR``), a conda ``environment`` file, or neither (the image provides jupyter)."""

    port: int = 8888
    notebooks: tuple[Path, ...] = ()
    templates: Path | None = None
    workdir: str = "~/work"
    requirements: Path | None = None
    environment: Path | None = None
    server: str = "lab"
    command: str | None = None
    daily: bool = False
    data: tuple[DataFile, ...] = ()

    def template_files(self) -> list[tuple[Path, str]]:
        """(local file, name under the working folder) of every template notebook."""
        found = [(path, path.name) for path in self.notebooks]
        if self.templates is not None:
            found += [(path, path.relative_to(self.templates).as_posix())
                      for path in sorted(self.templates.rglob("*"))
                      if path.is_file() and ".ipynb_checkpoints" not in path.parts]
        return list({name: (path, name) for path, name in found}.values())


@dataclass(frozen=True)
class Teardown:
    """What ``down`` saves from each seat before its machine goes: paths in the login
    user's home (``~/...``, globs allowed), to ``bucket`` under ``work/<seat>/`` (default:
    storage.scratch_bucket), else into the local state folder."""

    save: tuple[str, ...] = ("~/work",)
    bucket: str | None = None


@dataclass(frozen=True)
class Job:
    line: int
    instance_type: str
    command: str
    name: str = ""


@dataclass(frozen=True)
class Jobs:
    """``[jobs]``: a CSV of (instance_type, command) run one worker per job (or ``pack``ed),
    results to ``output`` (s3://bucket/prefix/) under each job's name."""

    file: Path
    output: str
    entries: tuple[Job, ...]
    market: str = "spot"
    max_price: float | None = None
    max_parallel: int = 10
    name: str = "job"
    code: Path | None = None
    install: Path | None = None
    install_timeout: int = 1800
    install_attempts: int = 3
    results: str | None = None
    command_prefix: str = ""
    pack: bool = False
    ami: str = "ubuntu-24.04"
    disk_gb: int = 16
    timeout: int | None = None

    @property
    def bucket(self) -> str:
        return self.output[5:].split("/", 1)[0]

    @property
    def prefix(self) -> str:
        """The key prefix under the bucket, "" or ending in "/"."""
        rest = self.output[5:].split("/", 1)[1] if "/" in self.output[5:] else ""
        return rest.strip("/") + "/" if rest.strip("/") else ""

    def command_of(self, job: Job) -> str:
        return f"{self.command_prefix} {job.command}".strip() if self.command_prefix \
            else job.command


@dataclass(frozen=True)
class Course:
    path: Path
    id: str
    name: str
    regions: tuple[str, ...]
    max_instances: int
    budget_usd: float | None
    profile: str | None
    students: tuple[Student, ...]
    network: Network
    machines: Machines | None = None
    clusters: Clusters | None = None
    storage: Storage | None = None
    access: Access | None = None
    billing: Billing | None = None
    jupyter: Jupyter | None = None
    jobs: Jobs | None = None
    mail: Mail | None = None
    database: Database | None = None
    schedule: Schedule | None = None
    seats: tuple[Seat, ...] = field(default=())
    teardown: Teardown = field(default=Teardown())

    @property
    def instance_count(self) -> int:
        """Instances the class runs at once: one machine per seat plus every cluster node."""
        machines = len(self.seats) if self.machines else 0
        nodes = len(self.cluster_units) * self.clusters.nodes if self.clusters else 0
        return machines + nodes

    def cluster_key(self, student: Student) -> str:
        """The cluster a student submits to, as its ``labtui:seat`` tag: the student's id,
        their group's, or the class's one cluster."""
        per = self.clusters.per if self.clusters else "student"
        if per == "shared":
            return SHARED_CLUSTER
        return student.group if per == "group" else student.id

    @property
    def cluster_units(self) -> dict[str, tuple[Student, ...]]:
        """Every cluster the class runs (its key) and the students who use it, in roster
        order; none without [clusters]."""
        units: dict[str, list[Student]] = {}
        if self.clusters:
            for student in self.students:
                units.setdefault(self.cluster_key(student), []).append(student)
        return {key: tuple(members) for key, members in units.items()}

    def clusters_of_seat(self, seat: Seat) -> tuple[str, ...]:
        """The clusters placed with a seat's machine (in its region): those whose first
        student sits there."""
        members = {s.id for s in seat.students}
        return tuple(key for key, students in self.cluster_units.items()
                     if students[0].id in members)

    def seat(self, seat_id: str) -> Seat:
        for seat in self.seats:
            if seat.id == seat_id:
                return seat
        hint = did_you_mean(seat_id, [s.id for s in self.seats])
        raise CourseError([Problem(str(self.path), None, "", f"no seat named {seat_id!r}",
                                   hint or "run `labtui status COURSE` to list the seats")])


MAX_COURSE_BYTES = 1 << 20  # a course file is a few KiB; anything past 1 MiB is not one


def _read_text(path: Path, shown: str) -> str:
    """The course file's text: a regular file only (a FIFO or a device is never opened for
    reading, so nothing blocks or reads forever), at most MAX_COURSE_BYTES, UTF-8."""
    import errno
    import os
    import stat

    def refuse(message: str, fix: str = "give the path of a UTF-8 TOML file") -> CourseError:
        return CourseError([Problem(shown, None, "", message, fix)])

    try:
        info = path.stat()
    except FileNotFoundError:
        raise refuse("file not found", "check the path, or run `labtui new course.toml` to "
                                       "start one") from None
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise refuse(f"the path is too long ({len(shown)} characters) for this system",
                         "give a shorter path to the course file") from None
        raise refuse(f"cannot be read ({exc.strerror or exc.__class__.__name__})",
                     "check the path") from None
    if stat.S_ISDIR(info.st_mode):
        raise refuse("is a folder, not a course file",
                     "give the path of the course's TOML file, e.g. course.toml")
    if not stat.S_ISREG(info.st_mode):
        raise refuse("is not a regular file (a pipe, socket or device)",
                     "give the path of a TOML file on disk")
    too_big = refuse(f"is larger than {MAX_COURSE_BYTES // (1 << 20)} MiB, which no course "
                     "file is", "give the path of the course's TOML file")
    if info.st_size > MAX_COURSE_BYTES:
        raise too_big
    try:
        # O_NONBLOCK: if the path turned into a FIFO since the stat, opening it never waits
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise refuse("is not a regular file (a pipe, socket or device)",
                             "give the path of a TOML file on disk")
            raw = handle.read(MAX_COURSE_BYTES + 1)
    except OSError as exc:
        raise refuse(f"cannot be read ({exc.__class__.__name__})") from None
    if len(raw) > MAX_COURSE_BYTES:
        raise too_big
    try:
        return raw.decode("utf-8")
    except UnicodeError as exc:
        raise refuse(f"cannot be read ({exc.__class__.__name__})") from None


def load(path: str | Path) -> Course:
    """Read and validate a course file; raise CourseError listing every problem."""
    path = Path(path)
    shown = str(path)
    text = _read_text(path, shown)
    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise CourseError([Problem(shown, None, "", "arrays or tables are nested too deep "
                                   "for a course file", "flatten the nesting")]) from None
    except tomllib.TOMLDecodeError as exc:
        # Python 3.14 has exc.lineno/msg; before that the position is in the message.
        message = getattr(exc, "msg", str(exc))
        line = getattr(exc, "lineno", None)
        found = re.search(r"\s*\(at line (\d+), column \d+\)", message)
        if found:
            line = line or int(found.group(1))
            message = message[:found.start()] + message[found.end():]
        raise CourseError([Problem(shown, line, "", f"TOML syntax error: {message}",
                                   "fix the syntax on that line (https://toml.io)")]) from None
    reader = Reader(shown, text)
    course = _read(reader, data, path)
    if reader.problems or course is None:
        raise CourseError(reader.problems)
    return course


def _read(reader: Reader, data: dict[str, Any], path: Path) -> Course | None:
    base = path.parent
    top = reader.table(data)
    info = top.table("course", required=True, example='[course] with id, name, regions')
    aws = top.table("aws")
    roster_t = top.table("roster", required=True, example="[roster] with file or students")
    machines_t = top.table("machines")
    clusters_t = top.table("clusters")
    storage_t = top.table("storage")
    access_t = top.table("access")
    billing_t = top.table("billing")
    network_t = top.table("network")
    jupyter_t = top.table("jupyter")
    jobs_t = top.table("jobs")
    teardown_t = top.table("teardown")
    mail_t = top.table("mail")
    database_t = top.table("database")
    schedule_t = top.table("schedule")
    top.finish()
    if info is None:
        return None

    course_id = info.text("id", required=True, example='id = "cs498-fall26"',
                         check=checks.course_id)
    name = info.text("name", required=True, example='name = "Cloud Computing"')
    regions = info.str_list("regions", required=True, example='regions = ["us-east-1"]',
                            check=_region)
    if info.has("regions") and not regions and not reader.problems:
        info.problem("regions", "is empty", 'list at least one, e.g. regions = ["us-east-1"]')
    if len(set(regions)) != len(regions):
        info.problem("regions", "lists a region twice", "list each region once")
    max_instances = info.integer("max_instances", required=True, minimum=1, maximum=10000,
                             example="max_instances = 40")
    budget = info.number("budget_usd", minimum=0.01, example="budget_usd = 120.0")
    info.finish()

    profile = None
    if aws is not None:
        profile = aws.text("profile", example='profile = "teaching"')
        aws.finish()

    students = _roster(reader, roster_t, base) if roster_t else ()
    machines = _machines(machines_t, base) if machines_t else None
    clusters = _clusters(clusters_t, base) if clusters_t else None
    storage = _storage(storage_t, base) if storage_t else None
    access = _access(access_t) if access_t else None
    billing = _billing(billing_t) if billing_t else None
    network = _network(network_t) if network_t else Network()
    jupyter = _jupyter(jupyter_t, base) if jupyter_t else None
    jobs = _jobs(reader, jobs_t, base, course_id or "job") if jobs_t else None
    teardown = _teardown(teardown_t) if teardown_t else Teardown()
    mail = _mail(mail_t) if mail_t else None
    database = _database(database_t) if database_t else None
    schedule = _schedule(schedule_t) if schedule_t else None

    if (machines is not None or jobs is not None) and not network.ssh_cidr:
        reader.problem("network.ssh_cidr", "is required when the course has machines or jobs",
                       'add [network] ssh_cidr = "203.0.113.0/24" (your campus network; '
                       '"0.0.0.0/0" opens SSH to everyone)')
    if access is not None and access.console and not access.users:
        reader.problem("access.console", "needs access.users = true",
                       "set users = true, or drop console")
    if billing is not None and billing.alarms_usd and not billing.notify:
        reader.problem("billing.notify", "is required when billing.alarms_usd is set",
                       'add notify = "you@example.edu"')

    seats = _seats(reader, students, machines)
    if clusters is not None:
        _check_clusters(reader, clusters, students, storage)
    if reader.problems:
        return None
    course = Course(
        path=path, id=course_id, name=name, regions=tuple(regions),
        max_instances=max_instances, budget_usd=budget, profile=profile, students=students,
        network=network, machines=machines, clusters=clusters, storage=storage, access=access,
        billing=billing, jupyter=jupyter, jobs=jobs, seats=seats, teardown=teardown,
        mail=mail, database=database, schedule=schedule,
    )
    if course.instance_count > max_instances:
        parts = []
        if machines:
            parts.append(f"{len(seats)} machines")
        if clusters:
            parts.append(f"{len(course.cluster_units)} clusters x {clusters.nodes} nodes")
        reader.problem(
            "course.max_instances",
            f"the class needs {course.instance_count} instances ({' + '.join(parts)}) but "
            f"max_instances is {max_instances}",
            f"raise max_instances to {course.instance_count} if that is really intended, or "
            "shrink the roster or the clusters")
        return None
    return course


def _region(value: str) -> tuple[str, str] | None:
    if value in checks.AWS_REGIONS:
        return None
    hint = did_you_mean(value, checks.AWS_REGIONS)
    return f"{value!r} is not an AWS region", hint or "use a region name such as us-east-1"


def _roster(reader: Reader, table: Table, base: Path) -> tuple[Student, ...]:
    file_name = table.text("file", example='file = "students.csv"')
    inline = table.tables("students", example='[[roster.students]] with id, name, email')
    table.finish()
    found: dict[str, str] = {}  # student id -> where it was defined
    students: list[Student] = []

    def add(student: Student, where: str, report: Any) -> None:
        if student.id in found:
            report(f"student id {student.id!r} is already used at {found[student.id]}",
                   "give every student a unique id")
            return
        found[student.id] = where
        students.append(student)

    for item in inline:
        sid = item.text("id", required=True, example='id = "s01"', check=checks.seat_id)
        name = item.text("name", required=True, example='name = "Ada Lovelace"')
        email = item.text("email", required=True, example='email = "ada@example.edu"',
                         check=checks.email)
        group = item.text("group", default="", check=checks.seat_id)
        item.finish()
        if sid and name and email:
            line = reader.lines.line_of(item.path) if reader.lines else None
            add(Student(sid, name, email, group), f"{Path(reader.file).name}:{line}",
                lambda message, fix, item=item: item.problem("id", message, fix))

    if file_name and _exists(table, "file", base / file_name):
        # any roster format labtui knows (rosters.py); ids derived there avoid inline ones
        for entry in rosters.read(base / file_name, file_name, reader.problems, set(found)):
            def report(message: str, fix: str, line: int = entry.line) -> None:
                reader.problems.append(Problem(file_name, line, "", message, fix))
            add(Student(entry.id, entry.name, entry.email, entry.group),
                f"{file_name}:{entry.line}", report)
    if not file_name and not inline and table.reader.problems == []:
        table.problem("students", "the roster is empty",
                      'add file = "students.csv" or [[roster.students]] entries')
    return tuple(students)


def _exists(table: Table, key: str, path: Path) -> bool:
    if path.is_file():
        return True
    table.problem(key, f"{table.data[key]!r} does not exist (looked for {path.resolve()})",
                  "create it, or give its path relative to the course file")
    return False


def _inside(table: Table, key: str, base: Path, path: Path, *, uploaded: bool = False) -> bool:
    """Whether ``path`` (symlinks resolved) is in the course's folder: a file from elsewhere
    (``../../.aws/credentials``) would be copied to every seat (or uploaded to S3)."""
    real = path.resolve()
    if real.is_relative_to(base.resolve()):
        return True
    if uploaded:
        table.problem(key, f"{table.data[key]!r} is outside the course's folder (it is {real}) "
                      "and would be uploaded to the course's bucket",
                      "move it into the course's folder")
        return False
    table.problem(key, f"{table.data[key]!r} is outside the course's folder (it is {real}) and "
                  "would be copied to every seat",
                  "move it into the course's folder, or add outside_course = true to this "
                  "[[machines.files]] entry if every seat should really get it")
    return False


def _seats(reader: Reader, students: tuple[Student, ...],
           machines: Machines | None) -> tuple[Seat, ...]:
    if machines is None or machines.per == "student":
        return tuple(Seat(s.id, (s,)) for s in students)
    groups: dict[str, list[Student]] = {}
    for student in students:
        if not student.group:
            reader.problem("machines.per",
                           f'is "group" but student {student.id!r} has no group',
                           "give every student a group in the roster, or set per = \"student\"")
            continue
        groups.setdefault(student.group, []).append(student)
    return tuple(Seat(gid, tuple(members)) for gid, members in groups.items())


def _machines(t: Table, base: Path) -> Machines:
    per = t.text("per", default="student", choices=("student", "group"))
    instance_type = t.text("instance_type", required=True, example='instance_type = "t3.medium"',
                          check=checks.instance_type)
    ami = t.text("ami", default="ubuntu-24.04", example='ami = "ubuntu-24.04"', check=checks.ami)
    bake_from = t.text("bake_from", default="ubuntu-24.04", example='bake_from = "ubuntu-24.04"',
                       check=checks.base_ami)
    if ami != BAKED and t.has("bake_from"):
        t.problem("bake_from", f'only applies with ami = "{BAKED}"',
                  f'set ami = "{BAKED}" (and run `labtui bake`) or remove bake_from')
    market = t.text("market", default="on-demand", choices=MARKETS)
    max_price = t.number("max_price", minimum=0.0001, example="max_price = 0.05")
    if max_price is not None and market != "spot":
        t.problem("max_price", 'only applies with market = "spot"',
                  'set market = "spot" or remove max_price')
    default_user = checks.AMI_ALIASES.get((bake_from if ami == BAKED else ami) or "", "")
    user = t.text("user", required=not default_user, default=default_user or "ubuntu",
                 example='user = "ubuntu"', check=checks.unix_user)
    login = t.text("login", default="password", choices=("password", "key"))
    disk_gb = t.integer("disk_gb", default=16, minimum=8, maximum=16384)
    packages = t.str_list("packages", example='packages = ["git", "python3-pip"]',
                          check=checks.package)
    setup = t.str_list("setup", example='setup = ["pip install --user mrjob"]')
    setup_mode = t.text("setup_mode", default="ssh", choices=SETUP_MODES)
    files = []
    for item in t.tables("files"):
        source = item.text("source", required=True, example='source = "files/README.md"')
        dest = item.text("dest", required=True, example='dest = "~/README.md"')
        mode = item.text("mode", default="0644", check=checks.file_mode)
        outside = item.flag("outside_course")
        item.finish()
        if (source and _exists(item, "source", base / source)
                and (outside or _inside(item, "source", base, base / source)) and dest):
            files.append(CopyFile(base / source, dest, mode))
    t.finish()
    return Machines(instance_type=instance_type or "", per=per, ami=ami, market=market,
                    max_price=max_price, user=user, login=login, disk_gb=disk_gb,
                    packages=packages, setup=setup, files=tuple(files),
                    bake_from=bake_from or "ubuntu-24.04", setup_mode=setup_mode)


def _group(t: Table | None, role: str, default_count: int) -> InstanceGroup | None:
    if t is None:
        return None
    instance_type = t.text("instance_type", required=True, example='instance_type = "m5.xlarge"',
                          check=checks.instance_type)
    count = t.integer("count", default=default_count, minimum=1 if role != "TASK" else 0,
                  maximum=3 if role == "MASTER" else 256)
    if role == "MASTER" and count not in (1, 3):
        t.problem("count", f"a master group has 1 or 3 nodes, not {count}", "set count = 1")
    market = t.text("market", default="on-demand", choices=MARKETS)
    bid_price = t.number("bid_price", minimum=0.0001, example="bid_price = 0.10")
    if bid_price is not None and market != "spot":
        t.problem("bid_price", 'only applies with market = "spot"',
                  'set market = "spot" or remove bid_price')
    ebs_gb = t.integer("ebs_gb", minimum=1, maximum=16384, example="ebs_gb = 64")
    t.finish()
    return InstanceGroup(role, instance_type or "", count or 0, market, bid_price, ebs_gb)


def _configuration(item: Table, depth: int = 0) -> EmrConfiguration | None:
    classification = item.text("classification", required=True,
                              example='classification = "spark-defaults"')
    properties = item.mapping("properties")
    nested = []
    for inner in item.tables("configurations"):
        if depth >= 4:
            inner.problem("classification", "is nested more than 4 deep",
                          "EMR nests classifications one or two levels (e.g. hadoop-env > "
                          "export); flatten it")
            continue
        found = _configuration(inner, depth + 1)
        if found:
            nested.append(found)
    item.finish()
    return EmrConfiguration(classification, properties, tuple(nested)) if classification else None


def _script(t: Table, key: str, base: Path, *, required: bool, example: str) -> str | None:
    """An s3:// path as it is, or a file of the course (inside its folder; uploaded to the
    course's bucket before the clusters start)."""
    value = t.text(key, required=required, example=example)
    if not value:
        return None
    if value.startswith("s3://"):
        problem = checks.s3_uri(value)
        if problem:
            t.problem(key, problem, "give s3://bucket/key, or a file of the course")
            return None
        return value
    path = base / value
    if not (_exists(t, key, path) and _inside(t, key, base, path, uploaded=True)):
        return None
    return value


def _clusters(t: Table, base: Path) -> Clusters:
    release = t.text("release", required=True, example='release = "emr-7.2.0"',
                    check=checks.emr_release)
    applications = tuple(_emr_app_name(a) for a in t.str_list(
        "applications", example='applications = ["Hadoop", "Spark"]', check=_emr_app))
    idle = t.integer("idle_timeout_minutes", default=60, minimum=1, maximum=10080)
    per = t.text("per", default="student", choices=CLUSTER_PER)
    log_uri = t.text("log_uri", example='log_uri = "s3://cs498-logs/emr/"', check=checks.s3_uri)
    bucket = t.text("bucket", example='bucket = "cs498-fall26-data"', check=checks.bucket)
    keep_alive = t.flag("keep_alive", default=True)
    visible = t.flag("visible_to_all_users", default=True)
    master = _group(t.table("master", required=True,
                            example='[clusters.master] instance_type = "m5.xlarge"'),
                    "MASTER", 1)
    core = _group(t.table("core"), "CORE", 2)
    task = _group(t.table("task"), "TASK", 0)
    configurations = [c for c in (_configuration(item) for item in t.tables("configurations"))
                      if c]
    bootstrap = []
    for item in t.tables("bootstrap"):
        name = item.text("name", required=True, example='name = "install libraries"')
        script = _script(item, "path", base, required=True,
                         example='path = "s3://bucket/setup.sh" (or a file of the course)')
        args = item.str_list("args")
        item.finish()
        if name and script:
            bootstrap.append(BootstrapAction(name, script, args))
    steps = []
    for item in t.tables("steps"):
        name = item.text("name", required=True, example='name = "word count"')
        script = _script(item, "script", base, required=False, example="")
        args = item.str_list("args", required=not item.has("script"),
                             example='args = ["spark-submit", "s3://bucket/wc.py"]')
        jar = item.text("jar", default="command-runner.jar")
        if script and item.has("jar"):
            item.problem("jar", "does not go with script (a script runs by script-runner.jar)",
                         "remove jar, or remove script and give args")
        on_failure = item.text("on_failure", default="CONTINUE", choices=STEP_ON_FAILURE)
        item.finish()
        if name and (args or script):
            steps.append(Step(name, args, jar or "command-runner.jar", on_failure, script))
    t.finish()
    groups = tuple(g for g in (master, core, task) if g is not None and g.count)
    return Clusters(release=release or "", applications=applications, groups=groups,
                    idle_timeout_minutes=idle, configurations=tuple(configurations),
                    bootstrap=tuple(bootstrap), steps=tuple(steps), per=per or "student",
                    log_uri=log_uri, bucket=bucket, keep_alive=keep_alive,
                    visible_to_all_users=visible)


STEP_ON_FAILURE = ("CONTINUE", "CANCEL_AND_WAIT", "TERMINATE_CLUSTER", "TERMINATE_JOB_FLOW")


def _check_clusters(reader: Reader, clusters: Clusters, students: tuple[Student, ...],
                    storage: Storage | None) -> None:
    if clusters.per == "group":
        missing = [s.id for s in students if not s.group]
        if missing:
            reader.problem("clusters.per", f'is "group" but {len(missing)} student(s) have no '
                           f"group ({', '.join(missing[:5])})",
                           'give every student a group in the roster, or set per = "student"')
    buckets = (clusters.bucket, storage.data_bucket if storage else None,
               storage.scratch_bucket if storage else None)
    if not any(buckets) and clusters.local_files():
        reader.problem("clusters.bucket", "is needed for the course's scripts "
                       + ", ".join(clusters.local_files()),
                       'add [clusters] bucket = "<a bucket name>" (or a [storage] bucket), '
                       "or give s3:// paths")


def _emr_app_name(value: str) -> str:
    """EMR takes application names in any case ("hadoop"); labtui sends its own spelling."""
    return next((a for a in checks.EMR_APPLICATIONS if a.lower() == value.lower()), value)


def _emr_app(value: str) -> tuple[str, str] | None:
    if _emr_app_name(value) in checks.EMR_APPLICATIONS:
        return None
    hint = did_you_mean(value, checks.EMR_APPLICATIONS)
    return (f"{value!r} is not an EMR application",
            hint or f"use some of {', '.join(checks.EMR_APPLICATIONS)}")


def _storage(t: Table, base: Path) -> Storage:
    data = t.text("data_bucket", example='data_bucket = "cs498-fall26-data"', check=checks.bucket)
    scratch = t.text("scratch_bucket", example='scratch_bucket = "cs498-fall26-scratch"',
                    check=checks.bucket)
    expire = t.integer("scratch_expire_days", default=30, minimum=1, maximum=3650)
    upload_text = t.text("upload", example='upload = "data/"')
    t.finish()
    if data and data == scratch:
        t.problem("scratch_bucket", "is the same bucket as data_bucket",
                  "use two buckets so students can never write to the course data")
    upload = None
    if upload_text:
        folder = base / upload_text
        if not data:
            t.problem("upload", "needs data_bucket (the folder is uploaded there)",
                      'add data_bucket = "<a bucket name>", or remove upload')
        elif not folder.is_dir():
            t.problem("upload", f"{upload_text!r} is not a folder (looked for "
                      f"{folder.resolve()})", "give a folder relative to the course file")
        elif _inside(t, "upload", base, folder, uploaded=True):
            upload = folder
    return Storage(data, scratch, expire, upload)


def _access(t: Table) -> Access:
    users = t.flag("users")
    console = t.flag("console")
    permissions = t.str_list("permissions", example='permissions = ["submit-steps"]',
                             check=_permission)
    identity = t.text("identity", default="student", choices=("student", "shared"))
    credentials = t.text("credentials", default="keys", choices=("keys", "instance-profile"))
    t.finish()
    if console and credentials == "instance-profile":
        t.problem("credentials", '"instance-profile" gives students no IAM user to sign in to '
                  "the console with", 'use credentials = "keys", or drop console')
    return Access(users, console, permissions, identity or "student", credentials or "keys")


# The engine versions RDS offers (major.minor, optionally .patch) and the DB instance classes
DB_VERSIONS = {"mysql": ("5.7", "8.0", "8.4"), "mariadb": ("10.5", "10.6", "10.11", "11.4")}
DB_CLASSES = tuple(f"db.{family}.{size}" for family, sizes in (
    ("t3", ("micro", "small", "medium", "large", "xlarge", "2xlarge")),
    ("t4g", ("micro", "small", "medium", "large", "xlarge", "2xlarge")),
    ("m5", ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")),
    ("m6g", ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")),
    ("m6i", ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")),
    ("m7g", ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")),
    ("r5", ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")),
    ("r6g", ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")),
    ("r6i", ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")),
    ("r7g", ("large", "xlarge", "2xlarge", "4xlarge", "8xlarge", "12xlarge", "16xlarge")))
    for size in sizes)
_DB_USER = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")
_DB_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")


def _database(t: Table) -> Database:
    engine = t.text("engine", default="mysql", choices=tuple(DB_VERSIONS))
    engine = engine or "mysql"
    default_version = "8.0" if engine == "mysql" else "10.11"
    version = t.text("version", default=default_version, example=f'version = "{default_version}"')
    valid = bool(re.fullmatch(r"\d+\.\d+(\.\d+)?", version or "")) and (
        ".".join((version or "").split(".")[:2]) in DB_VERSIONS[engine])
    if version and not valid:
        hint = did_you_mean(version, DB_VERSIONS[engine])
        t.problem("version", f"{version!r} is not a {engine} version RDS offers",
                  hint or f"use one of {', '.join(DB_VERSIONS[engine])} (or a patch of one, "
                  f"e.g. {DB_VERSIONS[engine][-2]}.1)")
        version = default_version
    instance_class = t.text("instance_class", default="db.t3.micro", check=_db_class,
                            example='instance_class = "db.t3.micro"')
    storage = t.integer("storage_gb", default=20, minimum=20, maximum=65536)
    name = t.text("name", default="results", example='name = "results"')
    if name and not _DB_NAME.fullmatch(name):
        t.problem("name", f"{name!r} is not a database name",
                  "use a letter, then letters, digits and _ (64 at most)")
    users = {}
    for key, default in (("pipeline_user", "pipeline"), ("api_user", "api")):
        value = t.text(key, default=default, example=f'{key} = "{default}"')
        if value and not _DB_USER.fullmatch(value):
            t.problem(key, f"{value!r} is not a database user name",
                      "use a letter, then letters, digits and _ (32 at most)")
        users[key] = value or default
    if users["pipeline_user"] == users["api_user"]:
        t.problem("api_user", "is the same user as pipeline_user",
                  "give the reading user a name of its own")
    backup_days = t.integer("backup_days", default=7, minimum=0, maximum=35)
    protection = t.flag("deletion_protection")
    t.finish()
    return Database(engine, version or default_version, instance_class or "db.t3.micro",
                    storage or 20, name or "results", users["pipeline_user"], users["api_user"],
                    7 if backup_days is None else backup_days, protection)


def _db_class(value: str) -> tuple[str, str] | None:
    if value in DB_CLASSES:
        return None
    hint = did_you_mean(value, DB_CLASSES)
    return (f"{value!r} is not an RDS DB instance class",
            hint or 'use one such as "db.t3.micro" or "db.m6g.large"')


def _schedule(t: Table) -> Schedule | None:
    from datetime import date, datetime
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

    zone_name = t.text("timezone", required=True, example='timezone = "Europe/Paris"')
    zone = None
    if zone_name:
        try:
            zone = ZoneInfo(zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            hint = did_you_mean(zone_name, sorted(available_timezones()))
            t.problem("timezone", f"{zone_name!r} is not a time zone",
                      hint or 'use an IANA name such as "Europe/Paris" or "America/Chicago"')
    sessions = []
    for index, text in enumerate(t.str_list(
            "sessions", example='sessions = ["2026-07-20 09:00-13:00"]')):
        found = SESSION.fullmatch(text)
        try:
            day = date.fromisoformat(found.group(1)) if found else None
            begin, end = (parse_clock(found.group(2)), parse_clock(found.group(3))) \
                if found else (None, None)
        except ValueError:
            day = None
        if not found or day is None or begin is None or end is None:
            t.problem(f"sessions[{index}]", f"{text!r} is not a session",
                      'write it like "2026-07-20 09:00-13:00" (a date, then from-to hours)')
            continue
        if end <= begin:
            t.problem(f"sessions[{index}]", f"{text!r} ends before it starts",
                      "give the end after the start, on the same day")
            continue
        if zone is not None:
            sessions.append((datetime.combine(day, begin, zone), datetime.combine(day, end, zone)))
    weekly = []
    for index, text in enumerate(t.str_list("weekly", example='weekly = ["mon 09:00-11:00"]')):
        found = WEEKLY.fullmatch(text.lower())
        try:
            begin, end = (parse_clock(found.group(2)), parse_clock(found.group(3))) \
                if found else (None, None)
        except ValueError:
            begin = end = None
        if not found or begin is None or end is None or end <= begin:
            t.problem(f"weekly[{index}]", f"{text!r} is not a weekly session",
                      'write it like "mon 09:00-11:00" (mon … sun, then from-to hours)')
            continue
        weekly.append(Weekly(DAYS.index(found.group(1)), begin, end))
    bounds = []
    for key in ("from", "until"):
        value = t.text(key, example=f'{key} = "2026-09-01"')
        try:
            bounds.append(date.fromisoformat(value) if value else None)
        except ValueError:
            t.problem(key, f"{value!r} is not a date", f'write it like {key} = "2026-09-01"')
            bounds.append(None)
    lead = t.integer("lead_minutes", default=15, minimum=0, maximum=24 * 60)
    cluster_lead = t.integer("cluster_lead_minutes", default=30, minimum=0, maximum=24 * 60)
    idle = t.integer("idle_stop_minutes", default=0, minimum=0, maximum=7 * 24 * 60)
    cpu = t.number("idle_cpu_percent", default=5.0, minimum=0.1)
    t.finish()
    if t.has("weekly") and weekly and not (bounds[0] and bounds[1]):
        t.problem("weekly", "needs from and until (the term's first and last day)",
                  'add from = "2026-09-01" and until = "2026-12-15"')
    if not sessions and not weekly and not t.has("sessions") and not t.has("weekly"):
        t.problem("sessions", "is missing: the schedule has no session",
                  'add sessions = ["2026-07-20 09:00-13:00"] or weekly = ["mon 09:00-11:00"]')
    if zone is None:
        return None
    return Schedule(zone_name, tuple(sorted(sessions)), tuple(weekly), bounds[0], bounds[1],
                    15 if lead is None else lead, 30 if cluster_lead is None else cluster_lead,
                    idle or 0, cpu if cpu is not None else 5.0)


def _mail(t: Table) -> Mail:
    via = t.text("via", default="smtp", choices=("smtp", "ses"))
    sender = t.text("from", required=True, example='from = "instructor@example.edu"',
                    check=checks.email)
    host = t.text("smtp_host", default="localhost", example='smtp_host = "smtp.example.edu"')
    port = t.integer("smtp_port", default=587, minimum=1, maximum=65535)
    starttls = t.flag("starttls", default=True)
    user = t.text("user", example='user = "instructor"')
    region = t.text("ses_region", example='ses_region = "us-east-1"', check=_region)
    t.finish()
    return Mail(sender or "", via or "smtp", host or "localhost", port or 587, starttls,
                user, region)


def _permission(value: str) -> tuple[str, str] | None:
    if value in checks.STUDENT_PERMISSIONS:
        return None
    hint = did_you_mean(value, checks.STUDENT_PERMISSIONS)
    return (f"{value!r} is not a student permission",
            hint or f"use some of {', '.join(checks.STUDENT_PERMISSIONS)}")


def _billing(t: Table) -> Billing:
    alarms = t.num_list("alarms_usd", example="alarms_usd = [50, 100, 200]")
    for index, value in enumerate(alarms):
        if value <= 0:
            t.problem(f"alarms_usd[{index}]", "must be more than 0", "use a positive amount")
    notify = t.text("notify", example='notify = "you@example.edu"', check=checks.email)
    monthly = t.number("monthly_budget_usd", minimum=1, example="monthly_budget_usd = 500")
    t.finish()
    return Billing(tuple(sorted(set(alarms))), notify, monthly)


def _network(t: Table) -> Network:
    ssh_cidr = t.text("ssh_cidr", default="", example='ssh_cidr = "203.0.113.0/24"',
                     check=checks.cidr)
    ports = t.int_list("open_ports", example="open_ports = [8888]")
    for index, port in enumerate(ports):
        if not 1 <= port <= 65535:
            t.problem(f"open_ports[{index}]", f"{port} is not a TCP port",
                      "use a number from 1 to 65535")
    vpc = t.text("vpc_id", check=checks.vpc_id, example='vpc_id = "vpc-0123456789abcdef0"')
    subnet = t.text("subnet_id", check=checks.subnet_id,
                   example='subnet_id = "subnet-0123456789abcdef0"')
    if subnet and not vpc:
        t.problem("subnet_id", "needs vpc_id too", "add the VPC the subnet belongs to")
    t.finish()
    return Network(ssh_cidr, ports, vpc, subnet)


_SAVE_PATH = re.compile(r"~/[A-Za-z0-9._*?\[\]/-]+")


def _save_path(value: str) -> tuple[str, str] | None:
    if _SAVE_PATH.fullmatch(value) and ".." not in value.split("/"):
        return None
    return (f"{value!r} is not a path in the student's home",
            'use "~/" and then letters, digits, . _ - / and globs, e.g. "~/work" or '
            '"~/*.ipynb"')


def _teardown(t: Table) -> Teardown:
    save = t.str_list("save", example='save = ["~/work", "~/*.ipynb"]', check=_save_path)
    bucket = t.text("bucket", example='bucket = "cs498-fall26-work"', check=checks.bucket)
    t.finish()
    return Teardown(tuple(save) if t.has("save") else ("~/work",), bucket)


JUPYTER_SERVERS = ("lab", "notebook", "server")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_RELATIVE = re.compile(r"[A-Za-z0-9._-][A-Za-z0-9._/-]*")


def _jupyter(t: Table, base: Path) -> Jupyter:
    port = t.integer("port", default=8888, minimum=1024, maximum=65535)
    notebooks = t.str_list("notebooks", example='notebooks = ["notebooks/lab1.ipynb"]')
    found = []
    for index, notebook in enumerate(notebooks):
        key = f"notebooks[{index}]"
        if not (base / notebook).is_file():
            t.problem(key, f"{notebook!r} does not exist (looked for "
                      f"{(base / notebook).resolve()})",
                      "create it, or give its path relative to the course file")
        elif _inside_key(t, key, notebook, base, base / notebook):
            found.append(base / notebook)
    templates = None
    folder = t.text("templates", example='templates = "notebooks/"')
    if folder:
        if not (base / folder).is_dir():
            t.problem("templates", f"{folder!r} is not a folder (looked for "
                      f"{(base / folder).resolve()})", "give a folder relative to the course file")
        elif _inside_key(t, "templates", folder, base, base / folder):
            templates = base / folder
    workdir = t.text("workdir", default="~/work", example='workdir = "~/work"',
                    check=_save_path)
    if workdir and any(c in workdir for c in "*?[]"):
        t.problem("workdir", f"{workdir!r} is a pattern, not a folder", 'use e.g. "~/work"')
    env_files = {}
    for key, example in (("requirements", 'requirements = "requirements.txt"'),
                         ("environment", 'environment = "environment.yml"')):
        name = t.text(key, example=example)
        if name and _exists(t, key, base / name) and _inside_key(t, key, name, base,
                                                                 base / name):
            env_files[key] = base / name
    if len(env_files) == 2:
        t.problem("environment", "and requirements are both given",
                  "give one: requirements (pip) or environment (conda)")
    server = t.text("server", default="lab", choices=JUPYTER_SERVERS)
    command = t.text("command", example='command = "jupyter lab"')
    daily = t.flag("daily")
    data = []
    for item in t.tables("data", example='[[jupyter.data]] source = "s3://bucket/file.csv"'):
        source = item.text("source", required=True, example='source = "s3://bucket/file.csv"',
                           check=_data_source)
        dest = item.text("dest", example='dest = "data/file.csv"')
        digest = item.text("sha256", example='sha256 = "<64 hex digits>"')
        item.finish()
        if digest and not _SHA256.fullmatch(digest):
            item.problem("sha256", f"{digest!r} is not a SHA-256 digest",
                         "give the 64 lowercase hex digits `sha256sum FILE` prints")
            continue
        if not source:
            continue
        dest = dest or source.rstrip("/").rsplit("/", 1)[-1]
        if not _RELATIVE.fullmatch(dest) or ".." in dest.split("/"):
            item.problem("dest", f"{dest!r} is not a path inside the working folder",
                         'use letters, digits, . _ - and /, e.g. "data/file.csv"')
            continue
        data.append(DataFile(source, dest, digest))
    t.finish()
    return Jupyter(port or 8888, tuple(found), templates, workdir or "~/work",
                   env_files.get("requirements"), env_files.get("environment"),
                   server or "lab", command, daily, tuple(data))


def _inside_key(t: Table, key: str, given: str, base: Path, path: Path) -> bool:
    if path.resolve().is_relative_to(base.resolve()):
        return True
    t.problem(key, f"{given!r} is outside the course's folder (it is {path.resolve()}) and "
              "would be copied to every seat", "move it into the course's folder")
    return False


def _data_source(value: str) -> str | tuple[str, str] | None:
    if value.startswith("s3://"):
        problem = checks.s3_uri(value)
        if problem is None and "/" not in value[5:].strip("/"):
            return f"{value!r} names a bucket, not a file", 'give s3://bucket/path/file'
        return problem
    if value.startswith(("https://", "http://")) and len(value.split("/", 3)) > 3:
        return None
    return (f"{value!r} is neither an s3:// path nor a URL",
            'give "s3://bucket/path/file" or "https://host/path/file"')


JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


def _jobs(reader: Reader, t: Table, base: Path, course_id: str) -> Jobs | None:
    file_name = t.text("file", required=True, example='file = "jobs.csv"')
    output = t.text("output", required=True, example='output = "s3://cs498-results/run1/"',
                   check=checks.s3_uri)
    market = t.text("market", default="spot", choices=MARKETS)
    max_price = t.number("max_price", minimum=0.0001)
    max_parallel = t.integer("max_parallel", default=10, minimum=1, maximum=1000)
    name = t.text("name", default=course_id, example='name = "run1"')
    if name and not JOB_NAME.fullmatch(name):
        t.problem("name", f"{name!r} is not a job name",
                  "use 1-63 letters, digits, '.', '_' and '-' (it names S3 keys and tags)")
    code_dir = t.text("code", example='code = "code/"')
    code = None
    if code_dir:
        if not (base / code_dir).is_dir():
            t.problem("code", f"{code_dir!r} is not a folder (looked for "
                      f"{(base / code_dir).resolve()})",
                      "give a folder relative to the course file")
        elif _inside_key(t, "code", code_dir, base, base / code_dir):
            code = base / code_dir
    install_name = t.text("install", example='install = "INSTALL.sh"')
    install = None
    if install_name and _exists(t, "install", base / install_name) and _inside_key(
            t, "install", install_name, base, base / install_name):
        install = base / install_name
    install_timeout = t.integer("install_timeout", default=1800, minimum=10, maximum=86400)
    install_attempts = t.integer("install_attempts", default=3, minimum=1, maximum=20)
    results = t.text("results", example='results = "results/results.csv"')
    if results and (results.startswith("/") or ".." in results.split("/")):
        t.problem("results", f"{results!r} is not a path inside the code folder",
                  'give it relative to the code folder, e.g. "results/results.csv"')
    prefix = t.text("command_prefix", default="", example='command_prefix = "julia run.jl"')
    pack = t.flag("pack")
    ami = t.text("ami", default="ubuntu-24.04", check=checks.base_ami,
                example='ami = "ubuntu-24.04"')
    disk_gb = t.integer("disk_gb", default=16, minimum=8, maximum=16384)
    timeout = t.integer("timeout", minimum=1, maximum=7 * 86400, example="timeout = 3600")
    t.finish()
    if not file_name or not _exists(t, "file", base / file_name):
        return None
    entries = read_jobs(base / file_name, file_name, name or course_id, reader.problems)
    return Jobs(base / file_name, output or "", tuple(entries), market, max_price,
                max_parallel, name or course_id, code, install, install_timeout or 1800,
                install_attempts or 3, results, prefix or "", pack, ami or "ubuntu-24.04",
                disk_gb or 16, timeout)


def read_jobs(path: Path, shown: str, job_name: str, problems: list[Problem]) -> list[Job]:
    """Every job of a job CSV (header ``instance_type,command`` and an optional ``name``
    column), each bad row a Problem with its line; names default to ``<job>-<row>``."""
    entries: list[Job] = []
    seen: dict[str, int] = {}
    row = 0
    for line, fields in read_rows(path, shown, ("instance_type", "command"), ("name",),
                                  problems):
        row += 1
        name = fields.get("name") or f"{job_name}-{row}"
        found = checks.instance_type(fields["instance_type"]) if fields["instance_type"] else (
            "instance_type is empty", 'use an EC2 instance type such as "c5.large"')
        if found:
            problems.append(Problem(shown, line, "", *found))
        elif not fields["command"]:
            problems.append(Problem(shown, line, "", "command is empty",
                                    "give the command the job runs"))
        elif not JOB_NAME.fullmatch(name):
            problems.append(Problem(shown, line, "", f"the job name {name!r} is not a name",
                                    "use 1-63 letters, digits, '.', '_' and '-'"))
        elif name in seen:
            problems.append(Problem(shown, line, "", f"the job name {name!r} is taken by "
                                    f"line {seen[name]}", "give every job its own name"))
        else:
            seen[name] = line
            entries.append(Job(line, fields["instance_type"], fields["command"], name))
    return entries