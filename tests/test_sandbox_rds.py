"""The sandbox plays RDS with a real MariaDB server per MySQL or MariaDB DB instance.

boto3 against the session sandbox makes a DB parameter group and a DB instance, waits with
boto3's own ``db_instance_available`` waiter as one would on AWS, and PyMySQL connects to the
endpoint DescribeDBInstances gives, as the master user.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from labtui.sandbox import rds

PROBLEM = rds.mariadb_problem()
live = pytest.mark.skipif(PROBLEM is not None, reason=f"no MariaDB here: {PROBLEM}")
REGION = "us-east-1"
FAST = {"Delay": 0.5, "MaxAttempts": 240}  # polled, generous: a server starts in seconds


def _password() -> str:
    return f"pw-{uuid.uuid4().hex[:12]}'\\x"  # a quote and a backslash reach it intact


def _group(client: Any, name: str = "utf8mb4-bin") -> str:
    client.create_db_parameter_group(DBParameterGroupName=name,
                                     DBParameterGroupFamily="mariadb10.11",
                                     Description="utf8mb4, binary collation")
    client.modify_db_parameter_group(DBParameterGroupName=name, Parameters=[
        {"ParameterName": "character_set_server", "ParameterValue": "utf8mb4",
         "ApplyMethod": "pending-reboot"},
        {"ParameterName": "collation_server", "ParameterValue": "utf8mb4_bin",
         "ApplyMethod": "pending-reboot"},
        # RDS's own formula and an option the sandbox sets itself: not passed on
        {"ParameterName": "innodb_buffer_pool_size",
         "ParameterValue": "{DBInstanceClassMemory*3/4}", "ApplyMethod": "pending-reboot"},
        {"ParameterName": "port", "ParameterValue": "3306", "ApplyMethod": "pending-reboot"},
    ])
    return name


def _create(client: Any, name: str, password: str, engine: str = "mariadb",
            **extra: Any) -> dict[str, Any]:
    return client.create_db_instance(
        DBInstanceIdentifier=name, DBInstanceClass="db.t3.micro", Engine=engine,
        AllocatedStorage=20, MasterUsername="admin", MasterUserPassword=password,
        **extra)["DBInstance"]


def _endpoint(client: Any, name: str) -> tuple[str, int]:
    client.get_waiter("db_instance_available").wait(DBInstanceIdentifier=name,
                                                    WaiterConfig=FAST)
    found = client.describe_db_instances(DBInstanceIdentifier=name)["DBInstances"][0]
    return found["Endpoint"]["Address"], found["Endpoint"]["Port"]


def _answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _mariadbds() -> list[int]:
    """mariadbd processes that are this process's children."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        name = stat.split("(", 1)[1].rsplit(")", 1)[0]
        if name == "mariadbd" and int(stat.rsplit(")", 1)[1].split()[1]) == me:
            found.append(int(entry.name))
    return found


