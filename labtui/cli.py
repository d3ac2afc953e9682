"""The command line: one grammar for every subcommand, as AWS CLI users know it.

    labtui [--sandbox] [--read-only] COURSE          open the console
    labtui SUBCOMMAND [COURSE] [ARGS] [OPTIONS]      headless

Options (--sandbox, --profile, --json, --yes, --state-dir) are accepted after the subcommand,
and before it too. Exit codes: 0 success, 1 some seats or calls failed (each named),
2 bad input (course file, roster, flag), 130 interrupted.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from labtui.errors import CourseError, InputError, LabError
from labtui.grammar import EXIT_INPUT, build_parser, subcommands
from labtui.output import emit_json, stdout_closed
from labtui.terminal import PlainStream

EXIT_OK, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 130
SIGNAL_POLL = 0.2  # seconds: how soon a foreground `labtui sandbox` notices its Ctrl-C
VALUED = ("--profile", "--state-dir", "--regions", "--region", "--endpoint-url")  # take a value
RAW_TERMINAL = ("open", "ssh")  # the console draws the terminal; ssh hands it to the seat


def normalize(argv: Sequence[str]) -> list[str]:
    """``labtui [opts] COURSE`` means ``labtui open COURSE [opts]``; options given before a
    subcommand move after it, so one grammar holds for all."""
    args = list(argv)
    if not args or any(a in ("-h", "--help", "--version") for a in args[:1]):
        return args
    for index, token in enumerate(args):
        if token == "--":
            break
        if token.startswith("-"):
            continue
        if index > 0 and args[index - 1] in VALUED:
            continue
        if token in subcommands():
            return [token] + args[:index] + args[index + 1:]
        return ["open"] + args
    return args


def unknown_subcommand(argv: Sequence[str]) -> str | None:
    """The message for ``labtui WORD ...`` when WORD is neither a subcommand nor a course
    file: another word follows it (``labtui frobnicate c.toml``), or it is no file and does
    not look like one (``labtui stauts``)."""
    args = list(argv)
    if "--" in args:
        args = args[:args.index("--")]
    words = [a for i, a in enumerate(args) if not a.startswith("-")
             and (i == 0 or args[i - 1] not in VALUED)]
    if not words or words[0] in subcommands():
        return None
    word = words[0]
    if Path(word).exists() or (len(words) == 1 and word.endswith(".toml")):
        return None
    from labtui.schema import did_you_mean

    names = [s for s in subcommands() if s != "open"]
    hint = did_you_mean(word, names)
    fix = (f"{hint} (`labtui --help` lists them)" if hint else
           f"use one of {', '.join(names)}, or give a course file to open the console")
    return f"labtui: error: unknown subcommand {word!r}. Fix: {fix}"


_exit_code: int | None = None  # main's answer, for _end_without_teardown


def main(argv: Sequence[str] | None = None) -> int:
    global _exit_code
    if argv is None:  # a process of its own (tests call main with their arguments)
        atexit.register(_end_without_teardown)
    try:
        code = _main(argv)
        sys.stdout.flush()  # inside the try: a closed pipe shows here, not at exit
        if code == EXIT_INTERRUPTED and argv is None:
            # Ctrl-C: the work was told to stop and the context is closed; a worker thread
            # still inside a handshake must not hold the exit (it would, up to its timeout)
            _exit_now(EXIT_INTERRUPTED)
    except BrokenPipeError:
        stdout_closed()
        code = EXIT_OK  # like coreutils in a pipeline: the reader had enough
    _exit_code = code
    return code


def _end_without_teardown() -> None:
    """The last step of a labtui process that answered (registered as main starts, so it
    runs after every exit handler the work registered, and after Python has joined the
    threads that are not daemons): end it without tearing the interpreter down. Freeing
    every module and object of boto3's service models and paramiko one by one took
    0.13-0.15 s of each headless command's wall time (bench/exec.py), and nothing is left
    to run: every file labtui writes is closed when it is written, the context is closed,
    and the standard streams are flushed here. A process that ended any other way
    (argparse's SystemExit, a crash) tears down as usual."""
    if _exit_code is not None:
        _exit_now(_exit_code)


def _exit_now(code: int) -> None:
    """End the process with ``code`` once the standard streams are flushed."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away, a stream already closed
            pass
    os._exit(code)


def _main(argv: Sequence[str] | None = None) -> int:
    raw = list(sys.argv[1:] if argv is None else argv)
    if raw and raw[0] not in ("-h", "--help", "--version"):
        unknown = unknown_subcommand(raw)
        if unknown:
            print(unknown, file=sys.stderr)
            return EXIT_INPUT
    args_list = normalize(raw)
    remote: list[str] = []
    if "--" in args_list:  # everything after `--` is a remote command, never an option
        cut = args_list.index("--")
        args_list, remote = args_list[:cut], args_list[cut + 1:]
    parser = build_parser()
    if not args_list:
        parser.print_help(sys.stderr)
        return EXIT_INPUT
    args, extra = parser.parse_known_args(args_list)
    args.remote = remote
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_INPUT
    if extra:
        args.subparsers[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    module, _, name = args.handler.partition(":")
    plain = args.command not in RAW_TERMINAL
    saved = sys.stdout, sys.stderr
    if plain:  # what seats print and course files say reaches the terminal as text only
        sys.stdout, sys.stderr = PlainStream(sys.stdout), PlainStream(sys.stderr)
    try:
        return getattr(importlib.import_module(module), name)(args)
    except CourseError as exc:
        report_problems(exc, getattr(args, "json", False))
        return EXIT_INPUT
    except LabError as exc:
        report_error(exc, getattr(args, "json", False))
        return exc.exit_code
    except KeyboardInterrupt as exc:
        unfinished = getattr(exc, "unfinished", None)
        if unfinished:
            task = getattr(exc, "task", "the work")
            print(f"interrupted: {task} did not finish on {len(unfinished)} seat(s): "
                  f"{', '.join(unfinished)}. Fix: run the command again; what is done is "
                  "skipped", file=sys.stderr)
        else:
            print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        raise  # the reader went away: main() ends quietly
    except Exception as exc:  # noqa: BLE001 - a bug: one line here, the traceback in a file
        report_crash(exc, args)
        return EXIT_PARTIAL
    finally:
        if plain:
            sys.stdout.flush()
            sys.stdout, sys.stderr = saved


def report_problems(exc: CourseError, as_json: bool) -> None:
    for problem in exc.problems:
        if as_json:
            emit_json({"type": "problem", "file": problem.file, "line": problem.line,
                       "key": problem.key, "message": problem.message, "fix": problem.fix})
        else:
            print(f"error: {problem}", file=sys.stderr)
    if not as_json:
        count = len(exc.problems)
        print(f"{count} problem{'s' if count != 1 else ''}; nothing was created.",
              file=sys.stderr)


def report_error(exc: LabError, as_json: bool) -> None:
    if as_json:
        emit_json({"type": "error", "message": str(exc)})
    else:
        print(f"error: {exc}", file=sys.stderr)


def report_crash(exc: Exception, args: argparse.Namespace) -> None:
    """An error no part of labtui expected (a bug): never a traceback on the terminal. The
    traceback goes to a private file in the state folder; the terminal gets one line."""
    import time
    import traceback

    from labtui.state import default_state_dir, write_private

    folder = Path(getattr(args, "state_dir", None) or default_state_dir())
    text = "".join(traceback.format_exception(exc))
    where = folder / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.txt"
    try:
        write_private(where, f"labtui {' '.join(sys.argv[1:2])}\n{text}")
        details = f"the details are in {where}"
    except OSError:
        details = "the details could not be written"
    summary = " ".join(str(exc).split())[:200]
    message = (f"labtui met an unexpected {type(exc).__name__}: {summary} ({details}). "
               "What was done so far stands: run the command again to go on, and report "
               "the file if it happens again")
    report_error(LabError(message), getattr(args, "json", False))


def load_course(args: argparse.Namespace):
    from labtui.course import load

    return load(args.course)


# -- subcommands -----------------------------------------------------------------------------

def cmd_open(args: argparse.Namespace) -> int:
    from labtui.lifecycle import only_region

    course = only_region(load_course(args), args.only_region)
    from labtui.app import run_app

    return run_app(course, sandbox=args.sandbox, profile=args.profile,
                   state_dir=args.state_dir, read_only=args.read_only,
                   endpoint_url=args.endpoint_url, view=args.view)


def cmd_validate(args: argparse.Namespace) -> int:
    course = load_course(args)
    facts = {
        "type": "valid", "file": str(args.course), "course": course.id, "name": course.name,
        "students": len(course.students),
        "seats": len(course.seats) if course.machines else 0,
        "per": course.machines.per if course.machines else None,
        "clusters": len(course.students) if course.clusters else 0,
        "instances": course.instance_count, "max_instances": course.max_instances,
        "regions": list(course.regions),
        "sections": [name for name in ("machines", "clusters", "storage", "access", "billing",
                                       "jupyter", "jobs") if getattr(course, name)],
    }
    if args.json:
        emit_json(facts)
    else:
        seats = (f"{facts['seats']} seats (one machine per {facts['per']})"
                 if course.machines else "no machines")
        print(f"{args.course}: OK — {course.name} ({course.id}): {facts['students']} students, "
              f"{seats}, {facts['clusters']} clusters; {course.instance_count} instances at "
              f"most (cap {course.max_instances}); regions {', '.join(course.regions)}.")
    return EXIT_OK


def cmd_new(args: argparse.Namespace) -> int:
    from labtui import checks
    from labtui.course import load
    from labtui.starter import refusal, render

    path = Path(args.path)
    regions = args.regions or ["us-east-1"]
    problems = []
    if checks.course_id(args.course_id):
        problems.append(f"--id {checks.course_id(args.course_id)}")
    for region in regions:
        if region not in checks.AWS_REGIONS:
            problems.append(f"--region {region!r} is not an AWS region")
    if args.ssh_cidr is not None and checks.cidr(args.ssh_cidr):
        problems.append(f"--ssh-cidr {checks.cidr(args.ssh_cidr)}")
    elif refusal(args.ssh_cidr, args.login):
        problems.append(refusal(args.ssh_cidr, args.login))
    if path.exists() and not args.force:
        problems.append(f"{path} already exists. Fix: choose another path or add --force")
    if problems:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_INPUT
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(path, args.course_id, args.name, regions, args.ssh_cidr, args.login),
                    encoding="utf-8")
    course = load(path)  # the starter must itself be valid
    if args.json:
        emit_json({"type": "created", "file": str(path), "course": course.id})
    else:
        print(f"wrote {path} (course {course.id}, {len(course.students)} example students). "
              f"Next: edit it, then `labtui validate {path}`.")
    return EXIT_OK


def cmd_sandbox(args: argparse.Namespace) -> int:
    from labtui.sandbox.runtime import Sandbox, clear_record, running, serve_record
    from labtui.state import StateDir

    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port} is not a TCP port. Fix: give 1-65535, or omit "
                         "it to take a free one")
    if args.prepare:
        return _prepare_image(args.json)
    state = StateDir.resolve(args.state_dir).ensure()
    info = running(state)
    if info is not None:
        raise InputError(f"a sandbox already runs at {info['endpoint_url']} (pid {info['pid']}). "
                         "Fix: use it (commands with --sandbox find it), or stop it first")
    sandbox = Sandbox(state.sandbox_dir, port=args.port,
                      vcpu_quotas=dict(args.vcpu_quota),
                      spot_vcpu_quotas=dict(args.spot_vcpu_quota),
                      approve_quota_requests=args.approve_quota_requests).start(
                          lambda line: print(line, file=sys.stderr, flush=True))
    serve_record(state, sandbox)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    facts = {"type": "sandbox", "endpoint_url": sandbox.endpoint_url,
             "folder": str(sandbox.folder), "pid": __import__("os").getpid()}
    if args.json:
        emit_json(facts)
    else:
        print(f"labtui sandbox serving AWS at {sandbox.endpoint_url} and a machine per "
              f"running instance on 127.x.y.z (folder {sandbox.folder}).\n"
              "Commands given --sandbox use it. Press Ctrl-C to stop.", flush=True)
    try:
        # A timed wait: the kernel hands a process's signal to any of its threads, and
        # Python runs the handler only when the main thread runs again; an untimed wait
        # missed a Ctrl-C that landed on one of the sandbox's threads (1 stop in ~15 under
        # load) and served on
        while not stop.wait(SIGNAL_POLL):
            pass
    finally:
        clear_record(state)
        sandbox.stop()
    if not args.json:
        print("sandbox stopped.")
    return EXIT_OK


def _prepare_image(as_json: bool) -> int:
    """Build (or find) the machines' base image, with progress on stderr."""
    from labtui.sandbox.container import runtime_problem
    from labtui.sandbox.image import BaseImage

    problem = runtime_problem()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_INPUT
    image = BaseImage()
    path = image.ensure(lambda line: print(line, file=sys.stderr, flush=True))
    if as_json:
        emit_json({"type": "image", "path": str(path), "key": image.key})
    else:
        print(f"base image ready: {path}")
    return EXIT_OK
