"""Batch jobs on the sandbox's real machines: a CSV of jobs of two instance types, each on
its own worker with the course's code and install script (retried with its attempt number),
results, output and status in S3 written with the worker's own role, fetched home; a failing
job reported with its stderr; a bad CSV named by line; workers that end themselves."""

from __future__ import annotations

import datetime
import importlib.machinery
import importlib.util
import json
from pathlib import Path

import pytest

from labtui import jobops
from labtui.course import load
from labtui.errors import CourseError
from labtui.services import jobs as service

from .courses import write_course
from .test_lifecycle import eventually

RUNNER = Path(__file__).parent.parent / "labtui" / "data" / "labtui-job"

RUN_PY = """
import os, sys
os.makedirs("results", exist_ok=True)
if sys.argv[1:] == ["fail"]:
    print("about to fail", flush=True)
    print("ValueError: seed must be positive", file=sys.stderr)
    sys.exit(1)
with open("results/results.csv", "w") as f:
    f.write("job,args,installed\\n%s,%s,%s\\n" % (os.environ["LABTUI_JOB"], " ".join(
        sys.argv[1:]), open(os.path.expanduser("~/installed")).read().strip()))
print("done", os.environ["TAG"])
"""

INSTALL = """#!/bin/bash
# fails on its first attempt, as a flaky mirror would
echo "install attempt $1"
if [ "$1" -lt 2 ]; then echo "mirror unreachable" >&2; exit 1; fi
echo "attempt-$1" > ~/installed
"""


def jobs_course(tmp_path: Path, rows: str, extra: str = "") -> Path:
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "run.py").write_text(RUN_PY)
    (tmp_path / "INSTALL.sh").write_text(INSTALL)
    (tmp_path / "jobs.csv").write_text("instance_type,command\n" + rows)
    return write_course(tmp_path, "jb", students=1, max_instances=10, extra=f"""
[jobs]
name = "run1"
file = "jobs.csv"
output = "s3://jb-results/run1/"
market = "on-demand"
code = "code"
install = "INSTALL.sh"
install_attempts = 3
install_timeout = 60
results = "results/results.csv"
{extra}""")


def objects(ctx, bucket: str, prefix: str) -> list[str]:
    s3 = ctx.aws.client("s3", "us-east-1")
    return sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
                  .get("Contents", []))


@pytest.mark.timeout(300)
def test_a_job_file_runs_to_completion_and_leaves_nothing(ctx, sandbox, tmp_path) -> None:
    path = jobs_course(tmp_path, "t3.small,python3 run.py --seed 1\n"
                                 "t3.micro,\"python3 run.py --seed 2,3\"\n"
                                 "t3.small,python3 run.py fail\n")
    course = load(path)
    result = jobops.run(ctx, course, poll=0.5)
    by_name = {j.name: j for j in result.jobs}
    assert sorted(by_name) == ["run1-1", "run1-2", "run1-3"]
    assert [by_name[n].state for n in ("run1-1", "run1-2")] == ["done", "done"], by_name
    failed = by_name["run1-3"]
    assert (failed.state, failed.exit) == ("failed", 1)
    assert "ValueError: seed must be positive" in failed.tail
    assert jobops.counts(result.jobs) == "installed 3/3, done 2/3, failed 1"

    keys = objects(ctx, "jb-results", "run1/")
    for name in ("run1-1", "run1-2", "run1-3"):
        assert f"run1/{name}/status.json" in keys and f"run1/{name}/stdout.txt" in keys
        assert f"run1/{name}/install.log" in keys
    assert "run1/run1-1/results/results.csv" in keys

    # fetch: every job's outputs home, and a second fetch skips what is there
    to = tmp_path / "results"
    got = jobops.fetch(ctx, course, to)
    assert (to / "run1-2" / "results" / "results.csv").read_text() == (
        "job,args,installed\nrun1-2,--seed 2,3,attempt-2\n")
    assert "install attempt 1" in (to / "run1-1" / "install.log").read_text()
    assert "mirror unreachable" in (to / "run1-1" / "install.log").read_text()
    assert (to / "run1-3" / "stderr.txt").read_text().strip() == \
        "ValueError: seed must be positive"
    status = json.loads((to / "run1-1" / "status.json").read_text())
    assert (status["state"], status["exit"], status["instance_type"]) == ("done", 0, "t3.small")
    assert got["run1-1"][0] >= 4
    again = jobops.fetch(ctx, course, to)
    assert all(g == 0 for g, _ in again.values())

    # every worker ended itself (it powered off; launched to terminate on shutdown)
    left = eventually(lambda: [w for w in service.workers(ctx.aws, course, "us-east-1")
                               if w.state not in ("terminated", "shutting-down")],
                      lambda v: not v, timeout=60)
    assert left == []


