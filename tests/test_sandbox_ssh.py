"""The sandbox SSH hosts, end to end: moto (in-process ThreadedMotoServer) -> HostManager ->
paramiko server per instance -> labtui.services.ssh client with pinned host keys.

Nothing here may change this machine: every "system" write is checked to land inside the
instance root and NOT on the host (unique names under /etc, a package name like cowsay).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import socket
import threading
import time
from pathlib import Path

import paramiko
import pytest

from labtui.sandbox import confine
from labtui.sandbox.hosts import HostManager
from labtui.services import cloudinit, ssh
from labtui.services.ssh import SshError, SshTarget

REGION = "us-east-1"


# -------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def moto_endpoint():
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    mp = pytest.MonkeyPatch()
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": REGION, "AWS_EC2_METADATA_DISABLED": "true"}.items():
        mp.setenv(k, v)
    mp.delenv("AWS_PROFILE", raising=False)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    mp.undo()


@pytest.fixture(scope="module")
def ec2(moto_endpoint):
    import boto3

    return boto3.client("ec2", endpoint_url=moto_endpoint, region_name=REGION)


@pytest.fixture(scope="module")
def hm(moto_endpoint, tmp_path_factory):
    manager = HostManager(tmp_path_factory.mktemp("sandbox"), poll_interval=0.2)
    manager.start()
    yield manager
    manager.stop()


class Machine:
    def __init__(self, iid: str, host_public: str, key_material: str, hm: HostManager):
        self.id = iid
        self.host_public = host_public
        self.pkey = ssh.load_private_key(key_material)
        self.hm = hm
        self.dir = hm.instance_dir(iid)
        self.root = self.dir / "root"
        self.home = self.root / "home" / "ubuntu"
        self.journal = self.dir / "journal.log"

    @property
    def port(self) -> int:
        port = self.hm.port_for(self.id)
        assert port is not None, "instance has no SSH listener"
        return port

    def target(self, **kw) -> SshTarget:
        args = {"host": "127.0.0.1", "user": "ubuntu", "host_key": self.host_public,
                "pkey": self.pkey, **kw}
        if "port" not in args:
            args["port"] = self.port
        return SshTarget(**args)

    def connect(self, **kw) -> paramiko.SSHClient:
        return ssh.connect(self.target(**kw), loopback_only=True)


@pytest.fixture
def launch(ec2, hm):
    launched: list[str] = []

    def _launch(key_type: str = "rsa", user_data: bool = True) -> Machine:
        name = f"labtui-test-{secrets.token_hex(4)}"
        kp = ec2.create_key_pair(KeyName=name, KeyType=key_type)
        priv, pub = cloudinit.new_host_key()
        kwargs = {"UserData": cloudinit.user_data(priv, pub)} if user_data else {}
        r = ec2.run_instances(ImageId="ami-12345678", MinCount=1, MaxCount=1, KeyName=name,
                              **kwargs)
        iid = r["Instances"][0]["InstanceId"]
        launched.append(iid)
        hm.sync()
        return Machine(iid, pub, kp["KeyMaterial"], hm)

    yield _launch
    if launched:
        ec2.terminate_instances(InstanceIds=launched)
        hm.sync()


def _run(client, command: str, **kw) -> tuple[int, list[str], list[str]]:
    out: list[str] = []
    err: list[str] = []
    rc = ssh.run(client, command, on_line=lambda s, line: (out if s == "stdout" else err)
                 .append(line), timeout=30, **kw)
    return rc, out, err


def _assert_shims_first(client) -> None:
    """Before any system command is tried: the shims, not the host's tools, must answer."""
    names = ["sudo", "apt-get", "dpkg", "chpasswd", "passwd", "systemctl", "reboot"]
    shims = str(confine.SHIMS_DIR)
    assert _run(client, "command -v " + " ".join(names))[1] == [f"{shims}/{n}" for n in names]


_HOST_PATHS: list[str] = []


def _unique_etc(tag: str) -> str:
    path = f"/etc/labtui-test-{tag}-{secrets.token_hex(6)}"
    assert not os.path.exists(path)
    _HOST_PATHS.append(path)
    return path