def _gone(check: Any, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


@live
def test_a_db_instance_is_a_real_mariadb_server(ctx, sandbox) -> None:
    import pymysql

    client = ctx.aws.client("rds", REGION)
    password = _password()
    made = _create(client, "course-db", password, DBName="course",
                   DBParameterGroupName=_group(client))
    assert made["DBInstanceStatus"] == "creating"
    host, port = _endpoint(client, "course-db")
    assert host == "127.0.0.1" and _answers(host, port)

    with pymysql.connect(host=host, port=port, user="admin", password=password,
                         database="course") as conn, conn.cursor() as cur:
        cur.execute("SELECT @@collation_server, @@character_set_server")
        assert cur.fetchone() == ("utf8mb4_bin", "utf8mb4")
        cur.execute("SHOW GRANTS")
        assert any("WITH GRANT OPTION" in row[0] for row in cur.fetchall())
        cur.execute("CREATE DATABASE lab")
        cur.execute("CREATE USER 'student'@'%' IDENTIFIED BY 's3cret'")
        cur.execute("GRANT ALL ON lab.* TO 'student'@'%'")
    with pymysql.connect(host=host, port=port, user="student", password="s3cret",
                         database="lab") as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (x INT)")
        cur.execute("INSERT INTO t VALUES (42)")
        cur.execute("SELECT x FROM t")
        assert cur.fetchone() == (42,)
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(host=host, port=port, user="admin", password="wrong")

    server = sandbox._rds.server(REGION, "course-db")
    folder = server.folder
    assert folder == sandbox.folder / "rds" / "course-db" and (folder / "data").is_dir()
    # the password is on no command line and in no file the sandbox wrote
    for pid in _mariadbds():
        assert password.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    for path in folder.glob("*.log"):
        assert password not in path.read_text(errors="replace")
    assert "innodb_buffer_pool_size" in (folder / "sandbox.log").read_text()

    client.delete_db_instance(DBInstanceIdentifier="course-db", SkipFinalSnapshot=True)
    assert not _answers(host, port)
    assert not folder.exists()
    assert sandbox._rds.pids() == []


@live
def test_reset_ends_every_server(ctx, sandbox) -> None:
    client = ctx.aws.client("rds", REGION)
    _create(client, "one", _password())
    _create(client, "two", _password(), engine="mysql", DBName="app")
    ends = [_endpoint(client, "one"), _endpoint(client, "two")]
    assert len(_mariadbds()) == 2 and ends[0] != ends[1]
    sandbox.reset()
    assert _gone(lambda: not _mariadbds()), _mariadbds()
    assert not any(_answers(*end) for end in ends)
    assert not any((sandbox.folder / "rds").iterdir())


@live
def test_deleting_while_creating_leaves_nothing(ctx, sandbox) -> None:
    client = ctx.aws.client("rds", REGION)
    _create(client, "short-lived", _password())
    client.delete_db_instance(DBInstanceIdentifier="short-lived", SkipFinalSnapshot=True)
    assert _gone(lambda: not _mariadbds()), _mariadbds()
    assert not (sandbox.folder / "rds" / "short-lived").exists()


def test_without_mariadb_the_instance_is_moto_s_record(ctx, sandbox, monkeypatch) -> None:
    said: list[str] = []
    monkeypatch.setattr(sandbox._rds, "problem", "MariaDB is not installed (mariadbd missing)")
    monkeypatch.setattr(sandbox._rds, "_say", said.append)
    monkeypatch.setattr(sandbox._rds, "_said", False)
    client = ctx.aws.client("rds", REGION)
    for name in ("first", "second"):
        made = _create(client, name, _password(), engine="mysql")
        assert made["DBInstanceStatus"] == "available"
        assert made["Endpoint"]["Address"].endswith(".rds.amazonaws.com")
        assert made["Endpoint"]["Port"] == 3306
    assert said == ["sandbox: DB instances get no database server here: "
                    "MariaDB is not installed (mariadbd missing)"]
    assert "DB instances are records only" in sandbox.machines
    assert not (sandbox.folder / "rds" / "first").exists()


def test_mariadb_problem_names_the_fix(monkeypatch) -> None:
    monkeypatch.setattr(rds, "_tool", lambda name: None if name == "mariadbd" else "/x")
    problem = rds.mariadb_problem()
    assert problem is not None and "mariadbd" in problem
    assert "apt-get install mariadb-server" in problem


@live
def test_parameter_options_are_those_mariadb_knows() -> None:
    options, skipped = rds.parameter_options({
        "collation_server": {"ParameterName": "collation_server",
                             "ParameterValue": "utf8mb4_bin"},
        "max_connections": {"ParameterName": "max_connections", "ParameterValue": "50"},
        "innodb_buffer_pool_size": {"ParameterValue": "{DBInstanceClassMemory*3/4}"},
        "datadir": {"ParameterValue": "/var/lib/mysql"},
        "no_such_thing": {"ParameterValue": "1"},
        "unset": {"ParameterName": "unset"},
    })
    assert options == ["--collation-server=utf8mb4_bin", "--max-connections=50"]
    assert skipped == ["datadir", "innodb_buffer_pool_size", "no_such_thing"]
