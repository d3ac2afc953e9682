"""A failed EMR step explains itself (services/steplogs.py): real Hadoop 3 / EMR 6 log
excerpts written, gzipped, into S3 (moto in process) in EMR's layout, and what is found.

The excerpts keep the shape of the real files (timestamps, levels, threads, class names,
log4j and SLF4J chatter, streaming counters, Python warnings) so the noise is the real
noise."""

from __future__ import annotations

import gzip
import json
import time
from collections.abc import Iterator
from pathlib import Path

import botocore.exceptions
import pytest
from moto import mock_aws

from labtui.errors import AwsError
from labtui.services import ssh
from labtui.services.aws import Aws
from labtui.services.steplogs import (
    NOT_YET,
    Cause,
    S3Reader,
    SftpReader,
    decode,
    master_log_dirs,
    probable_cause,
    probable_cause_in_s3,
    s3_log_dirs,
)

REGION = "us-east-1"
BUCKET = "aws-logs-123456789012-us-east-1"
LOG_URI = f"s3n://{BUCKET}/elasticmapreduce/"  # as DescribeCluster gives it
CLUSTER = "j-2AXF0GQ8ABCDE"
STEP = "s-1HV9X1YQ8ABCD"
ROOT = f"elasticmapreduce/{CLUSTER}"


def app(n: int) -> str:
    return f"application_1715333000000_{n:04d}"


def container(n: int, number: int) -> str:
    return f"container_1715333000000_{n:04d}_01_{number:06d}"


# -- a streaming step whose Python mapper raised (case a) --------------------------------

STREAMING_STEP_SYSLOG = """\
2024-05-10 09:31:12,345 INFO org.apache.hadoop.yarn.client.DefaultNoHARMFailoverProxyProvider (main): Connecting to ResourceManager at ip-172-31-20-5.ec2.internal/172.31.20.5:8032
2024-05-10 09:31:12,512 INFO org.apache.hadoop.yarn.client.AHSProxy (main): Connecting to Application History server at ip-172-31-20-5.ec2.internal/172.31.20.5:10200
2024-05-10 09:31:13,101 INFO org.apache.hadoop.mapreduce.JobResourceUploader (main): Disabling Erasure Coding for path: /tmp/hadoop-yarn/staging/hadoop/.staging/job_1715333000000_0003
2024-05-10 09:31:13,877 INFO org.apache.hadoop.mapred.FileInputFormat (main): Total input files to process : 1
2024-05-10 09:31:14,010 INFO org.apache.hadoop.mapreduce.JobSubmitter (main): number of splits:2
2024-05-10 09:31:14,188 INFO org.apache.hadoop.mapreduce.JobSubmitter (main): Submitting tokens for job: job_1715333000000_0003
2024-05-10 09:31:14,402 INFO org.apache.hadoop.yarn.client.api.impl.YarnClientImpl (main): Submitted application application_1715333000000_0003
2024-05-10 09:31:14,455 INFO org.apache.hadoop.mapreduce.Job (main): The url to track the job: http://ip-172-31-20-5.ec2.internal:20888/proxy/application_1715333000000_0003/
2024-05-10 09:31:14,456 INFO org.apache.hadoop.mapreduce.Job (main): Running job: job_1715333000000_0003
2024-05-10 09:31:22,610 INFO org.apache.hadoop.mapreduce.Job (main): Job job_1715333000000_0003 running in uber mode : false
2024-05-10 09:31:22,611 INFO org.apache.hadoop.mapreduce.Job (main):  map 0% reduce 0%
2024-05-10 09:31:30,742 INFO org.apache.hadoop.mapreduce.Job (main): Task Id : attempt_1715333000000_0003_m_000000_0, Status : FAILED
Error: java.lang.RuntimeException: PipeMapRed.waitOutputThreads(): subprocess failed with code 1
\tat org.apache.hadoop.streaming.PipeMapRed.waitOutputThreads(PipeMapRed.java:326)
\tat org.apache.hadoop.streaming.PipeMapRed.mapRedFinished(PipeMapRed.java:539)
\tat org.apache.hadoop.streaming.PipeMapper.close(PipeMapper.java:130)
\tat org.apache.hadoop.mapred.MapRunner.run(MapRunner.java:61)
\tat org.apache.hadoop.streaming.PipeMapRunner.run(PipeMapRunner.java:34)
\tat org.apache.hadoop.mapred.MapTask.runOldMapper(MapTask.java:466)
\tat org.apache.hadoop.mapred.MapTask.run(MapTask.java:350)
\tat org.apache.hadoop.mapred.YarnChild$2.run(YarnChild.java:178)
\tat java.security.AccessController.doPrivileged(Native Method)
\tat javax.security.auth.Subject.doAs(Subject.java:422)
\tat org.apache.hadoop.security.UserGroupInformation.doAs(UserGroupInformation.java:1893)
\tat org.apache.hadoop.mapred.YarnChild.main(YarnChild.java:172)

2024-05-10 09:31:52,001 INFO org.apache.hadoop.mapreduce.Job (main): Job job_1715333000000_0003 failed with state FAILED due to: Task failed task_1715333000000_0003_m_000000
Job failed as tasks failed. failedMaps:1 failedReduces:0 killedMaps:0 killedReduces: 0

2024-05-10 09:31:52,120 INFO org.apache.hadoop.mapreduce.Job (main): Counters: 14
\tJob Counters 
\t\tFailed map tasks=4
\t\tKilled map tasks=1
\t\tLaunched map tasks=5
\t\tTotal time spent by all maps in occupied slots (ms)=1054272
\t\tTotal vcore-milliseconds taken by all map tasks=21964
\tMap-Reduce Framework
\t\tCPU time spent (ms)=0
\t\tPhysical memory (bytes) snapshot=0
2024-05-10 09:31:52,121 ERROR org.apache.hadoop.streaming.StreamJob (main): Job not successful!
"""  # noqa: E501

STREAMING_STEP_STDERR = """\
packageJobJar: [] [/usr/lib/hadoop/hadoop-streaming-3.2.1-amzn-8.jar] /tmp/streamjob4821361092467830466.jar tmpDir=null
Streaming Command Failed!
"""  # noqa: E501

