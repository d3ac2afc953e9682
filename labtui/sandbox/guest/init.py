"""PID 1 of a sandbox machine: what systemd does for cloud-init and sshd on an EC2 instance.

Runs inside the machine's namespaces with the machine's own python3 (standard library only).
The host hands it /run/labtui/boot.json (the machine's address, SSH port and environment)
before the root is pivoted; everything else comes from the machine's own disk.

Boot, in the order of Debian's systemd units: cloud-init's local and network stages, then
sshd (ssh.service is After=cloud-init.service), then cloud-init's config and final stages.
Every line printed here and by cloud-init goes to the console, which the sandbox serves as
the instance's console output. SIGTERM shuts the machine down: every process gets SIGTERM,
then SIGKILL after a grace period. Orphans are reaped, as an init must.
"""

import json
import os
import signal
import subprocess
import sys
import time

BOOT = "/run/labtui/boot.json"
ENV_BEGIN = "# >>> labtui sandbox (the endpoints this machine's AWS SDKs use)"
ENV_END = "# <<< labtui sandbox"
START = time.monotonic()
stopping = False
sshd = None


def say(text):
    sys.stdout.write(f"[{time.monotonic() - START:11.6f}] {text}\n")
    sys.stdout.flush()


def write_environment(env):
    """/etc/environment (read by pam_env for every SSH and sudo session) gets the sandbox's
    endpoints; the lines from an earlier boot are replaced."""
    path = "/etc/environment"
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        lines = []
    kept, inside = [], False
    for line in lines:
        if line == ENV_BEGIN:
            inside = True
        elif line == ENV_END:
            inside = False
        elif not inside:
            kept.append(line)
    block = [ENV_BEGIN] + [f"{k}={v}" for k, v in sorted(env.items())] + [ENV_END]
    with open(path + ".new", "w") as f:
        f.write("\n".join(kept + block) + "\n")
    os.chmod(path + ".new", 0o644)
    os.replace(path + ".new", path)


def stage(*args):
    say(f"Starting cloud-init {' '.join(args)} ...")
    code = subprocess.call(["cloud-init", *args])
    say(f"Finished cloud-init {' '.join(args)} (exit {code})")


SSHD_DROPIN = "/etc/ssh/sshd_config.d/00-labtui-sandbox.conf"


def write_sshd_address(boot):
    """Where this boot's sshd listens (like the address DHCP gave a machine): in sshd's
    config, so an sshd restarted by cloud-init or `service ssh restart` listens there too."""
    os.makedirs(os.path.dirname(SSHD_DROPIN), exist_ok=True)
    with open(SSHD_DROPIN, "w") as f:
        f.write(f"# this boot's address (labtui sandbox)\nListenAddress {boot['address']}\n"
                f"Port {boot['port']}\n")


def trust_host_cas(certs):
    """The CAs the host trusts for its package mirrors, trusted here too (only when they
    changed since the last boot: update-ca-certificates takes a moment)."""
    folder = "/usr/local/share/ca-certificates/labtui-host"
    have = {}
    if os.path.isdir(folder):
        for name in os.listdir(folder):
            with open(os.path.join(folder, name)) as f:
                have[name] = f.read()
    if have == certs:
        return
    os.makedirs(folder, exist_ok=True)
    for name in set(have) - set(certs):
        os.remove(os.path.join(folder, name))
    for name, text in certs.items():
        with open(os.path.join(folder, name), "w") as f:
            f.write(text)
    code = subprocess.call(["update-ca-certificates"], stdout=subprocess.DEVNULL)
    say(f"Trusted the host's {len(certs)} local certificate authorities (exit {code})")


def start_sshd(boot):
    global sshd
    os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    log = open("/var/log/sshd.log", "a")
    sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e"], stdout=log, stderr=log)
    log.close()
    sshd = sshd.pid
    say(f"Started OpenBSD Secure Shell server on {boot['address']} port {boot['port']} "
        f"(pid {sshd})")


def restarted_sshd(old):
    """The pid of an sshd that replaced ours (`service ssh restart`), if one runs."""
    time.sleep(0.5)
    try:
        with open("/run/sshd.pid") as f:
            pid = int(f.read().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid if pid != old else None


def shutdown(signum, _frame):
    global stopping
    if stopping:
        return
    stopping = True
    say(f"Reached target Shutdown (signal {signum}).")
    for sig, grace in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 2.0)):
        try:
            os.kill(-1, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                time.sleep(0.05)
        else:
            continue
        break
    os.sync()
    say("Power down.")
    os._exit(0)


def main():
    global sshd
    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with open(BOOT) as f:
        boot = json.load(f)
    os.environ.update(boot["env"])
    os.environ.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    say(f"labtui sandbox machine {boot['instance_id']} booting ({boot['image']})")
    write_environment(boot["env"])
    write_sshd_address(boot)
    if boot.get("pip_conf"):  # the host's package index, handed in like apt's sources
        with open("/etc/pip.conf", "w") as f:
            f.write(boot["pip_conf"])
    trust_host_cas(boot.get("ca_certs") or {})
    stage("init", "--local")
    stage("init")
    start_sshd(boot)
    stage("modules", "--mode=config")
    stage("modules", "--mode=final")
    say("Reached target Multi-User System.")
    restarts = 0
    while True:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            time.sleep(1)
            continue
        except InterruptedError:
            continue
        if pid == sshd and not stopping:
            adopted = restarted_sshd(pid)
            if adopted:
                sshd = adopted
                say(f"ssh.service: restarted (pid {sshd})")
                continue
            restarts += 1
            say(f"ssh.service: main process exited, status {status}; restarting")
            if restarts > 5:
                say("ssh.service: start request repeated too quickly; giving up")
                continue
            time.sleep(1)
            start_sshd(boot)


if __name__ == "__main__":
    main()
