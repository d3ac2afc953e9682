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
from labtui.services import machinescripts

from .courses import write_course
from .test_lifecycle import eventually

RUN_PY = """
import os, sys
os.makedirs("results", exist_ok=True)
if sys.argv[1:] == ["sleep"]:
    import time
    print("sleeping", flush=True)
    time.sleep(120)
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
    vpcs = ctx.aws.client("ec2", "us-east-1").describe_vpcs(
        Filters=[{"Name": "tag:labtui:course", "Values": ["jb"]}])["Vpcs"]
    assert len(vpcs) == 1          # three workers launched at once share one network

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


def test_the_runner_signs_s3_requests_as_botocore_does(tmp_path: Path) -> None:
    """labtui-job signs its PUTs by hand (no AWS library on the worker): the same
    Authorization header botocore computes for the same request and moment."""
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    path = tmp_path / "labtui-job"   # the runner as the worker gets it (its shared part in)
    path.write_bytes(machinescripts.script("labtui-job"))
    loader = importlib.machinery.SourceFileLoader("labtui_job", str(path))
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


def test_packed_prefixed_jobs_with_a_timeout(ctx, sandbox, tmp_path) -> None:
    """command_prefix with arguments-only rows; pack = true: jobs of one type share
    max_parallel workers, in turn; --timeout bounds a command."""
    path = jobs_course(tmp_path, "t3.small,--seed 1\nt3.small,--seed 2\nt3.small,sleep\n",
                       extra='command_prefix = "python3 run.py"\npack = true\n'
                             "max_parallel = 2\n")
    course = load(path)
    result = jobops.run(ctx, course, poll=0.5, timeout=3)
    assert len(result.launched) == 2                      # 3 jobs, 2 workers
    by_name = {j.name: j for j in result.jobs}
    assert [by_name[n].state for n in ("run1-1", "run1-2")] == ["done", "done"]
    assert by_name["run1-3"].state == "failed"
    assert by_name["run1-3"].reason == "timed out after 3 s"
    to = tmp_path / "got"
    jobops.fetch(ctx, course, to, ["run1-2"])
    assert (to / "run1-2" / "results" / "results.csv").read_text().splitlines()[1] == \
        "run1-2,--seed 2,attempt-2"
    assert sorted(p.name for p in to.iterdir()) == ["run1-2"]


def test_an_install_that_never_succeeds_says_why(ctx, sandbox, tmp_path) -> None:
    path = jobs_course(tmp_path, "t3.small,python3 run.py\n")
    (tmp_path / "INSTALL.sh").write_text("#!/bin/bash\necho 'E: Unable to locate package "
                                         "julia' >&2\nexit 100\n")
    text = path.read_text().replace("install_attempts = 3", "install_attempts = 2")
    path.write_text(text)
    course = load(path)
    [job] = jobops.run(ctx, course, poll=0.5).jobs
    assert job.state == "failed" and job.exit is None
    assert job.reason == "the install script failed 2 time(s), the last: exit 100"
    assert "E: Unable to locate package julia" in job.tail


@pytest.mark.timeout(300)
def test_a_run_resumes_and_is_followed_from_anywhere_then_cancelled(ctx, sandbox, tmp_path,
                                                                    monkeypatch) -> None:
    path = jobs_course(tmp_path, "t3.small,python3 run.py --seed 1\n"
                                 "t3.small,python3 run.py sleep\n")
    course = load(path)
    # the first run is interrupted once it has seen the quick job done (as by Ctrl-C or a
    # closed lid); its own JobChanged says so (a look of its own could be newer than the
    # run's last, and see a job done that the run still saw uploading)
    from labtui.events import JobChanged
    first = jobops.run(ctx, course, poll=0.5, keep=True, should_stop=lambda: any(
        isinstance(e, JobChanged) and e.job == "run1-1" and e.state == "done"
        for e in list(ctx.sink.events)))
    assert len(first.launched) == 2
    states = {j.name: j.state for j in first.jobs}
    assert states["run1-1"] == "done" and states["run1-2"] in ("running", "installing")
    # a second run launches nothing: the running job is followed on its own worker
    again = jobops.run(ctx, course, poll=0.5, keep=True, wait=False)
    assert again.launched == []
    workers = {w.label: w for w in service.workers(ctx.aws, course, "us-east-1")}
    assert set(workers) == {"run1-1", "run1-2"}            # kept (--keep)

    # another computer (an empty state folder) sees the same from tags and S3
    from labtui.context import open_context
    from labtui.events import ListSink
    from labtui.sandbox.runtime import serve_record
    from labtui.state import StateDir
    elsewhere = StateDir.resolve(tmp_path / "other-laptop").ensure()
    elsewhere.sandbox_dir.mkdir(parents=True, exist_ok=True)
    serve_record(elsewhere, sandbox)
    other = open_context(None, sandbox=True, state_dir=str(elsewhere.root), sink=ListSink())
    try:
        seen = {j.name: j.state for j in jobops.status(other, course)}
    finally:
        other.close()
    # (a loaded machine may still be installing it)
    assert seen["run1-1"] == "done" and seen["run1-2"] in ("running", "installing")
    assert not (elsewhere.root / "jb").exists() or not any(
        (elsewhere.root / "jb" / "secrets").glob("*"))

    # the worker's own credentials may put objects under the jobs' prefix only
    from labtui.services import keys, ssh
    from labtui.services.machines import KnownHosts
    from labtui.services.remote import Remote
    state = ctx.state.course(course.id)
    remote = Remote(ctx.aws, ctx.resolver, KnownHosts(state), keys.course_key(state)[0],
                    "ubuntu")
    try:
        client = remote.connect(workers["run1-1"].machine, wait=30)
    except ssh.SshError as exc:  # once in CI: say what the machine's console held
        console = ctx.aws.client("ec2", "us-east-1").get_console_output(
            InstanceId=workers["run1-1"].machine.instance_id, Latest=True).get("Output", "")
        raise AssertionError(f"{exc}\n--- its console, the end:\n{console[-4000:]}") from None
    lines: list[str] = []
    probe = ("import importlib.machinery as m, json; r = m.SourceFileLoader('r', "
             "'/home/ubuntu/.labtui/job/labtui-job').load_module(); "
             "u = r.Uploader({'bucket': 'jb-results', 'region': 'us-east-1', 'prefix': ''}); "
             "print(json.dumps([u.put('run1/probe.txt', b'x'), u.put('elsewhere/x.txt', b'x'),"
             " u.put('run2/x.txt', b'x')]))")
    try:
        assert ssh.run(client, f"python3 -c \"{probe}\"",
                       on_line=lambda _s, t: lines.append(t)) == 0
    finally:
        client.close()
    assert json.loads(lines[-1]) == [True, False, False]
    assert "AKIA" not in "".join(lines)

    # cancel: the sleeping job's worker goes, the job says cancelled
    assert jobops.cancel(ctx, course, ["run1-2"]) == ["run1-2"]
    assert {j.name: j.state for j in jobops.status(ctx, course)} == {
        "run1-1": "done", "run1-2": "cancelled"}
    gone = eventually(lambda: {w.label for w in service.workers(ctx.aws, course, "us-east-1")
                               if w.state not in ("terminated", "shutting-down")},
                      lambda v: v == {"run1-1"}, timeout=30)
    assert gone == {"run1-1"}

    # down takes the kept worker, the jobs' role and its profile with the rest
    from labtui import lifecycle
    report = lifecycle.down(ctx, course, lifecycle.DownOptions(save=False))
    assert report.left == []
    assert service.workers(ctx.aws, course, "us-east-1", states=("pending", "running")) == []
    iam = ctx.aws.client("iam", "us-east-1")
    assert [r["RoleName"] for r in iam.list_roles(PathPrefix="/labtui/jb/")["Roles"]] == []


def test_workers_launch_within_the_vcpu_quota(ctx, sandbox, tmp_path) -> None:
    """A quota of 4 vCPUs runs three 2-vCPU jobs two at a time; a type that can never fit
    is refused before anything is launched."""
    from labtui.errors import LabError
    from labtui.events import CallbackSink, FanoutSink, JobChanged

    path = jobs_course(tmp_path, "t3.small,python3 run.py --seed 1\n"
                                 "t3.small,python3 run.py --seed 2\n"
                                 "t3.small,python3 run.py --seed 3\n")
    course = load(path)
    sandbox.quotas.set("us-east-1", 4.0)
    most = [0]

    def seen(event) -> None:
        # at each launch, the workers EC2 holds alive (the new one among them)
        if isinstance(event, JobChanged) and event.detail.startswith("i-"):
            alive = [w for w in service.workers(ctx.aws, course, "us-east-1")
                     if w.state in ("pending", "running")]
            most[0] = max(most[0], len(alive))
    ctx.sink = FanoutSink([ctx.sink, CallbackSink(seen)])
    result = jobops.run(ctx, course, poll=0.3)
    assert [j.state for j in result.jobs] == ["done"] * 3
    assert len(result.launched) == 3 and most[0] == 2
    sandbox.quotas.set("us-east-1", 1.0)
    (tmp_path / "more.csv").write_text("instance_type,command,name\nt3.small,true,more-1\n")
    with pytest.raises(LabError) as info:
        jobops.run(ctx, course, tmp_path / "more.csv")
    assert "a t3.small worker needs 2 vCPUs and us-east-1 has" in str(info.value)
    assert "Nothing was launched" in str(info.value) and "quota-request" in str(info.value)
    assert not [w for w in service.workers(ctx.aws, course, "us-east-1") if w.label == "more-1"]