@pytest.fixture(autouse=True)
def host_guard():
    """Safety net: should a regression ever write one of our /etc names on the host,
    remove it and fail loudly."""
    yield
    leaked = [p for p in _HOST_PATHS if os.path.lexists(p)]
    for p in leaked:
        os.remove(p)
    _HOST_PATHS.clear()
    if leaked:
        pytest.fail(f"written on the HOST (now removed): {leaked}")


# -------------------------------------------------------------------------------- tests


def test_cloud_config_user_data_round_trip():
    priv, pub = cloudinit.new_host_key()
    assert priv.startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert pub.startswith("ssh-ed25519 AAAA")
    text = cloudinit.user_data(priv, pub, ["ssh-ed25519 AAAAC3Nz x"], {"hostname": "h"})
    assert text.startswith("#cloud-config\n")
    cfg = json.loads(text.split("\n", 1)[1])
    assert cfg["ssh_keys"] == {"ed25519_private": priv, "ed25519_public": pub}
    assert cfg["ssh_genkeytypes"] == [] and cfg["ssh_deletekeys"] is True
    assert cfg["ssh_authorized_keys"] == ["ssh-ed25519 AAAAC3Nz x"]
    assert cfg["hostname"] == "h"
    assert cloudinit.parse_user_data(text) == cfg


def test_rewrite_is_confined_and_idempotent(tmp_path):
    root = tmp_path / "instances" / "i-1" / "root"
    shims = str(confine.SHIMS_DIR)
    cases = {
        "echo hi > /etc/motd": f"echo hi > {root}/etc/motd",
        "echo x | sudo tee -a /etc/hosts": f"echo x | sudo tee -a {root}/etc/hosts",
        "sudo /usr/bin/apt-get install -y git": f"sudo {shims}/apt-get install -y git",
        "/usr/sbin/chpasswd < f": f"{shims}/chpasswd < f",
        "python3 -m pip install numpy": f"{shims}/pip install numpy",
        "cat /etcetera ./etc/x a/etc http://h/etc/x": "cat /etcetera ./etc/x a/etc "
                                                       "http://h/etc/x",
        "PATH=/opt/b:/usr/bin:$PATH": f"PATH={root}/opt/b:/usr/bin:$PATH",
        "sed -i 's/^#P.*/PasswordAuthentication yes/' /etc/ssh/sshd_config":
            f"sed -i 's/^#P.*/PasswordAuthentication yes/' {root}/etc/ssh/sshd_config",
        "ls /dev/null /usr/bin/env /proc/self": "ls /dev/null /usr/bin/env /proc/self",
    }
    for text, want in cases.items():
        got = confine.rewrite_command(text, root)
        assert got == want, text
        assert confine.rewrite_command(got, root) == got


def test_exec_streams_lines_exit_status_stdin_and_clean_env(launch, hm):
    m = launch()
    hosts = json.loads((hm.sandbox_dir / "hosts.json").read_text())
    assert hosts[m.id] == {"host": "127.0.0.1", "port": m.port, "region": REGION,
                           "state": "running"}
    assert "host key from user-data" in m.journal.read_text()
    client = m.connect()
    try:
        stamps: list[tuple[float, str, str]] = []
        t0 = time.monotonic()
        rc = ssh.run(client, "for i in 1 2 3; do echo line $i; sleep 0.3; done; "
                     "echo oops >&2; exit 3",
                     on_line=lambda s, line: stamps.append((time.monotonic() - t0, s, line)))
        done = time.monotonic() - t0
        assert rc == 3
        assert [(s, line) for _, s, line in stamps] == [
            ("stdout", "line 1"), ("stdout", "line 2"), ("stdout", "line 3"),
            ("stderr", "oops")]
        # streamed: each line arrived well before the command ended, not all at exit
        assert stamps[0][0] < done - 0.6 and stamps[1][0] < done - 0.3

        rc, out, _ = _run(client, "cat; echo; tr a-z A-Z < /dev/null", stdin="hello\nworld")
        assert (rc, out) == (0, ["hello", "world"])

        rc, out, _ = _run(client, 'pwd; echo "$HOME|$USER"; env | grep -c "^AWS_" || true')
        assert rc == 0
        assert out[0] == str(m.home) and out[1] == f"{m.home}|ubuntu"
        assert out[2] == "0", "host environment (AWS credentials!) leaked into the instance"
    finally:
        client.close()


