"""Setup over SSH on the sandbox: pinned host keys, password login, packages, files and
commands — each idempotent; exec with streamed, seat-prefixed output; reset-password."""

from __future__ import annotations

from pathlib import Path

import pytest

from labtui import lifecycle
from labtui.course import load
from labtui.events import FanoutSink, ListSink, LogLine
from labtui.services import passwords, ssh
from labtui.services.inventory import machines as find_machines
from labtui.services.setup import SetupFailed

from .courses import write_course
from .test_lifecycle import eventually


def course_file(tmp_path: Path, students: int = 2, setup: str = "", login: str = "password",
                packages: str = "") -> Path:
    (tmp_path / "hello.txt").write_text("hello from the course\n")
    return write_course(tmp_path, "setup", students=students, machines=f"""
login = "{login}"
packages = [{packages}]
setup = [{setup or '"echo step-one >> ~/steps.log"'}]

[[machines.files]]
source = "hello.txt"
dest = "~/hello.txt"
mode = "0640"
""")


def exec_lines(ctx, course, seats, command: str) -> tuple[list, list[tuple[str, str, str]]]:
    """lifecycle.exec_command, and the (seat, stream, text) of each output line it emitted
    through ctx.sink."""
    kept, sink = ListSink(), ctx.sink
    ctx.sink = FanoutSink([sink, kept])
    try:
        outcomes = lifecycle.exec_command(ctx, course, seats, command)
    finally:
        ctx.sink = sink
    return outcomes, [(e.source, e.stream, e.text) for e in kept.events
                      if isinstance(e, LogLine) and e.is_output]


def on_seat(ctx, course, seat: str, command: str) -> tuple[int, str]:
    """Run a shell command on the seat's machine over SSH: (exit status, stdout)."""
    [outcome], lines = exec_lines(ctx, course, [seat], command)
    return outcome.value, "\n".join(text for _, stream, text in lines if stream == "stdout")


def test_up_sets_up_every_seat_and_rerun_skips_done_steps(ctx, sandbox, tmp_path) -> None:
    course = load(course_file(tmp_path))
    result = lifecycle.up(ctx, course, setup_wait=60)
    assert sorted(result.set_up) == ["s01", "s02"] and result.setup_failed == {}
    seats = {s.seat: s for s in lifecycle.status(ctx, course)}
    assert {s.setup for s in seats.values()} == {"done"}
    assert on_seat(ctx, course, "s01", "cat hello.txt; stat -c %a hello.txt; cat steps.log") \
        == (0, "hello from the course\n640\nstep-one")
    password = passwords.get(ctx.state.course("setup"), "s01")
    console = lifecycle.console(ctx, lifecycle.seat_machine(ctx, course, "s01"))
    assert "Cloud-init" in console and password and password not in console
    log = (ctx.state.course("setup").logs / "s01.log").read_text()
    assert "set the seat password" in log and password not in log

    # the student logs in with the password (the sandbox sshd enforces what setup enabled)
    host, port = seats["s01"].address.split(":")
    known = lifecycle.machines.KnownHosts(ctx.state.course("setup")).all()
    target = ssh.SshTarget(host, int(port), "ubuntu", known[seats["s01"].instance_id],
                           password=password)
    client = ssh.connect(target, timeout=10)
    lines: list[str] = []
    assert ssh.run(client, "cat hello.txt", on_line=lambda _s, t: lines.append(t)) == 0
    client.close()
    assert lines == ["hello from the course"]
    bad = ssh.SshTarget(host, int(port), "ubuntu", known[seats["s01"].instance_id],
                        password="wrong-password")
    with pytest.raises(ssh.SshError):
        ssh.connect(bad, timeout=10, attempts=1)

    # rerun: every step is skipped or harmless; the setup command did not run twice
    outcomes = lifecycle.setup(ctx, course, wait=10, chosen=[
        m for m in find_machines(ctx.aws, "setup", ("us-east-1",)).machines])
    assert all(o.ok for o in outcomes)
    assert on_seat(ctx, course, "s01", "cat steps.log") == (0, "step-one")


