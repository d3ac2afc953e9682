"""The result store (``[database]``): an RDS MySQL or MariaDB instance in the course's VPC,
its subnet group, parameter group (utf8mb4, binary collation) and security group, and its
two users made over a MySQL connection (PyMySQL): ``pipeline`` may create databases, tables
and indexes and run any DML, ``api`` may only read.

Passwords are generated and kept 0600 under the course's secrets (``db/<user>``), sent to
the server inside the MySQL protocol only, never in a log line, a tag or an exception (a
failed statement is reported by its number and MySQL's message, which never holds them).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from labtui.course import Course
from labtui.errors import LabError
from labtui.events import EventSink, LogLine, Progress, StepDone
from labtui.services import passwords, tags
from labtui.services.aws import Aws, AwsError, translate_errors
from labtui.services.network import RegionNetwork
from labtui.state import CourseState

MASTER = "labtui_admin"
PORT = 3306
PIPELINE_GRANTS = ("SELECT, INSERT, UPDATE, DELETE, CREATE, DROP, ALTER, INDEX, REFERENCES, "
                   "CREATE TEMPORARY TABLES, LOCK TABLES, CREATE VIEW, SHOW VIEW, EXECUTE")
API_GRANTS = "SELECT, SHOW VIEW"
CHARSET, COLLATION = "utf8mb4", "utf8mb4_bin"   # MySQL's utf8_bin rule for all of Unicode
GONE = ("deleting", "deleted")


class DatabaseError(LabError):
    pass


def identifier(course_id: str) -> str:
    return f"labtui-{course_id}"


def secret_name(user: str) -> str:
    return f"db/{user}"


def password(state: CourseState, user: str) -> str:
    """The user's password, made on first use and kept 0600 (a rerun uses the same)."""
    found = state.read_secret(secret_name(user))
    if found:
        return found.strip()
    made = passwords.generate(5)
    state.write_secret(secret_name(user), made + "\n")
    return made


# ---------------------------------------------------------------------- on AWS

def _rds(aws: Aws, region: str) -> Any:
    return aws.client("rds", region)


def describe(aws: Aws, course_id: str, region: str) -> dict[str, Any] | None:
    try:
        with translate_errors(f"rds.DescribeDBInstances {identifier(course_id)}"):
            found = _rds(aws, region).describe_db_instances(
                DBInstanceIdentifier=identifier(course_id))["DBInstances"]
    except AwsError as exc:
        if exc.code in ("DBInstanceNotFound", "DBInstanceNotFoundFault"):
            return None
        raise
    return found[0] if found else None


def security_group(aws: Aws, course: Course, region: str, network: RegionNetwork) -> str:
    """The database's group: MySQL from the course's machines and cluster nodes (their
    groups) and from the instructor's ssh_cidr, nothing else."""
    ec2 = aws.client("ec2", region)
    name = f"labtui-{course.id}-db"
    with translate_errors(f"ec2.CreateSecurityGroup {name}"):
        found = ec2.describe_security_groups(Filters=[
            {"Name": "vpc-id", "Values": [network.vpc_id]},
            {"Name": "group-name", "Values": [name]}])["SecurityGroups"]
        if found:
            group = found[0]["GroupId"]
        else:
            group = ec2.create_security_group(
                GroupName=name, VpcId=network.vpc_id,
                Description=f"labtui {course.id}: the result store (MySQL)",
                TagSpecifications=[{"ResourceType": "security-group",
                                    "Tags": tags.tags(course.id, role="database")}])["GroupId"]
        sources = [network.security_group_id] + [
            g["GroupId"] for g in ec2.describe_security_groups(Filters=[
                {"Name": "vpc-id", "Values": [network.vpc_id]},
                {"Name": "group-name", "Values": ["ElasticMapReduce-master",
                                                  "ElasticMapReduce-slave"]}])["SecurityGroups"]]
        have = {(p.get("FromPort"), g["GroupId"]) for p in (found[0]["IpPermissions"]
                                                            if found else [])
                for g in p.get("UserIdGroupPairs", [])}
        cidrs = {(p.get("FromPort"), r["CidrIp"]) for p in (found[0]["IpPermissions"]
                                                          if found else [])
                 for r in p.get("IpRanges", [])}
        pairs = [{"GroupId": g} for g in sources if (PORT, g) not in have]
        ranges = ([{"CidrIp": course.network.ssh_cidr, "Description": "the instructor"}]
                  if course.network.ssh_cidr and (PORT, course.network.ssh_cidr) not in cidrs
                  else [])
        if pairs or ranges:
            ec2.authorize_security_group_ingress(GroupId=group, IpPermissions=[{
                "IpProtocol": "tcp", "FromPort": PORT, "ToPort": PORT,
                "UserIdGroupPairs": pairs, "IpRanges": ranges}])
    return group


