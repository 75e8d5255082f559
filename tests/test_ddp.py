"""DDP smoke test: `torchrun --nproc_per_node 2` with gloo on CPU, over loopback only.

This file is also the worker torchrun starts (`python tests/test_ddp.py OUT`): every rank trains
(a) a linear regression whose 2-rank result must match a 1-process run with the same global batch,
and (b) a tiny autoencoder with its discriminator on, to exercise two optimizers under DDP.
"""
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import safetensors.torch
import torch
from torch import nn

from synthgen.autoencoder.losses import AutoencoderObjective
from synthgen.config.autoencoder import AutoencoderConfig
from synthgen.config.training import TrainConfig
from synthgen.stages.train_autoencoder import build_networks
from synthgen.training.loop import MAIN, train


pytestmark = pytest.mark.usefixtures("one_thread")


REPO = Path(__file__).resolve().parents[1]
REGRESSION = TrainConfig(steps=6, batch_size=8, lr=0.05, warmup_steps=2, ema_decay=0.5, checkpoint_every=3,
                         log_every=2, device="cpu", progress=False)


def regression_data() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(16, 4, generator=g)
    return {"x": x, "y": x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])}


def regression(nets, batch, generator, step):
    return {MAIN: (nets[MAIN](batch["x"]) - batch["y"]).pow(2).mean()}, {}


def fixed_linear() -> nn.Module:
    net = nn.Linear(4, 1)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[0.1, 0.2, -0.3, 0.4]]))
        net.bias.fill_(0.05)
    return net


def train_regression(out: Path):
    return train(REGRESSION, {MAIN: fixed_linear()}, regression, regression_data(), out / "ckpt", out / "metrics.csv")


def train_tiny_autoencoder(out: Path):
    cfg = AutoencoderConfig.model_validate({
        "model": {"base_channels": 8, "channel_mult": [1, 1], "downsample": 2, "latent_channels": 2, "norm_groups": 4},
        "train": {"steps": 3, "batch_size": 4, "lr": 1e-3, "checkpoint_every": 2, "log_every": 1,
                  "device": "cpu", "progress": False},
        "discriminator": True, "disc_start": 1, "disc_channels": 8, "disc_layers": 1,
    })
    nets = build_networks(cfg)
    pixels = torch.randint(0, 256, (8, 3, 8, 8), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    return train(cfg.train, nets, AutoencoderObjective(cfg, nets[MAIN].last_layer), {"pixels": pixels},
                 out / "ckpt", out / "metrics.csv")


def worker(out: Path) -> None:
    rank = int(os.environ["RANK"])
    reg = train_regression(out / "regression")
    ae = train_tiny_autoencoder(out / "ae")
    weights = {f"regression.{k}": v for k, v in reg.nets[MAIN].state_dict().items()}
    weights.update({f"ema.{k}": v for k, v in reg.ema.state_dict().items()})
    for name, net in ae.nets.items():
        weights.update({f"ae.{name}.{k}": v for k, v in net.state_dict().items()})
    safetensors.torch.save_file({k: v.contiguous() for k, v in weights.items()}, out / f"rank{rank}.safetensors")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_rank_gloo_training_matches_one_process(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo",
           "MASTER_ADDR": "127.0.0.1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
               "--master_addr", "127.0.0.1", "--master_port", str(free_port()), __file__, str(tmp_path)]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [safetensors.torch.load_file(tmp_path / f"rank{r}.safetensors") for r in range(2)]
    for key, value in ranks[0].items():
        assert torch.equal(value, ranks[1][key]), f"{key} differs between ranks"
    assert (tmp_path / "regression/ckpt/step-000000006.safetensors").is_file()
    assert (tmp_path / "ae/metrics.csv").read_text().count("\n") == 4  # header + 3 steps, written by rank 0 only
    single = train_regression(tmp_path / "single")
    for key, value in single.nets[MAIN].state_dict().items():
        assert torch.allclose(ranks[0][f"regression.{key}"], value, atol=1e-6), key
    assert not torch.allclose(ranks[0]["regression.weight"], fixed_linear().weight)


if __name__ == "__main__":
    worker(Path(sys.argv[1]))
