"""Exponential moving average of a network's weights (Polyak & Juditsky 1992)."""
from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """A frozen copy of `model` whose floating-point weights track `model` with `decay`.

    The effective decay warms up as min(decay, (1 + n) / (10 + n)) after n updates, as in LDM's
    LitEma, so early averages are not dominated by the random initialisation.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.num_updates = 0
        self.module = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        self.num_updates += 1
        live = model.state_dict()
        shadow = self.module.state_dict()
        floats = [name for name, t in shadow.items() if t.is_floating_point()]
        torch._foreach_lerp_([shadow[n] for n in floats], [live[n] for n in floats], 1.0 - d)
        for name in shadow.keys() - set(floats):
            shadow[name].copy_(live[name])

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor], num_updates: int) -> None:
        self.module.load_state_dict(state)
        self.num_updates = num_updates
