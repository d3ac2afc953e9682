"""Handout cards and mail, through the real path: machines brought up on the sandbox (real
addresses, real passwords), the CLI run as a subprocess, and a real SMTP server (aiosmtpd)
on 127.0.0.1 that takes the messages."""

from __future__ import annotations

import csv
import email
import email.policy
import io
import os
import shlex
import socket
import stat
import subprocess
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from labtui import lifecycle
from labtui.course import load
from labtui.services import handout, keys, passwords, ssh
from labtui.services.hostkeys import HostKey

from .courses import CLUSTER, write_course
from .test_cli import json_lines, run

# aiosmtpd warns of AUTH without TLS: this server is on loopback, for the tests only
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
SMTP_PASSWORD = "smtp-Secret-9731-do-not-print"
ODD_NAME = "<b>O'Hara & Co</b>"
# s01 and s02 take mail; the server refuses s03's only address.
STUDENTS = f"""
[[roster.students]]
id = "s01"
name = "Ada Lovelace"
email = "ada@example.edu"

[[roster.students]]
id = "s02"
name = "{ODD_NAME}"
email = "ohara@example.edu"

[[roster.students]]
id = "s03"
name = "Nobody Here"
email = "nobody@refused.example.edu"
"""


class Collect:
    """An aiosmtpd handler that keeps every envelope and refuses some recipients."""

    def __init__(self, refuse: set[str]) -> None:
        self.refuse = refuse
        self.envelopes: list = []
        self.logins: list[str] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return "250 Message accepted for delivery"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        def text(value) -> str:
            return value.decode() if isinstance(value, bytes) else str(value)

        ok = (isinstance(auth_data, LoginPassword) and text(auth_data.login) == "instructor"
              and text(auth_data.password) == SMTP_PASSWORD)
        if ok:
            self.logins.append(text(auth_data.login))
        return AuthResult(success=ok, handled=False)  # the server answers 235 / 535


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp():
    """A real SMTP server on 127.0.0.1 (a free port) that wants a login, started and
    stopped here."""
    handler = Collect({"nobody@refused.example.edu"})
    port = _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port,
                            server_hostname="localhost", authenticator=handler.authenticate,
                            auth_require_tls=False, auth_required=True,
                            auth_exclude_mechanism=["LOGIN"])
    controller.start()
    handler.port = port
    try:
        yield handler
    finally:
        controller.stop()


def mail_section(port: int, user: bool = True) -> str:
    return (f'[mail]\nfrom = "instructor@example.edu"\nsmtp_host = "127.0.0.1"\n'
            f'smtp_port = {port}\nstarttls = false\n' + ('user = "instructor"\n' if user else ""))


def course_file(tmp_path: Path, extra: str = "") -> Path:
    return write_course(tmp_path, "handout", students=0, machines='login = "password"',
                        extra=STUDENTS + extra)


def messages(handler: Collect) -> dict[str, email.message.EmailMessage]:
    """Each delivered message by its (one) recipient."""
    out = {}
    for envelope in handler.envelopes:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert len(envelope.rcpt_tos) == 1
        out[envelope.rcpt_tos[0]] = msg
    return out


def body(msg) -> str:
    return "\n".join(part.get_content() for part in msg.walk()
                     if part.get_content_type() in ("text/plain", "text/html"))


def logs_in_with_the_card(card, folder: Path) -> None:
    """What a student does: save the known_hosts line, run the card's ssh command, type
    the card's password (OpenSSH asks SSH_ASKPASS here)."""
    folder.mkdir()
    (folder / card.known_hosts_file).write_text(card.known_hosts_line + "\n")
    askpass = folder / "askpass"
    askpass.write_text('#!/bin/sh\nprintf "%s\\n" "$CARD_PASSWORD"\n')
    askpass.chmod(0o700)
    argv = shlex.split(card.ssh_command)
    # -F /dev/null: this computer's own ~/.ssh/config is no part of the card
    argv[1:1] = ["-F", "/dev/null", "-o", "PreferredAuthentications=password",
                 "-o", "NumberOfPasswordPrompts=1", "-o", "ConnectTimeout=10"]
    done = subprocess.run([*argv, "echo", "logged-in-as-$(id -un)"], cwd=folder,
                          capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL,
                          env={**os.environ, "SSH_ASKPASS": str(askpass),
                               "SSH_ASKPASS_REQUIRE": "force", "DISPLAY": ":0",
                               "CARD_PASSWORD": card.password})
    assert done.returncode == 0, done.stderr
    assert f"logged-in-as-{card.user}" in done.stdout