STREAMING_CONTROLLER = """\
2024-05-10T09:31:10.123Z INFO Ensure step 3 jar file /usr/lib/hadoop/hadoop-streaming.jar
2024-05-10T09:31:10.125Z INFO StepRunner: Created Runner for step 3
INFO startExec 'hadoop jar /usr/lib/hadoop/hadoop-streaming.jar -files s3://labtui-class/code/mapper.py -mapper mapper.py -reducer aggregate -input /user/hadoop/input -output /user/hadoop/output'
INFO Environment:
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/aws/bin
  HADOOP_LOGFILE=syslog
  HADOOP_ROOT_LOGGER=INFO,DRFA
  HADOOP_LOG_DIR=/mnt/var/log/hadoop/steps/s-1HV9X1YQ8ABCD
INFO redirectOutput to /mnt/var/log/hadoop/steps/s-1HV9X1YQ8ABCD/stdout
INFO redirectError to /mnt/var/log/hadoop/steps/s-1HV9X1YQ8ABCD/stderr
INFO Working dir /mnt/var/lib/hadoop/steps/s-1HV9X1YQ8ABCD
INFO ProcessRunner started child process 24512
2024-05-10T09:31:10.130Z INFO HadoopJarStepRunner.Runner: startRun() called for s-1HV9X1YQ8ABCD Child Pid: 24512
INFO Synchronously wait child process to complete : hadoop jar /usr/lib/hadoop/hadoop-streaming.jar -files s3://labtui-c...
INFO waitProcessCompletion ended with exit code 1 : hadoop jar /usr/lib/hadoop/hadoop-streaming.jar -files s3://labtui-c...
INFO total process run time: 44 seconds
2024-05-10T09:31:54.201Z INFO Step created jobs: job_1715333000000_0003
2024-05-10T09:31:54.202Z WARN Step failed with exitCode 1 and took 44 seconds
"""  # noqa: E501

PYTHON_TASK_STDERR = """\
log4j:WARN No appenders could be found for logger (org.apache.hadoop.metrics2.lib.MutableMetricsFactory).
log4j:WARN Please initialize the log4j system properly.
log4j:WARN See http://logging.apache.org/log4j/1.2/faq.html#noconfig for more info.
/usr/local/lib/python3.7/site-packages/boto3/compat.py:82: PythonDeprecationWarning: Boto3 will no longer support Python 3.7 starting December 13, 2023. To continue receiving service updates, bug fixes, and security updates please upgrade to Python 3.8 or later. More information can be found here: https://aws.amazon.com/blogs/developer/python-support-policy-updates-for-aws-sdks-and-tools/
  warnings.warn(warning, PythonDeprecationWarning)
reporter:status:mapper: reading input
reporter:counter:wordcount,lines,1042
reporter:counter:wordcount,words,8311
Traceback (most recent call last):
  File "/mnt/yarn/usercache/hadoop/appcache/application_1715333000000_0003/container_1715333000000_0003_01_000002/./mapper.py", line 14, in <module>
    count = int(fields[2])
ValueError: invalid literal for int() with base 10: 'n/a'
reporter:counter:wordcount,bad_lines,1
"""  # noqa: E501

PIPEMAPRED_FAILED = """\
java.lang.RuntimeException: PipeMapRed.waitOutputThreads(): subprocess failed with code 1
\tat org.apache.hadoop.streaming.PipeMapRed.waitOutputThreads(PipeMapRed.java:326)
\tat org.apache.hadoop.streaming.PipeMapRed.mapRedFinished(PipeMapRed.java:539)
\tat org.apache.hadoop.streaming.PipeMapper.close(PipeMapper.java:130)
\tat org.apache.hadoop.mapred.MapRunner.run(MapRunner.java:61)
\tat org.apache.hadoop.streaming.PipeMapRunner.run(PipeMapRunner.java:34)
\tat org.apache.hadoop.mapred.MapTask.runOldMapper(MapTask.java:466)
\tat org.apache.hadoop.mapred.MapTask.run(MapTask.java:350)
\tat org.apache.hadoop.mapred.YarnChild$2.run(YarnChild.java:178)
\tat java.security.AccessController.doPrivileged(Native Method)
\tat javax.security.auth.Subject.doAs(Subject.java:422)
\tat org.apache.hadoop.security.UserGroupInformation.doAs(UserGroupInformation.java:1893)
\tat org.apache.hadoop.mapred.YarnChild.main(YarnChild.java:172)
"""


def streaming_task_syslog(application: str, split: str, command: str = "/usr/bin/python3, "
                          "mapper.py", code: int = 1) -> str:
    failed = PIPEMAPRED_FAILED.replace("code 1", f"code {code}")
    return f"""\
2024-05-10 09:31:25,102 INFO [main] org.apache.hadoop.metrics2.impl.MetricsConfig: Loaded properties from hadoop-metrics2.properties
2024-05-10 09:31:25,230 INFO [main] org.apache.hadoop.metrics2.impl.MetricsSystemImpl: Scheduled Metric snapshot period at 10 second(s).
2024-05-10 09:31:25,231 INFO [main] org.apache.hadoop.metrics2.impl.MetricsSystemImpl: MapTask metrics system started
2024-05-10 09:31:25,318 INFO [main] org.apache.hadoop.mapred.YarnChild: Executing with tokens: [Kind: mapreduce.job, Service: job_{application[12:]}, Ident: (org.apache.hadoop.mapreduce.security.token.JobTokenIdentifier@6a4f1a55)]
2024-05-10 09:31:25,880 INFO [main] org.apache.hadoop.mapred.YarnChild: Sleeping for 0ms before retrying again. Got null now.
2024-05-10 09:31:26,104 INFO [main] org.apache.hadoop.mapred.YarnChild: mapreduce.cluster.local.dir for child: /mnt/yarn/usercache/hadoop/appcache/{application}
2024-05-10 09:31:26,412 INFO [main] org.apache.hadoop.mapred.Task:  Using ResourceCalculatorProcessTree : [ ]
2024-05-10 09:31:26,690 INFO [main] org.apache.hadoop.mapred.MapTask: Processing split: {split}
2024-05-10 09:31:26,752 INFO [main] org.apache.hadoop.mapred.MapTask: numReduceTasks: 1
2024-05-10 09:31:26,901 INFO [main] org.apache.hadoop.mapred.MapTask: (EQUATOR) 0 kvi 26214396(104857584)
2024-05-10 09:31:26,902 INFO [main] org.apache.hadoop.mapred.MapTask: mapreduce.task.io.sort.mb: 100
2024-05-10 09:31:27,010 INFO [main] org.apache.hadoop.streaming.PipeMapRed: PipeMapRed exec [{command}]
2024-05-10 09:31:27,344 INFO [main] org.apache.hadoop.streaming.PipeMapRed: R/W/S=1/0/0 in:NA [rec/s] out:NA [rec/s]
2024-05-10 09:31:27,402 INFO [Thread-13] org.apache.hadoop.streaming.PipeMapRed: MRErrorThread done
2024-05-10 09:31:27,403 INFO [main] org.apache.hadoop.streaming.PipeMapRed: PipeMapRed failed!
{failed}2024-05-10 09:31:27,420 WARN [main] org.apache.hadoop.mapred.YarnChild: Exception running child : {failed}2024-05-10 09:31:27,436 INFO [main] org.apache.hadoop.mapred.Task: Runnning cleanup for the task
2024-05-10 09:31:27,449 INFO [main] org.apache.hadoop.metrics2.impl.MetricsSystemImpl: Stopping MapTask metrics system...
2024-05-10 09:31:27,450 INFO [main] org.apache.hadoop.metrics2.impl.MetricsSystemImpl: MapTask metrics system stopped.
"""  # noqa: E501


