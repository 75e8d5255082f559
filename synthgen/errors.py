"""Errors a user can cause and fix. The CLI prints their message as one line, with no traceback."""


class SynthgenError(Exception):
    """Base of every user-fixable error (bad params, missing input files, failed checksums)."""