def test_a_bad_job_file_names_each_line_and_launches_nothing(ctx, sandbox, tmp_path) -> None:
    path = jobs_course(tmp_path, "t3.small,python3 run.py\n")
    course = load(path)
    bad = tmp_path / "bad.csv"
    bad.write_text("instance_type,command,name\nt3.small,python3 run.py,a\n"
                   "t3.smal,python3 run.py,b\nt3.small,,c\nt3.small,python3 run.py,a\n"
                   "t3.small,x,y,z\n")
    with pytest.raises(CourseError) as info:
        jobops.run(ctx, course, bad)
    text = [str(p) for p in info.value.problems]
    assert text[0].startswith(f"{bad}:3: 't3.smal' is not an EC2 instance type")
    assert "did you mean 't3.small'" in text[0]
    assert text[1] == f"{bad}:4: command is empty. Fix: give the command the job runs."
    assert text[2] == (f"{bad}:5: the job name 'a' is taken by line 2. "
                       "Fix: give every job its own name.")
    assert text[3].startswith(f"{bad}:6: has 4 fields but the header has 3")
    # a type that exists but is not offered in the region: named by line too
    far = tmp_path / "far.csv"
    far.write_text("instance_type,command\nt3.small,true\nhpc7a.12xlarge,true\n")
    with pytest.raises(CourseError) as info:
        jobops.run(ctx, course, far)
    assert [str(p) for p in info.value.problems] == [
        f"{far}:3: hpc7a.12xlarge is not offered in us-east-1. Fix: choose a type offered "
        "there (`aws ec2 describe-instance-type-offerings`)."]
    assert service.workers(ctx.aws, course, "us-east-1") == []
    # the CLI: exit 2, the lines, no traceback, nothing launched
    from labtui.cli import main
    assert main(["jobs", "run", str(path), str(bad), "--sandbox"]) == 2
    assert service.workers(ctx.aws, course, "us-east-1") == []


def test_the_runner_signs_s3_requests_as_botocore_does() -> None:
    """labtui-job signs its PUTs by hand (no AWS library on the worker): the same
    Authorization header botocore computes for the same request and moment."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    loader = importlib.machinery.SourceFileLoader("labtui_job", str(RUNNER))
    spec = importlib.util.spec_from_loader("labtui_job", loader)
    runner = importlib.util.module_from_spec(spec)
    loader.exec_module(runner)
    url = "http://127.0.0.1:5000/bkt/run1/job-2/results/a%20b.csv"
    body = b"sepal,petal\n"
    request = AWSRequest(method="PUT", url=url, data=body)
    S3SigV4Auth(Credentials("AKIDEXAMPLE", "secret", "session"), "s3",
                "eu-west-1").add_auth(request)
    stamp = datetime.datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ"
                                       ).replace(tzinfo=datetime.UTC)
    mine = runner.signed_headers("PUT", url, "eu-west-1", ("AKIDEXAMPLE", "secret", "session"),
                                 body, stamp)
    assert mine["Authorization"] == request.headers["Authorization"]