QUIET_TASK_STDERR = """\
log4j:WARN No appenders could be found for logger (org.apache.hadoop.metrics2.lib.MutableMetricsFactory).
log4j:WARN Please initialize the log4j system properly.
log4j:WARN See http://logging.apache.org/log4j/1.2/faq.html#noconfig for more info.
reporter:counter:wordcount,lines,2210
reporter:counter:wordcount,words,17190
"""  # noqa: E501

QUIET_TASK_SYSLOG = """\
2024-05-10 09:31:25,102 INFO [main] org.apache.hadoop.metrics2.impl.MetricsConfig: Loaded properties from hadoop-metrics2.properties
2024-05-10 09:31:26,690 INFO [main] org.apache.hadoop.mapred.MapTask: Processing split: hdfs://ip-172-31-20-5.ec2.internal:8020/user/hadoop/input/words.txt:1234+1180
2024-05-10 09:31:28,002 INFO [main] org.apache.hadoop.streaming.PipeMapRed: Records R/W=2210/1
2024-05-10 09:31:28,117 INFO [main] org.apache.hadoop.mapred.Task: Task:attempt_1715333000000_0003_m_000001_0 is done. And is in the process of committing
2024-05-10 09:31:28,160 INFO [main] org.apache.hadoop.mapred.Task: Task 'attempt_1715333000000_0003_m_000001_0' done.
"""  # noqa: E501

# -- a Java MapReduce job whose mapper threw (case b) --------------------------------------

SLF4J_STDERR = """\
SLF4J: Class path contains multiple SLF4J bindings.
SLF4J: Found binding in [jar:file:/usr/lib/hadoop/lib/slf4j-reload4j-1.7.36.jar!/org/slf4j/impl/StaticLoggerBinder.class]
SLF4J: Found binding in [jar:file:/usr/share/aws/emr/emrfs/lib/slf4j-log4j12-1.7.12.jar!/org/slf4j/impl/StaticLoggerBinder.class]
SLF4J: See http://www.slf4j.org/codes.html#multiple_bindings for an explanation.
SLF4J: Actual binding is of type [org.slf4j.impl.Reload4jLoggerFactory]
"""  # noqa: E501

JAVA_TASK_SYSLOG = """\
2024-05-10 10:02:38,551 INFO [main] org.apache.hadoop.mapred.YarnChild: Executing with tokens: [Kind: mapreduce.job, Service: job_1715333000000_0004, Ident: (org.apache.hadoop.mapreduce.security.token.JobTokenIdentifier@2d6eabae)]
2024-05-10 10:02:39,870 INFO [main] org.apache.hadoop.mapred.Task:  Using ResourceCalculatorProcessTree : [ ]
2024-05-10 10:02:40,102 INFO [main] org.apache.hadoop.mapred.MapTask: Processing split: s3://labtui-class/input/events-2024-05.csv:0+134217728
2024-05-10 10:02:40,233 INFO [main] com.amazon.ws.emr.hadoop.fs.s3n.S3NativeFileSystem: Opening 's3://labtui-class/input/events-2024-05.csv' for reading
2024-05-10 10:02:40,301 WARN [DataStreamer for file /tmp/hadoop-yarn/staging/hadoop/.staging/job_1715333000000_0004/job.xml] org.apache.hadoop.hdfs.DataStreamer: Caught exception
java.lang.InterruptedException
\tat java.lang.Object.wait(Native Method)
\tat java.lang.Thread.join(Thread.java:1252)
\tat org.apache.hadoop.hdfs.DataStreamer.closeResponder(DataStreamer.java:986)
2024-05-10 10:02:41,118 WARN [main] org.apache.hadoop.mapred.YarnChild: Exception running child : java.io.IOException: Failed to parse record at offset 812
\tat com.example.etl.RecordMapper.map(RecordMapper.java:41)
\tat com.example.etl.RecordMapper.map(RecordMapper.java:18)
\tat org.apache.hadoop.mapreduce.Mapper.run(Mapper.java:146)
\tat org.apache.hadoop.mapred.MapTask.runNewMapper(MapTask.java:800)
\tat org.apache.hadoop.mapred.MapTask.run(MapTask.java:348)
\tat org.apache.hadoop.mapred.YarnChild$2.run(YarnChild.java:178)
\tat java.security.AccessController.doPrivileged(Native Method)
\tat javax.security.auth.Subject.doAs(Subject.java:422)
\tat org.apache.hadoop.security.UserGroupInformation.doAs(UserGroupInformation.java:1893)
\tat org.apache.hadoop.mapred.YarnChild.main(YarnChild.java:172)
Caused by: java.lang.IllegalArgumentException: bad date: 2024-13x-45
\tat com.example.etl.Dates.parse(Dates.java:22)
\tat com.example.etl.RecordMapper.map(RecordMapper.java:37)
\t... 9 more
Caused by: java.lang.NumberFormatException: For input string: "13x"
\tat java.lang.NumberFormatException.forInputString(NumberFormatException.java:65)
\tat java.lang.Integer.parseInt(Integer.java:580)
\tat java.lang.Integer.parseInt(Integer.java:615)
\tat com.example.etl.Dates.parse(Dates.java:19)
\t... 10 more

2024-05-10 10:02:41,131 INFO [main] org.apache.hadoop.mapred.Task: Runnning cleanup for the task
"""  # noqa: E501

