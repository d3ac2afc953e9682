"""The sandbox enforces a student's IAM policy (labtui/sandbox/authz.py), as AWS would.

As the instructor (the sandbox's fake credentials) the module makes a student's IAM user
with the identity policy labtui writes for seat s01 (``labtui.policy.seat_policy``) and an
access key, the course's buckets and one EMR cluster (master only: one real machine) tagged
as s01's. Then, as the student, with that key and boto3 against the sandbox, each test
asserts what AWS would answer, and that a refused request changed nothing.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from types import SimpleNamespace

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from labtui.course import load
from labtui.policy import seat_policy, user_name, user_path
from labtui.sandbox.container import runtime_problem
from labtui.sandbox.runtime import ACCOUNT_ID

pytestmark = pytest.mark.skipif(runtime_problem() is not None,
                                reason=f"no sandbox machines here: {runtime_problem()}")
REGION = "us-east-1"
COURSE = """
[course]
id = "authz"
name = "Authorization"
regions = ["us-east-1"]
max_instances = 4

[[roster.students]]
id = "s01"
name = "One"
email = "one@example.edu"
[[roster.students]]
id = "s02"
name = "Two"
email = "two@example.edu"

[machines]
instance_type = "t3.small"
login = "key"

[network]
ssh_cidr = "198.51.100.0/24"

[storage]
data_bucket = "authz-course-data"
scratch_bucket = "authz-course-scratch"

[clusters]
per = "student"
release = "emr-7.2.0"
applications = ["Hadoop"]
[clusters.master]
instance_type = "m5.xlarge"

[access]
users = true
permissions = ["submit-steps", "view-clusters", "read-data", "write-scratch",
               "start-stop-own"]
