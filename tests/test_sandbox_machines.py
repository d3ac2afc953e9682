"""The sandbox's machines are real Linux: containers booted by the real cloud-init from the
instance's user-data, reached through their own OpenSSH sshd, isolated from the host.

Each test launches instances with boto3 against the session sandbox, exactly as labtui does
(one user-data per machine, pinned host key, a key pair), and looks at them as a user would:
over SSH, through the console, through the AWS API.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import boto3
import paramiko
import pytest

from labtui.sandbox import flavors
from labtui.sandbox.container import runtime_problem
from labtui.services import cloudinit, ssh
from labtui.services.hostkeys import HostKey
from labtui.services.ssh import SshError, SshTarget

pytestmark = pytest.mark.skipif(runtime_problem() is not None,
                                reason=f"no sandbox machines here: {runtime_problem()}")
IMAGE = flavors.FLAVORS["ubuntu-24.04"].image_id


class Seat:
    """One launched instance and how to reach it."""

    def __init__(self, sandbox, ec2, instance_id: str, host_key: str, course_key: HostKey,
                 user: str = "ubuntu") -> None:
        self.sandbox, self.ec2, self.id = sandbox, ec2, instance_id
        self.host_key, self.course_key, self.user = host_key, course_key, user
        self.pkey = ssh.load_private_key(course_key.private_openssh())

    def address(self, timeout: float = 60) -> tuple[str, int]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hosts = json.loads(self.sandbox.hosts_file.read_text() or "{}")
            entry = hosts.get(self.id)
            if entry:
                return entry["host"], int(entry["port"])
            time.sleep(0.1)
        raise AssertionError(f"{self.id} got no address")

    def connect(self, timeout: float = 60, **target: object) -> paramiko.SSHClient:
        host, port = self.address(timeout)
        deadline = time.monotonic() + timeout
        while True:
            try:
                return ssh.connect(SshTarget(host, port, str(target.get("user", self.user)),
                                             str(target.get("host_key", self.host_key)),
                                             pkey=target.get("pkey", self.pkey),  # type: ignore
                                             password=target.get("password")),  # type: ignore
                                   timeout=10, attempts=1)
            except SshError as exc:
                if "refused" not in str(exc) and "reach" not in str(exc) and \
                        "banner" not in str(exc).lower() and "reset" not in str(exc):
                    raise
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def run(self, command: str, timeout: float = 300) -> tuple[int, str, str]:
        client = self.connect()
        out: list[str] = []
        err: list[str] = []
        try:
            status = ssh.run(client, command, timeout=timeout, on_line=lambda stream, text: (
                out if stream == "stdout" else err).append(text))
        finally:
            client.close()
        return status, "\n".join(out), "\n".join(err)

    def console(self) -> str:
        return self.ec2.get_console_output(InstanceId=self.id, Latest=True).get("Output", "")

    def state(self) -> str:
        reply = self.ec2.describe_instances(InstanceIds=[self.id])
        return reply["Reservations"][0]["Instances"][0]["State"]["Name"]


@pytest.fixture
def launch(sandbox, sandbox_state):
    ec2 = boto3.client("ec2", "us-east-1", endpoint_url=sandbox.endpoint_url)
    course_key = HostKey.generate()
    ec2.import_key_pair(KeyName="course", PublicKeyMaterial=course_key.public_line.encode())

    def start(extra: dict | None = None, image: str = IMAGE, host: HostKey | None = None,
              **spec) -> Seat:
        host = host or HostKey.generate()
        spec.setdefault("UserData", cloudinit.user_data(host.private_openssh(),
                                                        host.public_line, extra=extra))
        reply = ec2.run_instances(ImageId=image, MinCount=1, MaxCount=1, KeyName="course",
                                  InstanceType="t3.small",
                                  MetadataOptions={"HttpTokens": "required"}, **spec)
        return Seat(sandbox, ec2, reply["Instances"][0]["InstanceId"], host.public_line,
                    course_key, flavors.of_image(image).user)

    return start


def package_sources_answer(seat: Seat) -> str | None:
    """None when apt's mirror answers from the machine, else why not (for the skip)."""
    status, out, err = seat.run("sudo apt-get update -q 2>&1", timeout=300)
    text = out + err
    if status != 0 or "Failed to fetch" in text or "Could not resolve" in text:
        return "no package source answers from the sandbox machine: " + text[-300:]
    return None


# ------------------------------------------------------------------------------ user-data


