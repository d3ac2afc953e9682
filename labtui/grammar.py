"""The command-line grammar: every subcommand, its arguments and its help.

Parsing stays light (no boto3, paramiko or textual imported), so `--help`, `--version` and
`validate` answer at once; each subcommand names its handler as "module:function", imported
only when it runs.
"""

from __future__ import annotations

import argparse
import sys
from functools import cache
from typing import Any, NoReturn

from labtui import __version__

EXIT_INPUT = 2
LIGHT = ("open", "validate", "new", "sandbox")  # handled in labtui/cli.py
# handled in labtui/clustercli.py
CLUSTER_COMMANDS = ("clusters", "submit", "steps", "step-log", "terminate-cluster",
                    "replace-cluster")
ACCESS_COMMANDS = ("access", "rotate", "roster", "ta")  # handled in labtui/accesscli.py
HANDOUT_COMMANDS = ("handout", "mail")               # handled in labtui/handoutcli.py
NOTEBOOK_COMMANDS = ("notebook", "notebooks")        # handled in labtui/notebookcli.py
JOB_COMMANDS = ("jobs",)                             # handled in labtui/jobcli.py
DB_COMMANDS = ("db",)                                # handled in labtui/dbcli.py
SCHEDULE_COMMANDS = ("schedule", "tick")             # handled in labtui/schedulecli.py
SERVE_COMMANDS = ("serve",)                          # handled in labtui/serve.py
DASHBOARD_COMMANDS = ("dashboard",)                  # handled in labtui/dashcli.py
IMAGE_COMMANDS = ("bake", "images")                  # handled in labtui/imagecli.py
# the console's views (labtui/screens/main.py VIEW_IDS; tests/test_cli.py keeps them in step)
CONSOLE_VIEWS = ("dashboard", "machines", "roster", "clusters", "regions", "quotas", "sweep",
                 "jobs", "database")


class Parser(argparse.ArgumentParser):
    """argparse with a fix in every usage error, exit 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_INPUT, f"{self.prog}: error: {message}. "
                              f"Fix: see `{self.prog} --help`.\n")


def common(parser: argparse.ArgumentParser, *, course: bool = True, aws: bool = True,
           region: bool = True) -> None:
    if course:
        parser.add_argument("course", metavar="COURSE", help="the course file (TOML)")
    parser.add_argument("--sandbox", action="store_true",
                        help="run against the local sandbox instead of AWS")
    parser.add_argument("--profile", metavar="NAME",
                        help="AWS profile (default: [aws] profile of the course file)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument("--yes", action="store_true",
                        help="do not ask before launching or deleting (required without a "
                             "terminal)")
    parser.add_argument("--state-dir", metavar="DIR",
                        help="local state folder (default: $LABTUI_STATE_DIR or the user "
                             "data dir)")
    if aws:
        parser.add_argument("--endpoint-url", type=endpoint_url, metavar="URL",
                            help="send every AWS call to this endpoint instead (another "
                                 "emulator such as LocalStack; $AWS_ENDPOINT_URL works too)")
    if course and aws and region:
        parser.add_argument("--region", dest="only_region", metavar="REGION",
                            help="act in this one of the course's regions only")


def endpoint_url(text: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise argparse.ArgumentTypeError(f"{text!r} is not an http(s) URL such as "
                                         "http://localhost:4566")
    return text


def positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 100000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 100000")
    return value


def concurrency(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--concurrency", type=positive, default=None, metavar="N",
                        help="machines worked on at once (default: every seat, up to what "
                             "this computer can hold in open files and threads)")


def region_value(text: str) -> tuple[str, float]:
    """REGION=N for the sandbox's quota flags."""
    from labtui import checks

    region, _, number = text.partition("=")
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if region not in checks.AWS_REGIONS or value < 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not REGION=N with an AWS region and a number of vCPUs, e.g. "
            "eu-west-1=16")
    return region, value