"""
ONCE = Config(retries={"max_attempts": 1})


def client(url: str, service: str, key: str = "testing", secret: str = "testing"):
    return boto3.client(service, REGION, endpoint_url=url, aws_access_key_id=key,
                        aws_secret_access_key=secret, config=ONCE)


def code_of(call, *args, **kwargs) -> str:
    """The error code of a call expected to fail (AssertionError if it succeeds)."""
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    return caught.value.response["Error"]["Code"]


def error_of(call, *args, **kwargs) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call(*args, **kwargs)
    return caught.value


def state(emr, cid: str) -> str:
    return emr.describe_cluster(ClusterId=cid)["Cluster"]["Status"]["State"]


@pytest.fixture(scope="module")
def world(sandbox, tmp_path_factory):
    sandbox.reset()
    folder = tmp_path_factory.mktemp("authz")
    (folder / "course.toml").write_text(COURSE)
    course = load(folder / "course.toml")
    url = sandbox.endpoint_url
    admin = SimpleNamespace(**{s: client(url, s) for s in ("iam", "s3", "ec2", "emr", "sts")})
    name = user_name(course, "s01")
    user = admin.iam.create_user(UserName=name, Path=user_path(course))["User"]
    policy = admin.iam.create_policy(
        PolicyName=f"{name}-access", Path=user_path(course),
        PolicyDocument=json.dumps(seat_policy(course, "s01", ACCOUNT_ID)))["Policy"]["Arn"]
    admin.iam.attach_user_policy(UserName=name, PolicyArn=policy)
    key = admin.iam.create_access_key(UserName=name)["AccessKey"]
    data, scratch = course.storage.data_bucket, course.storage.scratch_bucket
    for bucket in (data, scratch):
        admin.s3.create_bucket(Bucket=bucket)
    admin.s3.put_object(Bucket=data, Key="lecture1.csv", Body=b"a,b\n1,2\n")
    admin.s3.put_object(Bucket=scratch, Key="s02/notes.txt", Body=b"s02's own")
    cid = admin.emr.run_job_flow(
        Name="authz-s01", ReleaseLabel="emr-7.2.0", JobFlowRole="EMR_EC2_DefaultRole",
        ServiceRole="EMR_DefaultRole",
        Instances={"InstanceGroups": [{"InstanceRole": "MASTER", "InstanceType": "m5.xlarge",
                                       "InstanceCount": 1}],
                   "KeepJobFlowAliveWhenNoSteps": True},
        Tags=[{"Key": "labtui:course", "Value": course.id},
              {"Key": "labtui:seat", "Value": "s01"}])["JobFlowId"]
    student = SimpleNamespace(**{s: client(url, s, key["AccessKeyId"], key["SecretAccessKey"])
                                 for s in ("iam", "s3", "ec2", "emr", "sts")})
    try:
        yield SimpleNamespace(course=course, url=url, admin=admin, student=student, key=key,
                              user=user, name=name, data=data, scratch=scratch, cluster=cid)
    finally:
        admin.emr.terminate_job_flows(JobFlowIds=[cid])
        deadline = time.monotonic() + 60
        while not state(admin.emr, cid).startswith("TERMINATED"):
            assert time.monotonic() < deadline, "the cluster did not end"
            time.sleep(0.2)


def test_steps_go_to_the_students_own_cluster_only(world):
    admin, student, cid = world.admin, world.student, world.cluster
    hello = {"Name": "hello", "ActionOnFailure": "CONTINUE",
             "HadoopJarStep": {"Jar": "command-runner.jar", "Args": ["true"]}}
    added = student.emr.add_job_flow_steps(JobFlowId=cid, Steps=[hello])["StepIds"]
    assert [s["Id"] for s in admin.emr.list_steps(ClusterId=cid)["Steps"]] == added
    assert student.emr.describe_cluster(ClusterId=cid)["Cluster"]["Id"] == cid
    assert [c["Id"] for c in student.emr.list_clusters()["Clusters"]] == [cid]
    # the same cluster once it is a classmate's: its tags are read at each request
    admin.emr.add_tags(ResourceId=cid, Tags=[{"Key": "labtui:seat", "Value": "s02"}])
    try:
        error = error_of(student.emr.add_job_flow_steps, JobFlowId=cid, Steps=[hello])
        assert error.response["Error"]["Code"] == "AccessDeniedException"
        assert code_of(student.emr.describe_cluster, ClusterId=cid) == \
            "AccessDeniedException"
    finally:
        admin.emr.add_tags(ResourceId=cid, Tags=[{"Key": "labtui:seat", "Value": "s01"}])
    message = error.response["Error"]["Message"]
    assert message == (
        f"User: {world.user['Arn']} is not authorized to perform: "
        f"elasticmapreduce:AddJobFlowSteps on resource: arn:aws:elasticmapreduce:{REGION}:"
        f"{ACCOUNT_ID}:cluster/{cid} because no identity-based policy allows the "
        "elasticmapreduce:AddJobFlowSteps action")
    assert world.key["SecretAccessKey"] not in message
    assert [s["Id"] for s in admin.emr.list_steps(ClusterId=cid)["Steps"]] == added


def test_a_student_allocates_nothing(world):
    admin, student = world.admin, world.student

    def instances() -> set[str]:
        reply = admin.ec2.describe_instances()
        return {i["InstanceId"] for r in reply["Reservations"] for i in r["Instances"]}

    before = instances()
    error = error_of(student.ec2.run_instances, ImageId="ami-12c6146b", MinCount=1,
                     MaxCount=1, InstanceType="t3.micro")
    assert error.response["Error"]["Code"] == "UnauthorizedOperation"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error.response["Error"]["Message"] == (
        "You are not authorized to perform this operation. User: "
        f"{world.user['Arn']} is not authorized to perform: ec2:RunInstances on resource: "
        f"arn:aws:ec2:{REGION}:{ACCOUNT_ID}:instance/* with an explicit deny in an "
        "identity-based policy")
    assert instances() == before
    assert code_of(student.emr.run_job_flow, Name="mine", ReleaseLabel="emr-7.2.0",
                   Instances={"InstanceGroups": [{"InstanceRole": "MASTER",
                                                  "InstanceType": "m5.xlarge",
                                                  "InstanceCount": 1}]}) == \
        "AccessDeniedException"
    assert [c["Id"] for c in admin.emr.list_clusters()["Clusters"]] == [world.cluster]
    assert instances() == before


def test_a_student_reads_the_data_and_writes_only_its_own_scratch(world):
    admin, s3 = world.admin, world.student.s3
    data, scratch = world.data, world.scratch
    s3.put_object(Bucket=scratch, Key="s01/out.txt", Body=b"mine")
    assert admin.s3.get_object(Bucket=scratch, Key="s01/out.txt")["Body"].read() == b"mine"
    assert s3.get_object(Bucket=scratch, Key="s01/out.txt")["Body"].read() == b"mine"
    error = error_of(s3.put_object, Bucket=scratch, Key="s02/out.txt", Body=b"not mine")
    assert error.response["Error"]["Code"] == "AccessDenied"
    assert error.response["Error"]["Message"].endswith(
        f"s3:PutObject on resource: arn:aws:s3:::{scratch}/s02/out.txt because no "
        "identity-based policy allows the s3:PutObject action")
    assert code_of(s3.get_object, Bucket=scratch, Key="s02/notes.txt") == "AccessDenied"
    assert code_of(s3.head_object, Bucket=scratch, Key="s02/notes.txt") == "403"
    listed = admin.s3.list_objects_v2(Bucket=scratch)["Contents"]
    assert sorted(o["Key"] for o in listed) == ["s01/out.txt", "s02/notes.txt"]

    assert s3.get_object(Bucket=data, Key="lecture1.csv")["Body"].read() == b"a,b\n1,2\n"
    assert code_of(s3.put_object, Bucket=data, Key="lecture1.csv", Body=b"x") == \
        "AccessDenied"
    assert code_of(s3.delete_object, Bucket=data, Key="lecture1.csv") == "AccessDenied"
    assert admin.s3.get_object(Bucket=data, Key="lecture1.csv")["Body"].read() == \
        b"a,b\n1,2\n"

    own = s3.list_objects_v2(Bucket=scratch, Prefix="s01/")["Contents"]
    assert [o["Key"] for o in own] == ["s01/out.txt"]
    assert code_of(s3.list_objects_v2, Bucket=scratch, Prefix="s02/") == "AccessDenied"
    assert code_of(s3.list_objects_v2, Bucket=scratch) == "AccessDenied"
    assert code_of(s3.list_buckets) == "AccessDenied"

    # a copy needs reading the source as well as writing the copy
    s3.copy_object(Bucket=scratch, Key="s01/lecture1.csv",
                   CopySource={"Bucket": data, "Key": "lecture1.csv"})
    assert code_of(s3.copy_object, Bucket=scratch, Key="s01/stolen.txt",
                   CopySource={"Bucket": scratch, "Key": "s02/notes.txt"}) == "AccessDenied"
    # a batch delete naming a classmate's key deletes nothing
    assert code_of(s3.delete_objects, Bucket=scratch, Delete={"Objects": [
        {"Key": "s01/out.txt"}, {"Key": "s02/notes.txt"}]}) == "AccessDenied"
    listed = admin.s3.list_objects_v2(Bucket=scratch)["Contents"]
    assert sorted(o["Key"] for o in listed) == [
        "s01/lecture1.csv", "s01/out.txt", "s02/notes.txt"]
    s3.delete_objects(Bucket=scratch, Delete={"Objects": [{"Key": "s01/lecture1.csv"}]})
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=scratch, Prefix="s01/")[
        "Contents"]] == ["s01/out.txt"]


def test_a_student_changes_no_identity_and_reads_no_user_data(world):
    admin, student = world.admin, world.student
    assert code_of(student.iam.create_user, UserName="intruder") == "AccessDenied"
    assert "intruder" not in {u["UserName"] for u in admin.iam.list_users()["Users"]}
    assert code_of(student.iam.create_access_key, UserName=world.name) == "AccessDenied"
    role = admin.iam.create_role(RoleName="authz-admin", AssumeRolePolicyDocument="{}")
    assert code_of(student.sts.assume_role, RoleArn=role["Role"]["Arn"],
                   RoleSessionName="escalate") == "AccessDenied"
    admin.iam.delete_role(RoleName="authz-admin")
    assert len(admin.iam.list_access_keys(UserName=world.name)["AccessKeyMetadata"]) == 1
    reply = admin.ec2.describe_instances(Filters=[
        {"Name": "tag:aws:elasticmapreduce:job-flow-id", "Values": [world.cluster]}])
    master = reply["Reservations"][0]["Instances"][0]["InstanceId"]
    assert code_of(student.ec2.describe_instance_attribute, InstanceId=master,
                   Attribute="userData") == "UnauthorizedOperation"
    assert admin.ec2.describe_instance_attribute(
        InstanceId=master, Attribute="userData")["InstanceId"] == master
    # the student sees the machines (DescribeInstances is allowed on "*")
    assert student.ec2.describe_instances(InstanceIds=[master])["Reservations"]


def test_get_caller_identity_names_the_student(world):
    assert world.student.sts.get_caller_identity()["Arn"] == world.user["Arn"]
    assert world.admin.sts.get_caller_identity()["Arn"] != world.user["Arn"]


def test_a_deleted_or_inactive_key_is_refused_and_never_passes_as_the_instructor(world):
    admin = world.admin
    key = admin.iam.create_access_key(UserName=world.name)["AccessKey"]
    other = SimpleNamespace(**{s: client(world.url, s, key["AccessKeyId"],
                                         key["SecretAccessKey"])
                               for s in ("iam", "sts", "s3", "ec2", "emr")})
    assert other.sts.get_caller_identity()["Arn"] == world.user["Arn"]
    assert code_of(other.iam.list_users) == "AccessDenied"
    admin.iam.update_access_key(UserName=world.name, AccessKeyId=key["AccessKeyId"],
                                Status="Inactive")
    assert code_of(other.sts.get_caller_identity) == "InvalidClientTokenId"
    admin.iam.delete_access_key(UserName=world.name, AccessKeyId=key["AccessKeyId"])
    error = error_of(other.sts.get_caller_identity)
    assert error.response["Error"]["Code"] == "InvalidClientTokenId"
    assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert error.response["Error"]["Message"] == \
        "The security token included in the request is invalid."
    # what the instructor's key may do, the deleted key may not
    assert code_of(other.iam.list_users) == "InvalidClientTokenId"
    assert code_of(other.s3.list_objects_v2, Bucket=world.data) == "InvalidAccessKeyId"
    assert code_of(other.ec2.describe_instances) == "AuthFailure"
    assert code_of(other.emr.list_clusters) == "UnrecognizedClientException"
    # the student's other key still works
    assert world.student.sts.get_caller_identity()["Arn"] == world.user["Arn"]


def test_the_instructors_requests_are_unaffected(world):
    admin = world.admin
    tag = uuid.uuid4().hex[:8]
    admin.s3.put_object(Bucket=world.data, Key=f"by-instructor-{tag}", Body=b"x")
    admin.s3.delete_object(Bucket=world.data, Key=f"by-instructor-{tag}")
    admin.iam.create_user(UserName=f"helper-{tag}")
    admin.iam.delete_user(UserName=f"helper-{tag}")
    assert admin.emr.describe_cluster(ClusterId=world.cluster)["Cluster"]["Id"] == \
        world.cluster
    assert admin.sts.get_caller_identity()["Account"] == ACCOUNT_ID


def test_multipart_uploads_and_presigned_urls_are_decided_too(world):
    s3, scratch = world.student.s3, world.scratch
    upload = s3.create_multipart_upload(Bucket=scratch, Key="s01/big.bin")["UploadId"]
    part = s3.upload_part(Bucket=scratch, Key="s01/big.bin", UploadId=upload, PartNumber=1,
                          Body=b"x" * 1024)["ETag"]
    s3.complete_multipart_upload(Bucket=scratch, Key="s01/big.bin", UploadId=upload,
                                 MultipartUpload={"Parts": [{"ETag": part, "PartNumber": 1}]})
    assert world.admin.s3.head_object(Bucket=scratch, Key="s01/big.bin")["ContentLength"] == \
        1024
    assert code_of(s3.create_multipart_upload, Bucket=scratch, Key="s02/big.bin") == \
        "AccessDenied"
    theirs = world.admin.s3.create_multipart_upload(Bucket=scratch, Key="s02/big.bin")[
        "UploadId"]
    assert code_of(s3.upload_part, Bucket=scratch, Key="s02/big.bin", UploadId=theirs,
                   PartNumber=1, Body=b"y") == "AccessDenied"
    assert code_of(s3.abort_multipart_upload, Bucket=scratch, Key="s02/big.bin",
                   UploadId=theirs) == "AccessDenied"
    assert [u["UploadId"] for u in world.admin.s3.list_multipart_uploads(Bucket=scratch)[
        "Uploads"]] == [theirs]
    # presigned URLs (SigV2, boto3's default for S3, and SigV4) carry the key in the query
    v4 = boto3.client("s3", REGION, endpoint_url=world.url, config=Config(
        signature_version="s3v4", retries={"max_attempts": 1}),
        aws_access_key_id=world.key["AccessKeyId"],
        aws_secret_access_key=world.key["SecretAccessKey"])
    for signer in (s3, v4):
        mine = signer.generate_presigned_url("get_object", Params={
            "Bucket": scratch, "Key": "s01/out.txt"})
        theirs = signer.generate_presigned_url("get_object", Params={
            "Bucket": scratch, "Key": "s02/notes.txt"})
        assert world.key["AccessKeyId"] in urllib.parse.unquote(theirs)
        with urllib.request.urlopen(mine, timeout=10) as reply:
            assert reply.read() == b"mine"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(theirs, timeout=10)
        assert refused.value.code == 403
        assert b"<Code>AccessDenied</Code>" in refused.value.read()


def test_an_assumed_roles_key_is_decided_by_the_roles_policies(world):
    """The credentials of a machine's instance profile are an assumed role's (imds.py):
    what the role's policies allow, and nothing more."""
    admin = world.admin
    role = admin.iam.create_role(RoleName="authz-reader", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "ec2.amazonaws.com"}}]}
    ))["Role"]
    admin.iam.put_role_policy(RoleName="authz-reader", PolicyName="read-data",
                              PolicyDocument=json.dumps({
                                  "Version": "2012-10-17", "Statement": [{
                                      "Effect": "Allow", "Action": "s3:GetObject",
                                      "Resource": f"arn:aws:s3:::{world.data}/*"}]}))
    creds = admin.sts.assume_role(RoleArn=role["Arn"], RoleSessionName="i-machine")[
        "Credentials"]
    s3, sts = (boto3.client(s, REGION, endpoint_url=world.url, config=ONCE,
                            aws_access_key_id=creds["AccessKeyId"],
                            aws_secret_access_key=creds["SecretAccessKey"],
                            aws_session_token=creds["SessionToken"]) for s in ("s3", "sts"))
    assert sts.get_caller_identity()["Arn"].endswith(":assumed-role/authz-reader/i-machine")
    assert s3.get_object(Bucket=world.data, Key="lecture1.csv")["Body"].read() == \
        b"a,b\n1,2\n"
    error = error_of(s3.put_object, Bucket=world.data, Key="lecture1.csv", Body=b"x")
    assert error.response["Error"]["Code"] == "AccessDenied"
    assert error.response["Error"]["Message"].startswith(
        f"User: arn:aws:sts::{ACCOUNT_ID}:assumed-role/authz-reader/i-machine is not "
        "authorized to perform: s3:PutObject")
    assert creds["SecretAccessKey"] not in error.response["Error"]["Message"]