def test_user_data_carries_only_the_machines_own_host_key():
    priv, pub = cloudinit.new_host_key()
    text = cloudinit.user_data(priv, pub, ["ssh-ed25519 AAAAC3Nz x"], {"ssh_pwauth": True})
    assert text.startswith("#cloud-config\n")
    cfg = json.loads(text.split("\n", 1)[1])
    assert cfg["ssh_keys"] == {"ed25519_private": priv, "ed25519_public": pub}
    assert cfg["ssh_genkeytypes"] == ["ed25519"] and cfg["ssh_deletekeys"] is True
    assert cfg["ssh_authorized_keys"] == ["ssh-ed25519 AAAAC3Nz x"]
    assert "bootcmd" not in cfg and "write_files" not in cfg
    assert cloudinit.parse_user_data(text) == cfg


# ------------------------------------------------------------------------------ boot and SSH


def test_first_boot_installs_the_pinned_host_key_and_the_login_user(launch, tmp_path):
    seat = launch(extra={"runcmd": [["sh", "-c", "echo ran > /var/tmp/runcmd-ran"]]})
    status, out, _ = seat.run("sudo cloud-init status --wait | tail -1; id -un; sudo -n id -un; "
                              "ls /etc/ssh | grep host_; cat /var/tmp/runcmd-ran")
    assert status == 0, out
    lines = out.splitlines()
    assert lines[:3] == ["status: done", "ubuntu", "root"]  # default_user, passwordless sudo
    assert lines[3:5] == ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"]  # only the pin
    assert lines[5:] == ["ran"]
    console = seat.console()
    assert "Cloud-init v." in console and seat.host_key.split()[1] in console
    # the host's own CAs (a proxy before the package mirrors) came trusted in the base image,
    # so the boot did not rebuild the CA bundle (a second of CPU on every first boot)
    assert "local certificate authorities" not in console
    from labtui.sandbox.image import host_ca_certs

    status, bundle, _ = seat.run("cat /etc/ssl/certs/ca-certificates.crt")
    assert status == 0
    for name, text in host_ca_certs().items():
        body = "".join(text.split("-----")[2].split())
        assert body[:64] in "".join(bundle.split()), name
    # any other key is refused (paramiko with RejectPolicy)
    with pytest.raises(SshError, match="host key"):
        seat.connect(host_key=HostKey.generate().public_line)
    # OpenSSH with StrictHostKeyChecking=yes and a known_hosts written like labtui's own:
    # `host key` on port 22, `[host]:port key` otherwise
    host, port = seat.address()
    assert ipaddress.ip_address(host).is_loopback and host != "127.0.0.1"
    if os.geteuid() == 0:
        assert port == 22
    if shutil.which("ssh") is None:
        pytest.skip("OpenSSH client not installed")
    key_file = tmp_path / "key"
    key_file.write_text(seat.course_key.private_openssh())
    key_file.chmod(0o600)
    known = tmp_path / "known_hosts"
    known.write_text(f"{host if port == 22 else f'[{host}]:{port}'} {seat.host_key}\n")
    ran = subprocess.run(
        ["ssh", "-F", "/dev/null", "-i", str(key_file), "-p", str(port), "-o",
         "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={known}", "-o",
         "BatchMode=yes", f"ubuntu@{host}", "echo", "via-openssh"],
        capture_output=True, text=True, timeout=60)
    assert ran.returncode == 0 and ran.stdout.strip() == "via-openssh", ran.stderr


def test_password_login_is_switched_on_by_cloud_init(launch):
    seat = launch(extra={"ssh_pwauth": True})
    assert seat.run("sudo cloud-init status --wait; echo ubuntu:Corr3ct-horse | sudo chpasswd"
                    )[0] == 0
    seat.connect(password="Corr3ct-horse", pkey=None).close()
    with pytest.raises(SshError):
        seat.connect(password="wrong", pkey=None)
    closed = launch(extra={"ssh_pwauth": False})
    assert closed.run("sudo cloud-init status --wait; echo ubuntu:Corr3ct-horse | "
                      "sudo chpasswd")[0] == 0
    with pytest.raises(SshError):
        closed.connect(password="Corr3ct-horse", pkey=None)