def build_parser() -> Parser:
    parser = Parser(prog="labtui", description="The instructor's console for a class on AWS.",
                    epilog="Run `labtui COURSE` to open the console, or a subcommand for "
                           "scripts. `labtui SUBCOMMAND --help` explains each.")
    parser.add_argument("--version", action="version", version=f"labtui {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND", parser_class=Parser)

    p = sub.add_parser("open", help="open the console (the default: `labtui COURSE`)",
                       description="Open the Textual console for a course.")
    common(p)
    p.add_argument("--read-only", action="store_true",
                   help="the same views, every mutating action refused (for teaching "
                        "assistants)")
    p.add_argument("--view", choices=CONSOLE_VIEWS, default="machines",
                   help="the view the console opens on (default: machines; during class, "
                        "dashboard)")

    p = sub.add_parser("validate", help="check a course file and the files it names",
                       description="Check a course file (and its roster, files, notebooks "
                                   "and job list); name every problem with its line and fix.")
    common(p, aws=False)

    p = sub.add_parser("new", help="write a starter course file",
                       description="Write a starter course file that validates.")
    p.add_argument("path", metavar="PATH", help="where to write it, e.g. course.toml")
    p.add_argument("--id", dest="course_id", default="my-course",
                   help="course id (lowercase, digits, dashes)")
    p.add_argument("--name", default="My Course", help="course name")
    p.add_argument("--region", action="append", dest="regions", metavar="REGION",
                   help="a region, in order of preference (repeat for more)")
    p.add_argument("--ssh-cidr", metavar="CIDR",
                   help="the address range students connect from (then login is password); "
                        "without it SSH is open to any address and login is key")
    p.add_argument("--login", choices=("key", "password"),
                   help="how students log in (password needs --ssh-cidr)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.add_argument("--json", action="store_true", help="one JSON object per line")

    p = sub.add_parser("sandbox", help="serve the local AWS emulator and its machines",
                       description="Serve in the foreground, on loopback only, an AWS "
                                   "emulator and a real Linux machine (a container booted by "
                                   "cloud-init, with its own sshd) for every instance it runs. "
                                   "Other commands given --sandbox use it.")
    p.add_argument("--port", type=int, default=0, metavar="N",
                   help="port for the AWS endpoint (default: a free one)")
    p.add_argument("--state-dir", metavar="DIR", help="local state folder")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--vcpu-quota", action="append", default=[], metavar="REGION=N",
                   type=region_value, help="on-demand standard vCPU quota of a region "
                   "(repeat per region; default 256)")
    p.add_argument("--spot-vcpu-quota", action="append", default=[], metavar="REGION=N",
                   type=region_value, help="spot standard vCPU quota of a region")
    p.add_argument("--approve-quota-requests", action="store_true",
                   help="grant quota increase requests at once (default: they stay PENDING)")
    p.add_argument("--prepare", action="store_true",
                   help="build the machines' base image (once, cached) and exit")

    machine_commands(sub)
    cluster_commands(sub)
    access_commands(sub)
    notebook_commands(sub)
    job_commands(sub)
    p = sub.add_parser("db", help="the result store: state, endpoint, users, checked live",
                       description="Show the course's database (state, endpoint, engine, size, "
                                   "collation) and check live that the pipeline user can "
                                   "write and the api user cannot.")
    common(p)
    p = sub.add_parser("schedule", help="what the class's schedule does next, and how to run "
                                        "its tick",
                       description="Show the next scheduled actions (machines started before "
                                   "each session and stopped after it; clusters started "
                                   "before the day's first session and terminated after its "
                                   "last) and the exact cron line and systemd timer that run "
                                   "`labtui tick`.")
    common(p)
    p = sub.add_parser("tick", help="do what the schedule says is due now (for cron)",
                       description="Start or stop what the schedule says is due since the "
                                   "last tick (a start whose session has ended is skipped), "
                                   "then warn idle machines and stop those warned before.")
    common(p)
    p = sub.add_parser("dashboard", help="the class at a glance: seats, failures, clusters, "
                                         "notebooks, cost, alarms, quotas, the next action",
                       description="One look at the class, as the console's dashboard shows "
                                   "it: seats ready k/n, setup failures, seats warned as idle, "
                                   "clusters ready, failed steps, notebooks up, $/hour and "
                                   "cost so far against the budget, billing alarms, vCPUs "
                                   "against each quota and the next scheduled action. Exit 1 "
                                   "while a line is bad news.")
    common(p)
    p = sub.add_parser("bake", help="bake the course's setup into an image (ami = \"baked\")",
                       description="Launch one template machine from machines.bake_from in "
                                   "the course's first region, run the course's setup on it "
                                   "(packages, files, setup commands; no seat's secrets), "
                                   "clean it for imaging, stop it, create an image tagged with "
                                   "the course and the setup's digest, wait until it is "
                                   "available, and terminate the template. An image of the "
                                   "same setup is reused unless --force.")
    common(p)
    p.add_argument("--force", action="store_true",
                   help="bake again even when an image of this setup exists")
    p = sub.add_parser("images", help="the course's baked images and snapshots, size, $/month",
                       description="Every baked image of the course in every region, with its "
                                   "snapshots, size and $/month; an image of an older setup "
                                   "is marked stale (up never uses it; down --images removes "
                                   "it).")
    common(p)
    sweep_command(sub)
    serve_command(sub)
    for name, sub_parser in sub.choices.items():
        module = ("cli" if name in LIGHT else "clustercli" if name in CLUSTER_COMMANDS
                  else "accesscli" if name in ACCESS_COMMANDS
                  else "handoutcli" if name in HANDOUT_COMMANDS
                  else "notebookcli" if name in NOTEBOOK_COMMANDS
                  else "jobcli" if name in JOB_COMMANDS
                  else "dbcli" if name in DB_COMMANDS
                  else "schedulecli" if name in SCHEDULE_COMMANDS
                  else "dashcli" if name in DASHBOARD_COMMANDS
                  else "imagecli" if name in IMAGE_COMMANDS
                  else "serve" if name in SERVE_COMMANDS else "headless")
        sub_parser.set_defaults(handler=f"labtui.{module}:cmd_{name.replace('-', '_')}")
    parser.set_defaults(subparsers=sub.choices)
    return parser