# -- a setup script (set -x) whose pip install failed (case c) ----------------------------

SETUP_TASK_STDERR = """\
log4j:WARN No appenders could be found for logger (org.apache.hadoop.metrics2.lib.MutableMetricsFactory).
log4j:WARN Please initialize the log4j system properly.
log4j:WARN See http://logging.apache.org/log4j/1.2/faq.html#noconfig for more info.
+ __mrjob_PWD=/mnt/yarn/usercache/hadoop/appcache/application_1715333000000_0005/container_1715333000000_0005_01_000002
+ exec
+ /usr/bin/python3 -c 'import fcntl; fcntl.flock(9, fcntl.LOCK_EX)'
+ export PYTHONPATH=/mnt/yarn/usercache/hadoop/appcache/application_1715333000000_0005/container_1715333000000_0005_01_000002/mrjob.zip:
+ PYTHONPATH=/mnt/yarn/usercache/hadoop/appcache/application_1715333000000_0005/container_1715333000000_0005_01_000002/mrjob.zip:
+ pip install nosuchpkg
Defaulting to user installation because normal site-packages is not writeable
ERROR: Could not find a version that satisfies the requirement nosuchpkg (from versions: none)
ERROR: No matching distribution found for nosuchpkg
WARNING: You are using pip version 20.2.2; however, version 24.0 is available.
You should consider upgrading via the '/usr/bin/python3 -m pip install --upgrade pip' command.
"""  # noqa: E501

# -- a PySpark step: an executor's task raised (case d) -----------------------------------

SPARK_STEP_STDERR = """\
24/05/10 11:14:51 INFO DefaultNoHARMFailoverProxyProvider: Connecting to ResourceManager at ip-172-31-20-5.ec2.internal/172.31.20.5:8032
24/05/10 11:14:52 INFO Configuration: resource-types.xml not found
24/05/10 11:14:52 INFO Client: Verifying our application has not requested more than the maximum memory capability of the cluster (12288 MB per container)
24/05/10 11:14:53 INFO Client: Uploading resource file:/home/hadoop/wordcount.py -> hdfs://ip-172-31-20-5.ec2.internal:8020/user/hadoop/.sparkStaging/application_1715333000000_0006/wordcount.py
24/05/10 11:14:54 INFO Client: Submitting application application_1715333000000_0006 to ResourceManager
24/05/10 11:14:54 INFO YarnClientImpl: Submitted application application_1715333000000_0006
24/05/10 11:15:31 INFO Client: Application report for application_1715333000000_0006 (state: FINISHED)
24/05/10 11:15:31 INFO Client: 
\t client token: N/A
\t diagnostics: User application exited with status 1
\t ApplicationMaster host: ip-172-31-27-9.ec2.internal
\t final status: FAILED
\t tracking URL: http://ip-172-31-20-5.ec2.internal:20888/proxy/application_1715333000000_0006/
\t user: hadoop
24/05/10 11:15:31 ERROR Client: Application diagnostics message: User application exited with status 1
Exception in thread "main" org.apache.spark.SparkException: Application application_1715333000000_0006 finished with failed status
\tat org.apache.spark.deploy.yarn.Client.run(Client.scala:1342)
\tat org.apache.spark.deploy.yarn.YarnClusterApplication.start(Client.scala:1764)
\tat org.apache.spark.deploy.SparkSubmit.org$apache$spark$deploy$SparkSubmit$$runMain(SparkSubmit.scala:1006)
\tat org.apache.spark.deploy.SparkSubmit.main(SparkSubmit.scala)
24/05/10 11:15:31 INFO ShutdownHookManager: Shutdown hook called
"""  # noqa: E501

SPARK_DRIVER_STDERR = """\
24/05/10 11:15:01 INFO SignalUtils: Registering signal handler for TERM
24/05/10 11:15:02 INFO ApplicationMaster: ApplicationAttemptId: appattempt_1715333000000_0006_000001
24/05/10 11:15:03 INFO ApplicationMaster: Starting the user application in a separate Thread
24/05/10 11:15:28 ERROR TaskSetManager: Task 0 in stage 0.0 failed 4 times; aborting job
24/05/10 11:15:29 ERROR ApplicationMaster: User application exited with status 1
24/05/10 11:15:29 INFO ApplicationMaster: Final app status: FAILED, exitCode: 13, (reason: User application exited with status 1)
"""  # noqa: E501

