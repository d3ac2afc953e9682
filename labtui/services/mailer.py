"""Mailing handout cards: a seat's card as one message to its students, sent by SMTP
(smtplib; the password from ``$LABTUI_SMTP_PASSWORD``, never stored) or Amazon SES
(``send_raw_email`` through the one boto3 facade).

``prepare`` refuses, before anything is sent, whatever would stop every message: no [mail]
section, a [mail] user without a password, an SMTP server off loopback in the sandbox, an
SES sender that is not verified. The SMTP password never appears in a message, a log or an
exception: every server reply is scrubbed of it before it is shown.
"""

from __future__ import annotations

import os
import smtplib
import ssl
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

from labtui.course import Course, Mail
from labtui.errors import InputError, LabError
from labtui.services import ssh
from labtui.services.aws import translate_errors

PASSWORD_ENV = "LABTUI_SMTP_PASSWORD"
TIMEOUT = 30.0  # seconds an SMTP server may take to answer


def settings(course: Course) -> Mail:
    if course.mail is None:
        raise InputError(f"{course.path}: the course has no [mail] section, so the cards "
                         "cannot be mailed. Fix: add one, e.g. [mail] from = "
                         "\"instructor@example.edu\" with smtp_host = \"smtp.example.edu\" "
                         "(or via = \"ses\"); `labtui handout COURSE` writes the cards to "
                         "files meanwhile")
    return course.mail


def describe(course: Course) -> str:
    """How the cards go out, for a confirmation: ``smtp.example.edu:587 (STARTTLS, as
    instructor)`` or ``SES in us-east-1``."""
    cfg = settings(course)
    if cfg.via == "ses":
        return f"SES in {cfg.ses_region or course.regions[0]}"
    how = ["STARTTLS" if cfg.starttls and cfg.smtp_port != 465 else
           "TLS" if cfg.smtp_port == 465 else "no TLS"]
    if cfg.user:
        how.append(f"as {cfg.user}")
    return f"SMTP {cfg.smtp_host}:{cfg.smtp_port} ({', '.join(how)})"


def prepare(ctx: Any, course: Course) -> Smtp | Ses:
    """The transport of the course's [mail], checked: every refusal here comes before the
    first message."""
    cfg = settings(course)
    if cfg.via == "ses":
        ses = Ses(ctx.aws, cfg.sender, cfg.ses_region or course.regions[0])
        ses.check()
        return ses
    password = os.environ.get(PASSWORD_ENV) or None
    if cfg.user and password is None:
        raise InputError(f"{course.path}: [mail] user = {cfg.user!r} logs in to "
                         f"{cfg.smtp_host}, but ${PASSWORD_ENV} is not set; nothing was "
                         f"sent. Fix: export {PASSWORD_ENV} with the SMTP password (it is "
                         "read from the environment only, never stored)")
    loopback_only = getattr(ctx.resolver, "loopback_only", False) or ctx.sandbox is not None
    if loopback_only and not ssh.is_loopback(cfg.smtp_host):
        raise InputError(f"{course.path}: [mail] smtp_host = {cfg.smtp_host!r} is not on "
                         "this machine, and the sandbox connects to loopback only; nothing "
                         "was sent. Fix: point smtp_host at a server on 127.0.0.1 (e.g. "
                         "`python -m aiosmtpd -n -l 127.0.0.1:8025` with smtp_port = 8025 "
                         "and starttls = false), or run without --sandbox")
    if (cfg.user and not cfg.starttls and cfg.smtp_port != 465
            and not ssh.is_loopback(cfg.smtp_host)):
        raise InputError(f"{course.path}: [mail] starttls = false would send the password "
                         f"of {cfg.user!r} to {cfg.smtp_host} in clear; nothing was sent. "
                         "Fix: set starttls = true (port 587), or use smtp_port = 465")
    return Smtp(cfg, password if cfg.user else None)