# -- what a request asks, read from the wire (no sandbox needed) -------------------------

def _asks(method: str, uri: str, service: str = "s3", body: bytes = b"",
          **headers: str) -> list[tuple[str, str]]:
    import io

    from labtui.sandbox import authz

    path, _, query = uri.partition("?")
    environ = {"REQUEST_METHOD": method, "RAW_URI": uri, "PATH_INFO": path,
               "QUERY_STRING": query, "CONTENT_LENGTH": str(len(body)),
               "wsgi.input": io.BytesIO(body),
               **{f"HTTP_{k.upper()}": v for k, v in headers.items()}}
    if service != "s3" and "X_AMZ_TARGET" not in {k.upper() for k in headers}:
        environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
    request = authz.Request(environ, authz.Caller("AKIAEXAMPLE", REGION, service))
    _, asks = authz.asks_of(request, ACCOUNT_ID)
    assert environ["wsgi.input"].read() == body  # put back for moto
    return [(a.action, a.resource) for a in asks]


def test_s3_requests_are_read_as_their_iam_actions():
    from labtui.sandbox import authz

    b = "arn:aws:s3:::bkt"
    assert _asks("GET", "/") == [("s3:ListAllMyBuckets", "*")]
    assert _asks("HEAD", "/bkt") == [("s3:ListBucket", b)]
    assert _asks("GET", "/bkt?location") == [("s3:GetBucketLocation", b)]
    assert _asks("PUT", "/bkt?tagging") == [("s3:PutBucketTagging", b)]
    assert _asks("DELETE", "/bkt?policy") == [("s3:DeleteBucketPolicy", b)]
    assert _asks("GET", "/bkt?versions&prefix=a") == [("s3:ListBucketVersions", b)]
    assert _asks("GET", "/bkt/a%20b/%C3%A9.txt?versionId=3") == [
        ("s3:GetObjectVersion", f"{b}/a b/é.txt")]
    assert _asks("PUT", "/bkt/k?partNumber=2&uploadId=u",
                 X_AMZ_COPY_SOURCE="other/x%2By.txt?versionId=1") == [
        ("s3:PutObject", f"{b}/k"), ("s3:GetObject", "arn:aws:s3:::other/x+y.txt")]
    assert _asks("DELETE", "/bkt/k?uploadId=u") == [("s3:AbortMultipartUpload", f"{b}/k")]
    assert _asks("POST", "/bkt?delete", body=b'<Delete xmlns="http://s3.amazonaws.com/doc/'
                 b'2006-03-01/"><Object><Key>a</Key></Object><Object><Key>b/c</Key>'
                 b'</Object></Delete>') == [("s3:DeleteObject", f"{b}/a"),
                                            ("s3:DeleteObject", f"{b}/b/c")]
    with pytest.raises(authz.Refused) as unknown:
        _asks("PUT", "/bkt?intelligent-tiering")
    assert unknown.value.ask.action == "s3:PutIntelligent-tiering"


