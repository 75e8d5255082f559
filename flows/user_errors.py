"""One line for a user's mistake: a SynthgenError, a full disk or a refused permission ends any command
with `error: <message>` on stderr and exit code 2, however deep inside a flow or task it arose.

Prefect reports a failed run with a traceback and "Finished in state Failed(...)" lines; while a
command runs, `HideUserErrors` drops those reports when the error is a user's (the CLI says it once).
Set SYNTHGEN_DEBUG=1 to keep Prefect's reports and see the traceback.
"""
from __future__ import annotations

import logging
import os
import re
from contextlib import contextmanager
from typing import Iterator

import typer

from synthgen.errors import USER_ERRNOS, SynthgenError, one_line, user_error

DEBUG_ENV = "SYNTHGEN_DEBUG"
RUN_LOGGERS = ("prefect.flow_runs", "prefect.task_runs")  # where Prefect reports a failed flow or task run
EXIT_USER_ERROR = 2
_FAILED_STATE = re.compile(r"encountered an exception:? (?P<type>\w+): (?P<message>.*)")  # Prefect's state message
_ERRNO = re.compile(r"\[Errno (\d+)\]")


def user_error_names() -> set[str]:
    """Class names of SynthgenError and every subclass imported so far."""
    names, pending = set(), [SynthgenError]
    while pending:
        klass = pending.pop()
        names.add(klass.__name__)
        pending += klass.__subclasses__()
    return names


def names_a_user_error(text: str) -> bool:
    """`text` is Prefect's message for a run that failed on a user's error."""
    match = _FAILED_STATE.search(text)
    if not match:
        return False
    errno_match = _ERRNO.match(match["message"])
    return match["type"] in user_error_names() or bool(errno_match and int(errno_match[1]) in USER_ERRNOS)


class HideUserErrors(logging.Filter):
    """Drops Prefect's report of a run that failed on a user's error: its traceback and its failed state."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[1] is not None:
            return user_error(record.exc_info[1]) is None
        return not names_a_user_error(record.getMessage())


@contextmanager
def hidden_run_reports() -> Iterator[None]:
    hide = HideUserErrors()
    loggers = [logging.getLogger(name) for name in RUN_LOGGERS]
    for logger in loggers:
        logger.addFilter(hide)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(hide)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn a user-fixable error into one line on stderr and exit code 2 (SYNTHGEN_DEBUG=1: the traceback)."""
    if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
        yield
        return
    try:
        with hidden_run_reports():
            yield
    except Exception as e:
        cause = user_error(e)
        if cause is None:
            raise
        typer.echo(f"error: {one_line(cause)}", err=True)
        raise typer.Exit(EXIT_USER_ERROR) from None
