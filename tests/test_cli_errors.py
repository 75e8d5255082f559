"""One line for a user's mistake, however deep inside a flow it arose; retries only on transient I/O."""
import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from prefect.states import Failed

from flows.user_errors import HideUserErrors, names_a_user_error
from synthgen.config import ConfigError
from synthgen.errors import SynthgenError, one_line, user_error
from tasks.retry import failed_on_io

REPO = Path(__file__).resolve().parents[1]

TINY_FLOW_CLI = textwrap.dedent('''
    """`synthgen` plus a command `tiny`: a flow whose one task (retried on I/O) finds the disk full."""
    import errno
    import sys
    from pathlib import Path

    from prefect import flow, task

    from flows.cli import app
    from flows.user_errors import user_errors
    from tasks.retry import IO_RETRIES

    ATTEMPTS = Path(sys.argv.pop(1))


    @task(**IO_RETRIES)
    def write_shard() -> None:
        with ATTEMPTS.open("a") as log:
            log.write("attempt\\n")
        raise OSError(errno.ENOSPC, "No space left on device", "shard-000000.tar")


    @flow
    def tiny() -> None:
        write_shard()


    @app.command("tiny")
    def tiny_command() -> None:
        with user_errors():
            tiny()


    app()
''')


def prefect_env(**extra: str) -> dict[str, str]:
    """The test session's Prefect API (no server start per process) and warnings only on the console."""
    from prefect.settings import PREFECT_API_URL

    return {**os.environ, "PYTHONPATH": str(REPO), "PREFECT_API_URL": PREFECT_API_URL.value(),
            "PREFECT_LOGGING_LEVEL": "WARNING", **extra}


@pytest.mark.parametrize("exc,retried", [
    (OSError(errno.EIO, "Input/output error"), True),
    (TimeoutError(errno.ETIMEDOUT, "timed out"), True),
    (OSError(errno.ENOSPC, "No space left on device"), False),
    (OSError(errno.EDQUOT, "Disk quota exceeded"), False),
    (PermissionError(errno.EACCES, "Permission denied"), False),
    (FileNotFoundError(errno.ENOENT, "No such file or directory"), False),
    (SynthgenError("bad input"), False),
    (ValueError("a bug"), False),
])
def test_retries_only_transient_io(exc, retried):
    assert failed_on_io(None, None, Failed(data=exc)) is retried


def test_the_user_error_behind_wrappers_is_found():
    cause = ConfigError("params.yaml: data.resolution = 33: not divisible")
    try:
        try:
            raise cause
        except ConfigError as e:
            raise RuntimeError("stage failed") from e
    except RuntimeError as wrapped:
        assert user_error(wrapped) is cause
    assert user_error(RuntimeError("a bug")) is None
    assert one_line(OSError(errno.ENOSPC, "No space left on device", "x.tar")).startswith("disk full: ")
    assert one_line(SynthgenError("two\n  lines")) == "two lines"


def test_prefect_reports_of_user_errors_are_hidden_and_bugs_kept():
    assert names_a_user_error("Finished in state Failed('Flow run encountered an exception: ConfigError: bad')")
    assert names_a_user_error("Finished in state Failed('Task run encountered an exception OSError: [Errno 28] No space')")
    assert not names_a_user_error("Finished in state Failed('Task run encountered an exception KeyError: 3')")
    import logging

    def record(exc):
        return logging.LogRecord("prefect.flow_runs", logging.ERROR, __file__, 1, "Encountered exception", None,
                                 (type(exc), exc, None))

    assert not HideUserErrors().filter(record(SynthgenError("bad")))
    assert HideUserErrors().filter(record(KeyError("bug")))


def test_disk_full_inside_a_flow_is_one_line_and_not_retried(tmp_path, prefect_harness):
    script, attempts = tmp_path / "tiny_cli.py", tmp_path / "attempts.log"
    script.write_text(TINY_FLOW_CLI)
    proc = subprocess.run([sys.executable, str(script), str(attempts), "tiny"], cwd=REPO, env=prefect_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == ["error: disk full: [Errno 28] No space left on device: 'shard-000000.tar'"]
    assert attempts.read_text().splitlines() == ["attempt"]


def test_debug_shows_the_traceback(tmp_path, prefect_harness):
    script, attempts = tmp_path / "tiny_cli.py", tmp_path / "attempts.log"
    script.write_text(TINY_FLOW_CLI)
    proc = subprocess.run([sys.executable, str(script), str(attempts), "tiny"], cwd=REPO,
                          env=prefect_env(SYNTHGEN_DEBUG="1"), capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "Traceback" in proc.stderr and "OSError: [Errno 28]" in proc.stderr