def ensure(aws: Aws, course: Course, state: CourseState, region: str, network: RegionNetwork,
           sink: EventSink, *, wait: float = 1800,
           sleep: Callable[[float], None] = time.sleep) -> dict[str, Any]:
    """The instance and what it needs, created when missing and waited for (progress);
    returns the instance as DescribeDBInstances has it."""
    cfg = course.database
    assert cfg is not None
    rds = _rds(aws, region)
    name = identifier(course.id)
    labels = tags.tags(course.id, role="database")
    with translate_errors(f"rds.CreateDBSubnetGroup {name}"):
        try:
            have = rds.describe_db_subnet_groups(DBSubnetGroupName=name)["DBSubnetGroups"]
        except rds.exceptions.DBSubnetGroupNotFoundFault:
            have = []
        if not have:
            rds.create_db_subnet_group(
                DBSubnetGroupName=name, SubnetIds=[s for _, s in network.subnets],
                DBSubnetGroupDescription=f"labtui {course.id}: the course's subnets",
                Tags=labels)
    with translate_errors(f"rds.CreateDBParameterGroup {name}"):
        try:
            have = rds.describe_db_parameter_groups(DBParameterGroupName=name)[
                "DBParameterGroups"]
        except rds.exceptions.DBParameterGroupNotFoundFault:
            have = []
        if not have:
            rds.create_db_parameter_group(
                DBParameterGroupName=name, DBParameterGroupFamily=cfg.family,
                Description=f"labtui {course.id}: utf8mb4, binary collation", Tags=labels)
        rds.modify_db_parameter_group(DBParameterGroupName=name, Parameters=[
            {"ParameterName": key, "ParameterValue": value, "ApplyMethod": "pending-reboot"}
            for key, value in (("character_set_server", CHARSET),
                               ("collation_server", COLLATION))])
    group = security_group(aws, course, region, network)
    found = describe(aws, course.id, region)
    if found is None or found["DBInstanceStatus"] in GONE:
        with translate_errors(f"rds.CreateDBInstance {name}"):
            rds.create_db_instance(
                DBInstanceIdentifier=name, Engine=cfg.engine, EngineVersion=cfg.version,
                DBInstanceClass=cfg.instance_class, AllocatedStorage=cfg.storage_gb,
                DBName=cfg.name, MasterUsername=MASTER,
                MasterUserPassword=password(state, MASTER), DBSubnetGroupName=name,
                VpcSecurityGroupIds=[group], DBParameterGroupName=name,
                BackupRetentionPeriod=cfg.backup_days, DeletionProtection=cfg.deletion_protection,
                PubliclyAccessible=True, StorageEncrypted=True, Port=PORT, Tags=labels,
                CopyTagsToSnapshot=True)
        sink.emit(LogLine(f"database {name}: creating ({cfg.engine} {cfg.version}, "
                          f"{cfg.instance_class}, {cfg.storage_gb} GB) in {region}"))
    deadline = time.monotonic() + wait
    last = None
    while True:
        found = describe(aws, course.id, region) or {}
        status = found.get("DBInstanceStatus", "absent")
        if status != last:
            sink.emit(Progress(f"database {status}", 1 if status == "available" else 0, 1))
            last = status
        if status == "available":
            break
        if status in ("failed", "incompatible-parameters", "incompatible-network",
                      "storage-full", "inaccessible-encryption-credentials"):
            raise DatabaseError(f"database {name} is {status}. Fix: see the RDS console's "
                                "events for it, then `labtui down` and `up` again")
        if time.monotonic() > deadline:
            raise DatabaseError(f"database {name} is still {status} after {wait:g} s. Fix: "
                                "run `labtui up` again later: it waits for it")
        sleep(5 if not aws.settings.sandbox else 0.5)
    sink.emit(StepDone(f"database {name} available at {endpoint_text(found)}"))
    return found


def endpoint(instance: dict[str, Any]) -> tuple[str, int] | None:
    where = instance.get("Endpoint") or {}
    return (where["Address"], int(where.get("Port", PORT))) if where.get("Address") else None


def endpoint_text(instance: dict[str, Any]) -> str:
    where = endpoint(instance)
    return f"{where[0]}:{where[1]}" if where else "no endpoint yet"


# ---------------------------------------------------------------------- over MySQL

def connect(host: str, port: int, user: str, secret: str, database: str | None = None,
            timeout: float = 10) -> Any:
    import pymysql

    try:
        return pymysql.connect(host=host, port=port, user=user, password=secret,
                               database=database, connect_timeout=timeout, autocommit=True,
                               charset="utf8mb4")
    except pymysql.err.MySQLError as exc:
        raise DatabaseError(f"cannot connect to {host}:{port} as {user}: "
                            f"{_mysql_message(exc)}. Fix: check that your address is in "
                            "[network] ssh_cidr and the database is available") from None


def _mysql_message(exc: BaseException) -> str:
    args = getattr(exc, "args", ())
    if len(args) >= 2:
        return f"MySQL error {args[0]}: {args[1]}"
    return type(exc).__name__


