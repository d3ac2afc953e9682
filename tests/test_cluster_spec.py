"""The EMR spec labtui sends is the course's, whole: a real deployment's clusters can be said
in the course file (edX Insights: master/core/task groups of m1.medium, the task group on
SPOT at a 0.03 bid, hadoop, ganglia, hive, pig and sqoop-sandbox, a script step "Install
Sqoop" that terminates the job flow when it fails)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labtui.course import load
from labtui.errors import CourseError
from labtui.services import clusters

from .courses import write_course

EDX = """
[storage]
data_bucket = "insights-data"
[clusters]
release = "emr-4.7.2"
applications = ["hadoop", "ganglia", "hive", "pig", "sqoop-sandbox"]
idle_timeout_minutes = 120
per = "shared"
[clusters.master]
instance_type = "m1.medium"
[clusters.core]
instance_type = "m1.medium"
count = 2
ebs_gb = 100
[clusters.task]
instance_type = "m1.medium"
count = 2
market = "spot"
bid_price = 0.03
[[clusters.configurations]]
classification = "mapred-site"
properties = { "mapreduce.framework.name" = "yarn" }
[[clusters.configurations]]
classification = "hadoop-env"
[[clusters.configurations.configurations]]
classification = "export"
properties = { "HADOOP_HEAPSIZE" = "2048" }
[[clusters.bootstrap]]
name = "course libraries"
path = "scripts/bootstrap.sh"
args = ["--quiet"]
[[clusters.steps]]
name = "Install Sqoop"
script = "scripts/install-sqoop.sh"
args = ["1.4.6"]
on_failure = "TERMINATE_JOB_FLOW"
[[clusters.steps]]
name = "warm up"
args = ["hadoop", "version"]
"""


def edx(tmp_path: Path, extra: str = EDX, max_instances: int = 30) -> Path:
    (tmp_path / "scripts").mkdir(exist_ok=True)
    (tmp_path / "scripts" / "bootstrap.sh").write_text("#!/bin/sh\necho hi\n")
    (tmp_path / "scripts" / "install-sqoop.sh").write_text("#!/bin/sh\necho sqoop $1\n")
    return write_course(tmp_path, "insights", students=4, max_instances=max_instances,
                        extra=extra)


def test_a_real_deployments_clusters_are_said_whole(tmp_path: Path) -> None:
    course = load(edx(tmp_path))
    assert list(course.cluster_units) == ["class"]          # per = "shared": one cluster
    assert course.instance_count == 4 + 5
    request = clusters.job_flow(course, "class", "us-east-1", subnet_id="subnet-1",
                                key_name="labtui-insights", service_role="svc",
                                instance_profile="prof")
    assert request["Applications"] == [{"Name": n} for n in
                                       ("Hadoop", "Ganglia", "Hive", "Pig", "Sqoop-Sandbox")]
    groups = {g["InstanceRole"]: g for g in request["Instances"]["InstanceGroups"]}
    assert groups["MASTER"] == {"Name": "master", "InstanceRole": "MASTER",
                                "InstanceType": "m1.medium", "InstanceCount": 1,
                                "Market": "ON_DEMAND"}
    assert groups["TASK"]["Market"] == "SPOT" and groups["TASK"]["BidPrice"] == "0.03"
    assert groups["CORE"]["EbsConfiguration"] == {"EbsBlockDeviceConfigs": [{
        "VolumeSpecification": {"VolumeType": "gp3", "SizeInGB": 100}, "VolumesPerInstance": 1}]}
    assert request["Instances"]["Ec2SubnetId"] == "subnet-1"
    assert request["Instances"]["Ec2KeyName"] == "labtui-insights"
    assert request["Instances"]["KeepJobFlowAliveWhenNoSteps"] is True
    assert request["VisibleToAllUsers"] is True
    assert request["AutoTerminationPolicy"] == {"IdleTimeout": 7200}
    assert request["Configurations"] == [
        {"Classification": "mapred-site", "Properties": {"mapreduce.framework.name": "yarn"}},
        {"Classification": "hadoop-env", "Properties": {}, "Configurations": [
            {"Classification": "export", "Properties": {"HADOOP_HEAPSIZE": "2048"}}]}]
    assert request["BootstrapActions"] == [{"Name": "course libraries", "ScriptBootstrapAction": {
        "Path": "s3://insights-data/labtui/scripts/scripts/bootstrap.sh", "Args": ["--quiet"]}}]
    install, warm = request["Steps"]
    assert install == {"Name": "Install Sqoop", "ActionOnFailure": "TERMINATE_JOB_FLOW",
                       "HadoopJarStep": {
                           "Jar": "s3://us-east-1.elasticmapreduce/libs/script-runner/"
                                  "script-runner.jar",
                           "Args": ["s3://insights-data/labtui/scripts/scripts/install-sqoop.sh",
                                    "1.4.6"]}}
    assert warm["HadoopJarStep"] == {"Jar": "command-runner.jar", "Args": ["hadoop", "version"]}
    assert request["LogUri"] == "s3://insights-data/emr-logs/class/"
    assert {"Key": "labtui:course", "Value": "insights"} in request["Tags"]
    assert {"Key": "labtui:seat", "Value": "class"} in request["Tags"]
    assert request["JobFlowRole"] == "prof" and request["ServiceRole"] == "svc"


def test_clusters_per_group_and_student(tmp_path: Path) -> None:
    group = edx(tmp_path, EDX.replace('per = "shared"', 'per = "group"'))
    text = group.read_text()
    for i, team in ((1, "red"), (2, "red"), (3, "blue"), (4, "blue")):
        text = text.replace(f'email = "s{i}@example.edu"\n',
                            f'email = "s{i}@example.edu"\ngroup = "{team}"\n')
    group.write_text(text)
    course = load(group)
    assert {k: [s.id for s in v] for k, v in course.cluster_units.items()} == {
        "red": ["s01", "s02"], "blue": ["s03", "s04"]}
    assert [course.clusters_of_seat(s) for s in course.seats] == [("red",), (), ("blue",), ()]
    student = load(edx(tmp_path, EDX.replace('per = "shared"\n', ""), max_instances=40))
    assert list(student.cluster_units) == ["s01", "s02", "s03", "s04"]
    assert clusters.log_uri(student, "s02") == "s3://insights-data/emr-logs/s02/"


@pytest.mark.parametrize(("change", "says"), [
    (('per = "shared"', 'per = "group"'), 'is "group" but 4 student(s) have no group'),
    (('path = "scripts/bootstrap.sh"', 'path = "scripts/missing.sh"'), "does not exist"),
    (('path = "scripts/bootstrap.sh"', 'path = "../outside.sh"'), "outside the course's folder"),
    (('data_bucket = "insights-data"', ""), "is needed for the course's scripts"),
    (('on_failure = "TERMINATE_JOB_FLOW"', 'on_failure = "EXPLODE"'), "TERMINATE_JOB_FLOW"),
    (('args = ["1.4.6"]', 'args = ["1.4.6"]\njar = "x.jar"'), "does not go with script"),
    (('classification = "export"', 'classification = "export"\n'
      '[[clusters.configurations.configurations.configurations]]\nclassification = "x"\n'
      '[[clusters.configurations.configurations.configurations.configurations]]\n'
      'classification = "y"\n[[clusters.configurations.configurations.configurations.'
      'configurations.configurations]]\nclassification = "z"\n'
      '[[clusters.configurations.configurations.configurations.configurations.'
      'configurations.configurations]]\nclassification = "w"'), "nested more than 4 deep"),
])
def test_a_bad_cluster_spec_is_named(tmp_path: Path, change: tuple[str, str], says: str) -> None:
    (tmp_path / "outside.sh").write_text("x")
    folder = tmp_path / "course"
    folder.mkdir()
    path = edx(folder, EDX.replace(*change))
    with pytest.raises(CourseError) as caught:
        load(path)
    assert says in str(caught.value)
