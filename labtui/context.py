"""Everything a command or the app needs to act: state folder, AWS, the SSH address seam.

Both front ends build one of these from their options, so there is one code path from a
flag like ``--sandbox`` to the clients that do the work, and one place that sends every event
to the front end's sink and to the course's event log.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

from labtui.course import Course
from labtui.errors import InputError
from labtui.events import EventSink, FanoutSink, JsonlFileSink, LogLine, NullSink
from labtui.sandbox.runtime import SandboxHandle, attach
from labtui.services.aws import Aws, AwsSettings
from labtui.services.endpoints import PublicAddress, Resolver, SandboxAddress
from labtui.services.pricing import Prices
from labtui.state import StateDir


@dataclass
class Context:
    state: StateDir
    aws: Aws
    resolver: Resolver
    sandbox: SandboxHandle | None = None
    sink: EventSink = field(default_factory=NullSink)
    read_only: bool = False

    @property
    def where(self) -> str:
        if self.sandbox is not None:
            note = f" · {self.sandbox.machines}" if self.sandbox.machines else ""
            return f"sandbox {self.sandbox.endpoint_url}{note}"
        profile = f"AWS profile {self.aws.settings.profile or 'default'}"
        endpoint = self.aws.settings.endpoint
        return f"{endpoint} ({profile})" if endpoint else profile

    @cached_property
    def prices(self) -> Prices:
        """Price lookups, cached for the life of the context (a TUI refresh asks again)."""
        return Prices(self.aws)

    def refuse_if_read_only(self, action: str) -> None:
        if self.read_only:
            raise InputError(f"{action} is refused: labtui runs read-only (--read-only). "
                             "Fix: ask the instructor, or run without --read-only")

    def close(self) -> None:
        if self.sandbox is not None:
            self.sandbox.close()


def open_context(course: Course | None, *, sandbox: bool = False, profile: str | None = None,
                 state_dir: str | None = None, sink: EventSink | None = None,
                 read_only: bool = False, endpoint_url: str | None = None) -> Context:
    if sandbox and endpoint_url:
        raise InputError("--sandbox and --endpoint-url both say where AWS is. Fix: give one "
                         "of them")
    state = StateDir.resolve(state_dir).ensure()
    front: EventSink = sink or NullSink()
    # Every event goes to the front end and, for a course, to its event log: wired here
    # once for both front ends.
    events = front if course is None else FanoutSink(
        [front, JsonlFileSink(state.course(course.id).event_log)])
    if sandbox:
        handle = attach(state, progress=lambda line: front.emit(LogLine(line, source="sandbox")))
        aws = Aws(AwsSettings(endpoint_url=handle.endpoint_url, sandbox=True))
        resolver: Resolver = SandboxAddress(handle.hosts_file)
    else:
        handle = None
        aws = Aws(AwsSettings(profile=profile or (course.profile if course else None),
                              endpoint_url=endpoint_url))
        resolver = PublicAddress()
    return Context(state=state, aws=aws, resolver=resolver, sandbox=handle,
                   sink=events, read_only=read_only)