def _why(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, DatabaseError) else _mysql_message(exc)


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def ensure_users(course: Course, state: CourseState, where: tuple[str, int],
                 sink: EventSink) -> None:
    """The course's database and its two users with exactly the declared grants (a rerun
    converges: grants are revoked and given again, passwords set to the kept ones)."""
    import pymysql

    cfg = course.database
    assert cfg is not None
    conn = connect(*where, MASTER, password(state, MASTER))
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS {_quote(cfg.name)} CHARACTER SET "
                        f"{CHARSET} COLLATE {COLLATION}")
            cur.execute(f"ALTER DATABASE {_quote(cfg.name)} CHARACTER SET {CHARSET} COLLATE "
                        f"{COLLATION}")
            for user, grants in ((cfg.pipeline_user, PIPELINE_GRANTS),
                                 (cfg.api_user, API_GRANTS)):
                secret = password(state, user)
                cur.execute("CREATE USER IF NOT EXISTS %s@'%%' IDENTIFIED BY %s",
                            (user, secret))
                cur.execute("ALTER USER %s@'%%' IDENTIFIED BY %s", (user, secret))
                cur.execute("REVOKE ALL PRIVILEGES, GRANT OPTION FROM %s@'%%'", (user,))
                cur.execute(f"GRANT {grants} ON *.* TO %s@'%%'", (user,))
    except pymysql.err.MySQLError as exc:
        raise DatabaseError(f"making the database users failed: {_mysql_message(exc)}") \
            from None
    finally:
        conn.close()
    sink.emit(StepDone(f"database users {cfg.pipeline_user} (create, DML) and {cfg.api_user} "
                       "(read only)"))


@dataclass
class Check:
    """What ``labtui db`` shows and checks live."""

    state: str
    endpoint: str | None = None
    engine: str | None = None
    instance_class: str | None = None
    storage_gb: int | None = None
    users: list[str] = field(default_factory=list)
    collation: str | None = None
    pipeline_writes: bool | None = None
    api_refused: bool | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return (self.state == "available" and self.pipeline_writes is True
                and self.api_refused is True and not self.problems)

    def as_json(self) -> dict[str, Any]:
        return {"type": "database", "state": self.state, "endpoint": self.endpoint,
                "engine": self.engine, "instance_class": self.instance_class,
                "storage_gb": self.storage_gb, "users": self.users,
                "collation": self.collation, "pipeline_writes": self.pipeline_writes,
                "api_write_refused": self.api_refused, "problems": self.problems}


def check(aws: Aws, course: Course, state: CourseState, region: str,
          live: bool = True) -> Check:
    """The instance's state and, live: ``api`` cannot write, ``pipeline`` can."""
    import pymysql

    cfg = course.database
    assert cfg is not None
    found = describe(aws, course.id, region)
    if found is None:
        return Check("absent")
    result = Check(found["DBInstanceStatus"], endpoint_text(found),
                   f"{found.get('Engine')} {found.get('EngineVersion')}",
                   found.get("DBInstanceClass"), found.get("AllocatedStorage"),
                   [cfg.pipeline_user, cfg.api_user])
    where = endpoint(found)
    if not live or where is None or result.state != "available":
        return result
    table = f"{_quote(cfg.name)}.labtui_check"
    try:
        conn = connect(*where, cfg.pipeline_user, password(state, cfg.pipeline_user), cfg.name)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT @@collation_server")
                result.collation = cur.fetchone()[0]
                cur.execute(f"CREATE TABLE IF NOT EXISTS {table} (k VARCHAR(32) PRIMARY KEY, "
                            "v INT)")
                cur.execute(f"REPLACE INTO {table} VALUES ('labtui', 1)")
                cur.execute(f"SELECT v FROM {table} WHERE k = 'labtui'")
                result.pipeline_writes = cur.fetchone() == (1,)
        finally:
            conn.close()
    except (DatabaseError, pymysql.err.MySQLError) as exc:
        result.pipeline_writes = False
        result.problems.append(f"{cfg.pipeline_user}: {_why(exc)}")
    try:
        conn = connect(*where, cfg.api_user, password(state, cfg.api_user), cfg.name)
        try:
            with conn.cursor() as cur:
                cur.execute(f"SELECT COUNT(*) FROM {table}")
                try:
                    cur.execute(f"INSERT INTO {table} VALUES ('api', 2)")
                    result.api_refused = False
                    result.problems.append(f"{cfg.api_user} could write: it must only read")
                except pymysql.err.OperationalError as exc:
                    result.api_refused = exc.args[0] == 1142   # INSERT command denied
                    if not result.api_refused:
                        result.problems.append(f"{cfg.api_user}: {_mysql_message(exc)}")
        finally:
            conn.close()
    except (DatabaseError, pymysql.err.MySQLError) as exc:
        result.problems.append(f"{cfg.api_user}: {_why(exc)}")
    if result.collation and result.collation != COLLATION:
        result.problems.append(f"the server's collation is {result.collation}, not "
                               f"{COLLATION} (the parameter group applies after a reboot)")
    return result


def connection_file(course: Course, state: CourseState, where: tuple[str, int]) -> bytes:
    """What the cluster needs to write results: the pipeline user's connection (kept in
    the scratch bucket under labtui/, a prefix no student's policy reaches)."""
    cfg = course.database
    assert cfg is not None
    return json.dumps({"host": where[0], "port": where[1], "database": cfg.name,
                       "user": cfg.pipeline_user,
                       "password": password(state, cfg.pipeline_user)}).encode()