def test_pinned_host_key_user_key_and_loopback_rules(launch):
    m = launch(key_type="ed25519")
    client = m.connect()
    assert _run(client, "whoami")[1] == ["ubuntu"]
    client.close()

    _other_priv, other_pub = cloudinit.new_host_key()
    with pytest.raises(SshError) as e:
        m.connect(host_key=other_pub)
    assert f"127.0.0.1:{m.port}" in str(e.value) and "does not match the pinned" in str(e.value)

    with pytest.raises(SshError, match="authentication"):
        m.connect(pkey=paramiko.Ed25519Key.from_private_key(
            __import__("io").StringIO(cloudinit.new_host_key()[0])))

    with pytest.raises(SshError, match="loopback"):
        ssh.connect(SshTarget("54.214.1.2", 22, "ubuntu", m.host_public, pkey=m.pkey),
                    loopback_only=True)


def test_sftp_upload_download_confined(launch):
    m = launch()
    client = m.connect()
    try:
        ssh.put(client, b"hello sftp\n", "notes.txt", mode=0o600)
        assert (m.home / "notes.txt").read_bytes() == b"hello sftp\n"
        assert (m.home / "notes.txt").stat().st_mode & 0o777 == 0o600
        assert ssh.get(client, "/home/ubuntu/notes.txt") == b"hello sftp\n"

        etc_file = _unique_etc("sftp")
        ssh.put(client, b"inside\n", etc_file)
        assert (m.root / etc_file.lstrip("/")).read_bytes() == b"inside\n"
        assert not os.path.exists(etc_file)

        # ../ cannot climb out of the instance's "/": this is the instance's passwd
        passwd = ssh.get(client, "../../../../../../etc/passwd")
        assert passwd == (m.root / "etc/passwd").read_bytes()
        assert ssh.get(client, "/etc/passwd") == passwd
        assert b"ubuntu:x:" in passwd

        # a symlink to a host folder is refused both ways
        os.symlink("/etc", m.home / "escape")
        with pytest.raises(SshError, match="permission denied"):
            ssh.get(client, "escape/hostname")
        with pytest.raises(SshError, match="permission denied"):
            ssh.put(client, b"x", "escape/labtui-test-never")
        assert not os.path.exists("/etc/labtui-test-never")

        local = m.dir / "download.txt"
        ssh.get(client, "notes.txt", local)
        assert local.read_bytes() == b"hello sftp\n"
        sftp = client.open_sftp()
        assert sftp.normalize(".") == "/home/ubuntu"
        assert {"etc", "home", "tmp"} <= set(sftp.listdir("/"))
        with pytest.raises(PermissionError):
            sftp.symlink("../../../../../../../..", "bad-link")
        sftp.close()
    finally:
        client.close()


def test_system_changes_are_intercepted(launch):
    m = launch()
    cowsay_before = (os.path.exists("/usr/games/cowsay"), shutil.which("cowsay"))
    tee_path, redirect_path, script_path = (_unique_etc("tee"), _unique_etc("redirect"),
                                            _unique_etc("script"))
    client = m.connect()
    try:
        _assert_shims_first(client)
        rc, out, _ = _run(client, "sudo apt-get install -y cowsay")
        assert rc == 0 and any("cowsay" in line for line in out)
        assert _run(client, "dpkg -s cowsay")[0] == 0
        assert _run(client, "dpkg -s labtui-never-installed")[0] == 1
        assert _run(client, "apt-get install -y git")[0] == 100  # forgot sudo: like AWS
        assert _run(client, "sudo apt-get install -y labtui-missing-pkg")[0] == 100
        assert _run(client, "sudo /usr/bin/apt-get install -y git >/dev/null && "
                    "dpkg-query -W -f='${Status}' git")[1] == ["install ok installed"]
        assert _run(client, "python3 -m pip install 'numpy==1.26' && pip show numpy")[0] == 0
        assert _run(client, "sudo systemctl restart ssh && systemctl is-active ssh")[0] == 0
        assert _run(client, "sudo reboot")[0] == 0

        assert _run(client, f"echo hi | sudo tee {tee_path}")[1] == ["hi"]
        assert _run(client, f"echo hi > {redirect_path}")[0] == 0
        ssh.put(client, f"echo from-script > {script_path}\n".encode(), "setup.sh")
        assert _run(client, "sudo bash setup.sh")[0] == 0
        assert _run(client, f"cat {tee_path} {redirect_path} {script_path}")[1] == [
            "hi", "hi", "from-script"]
        assert _run(client, "whoami; sudo whoami; sudo id -u")[1] == ["ubuntu", "root", "0"]
    finally:
        client.close()
    for p in (tee_path, redirect_path, script_path):
        assert (m.root / p.lstrip("/")).exists()
        assert not os.path.exists(p), f"{p} was written on the HOST"
    assert (os.path.exists("/usr/games/cowsay"), shutil.which("cowsay")) == cowsay_before
    journal = m.journal.read_text()
    assert "sudo apt-get install -y cowsay (simulated: installed cowsay)" in journal
    assert f"sudo tee {tee_path}" in journal
    assert "sudo systemctl restart ssh" in journal and "sudo reboot" in journal
    assert str(m.root) not in journal  # paths are shown as the instance sees them
    assert "cowsay" in (m.root / "var/lib/labtui/packages.txt").read_text()


