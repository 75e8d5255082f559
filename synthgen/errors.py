"""Errors a user can cause and fix. The CLI prints their message as one line, with no traceback."""
from __future__ import annotations

import errno

SHOWN_CHARS = 80  # an error shows at most this much of a bad value (which may be megabytes long)
# OS errors the user fixes (free disk space, raise a quota, grant access) and retrying never does.
USER_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EACCES, errno.EPERM, errno.EROFS})
# OS errors about a path itself: permanent too, but more often a bug than a user's mistake.
PATH_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ENAMETOOLONG})


class SynthgenError(Exception):
    """Base of every user-fixable error (bad params, missing input files, failed checksums)."""


def causes(exc: BaseException) -> list[BaseException]:
    """`exc` and the errors it was explicitly raised from (`raise ... from`, Ray's `cause`), outermost first."""
    chain: list[BaseException] = []
    while exc is not None and all(exc is not seen for seen in chain):
        chain.append(exc)
        exc = exc.__cause__ or getattr(exc, "cause", None)
    return chain


def is_user_errno(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in USER_ERRNOS


def user_error(exc: BaseException) -> BaseException | None:
    """The user-fixable error behind `exc` (a SynthgenError, disk full, no permission), however deeply it
    was wrapped by the engine that ran it; None for anything else (a bug, which keeps its traceback)."""
    return next((e for e in causes(exc) if isinstance(e, SynthgenError) or is_user_errno(e)), None)


def is_transient(exc: BaseException) -> bool:
    """An I/O failure that a retry may get past: an OSError that is not a user's error or a bad path."""
    return (isinstance(exc, OSError) and user_error(exc) is None
            and exc.errno not in PATH_ERRNOS)


def one_line(exc: BaseException) -> str:
    """The error's message on one line (what the CLI prints after `error: `)."""
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"disk full: {text}"
    return text or type(exc).__name__


def shown(value: object) -> str:
    """`repr(value)` for an error message, cut to SHOWN_CHARS."""
    text = repr(value)
    return text if len(text) <= SHOWN_CHARS else f"{text[:SHOWN_CHARS]}... ({len(text)} characters)"