SPARK_EXECUTOR_STDERR = """\
SLF4J: Class path contains multiple SLF4J bindings.
SLF4J: Found binding in [jar:file:/usr/lib/spark/jars/log4j-slf4j-impl-2.17.1.jar!/org/slf4j/impl/StaticLoggerBinder.class]
SLF4J: Actual binding is of type [org.apache.logging.slf4j.Log4jLoggerFactory]
24/05/10 11:15:02 INFO CoarseGrainedExecutorBackend: Started daemon with process name: 12345@ip-172-31-27-9
24/05/10 11:15:02 INFO SignalUtils: Registering signal handler for TERM
24/05/10 11:15:03 INFO SecurityManager: Changing view acls to: yarn,hadoop
24/05/10 11:15:05 INFO CoarseGrainedExecutorBackend: Successfully registered with driver
24/05/10 11:15:05 INFO Executor: Starting executor ID 2 on host ip-172-31-27-9.ec2.internal
24/05/10 11:15:19 INFO CoarseGrainedExecutorBackend: Got assigned task 3
24/05/10 11:15:19 INFO Executor: Running task 0.3 in stage 0.0 (TID 3)
24/05/10 11:15:19 INFO HadoopRDD: Input split: s3://labtui-class/input/events.csv:0+67108864
24/05/10 11:15:19 INFO S3NativeFileSystem: Opening 's3://labtui-class/input/events.csv' for reading
24/05/10 11:15:21 ERROR Executor: Exception in task 0.3 in stage 0.0 (TID 3)
org.apache.spark.api.python.PythonException: Traceback (most recent call last):
  File "/mnt/yarn/usercache/hadoop/appcache/application_1715333000000_0006/container_1715333000000_0006_01_000003/pyspark.zip/pyspark/worker.py", line 830, in main
    process()
  File "/mnt/yarn/usercache/hadoop/appcache/application_1715333000000_0006/container_1715333000000_0006_01_000003/pyspark.zip/pyspark/worker.py", line 822, in process
    serializer.dump_stream(out_iter, outfile)
  File "/mnt/yarn/usercache/hadoop/appcache/application_1715333000000_0006/container_1715333000000_0006_01_000003/pyspark.zip/pyspark/util.py", line 81, in wrapper
    return f(*args, **kwargs)
  File "/mnt/tmp/spark-3f0c5a1e-90b6-4d2b-9a51-6f6d1f5b2c11/wordcount.py", line 14, in parse
    return (fields[0], int(fields[3]))
IndexError: list index out of range

\tat org.apache.spark.api.python.BasePythonRunner$ReaderIterator.handlePythonException(PythonRunner.scala:561)
\tat org.apache.spark.api.python.PythonRunner$$anon$3.read(PythonRunner.scala:767)
\tat org.apache.spark.api.python.PythonRunner$$anon$3.read(PythonRunner.scala:749)
\tat org.apache.spark.executor.Executor$TaskRunner.run(Executor.scala:506)
\tat java.util.concurrent.ThreadPoolExecutor.runWorker(ThreadPoolExecutor.java:1149)
\tat java.lang.Thread.run(Thread.java:750)
24/05/10 11:15:29 INFO CoarseGrainedExecutorBackend: Driver commanded a shutdown
24/05/10 11:15:29 ERROR CoarseGrainedExecutorBackend: RECEIVED SIGNAL TERM
24/05/10 11:15:29 INFO ShutdownHookManager: Shutdown hook called
"""  # noqa: E501

# -- a command-runner step running a Python script (case e) -------------------------------

SCRIPT_STDERR = """\
Reading s3://labtui-class/reports/2024-05.json
Traceback (most recent call last):
  File "/home/hadoop/report.py", line 18, in load
    return json.load(f)["rows"]
KeyError: 'rows'

During handling of the above exception, another exception occurred:

Traceback (most recent call last):
  File "/home/hadoop/report.py", line 40, in <module>
    main()
  File "/home/hadoop/report.py", line 35, in main
    rows = load(sys.argv[1])
  File "/home/hadoop/report.py", line 20, in load
    raise ValueError(f"{path}: no 'rows' in the report")
ValueError: s3://labtui-class/reports/2024-05.json: no 'rows' in the report
"""

SCRIPT_CONTROLLER = """\
2024-05-10T12:00:01.001Z INFO Ensure step 5 jar file command-runner.jar
2024-05-10T12:00:01.002Z INFO StepRunner: Created Runner for step 5
INFO startExec 'hadoop jar /var/lib/aws/emr/step-runner/hadoop-jars/command-runner.jar python3 /home/hadoop/report.py s3://labtui-class/reports/2024-05.json'
INFO Environment:
  PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/opt/aws/bin
INFO redirectOutput to /mnt/var/log/hadoop/steps/s-1HV9X1YQ8ABCD/stdout
INFO redirectError to /mnt/var/log/hadoop/steps/s-1HV9X1YQ8ABCD/stderr
INFO Working dir /mnt/var/lib/hadoop/steps/s-1HV9X1YQ8ABCD
INFO ProcessRunner started child process 31337
2024-05-10T12:00:01.010Z INFO HadoopJarStepRunner.Runner: startRun() called for s-1HV9X1YQ8ABCD Child Pid: 31337
INFO Synchronously wait child process to complete : hadoop jar /var/lib/aws/emr/step-runner/hadoop-...
INFO waitProcessCompletion ended with exit code 1 : hadoop jar /var/lib/aws/emr/step-runner/hadoop-...
INFO total process run time: 3 seconds
2024-05-10T12:00:04.120Z INFO Step created jobs: 
2024-05-10T12:00:04.121Z WARN Step failed with exitCode 1 and took 3 seconds
"""  # noqa: E501


def python_traceback(line: int, error: str) -> str:
    return f"""\
Traceback (most recent call last):
  File "/mnt/yarn/usercache/hadoop/appcache/application_1715333000000_0007/container_1715333000000_0007_01_000004/./mapper.py", line {line}, in <module>
    main(sys.stdin)
{error}
"""  # noqa: E501


# -- the bucket, and a reader that tells what it did ---------------------------------------

class Recording(S3Reader):
    def __init__(self, aws: Aws) -> None:
        super().__init__(aws, REGION)
        self.listed: list[str] = []
        self.opened: list[str] = []

    def list(self, prefix: str) -> list[str]:
        self.listed.append(prefix)
        return super().list(prefix)

    def read(self, path: str) -> bytes:
        self.opened.append(path.rsplit(f"{CLUSTER}/", 1)[-1])
        return super().read(path)


class Logs:
    def __init__(self, aws: Aws) -> None:
        self.aws = aws
        self.s3 = aws.client("s3", REGION)
        self.reader = Recording(aws)

    def put(self, key: str, text: str, *, gz: bool = True) -> None:
        body = gzip.compress(text.encode()) if gz else text.encode()
        self.s3.put_object(Bucket=BUCKET, Key=f"{ROOT}/{key}" + (".gz" if gz else ""),
                           Body=body)

    def step(self, name: str, text: str, **kw: bool) -> None:
        self.put(f"steps/{STEP}/{name}", text, **kw)

    def task(self, application: str, task: str, name: str, text: str, **kw: bool) -> None:
        self.put(f"containers/{application}/{task}/{name}", text, **kw)

    def cause(self) -> Cause | None:
        return probable_cause(self.reader, s3_log_dirs(LOG_URI, CLUSTER, STEP))


@pytest.fixture
def logs() -> Iterator[Logs]:
    with mock_aws():
        aws = Aws()
        aws.client("s3", REGION).create_bucket(Bucket=BUCKET)
        yield Logs(aws)


