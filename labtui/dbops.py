"""The result store for both front ends: made by `up` (instance, users, the cluster's
connection file), shown and checked live by `labtui db` and the console. The AWS and MySQL
work is in labtui/services/database.py."""

from __future__ import annotations

from collections.abc import Callable

from labtui.context import Context
from labtui.course import Course
from labtui.errors import InputError
from labtui.events import LogLine, StepDone
from labtui.services import database, ssh
from labtui.services.aws import translate_errors
from labtui.services.network import RegionNetwork


def require_database(course: Course) -> None:
    if course.database is None:
        raise InputError(f"{course.path}: the course has no [database] section. Fix: add one "
                         "(see sample_course.toml)")


def reachable(ctx: Context, where: tuple[str, int] | None) -> str | None:
    """Why labtui must not connect to ``where`` (None: it may). The sandbox's endpoints are
    loopback when it plays the instance with MariaDB; moto's made-up host names are never
    dialed."""
    if where is None:
        return "the database has no endpoint yet"
    if ctx.resolver.loopback_only and not ssh.is_loopback(where[0]):
        from labtui.sandbox.rds import mariadb_problem
        return ("the sandbox plays no MariaDB server for it"
                + (f" ({mariadb_problem()})" if mariadb_problem() else ""))
    return None


def ensure(ctx: Context, course: Course, network_for: Callable[[str], RegionNetwork]) -> None:
    """Up's part: the instance (waited for), its users and grants, the connection file."""
    if course.database is None:
        return
    region = course.regions[0]
    state = ctx.state.course(course.id)
    found = database.ensure(ctx.aws, course, state, region, network_for(region), ctx.sink)
    where = database.endpoint(found)
    why = reachable(ctx, where)
    if why:
        ctx.sink.emit(LogLine(f"database users not made: {why}", level="warning"))
        return
    assert where is not None
    database.ensure_users(course, state, where, ctx.sink)
    if course.storage is not None and course.storage.scratch_bucket:
        key = "labtui/database.json"
        with translate_errors(f"s3.PutObject s3://{course.storage.scratch_bucket}/{key}"):
            ctx.aws.client("s3", region).put_object(
                Bucket=course.storage.scratch_bucket, Key=key,
                Body=database.connection_file(course, state, where),
                ContentType="application/json", ServerSideEncryption="AES256")
        ctx.sink.emit(StepDone(f"the cluster's connection to the database: "
                               f"s3://{course.storage.scratch_bucket}/{key}"))


def status(ctx: Context, course: Course, live: bool = True) -> database.Check:
    require_database(course)
    region = course.regions[0]
    found = database.check(ctx.aws, course, ctx.state.course(course.id), region, live=False)
    if not live or found.state != "available":
        return found
    instance = database.describe(ctx.aws, course.id, region) or {}
    why = reachable(ctx, database.endpoint(instance))
    if why:
        found.problems.append(f"not checked live: {why}")
        return found
    return database.check(ctx.aws, course, ctx.state.course(course.id), region, live=True)
