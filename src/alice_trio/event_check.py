"""What another package's code may hand us as an event: a :class:`~alice_trio.models.TurnEvent`
whose fields hold their declared types.

``TurnEvent`` does not check its fields at construction (it is built once per protocol line), so
a session driver or a one-shot decoder of another package — or a test's
:class:`~alice_trio.testing.ScriptedDriver` whose ``reply`` returns a number — can emit
``text=42`` or ``thread_id=b"x"``. Unchecked, that reached the caller as an ``AttributeError``
from deep inside ``SessionBackend.run``, as a ``RunResult`` whose ``reply`` is bytes, or as the
caller's own callback failing on it. :func:`malformed` names the first wrong field;
:class:`~alice_trio.sessions.session.InteractiveSession` refuses such an event at its ``emit``
(the one door every driver's events pass), and the one-shot engine refuses one from a decoder
that is not alice_trio's own, each with a :class:`~alice_trio.errors.ProtocolError`.
Pure: no trio, no I/O.
"""

from __future__ import annotations

from .file_changes import FileChange
from .models import EventKind, TurnEvent, TurnQuestion, Usage

__all__ = ["malformed"]

_TEXT_FIELDS = ("text", "thread_id", "turn_id", "error", "raw", "provider")


def _kind_name(value: object) -> str:
    return f"{type(value).__name__} {value!r:.40}"


def malformed(event: object) -> str | None:
    """Why ``event`` is no well-formed ``TurnEvent`` (the first wrong field), or None. The
    common case — every field of its exact type — is a handful of type checks (per event)."""
    if type(event) is not TurnEvent and not isinstance(event, TurnEvent):
        return f"not a TurnEvent: {_kind_name(event)}"
    fields = event.__dict__
    if (
        type(fields["kind"]) is EventKind
        and type(fields["text"]) is str
        and type(fields["thread_id"]) is str
        and type(fields["turn_id"]) is str
        and type(fields["error"]) is str
        and type(fields["raw"]) is str
        and type(fields["provider"]) is str
        and fields["usage"] is None
        and fields["status"] is None
        and fields["question"] is None
        and fields["files"] == ()
    ):
        return None
    return _why(fields)


def _why(fields: dict[str, object]) -> str | None:
    if type(fields["kind"]) is not EventKind:
        return f"kind is {_kind_name(fields['kind'])}, not an EventKind"
    for name in _TEXT_FIELDS:
        value = fields[name]
        if not isinstance(value, str):
            return f"{name} is {_kind_name(value)}, not a string"
    usage, status, question = fields["usage"], fields["status"], fields["question"]
    if usage is not None and not isinstance(usage, Usage):
        return f"usage is {_kind_name(usage)}, not a Usage"
    if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
        return f"status is {_kind_name(status)}, not an integer"
    if question is not None and not isinstance(question, TurnQuestion):
        return f"question is {_kind_name(question)}, not a TurnQuestion"
    files = fields["files"]
    if not isinstance(files, tuple) or not all(isinstance(f, FileChange) for f in files):
        return f"files is {_kind_name(files)}, not a tuple of FileChange"
    return None