def test_cards_and_mail_journey(ctx, smtp, tmp_path, capsys) -> None:
    path = course_file(tmp_path, mail_section(smtp.port))
    course = load(path)
    result = lifecycle.up(ctx, course, setup_wait=60)
    assert sorted(result.set_up) == ["s01", "s02", "s03"]
    state = ctx.state.course(course.id)
    secret = {s: passwords.get(state, s) for s in ("s01", "s02", "s03")}
    assert all(secret.values()) and len(set(secret.values())) == 3

    # -- the three files, private, each card with its own password and no other's
    code, out, err = cli(capsys, "handout", str(path), "--sandbox", "--json")
    assert code == 0, err
    rows = {r["seat"]: r for r in json_lines(out) if r["type"] == "card"}
    assert {r["delivery"] for r in rows.values()} == {"not sent"}
    assert all(r["address"].startswith("127.") for r in rows.values())
    folder = state.root / "handout"
    files = [folder / name for name in handout.FILES]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert [stat.S_IMODE(f.stat().st_mode) for f in files] == [0o600] * 3
    for word in secret.values():
        assert word not in out + err
    printed = [out + err]
    cards = {c.seat: c for c in handout.cards(ctx, course)}
    for seat, card in cards.items():
        shown = handout.text(card) + handout.html_card(card)
        assert secret[seat] in shown
        assert not [s for s, w in secret.items() if s != seat and w in shown]
        assert card.address == rows[seat]["address"]
        assert card.ssh_command and f"{course.machines.user}@" in card.ssh_command
        assert card.known_hosts_line and card.host_key in card.known_hosts_line
    logs_in_with_the_card(cards["s01"], tmp_path / "student")
    page = files[2].read_text()
    assert ODD_NAME not in page
    assert "&lt;b&gt;O&#x27;Hara &amp; Co&lt;/b&gt;" in page
    assert ODD_NAME not in files[1].read_text()          # Markdown escapes it too
    assert "O'Hara & Co" in files[0].read_text()          # CSV keeps the name as it is

    # -- mail: no terminal, no --yes: refused, nothing sent
    env = {"LABTUI_SMTP_PASSWORD": SMTP_PASSWORD}
    refused = run("mail", str(path), "--sandbox", env=env)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    assert smtp.envelopes == []

    # -- one message per seat, each with its own card; the refused seat is named
    sent = run("mail", str(path), "--sandbox", "--yes", env=env)
    assert sent.returncode == 1, sent.stdout + sent.stderr
    assert "s03: FAILED" in sent.stdout and "nobody@refused.example.edu" in sent.stdout
    assert "2 of 3 card(s) sent" in sent.stdout
    got = messages(smtp)
    assert sorted(got) == ["ada@example.edu", "ohara@example.edu"]
    for to, seat in (("ada@example.edu", "s01"), ("ohara@example.edu", "s02")):
        text = body(got[to])
        assert secret[seat] in text
        assert not [s for s, w in secret.items() if s != seat and w in text]
        assert got[to]["To"].addresses[0].addr_spec == to
    assert smtp.logins == ["instructor"]
    records = handout.sent(state)
    assert stat.S_IMODE((folder / handout.SENT_FILE).stat().st_mode) == 0o600
    assert sorted(records) == ["s01", "s02"]
    assert records["s01"]["to"] == ["ada@example.edu"]
    assert records["s01"]["digest"] == cards["s01"].digest()

    # -- a new password makes s01's card "changed since sent"; mail SEAT sends it again
    lifecycle.reset_seat_password(ctx, course, "s01")
    code, out, err = cli(capsys, "handout", str(path), "--sandbox", "--json")
    printed.append(out + err)
    rows = {r["seat"]: r["delivery"] for r in json_lines(out) if r["type"] == "card"}
    assert rows == {"s01": "changed since sent", "s02": "sent", "s03": "not sent"}
    resent = run("mail", str(path), "s01", "--sandbox", "--yes", "--json", env=env)
    assert resent.returncode == 0, resent.stderr
    assert [e["seat"] for e in json_lines(resent.stdout) if e["type"] == "card_mailed"] == \
        ["s01"]
    assert len(smtp.envelopes) == 3
    new = passwords.get(state, "s01")
    assert new != secret["s01"] and new in body(messages(smtp)["ada@example.edu"])

    # -- a stopped machine says so on its card
    lifecycle.stop(ctx, course, ["s03"])
    [stopped] = handout.cards(ctx, course, ["s03"])
    assert stopped.address is None and "not running (stopped)" in handout.text(stopped)
    assert "next `labtui handout`" in handout.text(stopped)

    # -- the SMTP password is nowhere but the environment
    printed += [o.stdout + o.stderr for o in (refused, sent, resent)]
    assert not [text for text in printed if SMTP_PASSWORD in text]
    for kept in state.root.rglob("*"):
        if kept.is_file():
            assert SMTP_PASSWORD.encode() not in kept.read_bytes(), kept
    assert not [e for e in smtp.envelopes if SMTP_PASSWORD.encode() in e.content]