def message(course: Course, card: Any) -> EmailMessage:
    """One seat's card as a message to its students (plain text, and HTML beside it)."""
    from labtui.services import handout

    cfg = settings(course)
    msg = EmailMessage()
    msg["Subject"] = handout._flat(f"{course.name}: your machine (seat {card.seat})")
    msg["From"] = cfg.sender
    msg["To"] = [_address(name, email) for name, email in card.students if email]
    msg["Date"] = formatdate(localtime=False, usegmt=True)
    # a domain of our own: make_msgid would ask the resolver for this computer's name
    msg["Message-ID"] = make_msgid("labtui", domain=cfg.sender.rpartition("@")[2] or None)
    msg.set_content(handout.text(card))
    msg.add_alternative(handout.html_page([card]), subtype="html")
    # what the card's ssh command names, beside it: the pinned host key, and the key
    if card.known_hosts_line:
        msg.add_attachment((card.known_hosts_line + "\n").encode(), maintype="text",
                           subtype="plain", filename=card.known_hosts_file)
    if card.login == "key" and card.key_file:
        msg.add_attachment(Path(card.key_file).read_bytes(), maintype="application",
                           subtype="octet-stream", filename=card.key_name)
    return msg


def _address(name: str, email: str) -> Address:
    from labtui.services.handout import _flat

    user, _, domain = email.rpartition("@")
    return Address(display_name=_flat(name).strip(), username=user, domain=domain)


class Smtp:
    """One SMTP session for every message of a run (opened again if the server drops it)."""

    def __init__(self, cfg: Mail, password: str | None) -> None:
        self.cfg = cfg
        self._password = password
        self._client: smtplib.SMTP | None = None

    def __repr__(self) -> str:
        return f"Smtp({self.cfg.smtp_host}:{self.cfg.smtp_port}, user={self.cfg.user!r})"

    def _scrub(self, text: str) -> str:
        if self._password:
            text = text.replace(self._password, "…")
        return text

    def _reply(self, exc: BaseException) -> str:
        code = getattr(exc, "smtp_code", None)
        raw = getattr(exc, "smtp_error", b"")
        said = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw or "")
        text = f"{code} {said}".strip() if code else (str(exc) or type(exc).__name__)
        return self._scrub(text)

    def _where(self) -> str:
        return f"{self.cfg.smtp_host}:{self.cfg.smtp_port}"

    def open(self, first: bool = True) -> smtplib.SMTP:
        """Connect, STARTTLS, log in; ``first``: no message has gone out yet."""
        cfg = self.cfg
        none = "; nothing was sent" if first else ""
        local = "localhost" if ssh.is_loopback(cfg.smtp_host) else None
        fix = "Fix: check [mail] smtp_host and smtp_port, and that the server runs"
        try:
            if cfg.smtp_port == 465:  # SMTPS: TLS from the first byte
                client: smtplib.SMTP = smtplib.SMTP_SSL(
                    cfg.smtp_host, cfg.smtp_port, local_hostname=local, timeout=TIMEOUT,
                    context=ssl.create_default_context())
            else:
                client = smtplib.SMTP(cfg.smtp_host, cfg.smtp_port, local_hostname=local,
                                      timeout=TIMEOUT)
        except (OSError, smtplib.SMTPException) as exc:
            raise LabError(f"cannot reach the SMTP server {self._where()} "
                           f"({self._reply(exc)}){none}. {fix}") from None
        try:
            if cfg.starttls and cfg.smtp_port != 465:
                client.ehlo_or_helo_if_needed()
                if not client.has_extn("starttls"):
                    client.close()
                    raise LabError(f"the SMTP server {self._where()} does not offer STARTTLS, "
                                   "so the cards (and a login) would cross the network in "
                                   f"clear{none}. Fix: use the server's submission port (587 "
                                   "with STARTTLS, or 465), or set starttls = false for a "
                                   "server on this machine")
                client.starttls(context=ssl.create_default_context())
            if cfg.user:
                client.login(cfg.user, self._password or "")
        except smtplib.SMTPNotSupportedError:
            client.close()
            raise LabError(f"the SMTP server {self._where()} offers no login (AUTH){none}. "
                           "Fix: remove [mail] user if it takes mail without one, or use "
                           "its submission port") from None
        except smtplib.SMTPAuthenticationError as exc:
            client.close()
            raise LabError(f"the SMTP server {self._where()} refused the login of "
                           f"{cfg.user!r} ({self._reply(exc)}){none}. Fix: check "
                           f"[mail] user and ${PASSWORD_ENV}") from None
        except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
            client.close()
            raise LabError(f"the SMTP session with {self._where()} failed "
                           f"({self._reply(exc)}){none}. {fix}") from None
        return client

    def __enter__(self) -> Smtp:
        self._client = self.open()
        return self

    def __exit__(self, *exc: Any) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.quit()
            except (OSError, smtplib.SMTPException):
                client.close()

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    def send(self, recipients: tuple[str, ...], msg: EmailMessage
             ) -> tuple[tuple[str, ...], dict[str, str]]:
        """(delivered to, {refused address: the server's reply}); LabError when the message
        did not go out at all."""
        for attempt in (1, 2):
            if self._client is None:
                self._client = self.open(first=False)
            try:
                refused = self._client.send_message(msg, from_addr=self.cfg.sender,
                                                    to_addrs=list(recipients))
                break
            except smtplib.SMTPServerDisconnected:
                self._drop()
                if attempt == 2:
                    raise LabError(f"the SMTP server {self._where()} closed the connection "
                                   "while sending. Fix: send again (labtui mail COURSE "
                                   "SEAT)") from None
            except smtplib.SMTPRecipientsRefused as exc:
                return (), {to: self._reply_of(answer) for to, answer in exc.recipients.items()}
            except (smtplib.SMTPException, OSError) as exc:
                if isinstance(exc, OSError):  # the session is gone; a refusal keeps it
                    self._drop()
                raise LabError(f"the SMTP server {self._where()} did not take the message "
                               f"({self._reply(exc)}). Fix: send again later (labtui mail "
                               "COURSE SEAT)") from None
        bad = {to: self._reply_of(answer) for to, answer in refused.items()}
        return tuple(to for to in recipients if to not in bad), bad

    def _reply_of(self, answer: Any) -> str:
        try:
            code, said = answer
        except (TypeError, ValueError):
            return self._scrub(str(answer))
        text = said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said)
        return self._scrub(f"{code} {text}".strip())