def test_failed_setup_is_named_and_others_finish(ctx, sandbox, tmp_path) -> None:
    course = load(course_file(tmp_path, students=3,
                              setup='"test ! -e ~/.fail-here", "echo after >> ~/steps.log"'))
    lifecycle.up(ctx, course, skip_setup=True)
    eventually(lambda: lifecycle.status(ctx, course), lambda s: all(x.address for x in s))
    assert on_seat(ctx, course, "s02", "touch ~/.fail-here")[0] == 0
    outcomes = lifecycle.setup(ctx, course, wait=20)
    failed = {o.key: o.error for o in outcomes if not o.ok}
    assert list(failed) == ["s02"] and "setup step 1/2 failed (exit 1)" in failed["s02"]
    assert "rerun-setup" in failed["s02"]
    seats = {s.seat: s for s in lifecycle.status(ctx, course)}
    # the tag names the step and its status, never the command (tags are widely readable)
    assert seats["s02"].setup == "failed" and seats["s02"].error == "setup step 1/2: exit 1"
    assert seats["s01"].error == seats["s03"].error == ""
    assert seats["s01"].setup == seats["s03"].setup == "done"
    # fix the cause, run again: only the failed seat is set up, and it finishes
    assert on_seat(ctx, course, "s02", "rm ~/.fail-here")[0] == 0
    again = lifecycle.setup(ctx, course, wait=20)
    assert [o.key for o in again] == ["s02"] and again[0].ok
    assert on_seat(ctx, course, "s02", "cat steps.log") == (0, "after")


def test_exec_all_streams_prefixed_output_and_exit_status(ctx, tmp_path) -> None:
    course = load(course_file(tmp_path, students=3))
    lifecycle.up(ctx, course, setup_wait=60)
    outcomes, lines = exec_lines(
        ctx, course, None, 'echo "seat $(whoami)"; echo oops >&2; [ -e hello.txt ] && exit 3')
    assert {o.key: o.value for o in outcomes} == {"s01": 3, "s02": 3, "s03": 3}
    assert sorted(lines) == sorted([(s, "stdout", "seat ubuntu") for s in ("s01", "s02", "s03")]
                                   + [(s, "stderr", "oops") for s in ("s01", "s02", "s03")])


def test_reset_password_changes_login(ctx, tmp_path) -> None:
    course = load(course_file(tmp_path, students=1))
    lifecycle.up(ctx, course, setup_wait=60)
    state = ctx.state.course("setup")
    old = passwords.get(state, "s01")
    path = lifecycle.reset_seat_password(ctx, course, "s01")
    new = passwords.get(state, "s01")
    assert path.stat().st_mode & 0o077 == 0 and new and new != old
    seat = lifecycle.status(ctx, course)[0]
    host, port = seat.address.split(":")
    key = lifecycle.machines.KnownHosts(state).all()[seat.instance_id]
    client = ssh.connect(ssh.SshTarget(host, int(port), "ubuntu", key, password=new))
    client.close()
    with pytest.raises(ssh.SshError):
        ssh.connect(ssh.SshTarget(host, int(port), "ubuntu", key, password=old), attempts=1)

    # a chpasswd that fails keeps the password that still works, on both sides
    assert on_seat(ctx, course, "s01", "sudo mv /usr/sbin/chpasswd /usr/sbin/chpasswd.real && "
                   "printf '#!/bin/sh\\nexit 1\\n' | sudo tee /usr/sbin/chpasswd >/dev/null && "
                   "sudo chmod 755 /usr/sbin/chpasswd")[0] == 0
    with pytest.raises(SetupFailed, match="reset the seat password failed"):
        lifecycle.reset_seat_password(ctx, course, "s01")
    assert passwords.get(state, "s01") == new
    client = ssh.connect(ssh.SshTarget(host, int(port), "ubuntu", key, password=new))
    client.close()


def test_wrong_pinned_host_key_is_refused(ctx, tmp_path) -> None:
    from labtui.services.hostkeys import HostKey

    course = load(course_file(tmp_path, students=1))
    lifecycle.up(ctx, course, skip_setup=True)
    seat = eventually(lambda: lifecycle.status(ctx, course), lambda s: s[0].address)[0]
    known = lifecycle.machines.KnownHosts(ctx.state.course("setup"))
    known.add({seat.instance_id: HostKey.generate().public_line})  # an impostor's key
    # the wait covers a slow boot; once sshd answers, the wrong key is refused at once
    outcomes = lifecycle.setup(ctx, course, wait=60)
    assert not outcomes[0].ok and "host key" in outcomes[0].error.lower()