def cli(capsys, *args: str) -> tuple[int, str, str]:
    """The CLI in this process (the cheap commands: no machine is booted for these)."""
    from labtui.cli import main

    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_no_mail_section_is_bad_input_with_the_fix(sandbox_state, tmp_path, capsys) -> None:
    path = course_file(tmp_path)
    code, _, err = cli(capsys, "mail", str(path), "--sandbox", "--yes")
    assert code == 2
    assert str(path) in err and "[mail]" in err and "Fix:" in err
    assert "Traceback" not in err


def test_a_login_without_the_password_is_refused_before_sending(
        smtp, sandbox_state, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.delenv("LABTUI_SMTP_PASSWORD", raising=False)
    path = course_file(tmp_path, mail_section(smtp.port))
    code, _, err = cli(capsys, "mail", str(path), "--sandbox", "--yes")
    assert code == 2 and "LABTUI_SMTP_PASSWORD" in err
    assert "Fix:" in err and smtp.envelopes == []


def test_a_wrong_smtp_password_is_named_and_never_shown(smtp, sandbox_state, tmp_path,
                                                        monkeypatch, capsys) -> None:
    path = course_file(tmp_path, mail_section(smtp.port))
    wrong = "wrong-Password-4417"
    monkeypatch.setenv("LABTUI_SMTP_PASSWORD", wrong)
    code, out, err = cli(capsys, "mail", str(path), "--sandbox", "--yes")
    assert code == 1 and "refused the login" in err and "nothing was sent" in err
    assert wrong not in out + err and smtp.envelopes == []


def test_a_group_gets_one_message_addressed_to_its_students(smtp, sandbox_state, tmp_path,
                                                            monkeypatch, capsys) -> None:
    """per = "group": one seat, one card, one message to both of its students; a seat with
    no machine yet says so."""
    monkeypatch.setenv("LABTUI_SMTP_PASSWORD", SMTP_PASSWORD)
    roster = "".join(f'[[roster.students]]\nid = "{sid}"\nname = "{sid.upper()}"\n'
                     f'email = "{sid}@example.edu"\ngroup = "{group}"\n\n'
                     for sid, group in (("a1", "g1"), ("a2", "g1"), ("b1", "g2")))
    path = write_course(tmp_path, "groups", students=0,
                        machines='per = "group"\nlogin = "key"',
                        extra=roster + mail_section(smtp.port))
    private, _ = keys.seat_key(sandbox_state.course("groups"), "g1")  # as setup makes it
    code, out, err = cli(capsys, "mail", str(path), "a2", "--sandbox", "--yes", "--json")
    assert code == 0, out + err
    [envelope] = smtp.envelopes
    assert sorted(envelope.rcpt_tos) == ["a1@example.edu", "a2@example.edu"]
    msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert sorted(a.addr_spec for a in msg["To"].addresses) == sorted(envelope.rcpt_tos)
    assert "seat g1" in msg["Subject"] and "no machine yet" in body(msg)
    assert "b1@example.edu" not in body(msg)
    # the seat's own private key goes with its card (login = "key"), named as the card's
    # ssh command names it; no other seat's
    [attached] = [p for p in msg.iter_attachments() if p.get_filename() == "groups-g1.key"]
    assert attached.get_content() == private.encode()
    assert [p.get_filename() for p in msg.iter_attachments()] == ["groups-g1.key"]
    mailed = [e for e in json_lines(out) if e["type"] == "card_mailed"]
    assert [(e["seat"], sorted(e["to"])) for e in mailed] == [
        ("g1", ["a1@example.edu", "a2@example.edu"])]


def test_ses_needs_a_verified_sender(ctx, tmp_path, capsys) -> None:
    path = course_file(tmp_path, '[mail]\nfrom = "instructor@example.edu"\nvia = "ses"\n')
    code, _, err = cli(capsys, "mail", str(path), "s01", "--sandbox", "--yes")
    assert code == 1
    assert "not verified" in err and "verify-email-identity" in err
    ctx.aws.client("ses", "us-east-1").verify_email_identity(
        EmailAddress="instructor@example.edu")
    code, out, err = cli(capsys, "mail", str(path), "s01", "s02", "--sandbox", "--yes")
    assert code == 0, out + err
    records = handout.sent(ctx.state.course("handout"))
    assert sorted(records) == ["s01", "s02"] and records["s02"]["to"] == ["ohara@example.edu"]
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.ses.models import ses_backends  # the sandbox's moto runs in this process

    raw = ses_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].sent_messages
    assert [(m.source, m.destinations[0]) for m in raw] == [
        ("instructor@example.edu", "ada@example.edu"),
        ("instructor@example.edu", "ohara@example.edu")]
    assert "seat s02" in email.message_from_string(raw[1].raw_data)["Subject"]


