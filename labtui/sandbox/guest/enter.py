"""Run one command inside a running sandbox machine, as a process of that machine would run.

Started on the host by the sandbox (as root, with the sandbox's own python: ``python3 -I -S
enter.py PID USER CAPS -- ARGV...``), it becomes a process of the machine whose init is PID:

1. it joins the machine's IPC, UTS, PID (for its child) and mount namespaces and its root,
   as ``nsenter --target PID --ipc --uts --pid --mount --root`` would;
2. before anything of the machine runs, and before any process of the machine can see it,
   it drops the capabilities the machine's own root never had (CAPS: the numbers of the
   capabilities that ``guest/launch.sh``'s final ``setpriv --bounding-set`` drops) from its
   bounding set, its permitted and effective sets, and keeps no inheritable or ambient
   capability. A ``nsenter`` + the machine's own ``setpriv`` would run a binary of the
   machine (which the machine's root may have replaced) with every capability of the host;
3. only then it forks the child that lives in the machine's PID namespace; the child takes
   USER's uid, gid and groups (read from the machine's own /etc/passwd and /etc/group),
   works in USER's home directory and gets the environment an SSH session of USER gets on
   the machine (HOME, USER, LOGNAME, SHELL, sshd's PATH, then /etc/default/locale and
   /etc/environment, as pam_env reads them) and execs ARGV. no_new_privs stays off: sudo
   works as it does in an SSH session.

Exit status: the command's (128 + N when signal N ended it); 125 when entering failed (the
reason on stderr). SIGTERM or SIGINT sent to this process is passed on to the command. The
command dies with this process (its parent-death signal is SIGKILL).

Standard library only, everything imported before the machine's root is entered (after it,
imports would read the machine's files).
"""

import ctypes
import os
import signal
import sys
import warnings  # noqa: F401  (os.execvpe imports it: it must come from the host, now)

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWPID = 0x20000, 0x4000000, 0x8000000, 0x20000000
PR_CAPBSET_DROP, PR_SET_PDEATHSIG, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 1, 47, 4
CAP_VERSION_3 = 0x20080522
USER_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/games"  # OpenSSH's default on Debian
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
libc = ctypes.CDLL("libc.so.6", use_errno=True)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def fail(text):
    sys.stderr.write(f"labtui sandbox: cannot enter the machine: {text}\n")
    sys.stderr.flush()
    os._exit(125)


def check(result, what):
    if result != 0:
        fail(f"{what}: {os.strerror(ctypes.get_errno())}")


def enter(pid):
    fds = [(os.open(f"/proc/{pid}/ns/{name}", os.O_RDONLY), flag) for name, flag in (
        ("ipc", CLONE_NEWIPC), ("uts", CLONE_NEWUTS), ("pid", CLONE_NEWPID),
        ("mnt", CLONE_NEWNS))]
    root = os.open(f"/proc/{pid}/root", os.O_RDONLY | os.O_DIRECTORY)
    for fd, flag in fds:
        check(libc.setns(fd, flag), f"setns {flag:#x}")
        os.close(fd)
    os.fchdir(root)
    os.chroot(".")
    os.chdir("/")
    os.close(root)


def drop_capabilities(dropped):
    keep = (1 << 64) - 1
    for cap in dropped:
        check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"dropping capability {cap}")
        keep &= ~(1 << cap)
    check(libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0), "ambient caps")
    header = _CapHeader(CAP_VERSION_3, 0)
    data = (_CapData * 2)()
    check(libc.capget(ctypes.byref(header), data), "capget")
    for i in (0, 1):
        mask = (keep >> (32 * i)) & 0xFFFFFFFF
        data[i].effective &= mask
        data[i].permitted &= mask
        data[i].inheritable = 0
    check(libc.capset(ctypes.byref(header), data), "capset")


def account(user):
    """(uid, gid, groups, home, shell) from the machine's own files."""
    entry = None
    with open("/etc/passwd") as f:
        for line in f:
            parts = line.rstrip("\n").split(":")
            if len(parts) >= 7 and parts[0] == user:
                entry = parts
                break
    if entry is None:
        fail(f"the machine has no user {user!r}")
    uid, gid = int(entry[2]), int(entry[3])
    groups = {gid}
    with open("/etc/group") as f:
        for line in f:
            parts = line.rstrip("\n").split(":")
            if len(parts) >= 4 and user in parts[3].split(","):
                groups.add(int(parts[2]))
    return uid, gid, sorted(groups), entry[5] or "/", entry[6] or "/bin/sh"


def pam_env(path, env):
    """KEY=VALUE lines (optional quotes, comments), as pam_env reads its env files."""
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, value = line.split("=", 1)
        key = key.removeprefix("export ").strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        if key:
            env[key] = value


def main():
    args = sys.argv[1:]
    if len(args) < 5 or args[3] != "--":
        fail("usage: enter.py PID USER CAPS -- ARGV...")
    pid, user, caps, argv = int(args[0]), args[1], args[2], args[4:]
    enter(pid)
    drop_capabilities([int(c) for c in caps.split(",") if c])
    uid, gid, groups, home, shell = account(user)
    env = {"HOME": home, "USER": user, "LOGNAME": user, "SHELL": shell,
           "PATH": ROOT_PATH if uid == 0 else USER_PATH}
    pam_env("/etc/default/locale", env)
    pam_env("/etc/environment", env)
    child = os.fork()
    if child == 0:
        try:
            os.setgroups(groups)
            os.setgid(gid)
            os.setuid(uid)
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            try:
                os.chdir(home)
            except OSError:
                os.chdir("/")
            os.execvpe(argv[0], argv, env)
        except OSError as exc:
            sys.stderr.write(f"{argv[0]}: {exc.strerror}\n")
            sys.stderr.flush()
            os._exit(127 if isinstance(exc, FileNotFoundError) else 126)
        except BaseException as exc:  # never return into the parent's code as a child
            sys.stderr.write(f"labtui sandbox: cannot run {argv[0]}: {exc!r}\n")
            sys.stderr.flush()
            os._exit(126)

    def forward(signum, _frame):
        try:
            os.kill(child, signum)
        except ProcessLookupError:
            pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    while True:
        try:
            _, status = os.waitpid(child, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        os._exit(128 + os.WTERMSIG(status))
    os._exit(os.WEXITSTATUS(status))


if __name__ == "__main__":
    main()
