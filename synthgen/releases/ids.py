"""Release ids: a pure function of the run date, as is the release's seed (synthgen/seeds.py "release/seed"), so
a release can be remade.

A release id is the run's date, `YYYY-MM-DD`, plus an optional suffix when one day has several
releases: `2026-11-21`, `2026-11-21-2`, `2026-11-21-hotfix`. Pass the *scheduled* date (Prefect's
`expected_start_time`), not the wall clock: a retried or crashed run then maps to the same release.
"""
from __future__ import annotations

import re
from datetime import date, datetime

from synthgen.errors import SynthgenError

_SUFFIX = re.compile(r"^[a-z0-9]{1,32}$")
_RELEASE_ID = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:-([a-z0-9]{1,32}))?$")


class InvalidReleaseIdError(SynthgenError):
    """A release id that is not `YYYY-MM-DD` or `YYYY-MM-DD-<suffix>`."""


def release_id_for(run_date: date, suffix: str | int | None = None) -> str:
    """`2026-11-21` for the run date, or `2026-11-21-<suffix>` for a further release that day."""
    day = run_date.date() if isinstance(run_date, datetime) else run_date
    if suffix is None:
        return day.isoformat()
    suffix = str(suffix)
    if not _SUFFIX.match(suffix):
        raise InvalidReleaseIdError(f"release suffix {suffix!r}: use 1-32 characters of a-z 0-9 (e.g. 2, b, hotfix)")
    return f"{day.isoformat()}-{suffix}"


def _is_date(text: str) -> bool:
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return True


def check_release_id(release_id: str) -> str:
    """Return `release_id` if it is well formed (a real date, a safe suffix), else raise."""
    match = _RELEASE_ID.match(release_id)
    if match and _is_date(match.group(1)):
        return release_id
    raise InvalidReleaseIdError(
        f"release id {release_id!r} is not YYYY-MM-DD or YYYY-MM-DD-<suffix> (suffix: a-z 0-9)")


def release_sort_key(release_id: str) -> tuple:
    """Order releases by date, then suffix (none first, numbers numerically, then words)."""
    day, suffix = _RELEASE_ID.match(check_release_id(release_id)).groups()
    if suffix is None:
        return (day, 0, 0, "")
    return (day, 1, int(suffix), "") if suffix.isdigit() else (day, 2, 0, suffix)