@cache
def subcommands() -> tuple[str, ...]:
    return tuple(build_parser().get_default("subparsers"))


def machine_commands(sub: Any) -> None:
    """The subcommands that work on AWS (their handlers are in labtui/headless.py)."""
    p = sub.add_parser("plan", help="what `up` would create, per region, with quotas and cost",
                       description="Show, per region, the seats, machines and clusters to "
                                   "create, the vCPUs they need against each quota's free "
                                   "vCPUs, and $/hour and $/day. Reads AWS; changes nothing. "
                                   "Exit 1 when the class does not fit.")
    common(p)
    p = sub.add_parser("quotas", help="vCPU quotas, usage and pending increase requests",
                       description="For every course region: each vCPU quota the course "
                                   "uses, what the account already runs, headroom and "
                                   "pending increase requests.")
    common(p)
    p = sub.add_parser("quota-request", help="ask AWS for a higher vCPU quota in a region",
                       description="Request a Service Quotas increase of the vCPU quota the "
                                   "course's machines use (or --spot, or that of "
                                   "--instance-type) to a new total.")
    common(p, region=False)
    p.add_argument("region", metavar="REGION")
    p.add_argument("--vcpus", type=positive, required=True, metavar="N",
                   help="the new quota (total vCPUs)")
    p.add_argument("--spot", action="store_true", help="the spot quota, not on-demand")
    p.add_argument("--instance-type", metavar="TYPE",
                   help="whose quota family (default: the course's machines)")
    p = sub.add_parser("up", help="launch one machine per seat and set each up",
                       description="Create the network, key pair and one machine per seat "
                                   "that lacks one, then set up every machine not yet set "
                                   "up; rerunning converges and never doubles a seat.")
    common(p)
    concurrency(p)
    p = sub.add_parser("status", help="every seat: machine, state, address, setup",
                       description="One line (or JSON object) per seat, found from tags.")
    common(p)
    for name, text in (("stop", "stop machines (all seats or the named ones)"),
                       ("start", "start stopped machines (all seats or the named ones)")):
        p = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        common(p)
        p.add_argument("seats", nargs="*", metavar="SEAT", help="seat ids (default: all)")
    p = sub.add_parser("reboot", help="reboot the named seats' machines",
                       description="Reboot the machines of the named seats.")
    common(p)
    p.add_argument("seats", nargs="+", metavar="SEAT", help="seat ids")
    p = sub.add_parser("down", help="delete every resource of the course, then verify",
                       description="Save each seat's work, then remove everything the course "
                                   "created in every region where its tags are found "
                                   "(clusters, spot requests, machines, volumes, addresses, "
                                   "NAT gateways, network, security groups, key pairs, "
                                   "billing alarms, IAM users and roles), and list what is "
                                   "still there.")
    common(p)
    p.add_argument("--save-to", metavar="DIR",
                   help="save each seat's work into DIR/<seat>/ (default: the course's state "
                        "folder, and [teardown] bucket when set)")
    p.add_argument("--no-save", action="store_true", help="do not save the students' work")
    p.add_argument("--force", action="store_true",
                   help="terminate machines whose work could not be saved")
    p.add_argument("--delete-buckets", action="store_true",
                   help="also delete the course's buckets (kept by default)")
    p.add_argument("--delete-results", action="store_true",
                   help="with --delete-buckets: also buckets holding results or students' work")
    p.add_argument("--no-final-snapshot", action="store_true",
                   help="delete the database without keeping a final snapshot")
    p.add_argument("--images", action="store_true",
                   help="also deregister the course's baked images and delete their "
                        "snapshots (kept by default, for the next term)")
    p = sub.add_parser("rerun-setup", help="run setup again on the named seats",
                       description="Run the machine setup again; steps already done are "
                                   "skipped, so it finishes what a dropped connection left.")
    common(p)
    concurrency(p)
    p.add_argument("seats", nargs="+", metavar="SEAT", help="seat ids")
    p = sub.add_parser("reset-password", help="give a seat a new password",
                       description="Generate a new password, set it on the seat's machine "
                                   "and keep it in the state folder (0600); never printed.")
    common(p)
    p.add_argument("seat", metavar="SEAT", help="seat id")
    p = sub.add_parser("exec", help="run a command on seats' machines, output streamed",
                       description="Run a command on the named seats (or --all) at once; "
                                   "each line is prefixed by its seat; exit 1 if any seat's "
                                   "command failed.",
                       usage="labtui exec COURSE (SEAT ... | --all) [options] -- COMMAND ...")
    common(p)
    p.add_argument("seats", nargs="*", metavar="SEAT", help="seat ids")
    concurrency(p)
    p.add_argument("--all", action="store_true", help="every seat with a running machine")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="give up on a seat's command after this long")
    p = sub.add_parser("ssh", help="open a shell on a seat's machine (pinned host key)",
                       description="Run ssh to the seat's machine with its pinned host key and "
                                   "the course key; anything after -- is the remote command.")
    common(p)
    p.add_argument("seat", metavar="SEAT", help="seat id")
    p = sub.add_parser("console", help="a seat machine's console output",
                       description="Print the console output of the seat's machine (what "
                                   "its boot and cloud-init printed).")
    common(p)
    p.add_argument("seat", metavar="SEAT", help="seat id")


