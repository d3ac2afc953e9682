"""The one confirmation for everything that launches, stops or destroys, and a one-line prompt.

``ConfirmModal`` (after posting's ``widgets/confirmation.py``): a question, what exactly will
happen (counts, regions, instance types), and y / n / escape. It answers True only on y (or
its button); n, escape and the other button answer False. ``PromptModal`` asks for one line
(a command to run, a remote path) and answers the text, or None on escape.
"""

from __future__ import annotations

from rich.console import RenderableType
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static


class ConfirmModal(ModalScreen[bool]):
    """Ask before acting: y goes ahead, n or escape cancels."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("n", "answer(False)", "No", id="confirm.no"),
        Binding("escape", "answer(False)", "Cancel", id="confirm.cancel"),
    ]

    def __init__(self, question: str, body: RenderableType = "", *, yes: str = "Yes",
                 no: str = "No", danger: bool = False) -> None:
        super().__init__(id="confirm")
        self.question = question
        self.body = body
        self.yes_label = yes
        self.no_label = no
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="danger" if self.danger else ""):
            yield Static(self.question, id="confirm-question", classes="view-title",
                         markup=False)
            if self.body:
                yield Static(self.body, id="confirm-body", markup=False)
            with Horizontal(id="confirm-buttons"):
                yield Button(f"{self.yes_label} (y)", id="confirm-yes",
                             variant="error" if self.danger else "primary")
                yield Button(f"{self.no_label} (n)", id="confirm-no")
            yield Static("y answers yes · n or escape cancels", classes="note")

    def on_mount(self) -> None:
        self.query_one("#confirm-no", Button).focus()  # enter alone never launches

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed, "#confirm-yes")
    def pressed_yes(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#confirm-no")
    def pressed_no(self) -> None:
        self.dismiss(False)


class PromptModal(ModalScreen[str | None]):
    """One line of input: enter answers the text, escape answers None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="prompt.cancel")]

    def __init__(self, question: str, *, placeholder: str = "", value: str = "",
                 note: str = "") -> None:
        super().__init__(id="prompt")
        self.question = question
        self.placeholder = placeholder
        self.value = value
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical(id="prompt-box"):
            yield Static(self.question, classes="view-title", markup=False)
            yield Input(self.value, placeholder=self.placeholder, id="prompt-input")
            yield Static(self.note or "enter runs · escape cancels", classes="note",
                         markup=False)

    def on_mount(self) -> None:
        self.query_one("#prompt-input", Input).focus()

    @on(Input.Submitted, "#prompt-input")
    def submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        self.dismiss(text or None)

    def action_cancel(self) -> None:
        self.dismiss(None)