def test_password_login_after_chpasswd_and_sshd_config(launch, hm, caplog):
    caplog.set_level(logging.DEBUG)
    m = launch()
    password = f"s3cret-Pass-{secrets.token_hex(4)}"
    client = m.connect()
    try:
        _assert_shims_first(client)
        assert _run(client, f"echo 'ubuntu:{password}' | chpasswd")[0] == 1  # needs sudo
        assert _run(client, f"echo 'ubuntu:{password}' | sudo chpasswd")[0] == 0
    finally:
        client.close()
    with pytest.raises(SshError, match="authentication"):  # not enabled in sshd_config yet
        ssh.connect(m.target(pkey=None, password=password), loopback_only=True)

    client = m.connect()
    try:
        rc, _, _ = _run(client, "sudo sed -i 's/^#\\?PasswordAuthentication.*/"
                                "PasswordAuthentication yes/' /etc/ssh/sshd_config && "
                                "sudo systemctl restart ssh")
        assert rc == 0
    finally:
        client.close()
    client = ssh.connect(m.target(pkey=None, password=password), loopback_only=True)
    assert _run(client, "whoami")[1] == ["ubuntu"]
    client.close()
    with pytest.raises(SshError, match="authentication") as e:
        ssh.connect(m.target(pkey=None, password=password + "-wrong"), loopback_only=True)
    assert password not in str(e.value)

    assert "password set for user ubuntu" in m.journal.read_text()
    for path in [p for p in m.dir.rglob("*") if p.is_file()] + [hm.hosts_file]:
        assert password.encode() not in path.read_bytes(), f"password found in {path}"
    assert password not in caplog.text
    assert password not in repr(m.target(password=password))


def test_stop_and_start_new_port_same_files(launch, ec2, hm):
    m = launch()
    client = m.connect()
    _run(client, "echo kept > kept.txt")
    client.close()
    old_port = m.port
    ec2.stop_instances(InstanceIds=[m.id])
    hm.sync()
    assert hm.port_for(m.id) is None
    assert m.id not in json.loads(hm.hosts_file.read_text())
    with pytest.raises(SshError, match="refused"):
        ssh.connect(m.target(port=old_port), loopback_only=True)

    ec2.start_instances(InstanceIds=[m.id])
    hm.sync()
    assert m.port != old_port
    assert json.loads(hm.hosts_file.read_text())[m.id]["port"] == m.port
    client = m.connect()  # same pinned host key after a restart
    try:
        assert _run(client, "cat kept.txt")[1] == ["kept"]
    finally:
        client.close()

    # stop + start faster than the manager polls: still a new port
    before = m.port
    ec2.stop_instances(InstanceIds=[m.id])
    ec2.start_instances(InstanceIds=[m.id])
    hm.sync()
    after = m.port
    assert after != before
    ec2.start_instances(InstanceIds=[m.id])  # starting a running machine changes nothing
    hm.sync()
    assert m.port == after


