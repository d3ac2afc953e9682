"""What a screen may ask of the app it runs in: a small Protocol, not the app class.

Screens and views type ``self.lab`` against :class:`Lab`, so they depend on these few
operations (the context, the one-job-at-a-time rule, the read-only refusal, the log pane)
and never on ``labtui.app`` itself; ``LabApp`` is the one implementation
(tests/test_layers.py checks both).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from textual.worker import Worker

    from labtui.context import Context
    from labtui.events import Event
    from labtui.screens.base import View
    from labtui.screens.confirm import ConfirmModal
    from labtui.screens.jobs import Job


SEAT_GROUP = "seat:"  # the worker group of a seat screen's loads (the app reports them)


@runtime_checkable
class Lab(Protocol):
    ctx: Context | None
    connect_error: str | None

    def connected(self) -> Context | None:
        """The context, or None after telling the user it is not there yet."""

    def refused(self, what: str) -> bool:
        """True (and the user told why) when a read-only console refuses ``what``."""

    def start_job(self, work: Job, *, what: str, group: str = ...,
                  refresh: bool = True) -> Worker | None:
        """Run ``work(ctx)`` as the app's job (one at a time in the default group)."""

    def confirm_then_job(self, modal: ConfirmModal, work: Job, *, what: str) -> None:
        """Ask with ``modal``; on yes run the job."""

    def ask_from_thread(self, modal: ConfirmModal) -> bool:
        """From a worker thread: show ``modal`` and wait for the answer."""

    def log_event(self, event: Event) -> None:
        """Write one event to the log pane."""

    def load_view(self, view: View, *, quiet: bool = False) -> None:
        """Load (or refresh) a view's data in a worker."""

    def running(self, group: str) -> list[Worker]:
        """The workers of ``group`` still pending or running."""

    def run_worker(self, work: Any, *args: Any, **kwargs: Any) -> Worker: ...

    def notify(self, message: str, *args: Any, **kwargs: Any) -> None: ...
