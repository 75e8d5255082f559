"""Retries belong at the I/O edge: retry a task only when it failed on I/O, never on the math."""
from prefect.states import State


def failed_on_io(task, task_run, state: State) -> bool:
    """Retry condition: the task raised an OSError (disk full, network file system hiccup)."""
    try:
        state.result()
    except OSError:
        return True
    except Exception:
        return False
    return False


IO_RETRIES = dict(retries=3, retry_delay_seconds=[2, 5, 15], retry_condition_fn=failed_on_io)
