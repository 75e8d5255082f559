"""Test-wide settings: Prefect and DVC run offline, in a throwaway home, without telemetry."""
import atexit
import os
import shutil
import tempfile

import pytest

pytest_plugins = ["tests.ray_cluster"]  # the two-node Ray cluster fixture

# Set before anything imports prefect: it reads these at import time.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="synthgen-prefect-home-")
atexit.register(shutil.rmtree, os.environ["PREFECT_HOME"], ignore_errors=True)
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_TO_API_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["DVC_NO_ANALYTICS"] = "1"
os.environ.pop("PREFECT_API_URL", None)


@pytest.fixture(scope="session")
def prefect_harness():
    """One temporary Prefect API for the whole session (starting one costs seconds)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture(scope="module")
def one_thread():
    """One torch intra-op thread for a test module (restored after): tiny tensor work on a busy
    shared CPU spends most of its time in thread hand-offs. Use with
    `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    """(diffusion folder, autoencoder folder) of tiny random models, written once; read-only."""
    from tests.tiny_models import write_tiny_models

    return write_tiny_models(tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="session")
def filter_dir(models_dir, tmp_path_factory):
    """A tiny sampling-filter folder for the tiny models: accepts roughly a third to a half of each class's draws."""
    import numpy as np

    from synthgen.config.sample import SampleConfig
    from synthgen.generate.models import load_models
    from synthgen.generate.shard_sampler import generate_pixels
    from tests.tiny_models import write_tiny_filter

    cfg = SampleConfig.model_validate({"sampler": {"name": "ddim", "steps": 4}, "device": "cpu"})
    calibration = generate_pixels(load_models(*models_dir, "cpu"), np.arange(48) % 3, list(range(48)), cfg)
    return write_tiny_filter(tmp_path_factory.mktemp("filter"), calibration)


from tests.s3_server import s3_server, s3_url  # noqa: E402,F401  (the loopback S3 server fixtures)
