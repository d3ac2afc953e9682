"""AWS conventions (issue 8, item 10): --endpoint-url and AWS_ENDPOINT_URL send labtui to
another AWS emulator (here a plain moto server, standing in for LocalStack), --region limits
a command to one region, and the sandbox answers the AWS CLI's quota and price calls as AWS
does."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from labtui.services import tags

from .courses import write_course
from .test_cli import json_lines, run


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def other_endpoint():
    """Another AWS emulator on loopback (moto's server, not labtui's sandbox). moto keeps
    its state per process, shared with the session sandbox: the tests take sandbox_state,
    which starts each from an empty account."""
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def seat_instance(endpoint: str, course_id: str, seat: str, region: str) -> str:
    """A seat machine as `up` tags it, made directly on the other endpoint."""
    ec2 = boto3.client("ec2", region_name=region, endpoint_url=endpoint)
    image = ec2.describe_images()["Images"][0]["ImageId"]
    made = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, InstanceType="t3.small",
                             TagSpecifications=[{"ResourceType": "instance", "Tags":
                                                 tags.tags(course_id, seat)}])
    return made["Instances"][0]["InstanceId"]


def states(endpoint: str, region: str, instance_id: str) -> str:
    ec2 = boto3.client("ec2", region_name=region, endpoint_url=endpoint)
    found = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"][0]["Instances"]
    return found[0]["State"]["Name"]


def test_endpoint_url_runs_labtui_against_another_emulator(other_endpoint: str, sandbox_state,
                                                           tmp_path: Path) -> None:
    path = write_course(tmp_path, "ep1", students=2, machines='login = "key"')
    iid = seat_instance(other_endpoint, "ep1", "s01", "us-east-1")
    state = ["--state-dir", str(tmp_path / "state")]

    status = run("status", str(path), "--json", "--endpoint-url", other_endpoint, *state,
                 timeout=120)
    assert status.returncode == 0, status.stderr
    seats = {row["seat"]: row for row in json_lines(status.stdout) if "seat" in row}
    assert seats["s01"]["instance_id"] == iid and seats["s01"]["state"] == "running"
    assert seats["s02"]["state"] == "absent"

    plan = run("plan", str(path), "--endpoint-url", other_endpoint, *state, timeout=120)
    assert plan.returncode == 0, plan.stderr
    assert f"on {other_endpoint} (AWS profile default)" in plan.stdout

    # boto3's own variable does the same, with no flag
    env = {"AWS_ENDPOINT_URL": other_endpoint}
    again = run("status", str(path), "--json", *state, env=env, timeout=120)
    assert again.returncode == 0, again.stderr
    assert iid in again.stdout

    down = run("down", str(path), "--yes", "--no-save", "--endpoint-url", other_endpoint,
               "--region", "us-east-1", *state, timeout=180)
    assert down.returncode == 0, down.stdout + down.stderr
    assert states(other_endpoint, "us-east-1", iid) == "terminated"


def test_region_limits_a_command_to_one_region(other_endpoint: str, sandbox_state,
                                               tmp_path: Path) -> None:
    path = write_course(tmp_path, "ep2", students=2, regions=("us-east-1", "eu-west-1"),
                        machines='login = "key"')
    east = seat_instance(other_endpoint, "ep2", "s01", "us-east-1")
    west = seat_instance(other_endpoint, "ep2", "s02", "eu-west-1")
    common = ["--endpoint-url", other_endpoint, "--state-dir", str(tmp_path / "state")]

    status = run("status", str(path), "--json", "--region", "eu-west-1", *common, timeout=120)
    assert status.returncode == 0, status.stderr
    rows = [row for row in json_lines(status.stdout) if row.get("instance_id")]
    assert [(r["seat"], r["region"]) for r in rows] == [("s02", "eu-west-1")]

    stop = run("stop", str(path), "--yes", "--region", "eu-west-1", *common, timeout=180)
    assert stop.returncode == 0, stop.stderr
    assert states(other_endpoint, "eu-west-1", west) in ("stopping", "stopped")
    assert states(other_endpoint, "us-east-1", east) == "running"

    for flag, words in ((["--region", "ap-south-1"], "not one of the course's regions"),
                        (["--region", "us-east-9"], "is not an AWS region"),
                        (["--endpoint-url", "localhost:4566"], "is not an http(s) URL")):
        bad = run("status", str(path), *flag, "--state-dir", str(tmp_path / "state"),
                  timeout=60)
        assert bad.returncode == 2 and words in bad.stderr and "Fix:" in bad.stderr


# -- the sandbox and the AWS CLI ------------------------------------------------------------

def aws_cli(endpoint: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The AWS CLI (awscli, a test dependency) with fake credentials and no config files."""
    return subprocess.run([sys.executable, "-m", "awscli", "--endpoint-url", endpoint,
                           "--region", "us-east-1", "--output", "json", *args],
                          capture_output=True, text=True, timeout=60,
                          env={"AWS_ACCESS_KEY_ID": "testing",
                               "AWS_SECRET_ACCESS_KEY": "testing",
                               "AWS_EC2_METADATA_DISABLED": "true",
                               "AWS_CONFIG_FILE": "/dev/null",
                               "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
                               "PATH": os.environ.get("PATH", "/usr/bin:/bin")})


@pytest.mark.skipif(importlib.util.find_spec("awscli") is None,
                    reason="needs the AWS CLI (pip install awscli; in the test extras)")
def test_the_sandbox_answers_the_aws_cli_as_aws_would(sandbox) -> None:
    endpoint = sandbox.endpoint_url
    got = aws_cli(endpoint, "service-quotas", "get-service-quota", "--service-code", "ec2",
                  "--quota-code", "L-1216C47A")
    assert got.returncode == 0, got.stderr
    quota = json.loads(got.stdout)["Quota"]
    assert quota["QuotaCode"] == "L-1216C47A" and quota["Value"] > 0

    asked = aws_cli(endpoint, "service-quotas", "request-service-quota-increase",
                    "--service-code", "ec2", "--quota-code", "L-1216C47A",
                    "--desired-value", str(quota["Value"] + 64))
    assert asked.returncode == 0, asked.stderr
    assert json.loads(asked.stdout)["RequestedQuota"]["Status"] == "PENDING"

    prices = aws_cli(endpoint, "pricing", "get-products", "--service-code", "AmazonEC2",
                     "--filters", "Type=TERM_MATCH,Field=instanceType,Value=t3.small",
                     "Type=TERM_MATCH,Field=regionCode,Value=us-east-1",
                     "--max-results", "5")
    assert prices.returncode == 0, prices.stderr
    products = [json.loads(p) for p in json.loads(prices.stdout)["PriceList"]]
    assert products and all(p["product"]["attributes"]["instanceType"] == "t3.small"
                            for p in products)

    listed = aws_cli(endpoint, "service-quotas", "list-service-quotas", "--service-code",
                     "ec2")
    assert listed.returncode == 0, listed.stderr
    codes = {q["QuotaCode"]: q for q in json.loads(listed.stdout)["Quotas"]}
    assert codes["L-1216C47A"]["Value"] == quota["Value"]
    assert codes["L-34B43A08"]["QuotaName"] == "All Standard (A, C, D, H, I, M, R, T, Z) Spot " \
        "Instance Requests"