def cluster_commands(sub: Any) -> None:
    """The subcommands on the class's EMR clusters (handlers in labtui/clustercli.py). A
    SEAT names a cluster by a seat, a student, a group (per = "group") or `class`."""
    p = sub.add_parser("clusters", help="every cluster of the class: state, steps, idle, cost",
                       description="One line per cluster of the class: its state (or why it "
                                   "ended), master address, steps running and failed, idle "
                                   "minutes, instance hours and $ so far.")
    common(p)
    p = sub.add_parser("submit", help="add a step to a seat's cluster",
                       description="Add a step to the seat's cluster; the arguments after `--` "
                                   "run by command-runner.jar (e.g. spark-submit ...) unless "
                                   "--jar names another jar.",
                       usage="labtui submit COURSE SEAT [--name N] [--jar JAR] -- ARGS ...")
    common(p)
    p.add_argument("seat", metavar="SEAT", help="seat, student, group or `class`")
    p.add_argument("--name", dest="step_name", metavar="N", help="the step's name")
    p.add_argument("--jar", metavar="JAR", help="default: command-runner.jar")
    p.add_argument("--on-failure", default="CONTINUE",
                   choices=("CONTINUE", "CANCEL_AND_WAIT", "TERMINATE_CLUSTER"),
                   help="what the cluster does when the step fails (default CONTINUE)")
    p = sub.add_parser("steps", help="a seat's cluster's steps: state, times, failure reason",
                       description="List the steps of the seat's cluster, newest first.")
    common(p)
    p.add_argument("seat", metavar="SEAT", help="seat, student, group or `class`")
    p = sub.add_parser("step-log", help="the probable cause of a failed step, from its logs",
                       description="Read a step's logs (S3, or the master node while S3 has "
                                   "none yet) and print the probable cause of its failure.")
    common(p)
    p.add_argument("seat", metavar="SEAT", help="seat, student, group or `class`")
    p.add_argument("step_id", metavar="STEP_ID", help="e.g. s-1A2B3C4D5E6F")
    p = sub.add_parser("terminate-cluster", help="terminate the named seats' clusters",
                       description="Terminate the clusters of the named seats and wait until "
                                   "they are gone; the next `up` starts new ones.")
    common(p)
    p.add_argument("seats", nargs="+", metavar="SEAT", help="seats, students, groups or `class`")
    p = sub.add_parser("replace-cluster", help="give one seat a new cluster",
                       description="Terminate the seat's cluster (if it runs) and start a new "
                                   "one in the same region; no other seat is touched.")
    common(p)
    p.add_argument("seat", metavar="SEAT", help="seat, student, group or `class`")


