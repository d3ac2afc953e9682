"""The result store on the sandbox: RDS (moto) played by a real MariaDB server, the two
users and their grants made by `up`, checked live by `labtui db`, removed by `down` with a
final snapshot, found by sweep; bad [database] values named by line."""

from __future__ import annotations

import json

import pytest

from labtui import dbops, lifecycle
from labtui.course import load
from labtui.errors import CourseError
from labtui.services import database

from .courses import write_course

DB = """
[storage]
data_bucket = "db-data"
scratch_bucket = "db-scratch"

[database]
engine = "mariadb"
version = "10.11"
instance_class = "db.t3.micro"
storage_gb = 20
name = "results"
"""


def db_course(tmp_path, extra: str = DB):
    return write_course(tmp_path, "db", students=1, extra=extra)


def test_bad_database_values_name_the_line(tmp_path) -> None:
    path = db_course(tmp_path, """
[database]
engine = "postgres"
version = "8.1"
instance_class = "db.t3.micr"
storage_gb = 5
pipeline_user = "etl"
api_user = "etl"
""")
    with pytest.raises(CourseError) as info:
        load(path)
    text = "\n".join(str(p) for p in info.value.problems)
    assert "database.engine: 'postgres' is not one of 'mysql', 'mariadb'" in text
    assert "database.version: '8.1' is not a mysql version RDS offers. Fix: did you mean " \
           "'8.4'?" in text
    assert "database.instance_class: 'db.t3.micr' is not an RDS DB instance class. Fix: did " \
           "you mean 'db.t3.micro'?" in text
    assert "database.storage_gb: must be at least 20" in text
    assert "database.api_user: is the same user as pipeline_user" in text
    assert all(str(p).split(":")[1].strip().isdigit() for p in info.value.problems)


@pytest.mark.timeout(300)
def test_up_makes_the_store_and_its_users_db_checks_them_down_removes_it(ctx, sandbox,
                                                                         tmp_path) -> None:
    from labtui.sandbox.rds import mariadb_problem
    if mariadb_problem():
        pytest.skip(mariadb_problem())
    course = load(db_course(tmp_path))
    lifecycle.up(ctx, course, setup_wait=60)
    state = ctx.state.course("db")
    found = dbops.status(ctx, course)
    assert (found.state, found.collation) == ("available", "utf8mb4_bin"), found
    assert found.pipeline_writes is True and found.api_refused is True and found.ok
    assert found.endpoint.startswith("127.0.0.1:")

    # passwords: 0600 files, never in the logs or the connection file's neighbours
    secret = database.password(state, "api")
    assert oct((state.secrets / "db" / "api").stat().st_mode & 0o777) == "0o600"
    logs = "".join(str(e) for e in ctx.sink.events) + "".join(
        f.read_text() for f in state.root.rglob("*") if f.is_file() and "secrets" not in f.parts)
    assert secret not in logs and database.password(state, "pipeline") not in logs
    body = ctx.aws.client("s3", "us-east-1").get_object(
        Bucket="db-scratch", Key="labtui/database.json")["Body"].read()
    link = json.loads(body)
    assert (link["user"], link["database"]) == ("pipeline", "results")

    # a grant changed by hand is put back by the next up (it converges)
    host, port = found.endpoint.split(":")
    conn = database.connect(host, int(port), database.MASTER,
                            database.password(state, database.MASTER))
    with conn.cursor() as cur:
        cur.execute("GRANT INSERT ON *.* TO 'api'@'%'")
    conn.close()
    assert dbops.status(ctx, course).api_refused is False
    lifecycle.up(ctx, course, setup_wait=60)
    assert dbops.status(ctx, course).api_refused is True

    # the CLI
    from labtui.cli import main
    assert main(["db", str(course.path), "--sandbox", "--json"]) == 0

    report = lifecycle.down(ctx, course, lifecycle.DownOptions(save=False))
    assert report.left == [], report.left
    assert any("DB snapshot labtui-db-final-" in k for k in report.kept)
    assert database.describe(ctx.aws, "db", "us-east-1") is None
    rds = ctx.aws.client("rds", "us-east-1")
    assert rds.describe_db_subnet_groups()["DBSubnetGroups"] == []
    snapshots = rds.describe_db_snapshots(SnapshotType="manual")["DBSnapshots"]
    assert [s["DBSnapshotIdentifier"].startswith("labtui-db-final-") for s in snapshots] == [True]

    # sweep finds the final snapshot (the course's, by its copied tags) and deletes it
    outcome = lifecycle.sweep(ctx, "us-east-1", delete=True)
    snaps = [f for f in outcome.scan.findings if f.kind == "db-snapshot"]
    assert [f.course for f in snaps] == ["db"] and snaps[0].monthly_usd > 0
    assert outcome.left == [] and rds.describe_db_snapshots(
        SnapshotType="manual")["DBSnapshots"] == []