class Ses:
    """Amazon SES (``send_raw_email``) in one region; the sender must be verified there."""

    def __init__(self, aws: Any, sender: str, region: str) -> None:
        self.aws = aws
        self.sender = sender
        self.region = region

    def check(self) -> None:
        domain = self.sender.rpartition("@")[2]
        client = self.aws.client("ses", self.region)
        with translate_errors(f"ses.GetIdentityVerificationAttributes in {self.region}"):
            found = client.get_identity_verification_attributes(
                Identities=[self.sender, domain])["VerificationAttributes"]
        if any(found.get(name, {}).get("VerificationStatus") == "Success"
               for name in (self.sender, domain)):
            return
        raise LabError(f"the sender {self.sender} is not verified in SES in {self.region}, "
                       "so SES refuses to send from it; nothing was sent. Fix: verify it "
                       f"(`aws ses verify-email-identity --email-address {self.sender} "
                       f"--region {self.region}`, then open the link SES mails to it), or "
                       f"verify the domain {domain}; out of the SES sandbox each recipient "
                       "must be verified too until AWS grants production access")

    def __enter__(self) -> Ses:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def send(self, recipients: tuple[str, ...], msg: EmailMessage
             ) -> tuple[tuple[str, ...], dict[str, str]]:
        client = self.aws.client("ses", self.region)
        with translate_errors(f"ses.SendRawEmail in {self.region}"):
            client.send_raw_email(Source=self.sender, Destinations=list(recipients),
                                  RawMessage={"Data": msg.as_bytes()})
        return tuple(recipients), {}
