"""Retries belong at the I/O edge: retry a task only when it failed on transient I/O, never on the math,
a user's mistake (a SynthgenError), a full disk or quota, a permission or a missing path."""
from prefect.states import State

from synthgen.errors import is_transient


def failed_on_io(task, task_run, state: State) -> bool:
    """Retry condition: the task raised an OSError that a retry may get past (a network file system hiccup)."""
    try:
        state.result()
    except Exception as e:
        return is_transient(e)
    return False


IO_RETRIES = dict(retries=3, retry_delay_seconds=[2, 5, 15], retry_condition_fn=failed_on_io)