def test_stop_start_keeps_the_disk_and_changes_the_address(launch):
    seat = launch()
    assert seat.run("echo kept > ~/notes.txt; sudo mkdir -p /srv/x")[0] == 0
    before = seat.address()
    seat.ec2.stop_instances(InstanceIds=[seat.id])
    seat.sandbox._hosts.sync()
    hosts = json.loads(seat.sandbox.hosts_file.read_text())
    assert seat.id not in hosts  # no machine while stopped
    seat.ec2.start_instances(InstanceIds=[seat.id])
    assert seat.run("cat ~/notes.txt; test -d /srv/x && echo dir")[1] == "kept\ndir"
    assert seat.address()[0] != before[0]  # a new address, like a new public IP
    seat.ec2.terminate_instances(InstanceIds=[seat.id])
    seat.sandbox._hosts.sync()
    assert not (seat.sandbox.folder / "instances" / seat.id).exists()  # the layer is gone


def test_a_stopping_machine_leaves_hosts_json_before_it_shuts_down(launch):
    # EC2 says "stopping" while the OS shuts down; moto says "stopped" at once. Nobody may
    # log in to the machine meanwhile: it leaves hosts.json before its shutdown begins.
    seat = launch()
    assert seat.run("nohup bash -c 'trap \"\" TERM; sleep 60' >/dev/null 2>&1 &")[0] == 0
    pid = seat.sandbox._hosts.init_pid(seat.id)  # a process that holds the shutdown up
    assert pid is not None
    seat.ec2.stop_instances(InstanceIds=[seat.id])
    deadline = time.monotonic() + 30
    while seat.id in json.loads(seat.sandbox.hosts_file.read_text() or "{}"):
        assert time.monotonic() < deadline, "the stopped machine is still listed"
        time.sleep(0.05)
    assert Path(f"/proc/{pid}").exists()  # still shutting down (init's 3 s before SIGKILL)
    seat.sandbox._hosts.sync()
    assert not Path(f"/proc/{pid}").exists()


def test_reboot_runs_the_per_boot_modules_again(launch):
    seat = launch(extra={"bootcmd": ["echo boot >> /var/tmp/boots"],
                         "runcmd": ["echo once >> /var/tmp/once"]})
    assert seat.run("sudo cloud-init status --wait >/dev/null; cat /var/tmp/boots "
                    "/var/tmp/once")[1] == "boot\nonce"
    seat.ec2.reboot_instances(InstanceIds=[seat.id])
    seat.sandbox._hosts.sync()
    deadline = time.monotonic() + 60
    while True:  # the reboot's sshd comes up at the same address
        status, out, _ = seat.run("sudo cloud-init status --wait >/dev/null; "
                                  "cat /var/tmp/boots /var/tmp/once")
        if out == "boot\nboot\nonce" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert out == "boot\nboot\nonce"  # bootcmd every boot, runcmd once per instance
    assert seat.console().count("labtui sandbox machine") == 2


def _from_inside(seat: Seat, command: str) -> paramiko.SSHClient:
    """Run a command that ends the machine (its SSH session dies with it: no exit status)."""
    client = seat.connect()
    chan = client.get_transport().open_session()
    chan.exec_command(command)
    return client