def streaming_step(logs: Logs) -> None:
    logs.step("syslog", STREAMING_STEP_SYSLOG)
    logs.step("stderr", STREAMING_STEP_STDERR)
    logs.step("stdout", "")
    logs.step("controller", STREAMING_CONTROLLER)


# -- the cases ------------------------------------------------------------------------------

def test_a_python_traceback_in_a_streaming_task_wins_and_names_its_split(logs: Logs) -> None:
    streaming_step(logs)
    a = app(3)
    split = "hdfs://ip-172-31-20-5.ec2.internal:8020/user/hadoop/input/words.txt:0+1234"
    logs.task(a, container(3, 1), "syslog", "2024-05-10 09:31:16,001 INFO [main] org.apache"
              ".hadoop.mapreduce.v2.app.MRAppMaster: Created MRAppMaster for application "
              "appattempt_1715333000000_0003_000001\n")
    logs.task(a, container(3, 1), "stderr", SLF4J_STDERR)
    logs.task(a, container(3, 2), "stderr", PYTHON_TASK_STDERR)
    logs.task(a, container(3, 2), "syslog", streaming_task_syslog(a, split))
    logs.task(a, container(3, 2), "stdout", "")
    logs.task(a, container(3, 3), "stderr", QUIET_TASK_STDERR)  # the other split: it worked
    logs.task(a, container(3, 3), "syslog", QUIET_TASK_SYSLOG)

    cause = logs.cause()

    assert cause is not None
    assert cause.kind == "python"
    assert cause.lines == (
        "Traceback (most recent call last):",
        '  File "/mnt/yarn/usercache/hadoop/appcache/application_1715333000000_0003/'
        'container_1715333000000_0003_01_000002/./mapper.py", line 14, in <module>',
        "    count = int(fields[2])",
        "ValueError: invalid literal for int() with base 10: 'n/a'",
    )
    assert cause.source == (f"s3://{BUCKET}/{ROOT}/containers/{a}/{container(3, 2)}/"
                            "stderr.gz")
    assert cause.task == container(3, 2)
    assert cause.split == split
    assert cause.exit_code == 1
    # listed once per folder (only the step's application), read only what was needed
    assert logs.reader.listed == [f"s3://{BUCKET}/{ROOT}/steps/{STEP}/",
                                  f"s3://{BUCKET}/{ROOT}/containers/{a}/"]
    assert logs.reader.opened == [f"steps/{STEP}/syslog.gz",
                                  f"containers/{a}/{container(3, 3)}/stderr.gz",
                                  f"containers/{a}/{container(3, 2)}/stderr.gz",
                                  f"containers/{a}/{container(3, 2)}/syslog.gz"]
    assert cause.render() == "\n".join([
        "Probable cause of failure:",
        "",
        *cause.lines,
        "",
        f"(from {cause.source})",
        f"while reading input {split}",
        "the task exited with code 1",
    ])


def test_b_a_java_exception_in_a_task_syslog_gives_its_root_cause(logs: Logs) -> None:
    logs.step("syslog", STREAMING_STEP_SYSLOG.replace("_0003", "_0004"))
    a = app(4)
    logs.task(a, container(4, 2), "stderr", SLF4J_STDERR)
    logs.task(a, container(4, 2), "syslog", JAVA_TASK_SYSLOG)

    cause = logs.cause()

    assert cause is not None
    assert cause.kind == "java"
    assert cause.lines == (
        "Exception running child : java.io.IOException: Failed to parse record at offset 812",
        'Caused by: java.lang.NumberFormatException: For input string: "13x"',
        "\tat java.lang.NumberFormatException.forInputString(NumberFormatException.java:65)",
    )
    assert cause.source.endswith(f"/containers/{a}/{container(4, 2)}/syslog.gz")
    assert cause.split == "s3://labtui-class/input/events-2024-05.csv:0+134217728"
    assert cause.exit_code is None
    assert f"while reading input {cause.split}" in cause.render()


def test_c_a_failing_setup_command_and_what_it_printed(logs: Logs) -> None:
    logs.step("syslog", STREAMING_STEP_SYSLOG.replace("_0003", "_0005"))
    a = app(5)
    split = "hdfs://ip-172-31-20-5.ec2.internal:8020/user/hadoop/input/words.txt:0+1234"
    logs.task(a, container(5, 2), "stderr", SETUP_TASK_STDERR)
    logs.task(a, container(5, 2), "syslog", streaming_task_syslog(
        a, split, command="/bin/sh, -ex, setup-wrapper.sh, /usr/bin/python3, mr_words.py, "
        "--step-num=0, --mapper"))

    cause = logs.cause()

    assert cause is not None
    assert cause.kind == "command"
    assert cause.lines == (
        "+ pip install nosuchpkg",
        "Defaulting to user installation because normal site-packages is not writeable",
        "ERROR: Could not find a version that satisfies the requirement nosuchpkg "
        "(from versions: none)",
        "ERROR: No matching distribution found for nosuchpkg",
        "WARNING: You are using pip version 20.2.2; however, version 24.0 is available.",
        "You should consider upgrading via the '/usr/bin/python3 -m pip install --upgrade "
        "pip' command.",
    )
    assert cause.exit_code == 1
    assert cause.task == container(5, 2)
    assert cause.render().endswith("the task exited with code 1")


def test_d_a_spark_executor_exception(logs: Logs) -> None:
    logs.step("stderr", SPARK_STEP_STDERR)
    logs.step("controller", SCRIPT_CONTROLLER.replace(
        "python3 /home/hadoop/report.py s3://labtui-class/reports/2024-05.json",
        "spark-submit --deploy-mode cluster /home/hadoop/wordcount.py"))
    a = app(6)
    logs.task(a, container(6, 1), "stderr", SPARK_DRIVER_STDERR)
    logs.task(a, container(6, 1), "stdout", "")
    logs.task(a, container(6, 3), "stderr", SPARK_EXECUTOR_STDERR)
    logs.task(a, container(6, 3), "stdout", "")

    cause = logs.cause()

    assert cause is not None
    assert cause.kind == "python"
    assert cause.lines[:2] == (
        "Exception in task 0.3 in stage 0.0 (TID 3)",
        "org.apache.spark.api.python.PythonException: Traceback (most recent call last):")
    assert cause.lines[-2:] == ("    return (fields[0], int(fields[3]))",
                                "IndexError: list index out of range")
    assert cause.source.endswith(f"/containers/{a}/{container(6, 3)}/stderr.gz")
    assert cause.task == container(6, 3)
    assert cause.split == "s3://labtui-class/input/events.csv:0+67108864"
    assert logs.reader.listed[-1].endswith(f"/containers/{a}/")  # from spark-submit's stderr