def test_a_folder_others_may_read_is_refused(sandbox_state, tmp_path, capsys) -> None:
    """--to: a folder others may read is refused, a new one made 0700; before `up` each
    card says there is no machine or cluster yet, and names its AWS identity and what it
    may do."""
    path = course_file(tmp_path, CLUSTER + '[access]\nusers = true\n'
                                 'permissions = ["submit-steps", "view-clusters"]\n')
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    code, _, err = cli(capsys, "handout", str(path), "--sandbox", "--to", str(shared))
    assert code == 2 and "chmod 700" in err
    assert list(shared.iterdir()) == []
    fresh = tmp_path / "cards" / "day1"
    code, out, err = cli(capsys, "handout", str(path), "--sandbox", "--to", str(fresh))
    assert code == 0, err
    assert f"wrote 3 card(s) to {fresh}" in out and out.count("no machine yet") == 3
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o700
    assert sorted(p.name for p in fresh.iterdir()) == sorted(handout.FILES)
    assert [stat.S_IMODE(p.stat().st_mode) for p in fresh.iterdir()] == [0o600] * 3
    text = (fresh / "cards.md").read_text()
    assert "## Seat s03" in text and "no machine yet" in text
    section = text[text.index("## Seat s02"):text.index("## Seat s03")]
    assert "s02: no cluster yet" in section
    assert "labtui-handout-s02; its keys are in \\~/.aws/credentials" in section
    assert "add a step to its own cluster (s02)" in section.split("**May not:**")[0]
    assert "launch a machine" in section.split("**May not:**")[1]


def test_formats_escape_what_a_roster_may_hold() -> None:
    """No AWS: a key-login card; a spreadsheet never runs a name as a formula, Markdown and
    HTML show markup as text, a newline in a name never splits a line."""
    line = HostKey.generate().public_line
    card = handout.Card("c1", "Course <1>", "s09",
                        (("=HYPERLINK(\"http://x\")", "h@example.edu"),
                         ("Line\nBreak & <i>x</i>", "l@example.edu")),
                        "running", "ubuntu", "key", "127.0.0.9", 2222,
                        key_file="/state/seat_keys/s09", host_key=line,
                        fingerprint=handout._fingerprint(line))
    assert card.fingerprint == ssh.parse_public_key(line).fingerprint  # as OpenSSH shows it
    # the key as the student saves it beside the card (mailed with it)
    assert card.ssh_argv[:5] == ["ssh", "-i", "c1-s09.key", "-o", "IdentitiesOnly=yes"]
    assert "-p" in card.ssh_argv and "StrictHostKeyChecking=yes" in card.ssh_argv
    assert card.known_hosts_line.startswith("[127.0.0.9]:2222 ssh-ed25519 ")
    assert card.password is None and "Key file" in dict(card.lines())
    rows = list(csv.reader(io.StringIO(handout.csv_text([card]))))
    assert rows[1][1].startswith("'=HYPERLINK") and "\n" not in rows[1][1]
    page = handout.html_page([card])
    assert "<i>" not in page and "&lt;i&gt;" in page and "Course &lt;1&gt;" in page
    md = handout.markdown([card])
    assert "<i>" not in md and "Line Break" in md
    assert all(len(line.split("\n")) == 1 for line in handout.text(card).splitlines())