def _wait_state(seat: Seat, state: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while seat.state() != state:
        assert time.monotonic() < deadline, seat.state()
        time.sleep(0.2)


def test_a_machine_that_powers_off_stops_its_instance(launch):
    seat = launch()
    found = seat.run("sudo sh -c 'for c in poweroff shutdown halt reboot; do command -v $c; "
                     "done'")[1]
    assert found.split() == [f"/usr/local/sbin/{c}" for c in ("poweroff", "shutdown", "halt",
                                                             "reboot")]  # on secure_path
    client = _from_inside(seat, "sudo poweroff")
    _wait_state(seat, "stopped")
    client.close()
    reply = seat.ec2.describe_instances(InstanceIds=[seat.id])
    reason = reply["Reservations"][0]["Instances"][0]["StateReason"]
    assert reason["Code"] == "Client.InstanceInitiatedShutdown"
    assert (seat.sandbox.folder / "instances" / seat.id / "upper").is_dir()  # the disk stays
    assert "Reached target Shutdown (poweroff" in seat.console()


def test_shutdown_terminates_an_instance_whose_shutdown_behavior_is_terminate(launch):
    seat = launch(InstanceInitiatedShutdownBehavior="terminate")
    assert seat.run("true")[0] == 0
    client = _from_inside(seat, "sudo shutdown -h now")
    _wait_state(seat, "terminated")
    client.close()
    seat.sandbox._hosts.sync()
    assert not (seat.sandbox.folder / "instances" / seat.id).exists()  # the layer is gone


def test_shutdown_behavior_changed_later_is_honoured(launch):
    seat = launch()
    seat.ec2.modify_instance_attribute(InstanceId=seat.id,
                                       InstanceInitiatedShutdownBehavior={"Value": "terminate"})
    reply = seat.ec2.describe_instance_attribute(InstanceId=seat.id,
                                                 Attribute="instanceInitiatedShutdownBehavior")
    assert reply["InstanceInitiatedShutdownBehavior"] == {"Value": "terminate"}
    client = _from_inside(seat, "sudo shutdown -P +0")
    _wait_state(seat, "terminated")
    client.close()


def test_only_root_can_power_a_machine_off(launch):
    seat = launch()
    for command in ("poweroff", "shutdown -h now", "halt", "reboot"):
        # Debian's login PATH of a non-root user has no sbin folders (Ubuntu's has them)
        status, _, err = seat.run(f"PATH=/usr/local/sbin:/usr/sbin:$PATH {command}")
        assert (status, err) == (1, f"{command.split()[0]}: must be superuser."), command
    assert seat.run("sudo shutdown -k now; sudo shutdown bogus")[0] == 1  # not a time
    status, out, _ = seat.run("sudo shutdown -h +5 'going down' && sudo shutdown -c")
    assert status == 0 and out.startswith("Shutdown scheduled for ")  # and cancelled
    assert seat.state() == "running" and seat.run("echo up")[1] == "up"
    seat.sandbox._hosts.sync()
    assert seat.id in json.loads(seat.sandbox.hosts_file.read_text())


def test_a_machine_that_reboots_itself_boots_again_at_its_address(launch):
    seat = launch(extra={"bootcmd": ["echo boot >> /var/tmp/boots"]})
    assert seat.run("sudo cloud-init status --wait >/dev/null; cat /var/tmp/boots")[1] == "boot"
    before = seat.address()
    client = _from_inside(seat, "sudo reboot")
    deadline = time.monotonic() + 60
    while seat.console().count("labtui sandbox machine") < 2:
        assert time.monotonic() < deadline, seat.console()[-2000:]
        time.sleep(0.2)
    client.close()
    out = seat.run("sudo cloud-init status --wait >/dev/null; cat /var/tmp/boots")[1]
    assert out == "boot\nboot"  # the per-boot modules ran again
    assert seat.state() == "running" and seat.address() == before


def test_user_data_reaches_cloud_init_as_ec2_holds_it_gzip_and_multipart(launch):
    """cloud-init reads user-data plain, gzip-compressed or as a MIME multipart; the sandbox
    hands it over byte for byte, as EC2 does."""
    import gzip
    from email.mime.multipart import MIMEMultipart
    from email.mime.text import MIMEText

    host = HostKey.generate()
    config = cloudinit.user_data(host.private_openssh(), host.public_line, extra={
        "runcmd": [["sh", "-c", "echo gz > /var/tmp/from-gzip"]]})
    zipped = launch(UserData=gzip.compress(config.encode()), host=host)
    parts = MIMEMultipart()
    other = HostKey.generate()
    parts.attach(MIMEText(cloudinit.user_data(other.private_openssh(), other.public_line),
                          "cloud-config"))
    parts.attach(MIMEText("#!/bin/sh\necho part > /var/tmp/from-script\n", "x-shellscript"))
    multi = launch(UserData=parts.as_string(), host=other)
    assert zipped.run("sudo cloud-init status --wait >/dev/null; cat /var/tmp/from-gzip"
                      )[1] == "gz"
    assert multi.run("sudo cloud-init status --wait >/dev/null; cat /var/tmp/from-script"
                     )[1] == "part"


# ------------------------------------------------------------------------------ isolation


def test_course_commands_cannot_touch_the_host(launch, sandbox_state):
    """As root inside the machine: absolute and relative paths after `cd /`, sudo cp into
    /usr/bin, Python open(), symlinks out of the layer, mounts, the host's network setup,
    the state folder — the host and the state folder are unchanged and unreadable."""
    if os.geteuid() != 0:
        pytest.skip("the isolation that matters is root's")
    tag = uuid.uuid4().hex[:10]
    secret = sandbox_state.root / "courses" / "c" / "secrets" / "passwords" / "s02"
    secret.parent.mkdir(parents=True)
    secret.write_text("hunter2\n")
    hostname = socket.gethostname()
    seat = launch()
    state = str(sandbox_state.root)
    status, out, err = seat.run(f"""
        cd / && touch tmp/rel-{tag} && sudo touch /tmp/abs-{tag}
        python3 -c "open('/tmp/py-{tag}', 'w').write('x')"
        sudo cp /bin/true /usr/bin/escape-{tag}
        ln -s / /tmp/link-{tag} && touch /tmp/link-{tag}/tmp/via-link-{tag}
        cat {state}/courses/c/secrets/passwords/s02 2>&1 || echo no-state-folder
        cat ../../../../../../courses/c/secrets/passwords/s02 2>&1 || echo no-relative-state
        sudo mount -t tmpfs none /mnt 2>/dev/null && echo MOUNTED || echo no-mount
        sudo ip link add lt{tag[:6]} type dummy 2>/dev/null && echo LINK || echo no-link
        sudo hostname evil-{tag} 2>/dev/null; hostname
        sudo sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward' 2>/dev/null && echo SYSCTL \
            || echo no-sysctl
        sudo python3 -c "import os; os.chroot('/tmp'); os.chdir('../../..'); \
            print(os.path.exists('{state}'))"
        ps -e -o comm= | wc -l
        """)
    assert "hunter2" not in out + err
    for word in ("no-state-folder", "no-relative-state", "no-mount", "no-link", "no-sysctl"):
        assert word in out, (word, out, err)
    assert "MOUNTED" not in out and "LINK" not in out and "SYSCTL" not in out
    assert "False" in out  # a chroot escape lands in the machine's own root
    assert int(out.split()[-1]) < 30  # the machine's own processes only
    # nothing landed on the host; the writes are in the machine's layer
    for name in (f"/tmp/rel-{tag}", f"/tmp/abs-{tag}", f"/tmp/py-{tag}",
                 f"/usr/bin/escape-{tag}", f"/tmp/via-link-{tag}"):
        assert not os.path.lexists(name), name
    assert not os.path.lexists(f"/tmp/link-{tag}")
    assert socket.gethostname() == hostname
    assert secret.read_text() == "hunter2\n"
    assert seat.run(f"ls /usr/bin/escape-{tag} /tmp/py-{tag}")[0] == 0


def test_a_killed_sandbox_leaves_no_machine_behind(tmp_path):
    """The machines die with the sandbox process, whatever ends it."""
    script = tmp_path / "box.py"
    script.write_text(f"""
import os, sys, time, boto3
os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                  AWS_EC2_METADATA_DISABLED="true")
from pathlib import Path
from labtui.sandbox.runtime import Sandbox
box = Sandbox(Path({str(tmp_path / 'sbx')!r})).start()
ec2 = boto3.client("ec2", "us-east-1", endpoint_url=box.endpoint_url)
ec2.run_instances(ImageId={IMAGE!r}, MinCount=2, MaxCount=2)
box._hosts.sync()
print("up", flush=True)
time.sleep(120)
""")
    proc = subprocess.Popen(["python3", str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "up"
        pids = _machine_pids(tmp_path / "sbx")
        assert len(pids) == 2
    finally:
        proc.kill()
        proc.wait()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in pids):
        assert time.monotonic() < deadline, "a machine outlived its sandbox"
        time.sleep(0.1)


def _machine_pids(folder: Path) -> list[int]:
    """Host pids of the `unshare` processes whose layer is under ``folder``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = (proc / "environ").read_bytes()
            cmd = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if cmd.startswith(b"unshare") and f"LT_LAYER={folder}".encode() in env:
            found.append(int(proc.name))
    return found


# ------------------------------------------------------------------------------ packages


def test_apt_installs_for_real_and_the_program_runs(launch):
    seat = launch()
    why = package_sources_answer(seat)
    if why:
        print(why)
        pytest.skip(why)
    status, out, err = seat.run("sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
                                "hello >/dev/null && hello && dpkg -s hello | grep Status")
    assert status == 0, err
    assert out.splitlines() == ["Hello, world!", "Status: install ok installed"]


def test_pip_user_install_is_refused_as_on_aws(launch):
    """PEP 668: Debian 12 (and Ubuntu 24.04) refuse `pip install --user` outside a venv —
    before any download, so this needs no network."""
    seat = launch()
    status, out, err = seat.run("python3 -m pip install --user six")
    assert status != 0 and "externally-managed-environment" in out + err


def test_boto3_on_a_seat_reaches_the_emulator_and_its_metadata(launch, sandbox):
    """pip into a venv on the machine (skipped when no package source answers), then boto3
    with the machine's own environment: STS from the emulator with the instance profile's
    role, and the instance id from the machine's metadata service."""
    iam = boto3.client("iam", "us-east-1", endpoint_url=sandbox.endpoint_url)
    iam.create_role(RoleName="seat-role", AssumeRolePolicyDocument=json.dumps({
        "Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                "Principal": {"Service": "ec2.amazonaws.com"}}]}))
    iam.create_instance_profile(InstanceProfileName="seat-profile")
    iam.add_role_to_instance_profile(InstanceProfileName="seat-profile", RoleName="seat-role")
    seat = launch(IamInstanceProfile={"Name": "seat-profile"})
    status, out, err = seat.run("python3 -m venv ~/venv && ~/venv/bin/pip install -q boto3 "
                                "2>&1 | tail -3", timeout=600)
    if status != 0 or "Could not" in out or "ERROR" in out:
        why = f"no package index answers from the sandbox machine: {out[-300:]}"
        print(why)
        pytest.skip(why)
    status, out, err = seat.run("""~/venv/bin/python - <<'EOF'
import boto3, six
session = boto3.Session()
print(session.get_credentials().method)
print(session.client("sts").get_caller_identity()["Arn"])
import os, urllib.request
base = os.environ["AWS_EC2_METADATA_SERVICE_ENDPOINT"].rstrip("/")
token = urllib.request.urlopen(urllib.request.Request(
    base + "/latest/api/token", method="PUT",
    headers={"X-aws-ec2-metadata-token-ttl-seconds": "60"})).read().decode()
print(urllib.request.urlopen(urllib.request.Request(
    base + "/latest/meta-data/instance-id",
    headers={"X-aws-ec2-metadata-token": token})).read().decode())
EOF""")
    assert status == 0, err
    method, arn, instance_id = out.splitlines()[-3:]
    assert method == "iam-role"  # the instance profile's credentials, from the metadata
    assert arn.startswith("arn:aws:sts::123456789012:assumed-role/seat-role/")
    assert instance_id == seat.id


def test_metadata_service_requires_a_token_and_serves_user_data(launch):
    seat = launch(extra={"runcmd": ["true"]})
    status, out, _ = seat.run(r"""
        . /etc/environment; base=${AWS_EC2_METADATA_SERVICE_ENDPOINT%/}
        curl -s -o /dev/null -w '%{http_code}\n' $base/latest/meta-data/instance-id
        t=$(curl -s -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' $base/latest/api/token)
        curl -s -H "X-aws-ec2-metadata-token: $t" $base/latest/meta-data/ami-launch-index; echo
        curl -s -H "X-aws-ec2-metadata-token: $t" $base/latest/user-data | head -1
        echo "$AWS_ENDPOINT_URL"
        """)
    lines = out.splitlines()
    assert status == 0 and lines[0] == "401" and lines[1] == "0"
    assert lines[2] == "#cloud-config" and lines[3] == seat.sandbox.endpoint_url


# ------------------------------------------------------------------------------ images


def test_each_image_name_has_its_login_user_and_amazon_linux_is_refused(launch):
    seat = launch(image=flavors.FLAVORS["debian-12"].image_id)
    assert seat.user == "admin" and seat.run("id -un")[1] == "admin"
    with pytest.raises(ValueError, match="cannot play 'amazon-linux-2023'.*debian-12"):
        flavors.image_for("amazon-linux-2023")


# ------------------------------------------------------------------------------ the client


def test_connect_retries_handshake_resets_with_backoff(monkeypatch):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    accepted: list[int] = []

    def slam() -> None:  # accept and hang up at once: a reset during the banner
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            conn.close()

    threading.Thread(target=slam, daemon=True).start()
    sleeps: list[float] = []
    _priv, pub = cloudinit.new_host_key()
    target = SshTarget("127.0.0.1", port, "ubuntu", pub, password="x")
    try:
        with pytest.raises(SshError, match="after 3 attempts"):
            ssh.connect(target, attempts=3, backoff=0.1, sleep=sleeps.append, timeout=5)
    finally:
        listener.close()
    assert sleeps == [0.1, 0.2] and len(accepted) == 3

    monkeypatch.setattr(ssh, "LOOPBACK_ONLY", False)
    ssh.set_loopback_only(True)
    with pytest.raises(SshError, match="loopback"):
        ssh.connect(SshTarget("203.0.113.7", 22, "ubuntu", pub, password="x"))