def test_instance_without_user_data_gets_a_generated_host_key(launch):
    m = launch(user_data=False)
    assert "generated a random ed25519 host key" in m.journal.read_text()
    pub = (m.root / "etc/ssh/ssh_host_ed25519_key.pub").read_text().strip()
    client = ssh.connect(SshTarget("127.0.0.1", m.port, "hadoop", pub, pkey=m.pkey))
    try:
        assert _run(client, "pwd")[1] == [str(m.root / "home/hadoop")]
    finally:
        client.close()


def test_fifty_concurrent_connections(launch):
    m = launch()
    results: dict[int, object] = {}

    def one(i: int) -> None:
        try:
            client = m.connect()
            try:
                results[i] = _run(client, f"echo n{i}")
            finally:
                client.close()
        except Exception as e:  # recorded, asserted below
            results[i] = e

    threads = [threading.Thread(target=one, args=(i,)) for i in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    bad = {i: results.get(i) for i in range(50) if results.get(i) != (0, [f"n{i}"], [])}
    assert not bad, f"{len(bad)} of 50 failed: {list(bad.items())[:3]}"


def test_300_fast_commands_never_see_channel_closed(launch):
    m = launch()
    client = m.connect()
    try:
        for i in range(300):
            command = "echo . >> runs" + ("" if i % 2 else "; exit 7")
            assert ssh.run(client, command) == (0 if i % 2 else 7)
    finally:
        client.close()
    # each command ran exactly once: no reply lost, and no retry of a command that started
    assert len((m.home / "runs").read_text().splitlines()) == 300


def test_client_disconnect_kills_the_command(launch):
    m = launch()
    client = m.connect()
    chan = client.get_transport().open_session()
    chan.exec_command("echo $$ > pid; exec sleep 60")
    deadline = time.monotonic() + 10
    while not (m.home / "pid").exists() or not (m.home / "pid").read_text().strip():
        assert time.monotonic() < deadline
        time.sleep(0.05)
    pid = int((m.home / "pid").read_text())
    assert Path(f"/proc/{pid}").exists()
    client.close()
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, "the command outlived its SSH connection"
        time.sleep(0.05)


def test_port_forwarding_only_to_loopback(launch):
    m = launch()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def echo_once() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(conn.recv(100).upper())

    threading.Thread(target=echo_once, daemon=True).start()
    client = m.connect()
    try:
        t = client.get_transport()
        chan = t.open_channel("direct-tcpip", ("localhost", port), ("127.0.0.1", 0))
        chan.sendall(b"tunnel")
        assert chan.recv(100) == b"TUNNEL"
        chan.close()
        with pytest.raises(paramiko.ChannelException):
            t.open_channel("direct-tcpip", ("10.1.2.3", 80), ("127.0.0.1", 0))
    finally:
        client.close()
        listener.close()
    assert "refused port forwarding to 10.1.2.3:80" in m.journal.read_text()


def test_interactive_pty_shell_is_rewritten_too(launch):
    m = launch()
    etc_file, nested_file = _unique_etc("pty"), _unique_etc("pty-sudo-i")
    client = m.connect()
    try:
        chan = client.invoke_shell(term="xterm", width=100, height=30)
        chan.settimeout(20)
        buf = b""

        def until(marker: bytes) -> None:
            nonlocal buf
            while marker not in buf:
                data = chan.recv(4096)
                assert data, f"shell closed early: {buf!r}"
                buf += data

        chan.sendall(f"echo typed > {etc_file}; echo done-$((40+2))\n".encode())
        until(b"done-42")
        # a nested interactive root shell (sudo -i) is rewritten as well
        chan.sendall(b"sudo -i\n")
        chan.sendall(f"echo nested > {nested_file}; echo $USER-$((1+1))\n".encode())
        until(b"root-2")
        chan.sendall(b"exit\n")
        chan.sendall(b"exit 5\n")
        assert chan.recv_exit_status() == 5
    finally:
        client.close()
    assert (m.root / etc_file.lstrip("/")).read_text() == "typed\n"
    assert (m.root / nested_file.lstrip("/")).read_text() == "nested\n"
    assert not os.path.exists(etc_file) and not os.path.exists(nested_file)


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
