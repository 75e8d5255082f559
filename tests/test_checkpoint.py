"""Checkpoints: safetensors round trip of every part of the training state, tamper refusal, pruning."""
import json

import pytest
import torch
from torch import nn

from synthgen.training.checkpoint import (
    CheckpointError, TrainingState, flatten_optimizer, latest_checkpoint, list_checkpoints, load_checkpoint,
    load_verified, save_checkpoint, save_verified, unflatten_optimizer,
)


pytestmark = pytest.mark.usefixtures("one_thread")


def stepped_net_and_optimizer(seed: int = 0, steps: int = 3):
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(4, 8), nn.SiLU(), nn.Linear(8, 2))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-2, betas=(0.8, 0.95), weight_decay=0.1)
    for _ in range(steps):
        opt.zero_grad()
        net(torch.randn(5, 4)).pow(2).mean().backward()
        opt.step()
    return net, opt


def make_state(step: int) -> TrainingState:
    net, opt = stepped_net_and_optimizer()
    return TrainingState(
        step=step, nets={"model": net.state_dict()}, optimizers={"model": opt.state_dict()},
        rng=[{"generator": torch.Generator().manual_seed(r).get_state(), "torch_cpu": torch.get_rng_state()} for r in range(2)],
        ema={k: v + 1 for k, v in net.state_dict().items()}, ema_updates=7, extra={"world_size": 2},
    )


def test_checkpoint_round_trip_is_exact(tmp_path):
    state = make_state(step=12)
    path = save_checkpoint(tmp_path, state, keep=3)
    loaded = load_checkpoint(path)
    assert loaded.step == 12 and loaded.ema_updates == 7 and loaded.extra == {"world_size": 2}
    for k, v in state.nets["model"].items():
        assert torch.equal(loaded.nets["model"][k], v)
        assert torch.equal(loaded.ema[k], state.ema[k])
    saved_opt, loaded_opt = state.optimizers["model"], loaded.optimizers["model"]
    assert loaded_opt["param_groups"] == saved_opt["param_groups"]
    for index, per_param in saved_opt["state"].items():
        for key, value in per_param.items():
            assert torch.equal(loaded_opt["state"][index][key], value)
    for rank in range(2):
        assert torch.equal(loaded.rng[rank]["generator"], state.rng[rank]["generator"])
        assert loaded.rng[rank]["torch_cpu"].dtype == torch.uint8


def test_optimizer_state_flattens_to_tensors_and_json():
    _, opt = stepped_net_and_optimizer()
    tensors, meta = flatten_optimizer(opt.state_dict())
    assert set(tensors) == {f"{i}.{k}" for i in range(4) for k in ("step", "exp_avg", "exp_avg_sq")}
    restored = unflatten_optimizer(tensors, json.loads(json.dumps(meta)))
    assert restored["param_groups"] == opt.state_dict()["param_groups"]


def test_restored_optimizer_continues_identically(tmp_path):
    net_a, opt_a = stepped_net_and_optimizer()
    state = TrainingState(step=3, nets={"model": net_a.state_dict()}, optimizers={"model": opt_a.state_dict()}, rng=[])
    loaded = load_checkpoint(save_checkpoint(tmp_path, state, keep=1))
    net_b, _ = stepped_net_and_optimizer(steps=0)
    net_b.load_state_dict(loaded.nets["model"])
    opt_b = torch.optim.AdamW(net_b.parameters(), lr=1.0)
    opt_b.load_state_dict(loaded.optimizers["model"])
    assert opt_b.param_groups[0]["betas"] == (0.8, 0.95)
    x = torch.randn(5, 4)
    for net, opt in ((net_a, opt_a), (net_b, opt_b)):
        opt.zero_grad()
        net(x).pow(2).mean().backward()
        opt.step()
    for a, b in zip(net_a.parameters(), net_b.parameters()):
        assert torch.equal(a, b)


def test_tampered_checkpoint_is_refused_with_one_line(tmp_path):
    path = save_checkpoint(tmp_path, make_state(step=5), keep=1)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="sha256") as err:
        load_checkpoint(path)
    assert "\n" not in str(err.value)


def test_equal_inputs_give_equal_bytes(tmp_path):
    metadata = {"format": "x", "weights": "raw", "c": "1", "d": "2"}  # safetensors would shuffle these keys
    digests = {save_verified(tmp_path / f"{i}.safetensors", {"a": torch.ones(2), "b": torch.zeros(3)}, metadata)
               for i in range(8)}
    assert len(digests) == 1
    assert load_verified(tmp_path / "0.safetensors")[1] == metadata


def test_file_without_manifest_is_incomplete(tmp_path):
    save_verified(tmp_path / "w.safetensors", {"a": torch.ones(2)})
    (tmp_path / "w.manifest.json").unlink()
    with pytest.raises(CheckpointError, match="manifest"):
        load_verified(tmp_path / "w.safetensors")
    path = save_checkpoint(tmp_path, make_state(step=1), keep=5)
    path.with_name(path.stem + ".manifest.json").unlink()
    assert latest_checkpoint(tmp_path) is None


def test_only_newest_checkpoints_are_kept(tmp_path):
    for step in (2, 4, 6, 8):
        save_checkpoint(tmp_path, make_state(step), keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000000006.safetensors", "step-000000008.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step-000000006.manifest.json", "step-000000006.safetensors",
        "step-000000008.manifest.json", "step-000000008.safetensors",
    ]
    assert load_checkpoint(latest_checkpoint(tmp_path)).step == 8
