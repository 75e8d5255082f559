"""The shared training loop: exact resume, batch order, warmup, EMA, metrics CSV, objective contract."""
import csv

import pytest
import torch
from torch import nn

from synthgen.autoencoder.losses import AutoencoderObjective
from synthgen.config.autoencoder import AutoencoderConfig
from synthgen.config.training import TrainConfig
from synthgen.errors import SynthgenError
from synthgen.stages.train_autoencoder import build_networks
from synthgen.training.loop import MAIN, train
from synthgen.training.batches import BatchOrder
from synthgen.training.ema import EMA
from synthgen.training.schedule import learning_rate, warmup_lr


pytestmark = pytest.mark.usefixtures("one_thread")


def toy_pixels(n: int, size: int, seed: int) -> torch.Tensor:
    """Smooth random uint8 images (N, 3, size, size): bilinear upsampling of 4x4 colour grids."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g)
    fine = nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return (fine * 255).round().to(torch.uint8)


def tiny_ae_config(steps: int, **train) -> AutoencoderConfig:
    return AutoencoderConfig.model_validate({
        "model": {"base_channels": 8, "channel_mult": [1, 1], "downsample": 2, "latent_channels": 2, "norm_groups": 4},
        "train": {"steps": steps, "batch_size": 4, "lr": 1e-3, "warmup_steps": 2, "ema_decay": 0.9,
                  "checkpoint_every": 3, "log_every": 1, "device": "cpu", "progress": False, **train},
        "discriminator": True, "disc_start": 2, "disc_channels": 8, "disc_layers": 1,
    })


def run_ae(cfg: AutoencoderConfig, out, crash_at: int | None = None):
    nets = build_networks(cfg)
    objective = AutoencoderObjective(cfg, nets[MAIN].last_layer)

    def maybe_crash(nets_, batch, generator, step):
        if step == crash_at:
            raise KeyboardInterrupt("simulated crash")
        return objective(nets_, batch, generator, step)

    return train(cfg.train, nets, maybe_crash, {"pixels": toy_pixels(12, 16, seed=1)}, out / "ckpt", out / "metrics.csv")


def test_resumed_run_is_bit_identical_to_uninterrupted_run(tmp_path):
    cfg = tiny_ae_config(steps=7)
    straight = run_ae(cfg, tmp_path / "a")
    with pytest.raises(KeyboardInterrupt):
        run_ae(cfg, tmp_path / "b", crash_at=4)  # checkpoint at step 3 exists, steps 3..4 are lost
    resumed = run_ae(cfg, tmp_path / "b")
    assert resumed.resumed_from == 3 and resumed.step == straight.step == 7
    for name in ("model", "disc"):
        for (k, a), b in zip(straight.nets[name].state_dict().items(), resumed.nets[name].state_dict().values()):
            assert torch.equal(a, b), f"{name}.{k} differs after resume"
    for a, b in zip(straight.ema.state_dict().values(), resumed.ema.state_dict().values()):
        assert torch.equal(a, b)
    assert (tmp_path / "a/metrics.csv").read_text().splitlines()[1:] != []
    strip_speed = lambda p: [{k: v for k, v in r.items() if k != "images_per_s"} for r in csv.DictReader(p.open())]
    assert strip_speed(tmp_path / "a/metrics.csv") == strip_speed(tmp_path / "b/metrics.csv")


def test_more_steps_continue_a_run_but_other_settings_start_over(tmp_path):
    first = run_ae(tiny_ae_config(steps=3), tmp_path)
    longer = run_ae(tiny_ae_config(steps=6), tmp_path)
    assert first.step == 3 and longer.resumed_from == 3 and longer.step == 6
    changed = run_ae(tiny_ae_config(steps=6, lr=5e-4), tmp_path)
    assert changed.resumed_from == 0 and changed.step == 6


def test_discriminator_trains_only_after_disc_start(tmp_path):
    before = {k: v.clone() for k, v in build_networks(tiny_ae_config(2))["disc"].state_dict().items()}
    early = run_ae(tiny_ae_config(steps=2), tmp_path)
    for k, v in early.nets["disc"].state_dict().items():
        assert torch.equal(v, before[k]), "the discriminator moved before disc_start"
    late = run_ae(tiny_ae_config(steps=4), tmp_path)  # resumes at 2, GAN on from step 2
    assert any(not torch.equal(v, before[k]) for k, v in late.nets["disc"].state_dict().items())
    rows = list(csv.DictReader((tmp_path / "metrics.csv").open()))
    assert [float(r["gan_weight"]) > 0 for r in rows] == [False, False, True, True]


def test_metrics_csv_has_plot_columns_and_falling_loss(tmp_path):
    data = {"x": torch.randn(32, 3), "y": torch.randn(32, 1)}
    net = nn.Linear(3, 1)

    def regression(nets, batch, generator, step):
        loss = (nets[MAIN](batch["x"]) - batch["y"]).pow(2).mean()
        return {MAIN: loss}, {"noise": torch.randn((), generator=generator)}

    cfg = TrainConfig(steps=40, batch_size=8, lr=0.05, warmup_steps=0, log_every=10, device="cpu", progress=False)
    train(cfg, {MAIN: net}, regression, data, tmp_path / "ckpt", tmp_path / "m.csv")
    rows = list(csv.DictReader((tmp_path / "m.csv").open()))
    assert list(rows[0]) == ["step", "grad_norm", "images_per_s", "loss", "lr", "noise"]
    assert [int(r["step"]) for r in rows] == [10, 20, 30, 40]
    assert float(rows[-1]["loss"]) < float(rows[0]["loss"])
    again = train(cfg, {MAIN: net}, regression, data, tmp_path / "ckpt", tmp_path / "m.csv")
    assert again.resumed_from == 40 and again.step == 40  # already finished: nothing to do


def test_objective_must_return_the_main_loss(tmp_path):
    cfg = TrainConfig(steps=1, batch_size=2, device="cpu", progress=False)
    with pytest.raises(SynthgenError, match="loss for 'model'"):
        train(cfg, {MAIN: nn.Linear(1, 1)}, lambda n, b, g, s: ({}, {}), {"x": torch.ones(4, 1)},
              tmp_path / "c", tmp_path / "m.csv")


def test_batch_order_is_a_pure_function_of_seed_and_step():
    order = BatchOrder(count=10, batch_size=4, seed=3)
    assert order.steps_per_epoch == 2
    epoch0 = torch.cat([order.indices(0), order.indices(1)])
    assert len(set(epoch0.tolist())) == 8  # no repeats inside an epoch
    assert torch.equal(order.indices(5), BatchOrder(10, 4, seed=3).indices(5))
    assert not torch.equal(order.indices(2), order.indices(0))  # a new permutation per epoch
    ranks = [BatchOrder(10, 4, seed=3, rank=r, world_size=2).indices(5) for r in range(2)]
    assert torch.equal(torch.cat(ranks), order.indices(5))  # ranks split the global batch
    with pytest.raises(SynthgenError, match="divisible"):
        BatchOrder(10, 4, seed=3, rank=0, world_size=3)
    with pytest.raises(SynthgenError, match="larger than"):
        BatchOrder(3, 4, seed=3)


def test_linear_warmup():
    assert [warmup_lr(s, 1.0, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_lr(0, 0.3, 0) == 0.3
    cosine = [learning_rate(s, 1.0, 2, 12, "cosine") for s in range(13)]
    assert cosine[:3] == [0.5, 1.0, 1.0] and cosine[7] == pytest.approx(0.55) and cosine[12] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(cosine[1:], cosine[2:]))
    assert [learning_rate(s, 1.0, 2, 12, "constant") for s in range(13)] == [warmup_lr(s, 1.0, 2) for s in range(13)]


def test_ema_tracks_with_warmed_up_decay():
    net = nn.Linear(2, 2)
    ema = EMA(net, decay=0.99)
    start = net.weight.detach().clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    ema.update(net)  # first decay is min(0.99, 1/10) = 0.1
    assert torch.allclose(ema.module.weight, start + 0.9)
    assert not ema.module.weight.requires_grad
