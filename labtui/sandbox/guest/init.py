"""PID 1 of a sandbox machine: what systemd does for cloud-init and sshd on an EC2 instance.

Runs inside the machine's namespaces with the machine's own python3 (standard library only).
The host hands it /run/labtui/boot.json (the machine's address, SSH port and environment)
before the root is pivoted; everything else comes from the machine's own disk.

Boot, in the order of Debian's systemd units: cloud-init's local and network stages, then
sshd (ssh.service is After=cloud-init.service), then cloud-init's config and final stages.
Every line printed here and by cloud-init goes to the console, which the sandbox serves as
the instance's console output. SIGTERM (the sandbox stopping the machine) and systemd's
SIGRTMIN+3/+4 (halt, poweroff) shut the machine down and power it off: every process gets
SIGTERM, then SIGKILL after a grace period, and this init exits 0. SIGRTMIN+5 (reboot) does
the same and exits REBOOT_STATUS, which the sandbox plays as an OS-initiated reboot on EC2
(the instance stays running, the machine boots again at its address). Orphans are reaped, as
an init must.

The machine's own `poweroff`, `shutdown`, `halt` and `reboot` (Debian 12 minbase has none
without systemd, and systemd's or sysvinit's would talk to an init this is not) are small
scripts installed in /usr/local/sbin at boot, first on PATH and on sudo's secure_path, that
run this file as ``init.py command NAME ARGS``: root only, they signal PID 1 as systemd's
do when forced.
"""

import contextlib
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
REBOOT_STATUS = 82  # init's exit status for a reboot asked from inside (machines.py knows it)
HALT, POWEROFF, REBOOT = (signal.SIGRTMIN + 3, signal.SIGRTMIN + 4,  # systemd's signals
                          signal.SIGRTMIN + 5)
COMMANDS = ("poweroff", "shutdown", "halt", "reboot")
COMMAND_DIR = "/usr/local/sbin"
COMMAND_MARK = "# labtui sandbox: asks the machine's init (PID 1) to power off or reboot"
SCHEDULED = "/run/labtui/shutdown.scheduled"
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
    """The CAs the host trusts for its package mirrors, trusted here too: the base image was
    built trusting them (image.py), so this runs update-ca-certificates (a second of CPU)
    only when they changed since the image was built or since the last boot."""
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
    reboot = signum == REBOOT
    what = "reboot" if reboot else "poweroff" if signum != signal.SIGTERM else "shutdown"
    say(f"Reached target Shutdown ({what}, signal {signum}).")
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
    if reboot:
        say("Rebooting.")
        os._exit(REBOOT_STATUS)
    say("Power down.")
    os._exit(0)


# ---------------------------------------------------------------- poweroff, shutdown, ...

def install_commands():
    """/usr/local/sbin/{poweroff,shutdown,halt,reboot}, unless the machine's admin put a
    command of their own there (ours carry COMMAND_MARK and are rewritten every boot)."""
    os.makedirs(COMMAND_DIR, mode=0o755, exist_ok=True)
    for name in COMMANDS:
        path = os.path.join(COMMAND_DIR, name)
        try:
            with open(path) as f:
                if COMMAND_MARK not in f.read(4096):
                    continue  # someone else's
        except FileNotFoundError:
            pass
        except (OSError, UnicodeDecodeError):
            continue
        with open(path + ".new", "w") as f:
            f.write(f"#!/bin/sh\n{COMMAND_MARK}\n"
                    f'exec /usr/bin/python3 -I {__file__} command {name} "$@"\n')
        os.chmod(path + ".new", 0o755)
        os.replace(path + ".new", path)


def usage(name):
    if name == "shutdown":
        return ("Usage: shutdown [-h|-P|-H|-r|-c|-k] [--no-wall] [TIME] [WALL...]\n"
                "  TIME: now, +MINUTES or HH:MM (default +1)")
    return f"Usage: {name} [-p|--poweroff] [--reboot] [-f|--force] [-w] [--no-wall]"