def test_e_a_command_runner_step_without_task_logs(logs: Logs) -> None:
    logs.step("controller", SCRIPT_CONTROLLER)
    logs.step("stderr", SCRIPT_STDERR)
    logs.step("stdout", "loaded 3 report files\n")

    cause = logs.cause()

    assert cause is not None
    assert cause.kind == "python"
    assert cause.lines[0] == "Traceback (most recent call last):"
    assert "KeyError: 'rows'" in cause.lines  # the exception it was handling
    assert "During handling of the above exception, another exception occurred:" in cause.lines
    assert cause.lines[-1] == ("ValueError: s3://labtui-class/reports/2024-05.json: no 'rows' "
                               "in the report")
    assert "Reading s3://labtui-class/reports/2024-05.json" not in cause.lines
    assert cause.source == f"s3://{BUCKET}/{ROOT}/steps/{STEP}/stderr.gz"
    assert (cause.task, cause.split, cause.exit_code) == (None, None, 1)
    assert cause.render().endswith(f"(from {cause.source})\nthe step exited with code 1")
    # no application: every task folder listed once, the old layout too, and both empty
    assert logs.reader.listed == [f"s3://{BUCKET}/{ROOT}/steps/{STEP}/",
                                  f"s3://{BUCKET}/{ROOT}/containers/",
                                  f"s3://{BUCKET}/{ROOT}/task-attempts/"]
    assert sorted(logs.reader.opened) == [f"steps/{STEP}/controller.gz",
                                          f"steps/{STEP}/stderr.gz"]


def test_f_of_two_failed_tasks_the_most_recent_is_reported(logs: Logs) -> None:
    logs.step("syslog", STREAMING_STEP_SYSLOG.replace("_0003", "_0007"))
    a = app(7)
    split = "hdfs://ip-172-31-20-5.ec2.internal:8020/user/hadoop/input/part-{}:0+9000"
    earlier = python_traceback(21, "KeyError: 'user_id'")
    later = python_traceback(33, "ZeroDivisionError: division by zero")
    logs.task(a, container(7, 2), "stderr", earlier)
    logs.task(a, container(7, 2), "syslog", streaming_task_syslog(a, split.format("00000")))
    logs.task(a, container(7, 3), "stderr", QUIET_TASK_STDERR)
    logs.task(a, container(7, 3), "syslog", QUIET_TASK_SYSLOG)
    logs.task(a, container(7, 10), "stderr", later)  # 000010 after 000002: by number
    logs.task(a, container(7, 10), "syslog", streaming_task_syslog(a, split.format("00001")))

    cause = logs.cause()

    assert cause is not None
    assert cause.lines[-1] == "ZeroDivisionError: division by zero"
    assert cause.task == container(7, 10)
    assert cause.split == split.format("00001")
    assert not any(container(7, 2) in path for path in logs.reader.opened)  # stopped early


def test_g_no_logs_yet_is_none(logs: Logs) -> None:
    assert logs.cause() is None
    assert probable_cause_in_s3(logs.aws, REGION, LOG_URI, CLUSTER, STEP) is None
    assert "not in S3 yet" in NOT_YET


# -- around the cases -----------------------------------------------------------------------

def test_the_step_syslog_says_why_when_no_task_log_is_there_yet(logs: Logs) -> None:
    """A task killed for its memory: YARN's word in the step's syslog; plain text files
    (as on the master node) read as well as gzip ones."""
    killed = STREAMING_STEP_SYSLOG.replace(
        "Error: java.lang.RuntimeException", "[2024-05-10 09:31:30.512]Container "
        "[pid=9321,containerID=container_1715333000000_0003_01_000002] is running "
        "112345088B beyond the 'PHYSICAL' memory limit. Current usage: 1.6 GB of 1.5 GB "
        "physical memory used; 3.4 GB of 7.5 GB virtual memory used. Killing container.\n"
        "Dump of the process-tree for container_1715333000000_0003_01_000002 :\nX")
    logs.step("syslog", killed, gz=False)
    logs.step("stderr", STREAMING_STEP_STDERR, gz=False)
    logs.step("controller", STREAMING_CONTROLLER, gz=False)

    cause = logs.cause()

    assert cause is not None
    assert cause.kind == "java"
    assert cause.lines[0].startswith("[2024-05-10 09:31:30.512]Container [pid=9321,")
    assert "Killing container." in cause.lines[0]
    assert cause.task == "attempt_1715333000000_0003_m_000000_0"
    assert cause.source == f"s3://{BUCKET}/{ROOT}/steps/{STEP}/syslog"
    assert cause.exit_code == 1


def test_the_controller_alone_gives_the_exit_status(logs: Logs) -> None:
    logs.step("controller", SCRIPT_CONTROLLER)
    cause = logs.cause()
    assert cause is not None and cause.kind == "exit" and cause.exit_code == 1
    assert "WARN Step failed with exitCode 1 and took 3 seconds" in cause.lines[-1]
    assert cause.lines[0].startswith("INFO startExec 'hadoop jar")
    assert "the step exited" not in cause.render()  # the lines say it already


def test_the_older_task_attempts_layout(logs: Logs) -> None:
    attempt = "attempt_1715333000000_0003_m_000000_3"
    split = "s3://labtui-class/input/words.txt:0+1234"
    logs.put(f"task-attempts/job_1715333000000_0003/{attempt}/stderr", PYTHON_TASK_STDERR)
    logs.put(f"task-attempts/job_1715333000000_0003/{attempt}/syslog",
             streaming_task_syslog(app(3), split))
    logs.put("task-attempts/job_1715333000000_0003/attempt_1715333000000_0003_m_000000_1/"
             "syslog", streaming_task_syslog(app(3), split, code=137))

    cause = logs.cause()

    assert cause is not None and cause.kind == "python"
    assert (cause.task, cause.split, cause.exit_code) == (attempt, split, 1)


