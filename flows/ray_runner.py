"""The Ray task runner for the sample stage: a local loopback cluster, or an existing one by address.

Every Ray worker must report to the same Prefect API as the flow; without PREFECT_API_URL each
worker would start a temporary Prefect server of its own.
"""
from __future__ import annotations

import os

# Read by Ray at import: keeps a local cluster's processes on loopback instead of the host's address.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

from prefect import get_client  # noqa: E402
from prefect_ray import RayTaskRunner  # noqa: E402

from synthgen.config.sample import SampleConfig  # noqa: E402

WORKER_ENV = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}


class SharedApiRayTaskRunner(RayTaskRunner):
    """RayTaskRunner that hands the flow's Prefect API URL to every worker when Ray starts."""

    def __enter__(self):
        api_url = os.environ.get("PREFECT_API_URL")
        if not api_url:
            with get_client(sync_client=True) as client:
                api_url = str(client.api_url)
        env = self.init_kwargs.setdefault("runtime_env", {}).setdefault("env_vars", {})
        env.update({**WORKER_ENV, "PREFECT_API_URL": api_url})
        return super().__enter__()


def ray_task_runner(cfg: SampleConfig) -> RayTaskRunner:
    """Connect to `sample.ray_address` (or Ray's own RAY_ADDRESS), else start a local cluster."""
    address = cfg.ray_address or os.environ.get("RAY_ADDRESS")
    if address:
        return SharedApiRayTaskRunner(address=address)
    local = {"num_cpus": max(1, int(cfg.max_workers * cfg.ray_num_cpus)), "include_dashboard": False,
             "_node_ip_address": "127.0.0.1", "log_to_driver": False}
    return SharedApiRayTaskRunner(init_kwargs=local)