def command(name, args):
    """`poweroff`, `shutdown`, `halt`, `reboot` as on a Debian EC2 instance, for this init."""
    err = sys.stderr
    if "--help" in args:
        print(usage(name))
        return 0
    if os.geteuid() != 0:
        print(f"{name}: must be superuser.", file=err)
        return 1
    action = {"reboot": REBOOT}.get(name, POWEROFF)  # Debian's halt powers off (HALT=poweroff)
    if name != "shutdown":
        write_only = False
        for arg in args:
            if arg in ("-p", "--poweroff"):
                action = POWEROFF
            elif arg == "--reboot":
                action = REBOOT
            elif arg == "--halt":
                action = POWEROFF  # no machine halts without powering off here
            elif arg in ("-w", "--wtmp-only"):
                write_only = True
            elif arg not in ("-f", "--force", "-ff", "-n", "--no-sync", "-d", "--no-wtmp",
                             "-i", "-h", "--no-wall"):
                print(f"{name}: invalid option '{arg}'\n{usage(name)}", file=err)
                return 1
        if write_only:
            return 0
        return signal_init(action)
    warn_only = cancel = False
    rest = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg in ("-h", "-P", "--poweroff", "-H", "--halt"):
            action = POWEROFF
        elif arg in ("-r", "--reboot"):
            action = REBOOT
        elif arg in ("-c",):
            cancel = True
        elif arg in ("-k",):
            warn_only = True
        elif arg == "-t":
            i += 1  # sysvinit's seconds between SIGTERM and SIGKILL: init's own grace here
        elif arg in ("-a", "-f", "-F", "-n", "--no-wall"):
            pass
        elif arg.startswith("-") and len(arg) > 2 and not arg.startswith("--"):
            args[i + 1:i + 1] = [f"-{c}" for c in arg[1:]]  # -rf, -hP ...
        elif arg.startswith("-") and not arg.startswith("+"):
            print(f"shutdown: invalid option '{arg}'\n{usage(name)}", file=err)
            return 1
        else:
            rest.append(arg)
        i += 1
    if cancel:
        return cancel_scheduled()
    when = rest[0] if rest else "+1"
    delay = delay_of(when)
    if delay is None:
        print(f"shutdown: failed to parse time specification: {when}", file=err)
        return 1
    if warn_only:
        print("shutdown: warning only (-k), nothing scheduled", file=err)
        return 0
    if delay <= 0:
        return signal_init(action)
    return schedule(action, delay)


def delay_of(when):
    """Seconds until TIME (now, +m, hh:mm), None when it is not a time."""
    if when == "now":
        return 0
    if when.startswith("+") and when[1:].isdigit():
        return int(when[1:]) * 60
    hours, _, minutes = when.partition(":")
    if hours.isdigit() and minutes.isdigit() and int(hours) < 24 and int(minutes) < 60:
        now = time.localtime()
        seconds = (int(hours) * 60 + int(minutes)) * 60 - (now.tm_hour * 3600
                                                             + now.tm_min * 60 + now.tm_sec)
        return seconds if seconds >= 0 else seconds + 86400
    return None


def signal_init(action):
    try:
        os.kill(1, action)
    except OSError as e:
        print(f"failed to ask init (PID 1) to {'reboot' if action == REBOOT else 'power off'}:"
              f" {e}", file=sys.stderr)
        return 1
    return 0


def schedule(action, delay):
    """A shutdown later: a detached process sleeps, then signals init; `shutdown -c` ends it."""
    cancel_scheduled(quiet=True)
    what = "Reboot" if action == REBOOT else "Shutdown"
    at = time.strftime("%a %Y-%m-%d %H:%M:%S %Z", time.localtime(time.time() + delay))
    pid = os.fork()
    if pid == 0:
        os.setsid()
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        time.sleep(delay)
        with contextlib.suppress(OSError):
            os.remove(SCHEDULED)
        os._exit(signal_init(action))
    os.makedirs(os.path.dirname(SCHEDULED), exist_ok=True)
    with open(SCHEDULED, "w") as f:
        f.write(f"{pid}\n")
    print(f"{what} scheduled for {at}, use 'shutdown -c' to cancel.")
    return 0


def cancel_scheduled(quiet=False):
    try:
        with open(SCHEDULED) as f:
            pid = int(f.read().strip())
        os.remove(SCHEDULED)
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        if not quiet:
            print("shutdown: no scheduled shutdown to cancel", file=sys.stderr)
    return 0




def main():
    global sshd
    for sig in (signal.SIGTERM, HALT, POWEROFF, REBOOT):
        signal.signal(sig, shutdown)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with open(BOOT) as f:
        boot = json.load(f)
    os.environ.update(boot["env"])
    os.environ.setdefault("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
    say(f"labtui sandbox machine {boot['instance_id']} booting ({boot['image']})")
    write_environment(boot["env"])
    write_sshd_address(boot)
    install_commands()
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
    if sys.argv[1:2] == ["command"] and len(sys.argv) > 2 and sys.argv[2] in COMMANDS:
        sys.exit(command(sys.argv[2], sys.argv[3:]))
    main()