def access_commands(sub: Any) -> None:
    """Students' identities, the roster and the handout (labtui/accesscli.py and
    labtui/handoutcli.py)."""
    p = sub.add_parser("access", help="a seat's AWS policy and what it may and may not do",
                       description="Print the IAM policy labtui gives the seat's identity "
                                   "and a table of actions it allows and denies, each "
                                   "decided by evaluating that policy.")
    common(p)
    p.add_argument("seat", metavar="SEAT", help="seat or student id")
    p = sub.add_parser("rotate", help="new AWS keys and a new password for a seat",
                       description="Make new access keys for the seat's IAM user and a new "
                                   "password, install both on its machine, then delete the "
                                   "old keys.")
    common(p)
    p.add_argument("seat", metavar="SEAT", help="seat or student id")
    p = sub.add_parser("ta", help="a teaching assistant's own read-only AWS identity",
                       description="Make (or keep) the IAM user labtui-<course>-ta-<NAME> with "
                                   "a policy that may only read the course (machines, "
                                   "network, quotas, prices, clusters and their steps and "
                                   "logs, buckets, alarms, budget) and denies every change; "
                                   "write its key as an AWS credentials file (0600) and print "
                                   "the command that opens the read-only console with it.")
    common(p)
    p.add_argument("name", metavar="NAME", help="the assistant's name: letters, digits, - _")
    p.add_argument("--to", metavar="FILE", help="where the credentials file goes (default: "
                                                "<course state folder>/ta/NAME.credentials)")
    p = sub.add_parser("roster", help="the students, their seats, and what each seat has",
                       description="One line per student: seat, and whether the seat has a "
                                   "machine, a cluster, AWS credentials and a handout sent; "
                                   "seats on AWS whose students left the roster are named.")
    common(p)
    p = sub.add_parser("handout", help="write every seat's card (CSV, Markdown, HTML; 0600)",
                       description="Write one card per seat (who, address, login, password "
                                   "or key file, cluster, what the seat may do) as CSV, "
                                   "Markdown and HTML files readable by you only.")
    common(p)
    p.add_argument("--to", metavar="DIR", help="folder to write to (default: the course's "
                                               "state folder)")
    p = sub.add_parser("mail", help="mail each seat its own card",
                       description="Send each named seat (default: all) its own card by the "
                                   "course's [mail] section (SMTP, password from "
                                   "$LABTUI_SMTP_PASSWORD, or SES), and record which went out.")
    common(p)
    p.add_argument("seats", nargs="*", metavar="SEAT", help="seats or students (default: all)")


def notebook_commands(sub: Any) -> None:
    """Jupyter on the seats' machines (labtui/notebookcli.py)."""
    p = sub.add_parser("notebook", help="a seat's notebook: state, tunnel command, URL",
                       description="Show the seat's notebook server (up, kernels busy), the "
                                   "`ssh -L` command that reaches it with the pinned host "
                                   "key, and its URL; the token stays in its 0600 file and "
                                   "on the seat's card. --open forwards a free local port "
                                   "to it until Ctrl-C.")
    common(p)
    p.add_argument("seat", metavar="SEAT", help="seat or student id")
    p.add_argument("--open", action="store_true",
                   help="open a tunnel to it from here (until Ctrl-C) and watch its kernels")
    p = sub.add_parser("notebooks", help="push templates to, or collect notebooks from, "
                                         "every seat",
                       description="push: send new or updated templates to every running "
                                   "seat (a notebook the student changed is kept; the new "
                                   "one lands beside it). collect: bring every seat's "
                                   "notebooks home into DIR/<seat>/ (and with --to-bucket "
                                   "to s3://SCRATCH/notebooks/<seat>/).")
    p.add_argument("action", choices=("push", "collect"), help="push or collect")
    common(p)
    p.add_argument("seats", nargs="*", metavar="SEAT", help="seats (default: all)")
    p.add_argument("--to", metavar="DIR", help="collect: where (default: the course's "
                                               "state folder, notebooks/)")
    p.add_argument("--to-bucket", action="store_true",
                   help="collect: also to the course's scratch bucket")