def test_render_and_json() -> None:
    cause = Cause("java", ("Exception running child : java.lang.OutOfMemoryError: Java heap "
                           "space", "\tat java.util.Arrays.copyOf(Arrays.java:3236)"),
                  "s3://b/l/j-1/containers/application_1_0001/container_1_0001_01_000002/"
                  "syslog.gz", "container_1_0001_01_000002", "s3://b/in.csv:0+10", 1)
    assert cause.render() == (
        "Probable cause of failure:\n\n"
        "Exception running child : java.lang.OutOfMemoryError: Java heap space\n"
        "\tat java.util.Arrays.copyOf(Arrays.java:3236)\n\n"
        "(from s3://b/l/j-1/containers/application_1_0001/container_1_0001_01_000002/"
        "syslog.gz)\nwhile reading input s3://b/in.csv:0+10")
    data = json.loads(json.dumps(cause.as_dict()))
    assert data["kind"] == "java" and data["task"] == "container_1_0001_01_000002"
    assert data["message"].startswith("Exception running child") and data["exit_code"] == 1
    assert data["lines"] == list(cause.lines)


def test_a_cut_off_gzip_file_is_read_as_far_as_it_goes() -> None:
    whole = gzip.compress(PYTHON_TASK_STDERR.encode())
    lines = decode(whole[: len(whole) // 2])
    assert lines and PYTHON_TASK_STDERR.startswith("\n".join(lines)[:50])
    assert decode(b"plain\ntext\n") == ["plain", "text"]


def test_log_uri_forms() -> None:
    for uri in ("s3://bkt/logs/", "s3n://bkt/logs", " s3://bkt/logs/ "):
        dirs = s3_log_dirs(uri, "j-1", "s-2")
        assert dirs.step == "s3://bkt/logs/j-1/steps/s-2/"
        assert dirs.tasks == ("s3://bkt/logs/j-1/containers/", "s3://bkt/logs/j-1/task-attempts/")
    assert master_log_dirs("s-2").step == "/mnt/var/log/hadoop/steps/s-2/"


def test_no_permission_to_read_the_log_bucket_says_what_to_grant(logs: Logs) -> None:
    def deny(**_: object) -> None:
        raise botocore.exceptions.ClientError(
            {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "ListObjectsV2")

    logs.s3.meta.events.register("before-call.s3.ListObjectsV2", deny)
    with pytest.raises(AwsError) as caught:
        logs.cause()
    message = str(caught.value)
    assert "access denied" in message and "Fix:" in message
    assert f"s3:ListBucket on arn:aws:s3:::{BUCKET}" in message
    assert caught.value.code == "AccessDenied"


def test_a_read_refused_and_a_missing_bucket(logs: Logs) -> None:
    logs.step("stderr", SCRIPT_STDERR)

    def deny(**_: object) -> None:
        raise botocore.exceptions.ClientError(
            {"Error": {"Code": "AccessDenied", "Message": "Access Denied"}}, "GetObject")

    logs.s3.meta.events.register("before-call.s3.GetObject", deny)
    with pytest.raises(AwsError) as caught:
        logs.cause()
    assert "access denied (s3:GetObject). Fix: " in str(caught.value)
    assert f"s3:GetObject on arn:aws:s3:::{BUCKET}/{ROOT}/*" in str(caught.value)
    with pytest.raises(AwsError, match="log bucket nosuchbucket-1 does not exist.*Fix:"):
        probable_cause_in_s3(logs.aws, REGION, "s3://nosuchbucket-1/logs/", CLUSTER, STEP)


def test_a_vanished_file_is_skipped(logs: Logs) -> None:
    class Vanishing(Recording):
        def read(self, path: str) -> bytes:
            if path.endswith("stderr.gz"):
                raise FileNotFoundError(path)
            return super().read(path)

    logs.step("stderr", SCRIPT_STDERR)
    logs.step("controller", SCRIPT_CONTROLLER)
    cause = probable_cause(Vanishing(logs.aws), s3_log_dirs(LOG_URI, CLUSTER, STEP))
    assert cause is not None and cause.kind == "exit"


# -- the same parser on the master node, over SFTP ----------------------------------------

def test_the_master_node_over_sftp(sshd: dict[str, object], tmp_path: Path) -> None:
    """EMR's folders on the master (plain files), read through a real OpenSSH server."""
    a = app(3)
    split = "hdfs://ip-172-31-20-5.ec2.internal:8020/user/hadoop/input/words.txt:0+1234"
    files = {
        f"mnt/var/log/hadoop/steps/{STEP}/syslog": STREAMING_STEP_SYSLOG,
        f"mnt/var/log/hadoop/steps/{STEP}/stderr": STREAMING_STEP_STDERR,
        f"var/log/hadoop-yarn/containers/{a}/{container(3, 2)}/stderr": PYTHON_TASK_STDERR,
        f"var/log/hadoop-yarn/containers/{a}/{container(3, 2)}/syslog":
            streaming_task_syslog(a, split),
        f"var/log/hadoop-yarn/containers/{a}/{container(3, 2)}/prelaunch.err": "",
        f"var/log/hadoop-yarn/containers/{a}/{container(3, 3)}/stderr": QUIET_TASK_STDERR,
    }
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    key = ssh.load_private_key(Path(str(sshd["client_key"])).read_text())
    client = ssh.connect(ssh.SshTarget(str(sshd["host"]), int(str(sshd["port"])),
                                       str(sshd["user"]), str(sshd["host_key"]), pkey=key))
    try:
        sftp = client.open_sftp()
        started = time.monotonic()
        cause = probable_cause(SftpReader(sftp), master_log_dirs(STEP, root=str(tmp_path)))
        took = time.monotonic() - started
        assert SftpReader(sftp).list(f"{tmp_path}/nowhere/") == []
        sftp.close()
    finally:
        client.close()
    assert cause is not None and cause.kind == "python"
    assert cause.source == (f"{tmp_path}/var/log/hadoop-yarn/containers/{a}/"
                            f"{container(3, 2)}/stderr")
    assert cause.split == split and cause.task == container(3, 2)
    assert took < 5