def test_key_login_installs_the_seats_own_key(ctx, tmp_path) -> None:
    from labtui.services import keys

    course = load(course_file(tmp_path, students=1, login="key"))
    lifecycle.up(ctx, course, setup_wait=60)
    state = ctx.state.course("setup")
    private, public = keys.seat_key(state, "s01")
    assert (state.secrets / "seat_keys" / "s01").stat().st_mode & 0o077 == 0
    assert passwords.get(state, "s01") is None  # no password for key-login seats
    seat = lifecycle.status(ctx, course)[0]
    host, port = seat.address.split(":")
    host_key = lifecycle.machines.KnownHosts(state).all()[seat.instance_id]
    client = ssh.connect(ssh.SshTarget(host, int(port), "ubuntu", host_key,
                                       pkey=ssh.load_private_key(private)))
    client.close()


def test_mrjob_conf_points_at_the_seats_cluster(ctx, sandbox, tmp_path) -> None:
    """A seat whose cluster runs keeps it; one without gets its own, and ~/.mrjob.conf names
    each seat's own (0600)."""
    from labtui.services import tags

    from .courses import CLUSTER

    path = course_file(tmp_path, students=2)
    path.write_text(path.read_text() + CLUSTER)
    course = load(path)
    emr = ctx.aws.client("emr", "us-east-1")
    cluster_id = emr.run_job_flow(
        Name="labtui-setup-s01", ReleaseLabel="emr-7.2.0", ServiceRole="EMR_DefaultRole",
        JobFlowRole="EMR_EC2_DefaultRole",
        Instances={"MasterInstanceType": "m5.xlarge", "InstanceCount": 1,
                   "KeepJobFlowAliveWhenNoSteps": True},
        Tags=tags.tags("setup", "s01"))["JobFlowId"]
    result = lifecycle.up(ctx, course, setup_wait=60, cluster_wait=120)
    assert len(result.clusters_started) == 1 and cluster_id not in result.clusters_started
    seats = {s.seat: s for s in lifecycle.status(ctx, course)}
    assert seats["s01"].setup == "done"
    status, conf = on_seat(ctx, course, "s01", "stat -c %a .mrjob.conf; cat .mrjob.conf")
    assert f"cluster_id: {cluster_id}" in conf and "region: us-east-1" in conf
    assert status == 0 and conf.startswith("600\n")
    own = result.clusters_started[0]
    assert f"cluster_id: {own}" in on_seat(ctx, course, "s02", "cat .mrjob.conf")[1]
    assert tags.as_dict(emr.describe_cluster(ClusterId=own)["Cluster"]["Tags"])[tags.SEAT] \
        == "s02"
    again = lifecycle.up(ctx, course, setup_wait=60, cluster_wait=120)
    assert again.clusters_started == []  # never a second cluster for a seat
    emr.terminate_job_flows(JobFlowIds=[cluster_id, own])


def test_pip_user_install_fails_plainly_in_the_setup_log(ctx, tmp_path) -> None:
    """As on AWS: Debian 12 / Ubuntu 24.04 refuse `pip install --user` (PEP 668); the seat
    is named and its setup log shows pip's own error."""
    course = load(course_file(tmp_path, students=1,
                              setup='"python3 -m pip install --user six"'))
    result = lifecycle.up(ctx, course, setup_wait=60)
    assert list(result.setup_failed) == ["s01"]
    assert "setup step 1/1 failed" in result.setup_failed["s01"]
    log = (ctx.state.course("setup").logs / "s01.log").read_text()
    assert "externally-managed-environment" in log


def test_setup_steps_run_as_written_in_a_script(ctx, tmp_path) -> None:
    """A trailing comment, a heredoc and a case statement run as they would in a script on
    the machine, each once."""
    steps = ('"echo commented >> ~/ran.txt # says why", '
             '"""cat >> ~/ran.txt <<EOF\nfrom a heredoc\nEOF""", '
             '"case ubuntu in ubuntu) echo matched >> ~/ran.txt;; *) exit 3;; esac"')
    course = load(course_file(tmp_path, students=1, setup=steps))
    result = lifecycle.up(ctx, course, setup_wait=60)
    assert result.setup_failed == {}
    assert on_seat(ctx, course, "s01", "cat ran.txt") == (
        0, "commented\nfrom a heredoc\nmatched")
    assert all(o.ok for o in lifecycle.setup(ctx, course, chosen=[
        lifecycle.seat_machine(ctx, course, "s01")]))
    assert on_seat(ctx, course, "s01", "wc -l < ran.txt") == (0, "3")  # each ran once