def job_commands(sub: Any) -> None:
    """Batch jobs on worker machines (labtui/jobcli.py)."""
    p = sub.add_parser("jobs", help="run a CSV of (instance_type, command) jobs on workers; "
                                    "status, fetch results, cancel",
                       description="run: check the job file, launch one worker per job (or "
                                   "pack them), run each job and follow it until every one "
                                   "ended (results, stdout, stderr and status land in "
                                   "[jobs] output under the job's name; workers end "
                                   "themselves). status: every job, from tags and S3, from "
                                   "any computer. fetch: results into DIR/<job>/. cancel: "
                                   "terminate the named jobs' workers.")
    p.add_argument("action", choices=("run", "status", "fetch", "cancel"),
                   help="run, status, fetch or cancel")
    common(p)
    p.add_argument("names", nargs="*", metavar="JOBS.csv|JOB",
                   help="run: a job file (default: [jobs] file); fetch, cancel: job names")
    p.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="run: bound each job's command (default: [jobs] timeout)")
    p.add_argument("--keep", action="store_true", help="run: keep workers after their jobs")
    p.add_argument("--no-wait", action="store_true",
                   help="run: return once every worker is launched and started")
    p.add_argument("--to", metavar="DIR", help="fetch: where results go")


def serve_command(sub: Any) -> None:
    """`labtui serve`: the console in a browser (handler in labtui/serve.py)."""
    p = sub.add_parser("serve", help="serve the console to a browser (read-only, with a token)",
                       description="Serve the console to web browsers (textual-serve): each "
                                   "browser tab runs its own `labtui --read-only COURSE`. "
                                   "It listens on 127.0.0.1 (reach it from elsewhere by "
                                   "`ssh -L`) and answers only the URL with its token, "
                                   "printed once on stdout and kept 0600 in the course's "
                                   "state folder (serve.url). Ctrl-C stops it and its "
                                   "sessions.")
    common(p)
    p.add_argument("--port", type=int, default=8000, metavar="N",
                   help="TCP port (default 8000; 0 takes a free one)")
    p.add_argument("--host", default="127.0.0.1", metavar="H",
                   help="address to listen on (default 127.0.0.1: this computer only)")
    p.add_argument("--allow-actions", action="store_true",
                   help="let the browser's console change things too (default: read-only)")


def sweep_command(sub: Any) -> None:
    """`labtui sweep`: the whole account, no course file (handler in labtui/headless.py)."""
    p = sub.add_parser("sweep", help="what any labtui course left, and untagged idle "
                                     "resources that bill, in every region",
                       description="Look in every enabled region at once for anything "
                                   "tagged labtui:course (any course) and for untagged "
                                   "resources that cost money while idle (detached volumes, "
                                   "open spot requests, unassociated addresses, NAT gateways, "
                                   "stopped instances, idle EMR clusters, unused images and "
                                   "orphaned snapshots), with age and $/month. A dry run "
                                   "unless --yes (labtui's) or --include-untagged (the rest "
                                   "too, after a confirmation). Exit 0 when nothing is found "
                                   "or every deletion succeeded, 1 when something is left "
                                   "or failed.")
    common(p, course=False)
    p.add_argument("--regions", default="all", metavar="all|R,...",
                   help="where to look: all (every enabled region, the default) or a comma "
                        "list, e.g. us-east-1,eu-west-1")
    p.add_argument("--include-untagged", action="store_true",
                   help="delete the untagged findings too (asks first, naming the count and "
                        "$/month; without a terminal --yes is that answer)")
