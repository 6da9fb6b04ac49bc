"""One exception hierarchy for the whole project.

The CLIs turn an :class:`EvalsError` into a short message (what is wrong, where, how to fix
it) and its ``exit_code``; anything else is a bug and keeps its traceback. The message is one
line a terminal prints as it is: whatever a user or a file put into it is made :func:`printable`.
"""

from __future__ import annotations


def printable(text: str) -> str:
    """``text`` on one line with nothing a terminal acts on: newlines, escape sequences, other control and format
    characters (e.g. bidi overrides) are shown as Python escapes (``\\n``, ``\\x1b``, ``\\u202e``)."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in text)


class EvalsError(Exception):
    """Base class. ``str(err)`` is the user-facing message; ``hint`` says how to fix it."""

    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return printable(f"{self.message} ({self.hint})")
        return printable(self.message)


class InputError(EvalsError):
    """Bad input from the user: flags, config files, overrides. Exit code 2, nothing written."""

    exit_code = 2


class ProblemsError(InputError):
    """Several problems of bad input found at once (a suite's pairs): a header line, then one line per problem."""

    def __init__(self, header: str, problems: list[str], *, hint: str | None = None) -> None:
        super().__init__(header, hint=hint)
        self.problems = problems

    def __str__(self) -> str:
        lines = [printable(self.message)] + [f"  - {printable(problem)}" for problem in self.problems]
        if self.hint:
            lines.append(f"  ({printable(self.hint)})")
        return "\n".join(lines)


class ConfigError(InputError):
    """A config file or value is invalid; ``where`` names the file (and line) or flag."""

    def __init__(self, message: str, *, where: str | None = None, hint: str | None = None) -> None:
        super().__init__(f"{where}: {message}" if where else message, hint=hint)
        self.where = where


class UnknownTaskError(InputError):
    """The requested task is not defined by the harness."""


class HarnessError(EvalsError):
    """The harness ran but failed; the exit code is the harness's own."""

    def __init__(self, message: str, *, exit_code: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code


class ResultsParseError(EvalsError):
    """The harness finished but its output files could not be read into results."""

    exit_code = 1


class SampleErrorLimitError(EvalsError):
    """More of a task's samples ended in an error than ``config.params.max_error_fraction`` allows.

    Raised after results.yml and samples.jsonl were written, so the run's results and its failed samples are
    there to look at; exit code 1, as a failed harness.
    """

    exit_code = 1


class DataError(InputError):
    """A task's data cannot be had (not in the cache when offline, gated without a token, not found).

    Raised before any request reaches the model; the message names the dataset and how to fetch it.
    """
