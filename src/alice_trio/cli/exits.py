"""The ``alice-trio`` exit codes: the one table ``--help``, ``docs/cli.md`` and the code use.

Every failure ends with one ``alice-trio: <message>`` line (or a few, for a config file with
several problems) on stderr and the exit code of its class; never a traceback.
"""

from __future__ import annotations

import signal
import textwrap

import attrs

from ..errors import (
    AliceError,
    CLINotFoundError,
    ConfigError,
    EmptyPromptError,
    IdleTimeoutError,
    RunTimeoutError,
)

__all__ = [
    "EXIT_CODES",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "ExitCode",
    "UsageError",
    "epilog",
    "exit_code_for",
    "markdown_table",
    "signal_exit",
]


class UsageError(Exception):
    """Bad command-line usage (exit 2)."""


@attrs.frozen(kw_only=True)
class ExitCode:
    """One row of the table: the code, a short name, what it means, the errors mapped to it."""

    code: int = attrs.field(validator=attrs.validators.and_(attrs.validators.ge(0),
                                                           attrs.validators.le(255)))  # fmt: skip
    name: str
    meaning: str
    errors: tuple[type[BaseException], ...] = ()


EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_TIMEOUT = 4
EXIT_INTERRUPTED = 128 + signal.SIGINT  # 130
EXIT_TERMINATED = 128 + signal.SIGTERM  # 143

EXIT_CODES: tuple[ExitCode, ...] = (
    ExitCode(
        code=EXIT_OK,
        name="ok",
        meaning="the turn completed (the reply is on stdout); replay: the file decoded, also "
        "when the recorded run failed; stdout closed early (piped into head)",
    ),
    ExitCode(
        code=EXIT_FAILED,
        name="failed",
        meaning="the turn failed: the agent reported an error, the CLI exited without a reply "
        "or was killed, its output broke the protocol or a line limit, the session failed; the "
        "reply could not be written (stdout closed from the start, or full)",
        errors=(AliceError,),
    ),
    ExitCode(
        code=EXIT_USAGE,
        name="usage",
        meaning="bad command line, config file or option value; unknown provider or profile; "
        "empty prompt; an unreadable input file or one larger than its bound (config 4 MiB, "
        "transcript 64 MiB, prompt on stdin 16 MiB)",
        errors=(UsageError, ConfigError, EmptyPromptError),
    ),
    ExitCode(
        code=EXIT_NOT_FOUND,
        name="not found",
        meaning="the agent CLI could not be started (not on PATH, not executable): install it "
        "or give --command (alice-trio doctor checks)",
        errors=(CLINotFoundError,),
    ),
    ExitCode(
        code=EXIT_TIMEOUT,
        name="timeout",
        meaning="the run hit its overall timeout (--timeout, timeout_secs) or its idle timeout",
        errors=(RunTimeoutError, IdleTimeoutError),
    ),
    ExitCode(
        code=EXIT_INTERRUPTED,
        name="interrupted",
        meaning="SIGINT (Ctrl-C): the agent's process tree was killed and reaped before exit",
    ),
    ExitCode(
        code=EXIT_TERMINATED,
        name="terminated",
        meaning="SIGTERM: as for SIGINT",
    ),
)


def exit_code_for(exc: BaseException) -> int:
    """The exit code of ``exc``: the row naming its most specific class (1 for an AliceError
    no row names more precisely)."""
    best: tuple[int, int] | None = None  # (MRO distance, code)
    mro = type(exc).__mro__
    for row in EXIT_CODES:
        for cls in row.errors:
            if isinstance(exc, cls):
                distance = mro.index(cls)
                if best is None or distance < best[0]:
                    best = (distance, row.code)
    return best[1] if best is not None else EXIT_FAILED


def signal_exit(signum: int) -> int:
    """The exit code after signal ``signum`` (130 for SIGINT, 143 for SIGTERM)."""
    return 128 + int(signum)


def epilog() -> str:
    """The exit-code table for ``--help``."""
    lines = ["exit codes:"]
    for row in EXIT_CODES:
        lines += textwrap.wrap(
            f"{row.name}: {row.meaning}",
            width=78,
            initial_indent=f"  {row.code:>3}  ",
            subsequent_indent=" " * 9,
        )
    return "\n".join(lines)


def markdown_table() -> str:
    """The exit-code table as it appears in ``docs/cli.md``."""
    lines = ["| code | name | meaning |", "|---|---|---|"]
    lines += [f"| {row.code} | {row.name} | {row.meaning} |" for row in EXIT_CODES]
    return "\n".join(lines)