def test_query_and_json_requests_name_their_resources():
    body = b"Action=StopInstances&Version=2016-11-15&InstanceId.1=i-1&InstanceId.2=i-2"
    assert _asks("POST", "/", "ec2", body) == [
        ("ec2:StopInstances", f"arn:aws:ec2:{REGION}:{ACCOUNT_ID}:instance/i-1"),
        ("ec2:StopInstances", f"arn:aws:ec2:{REGION}:{ACCOUNT_ID}:instance/i-2")]
    assert _asks("POST", "/", "ec2", b"Action=DescribeInstances&InstanceId.1=i-1") == [
        ("ec2:DescribeInstances", "*")]
    assert _asks("POST", "/", "iam", b"Action=CreateUser&UserName=u&Path=/p/") == [
        ("iam:CreateUser", f"arn:aws:iam::{ACCOUNT_ID}:user/p/u")]
    assert _asks("POST", "/", "iam", b"Action=ListUsers") == [("iam:ListUsers", "*")]
    cluster = f"arn:aws:elasticmapreduce:{REGION}:{ACCOUNT_ID}:cluster/"
    assert _asks("POST", "/", "elasticmapreduce", b'{"JobFlowIds": ["j-1", "j-2"]}',
                 X_AMZ_TARGET="ElasticMapReduce.TerminateJobFlows") == [
        ("elasticmapreduce:TerminateJobFlows", cluster + "j-1"),
        ("elasticmapreduce:TerminateJobFlows", cluster + "j-2")]
    assert _asks("POST", "/", "elasticmapreduce", b"{}",
                 X_AMZ_TARGET="ElasticMapReduce.ListClusters") == [
        ("elasticmapreduce:ListClusters", "*")]
