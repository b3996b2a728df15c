"""Radial building blocks shared by the backbones: cutoff envelope, radial bases, activations.

Parameter and buffer names follow torchmd-net 3.1 so its checkpoints load unchanged.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

#: Å: the one default cutoff (backbones, ``Architecture``); a model file states its own
DEFAULT_CUTOFF = 5.0


class CosineCutoff(nn.Module):
    """Smooth envelope that is 1 at ``lower`` (or 0) and reaches 0 at ``upper``."""

    def __init__(self, cutoff_lower: float = 0.0, cutoff_upper: float = DEFAULT_CUTOFF):
        super().__init__()
        self.cutoff_lower = float(cutoff_lower)
        self.cutoff_upper = float(cutoff_upper)

    def forward(self, distances: Tensor) -> Tensor:
        lower, upper = self.cutoff_lower, self.cutoff_upper
        if lower > 0:
            phase = math.pi * (2 * (distances - lower) / (upper - lower) + 1.0)
            inside = (distances < upper) & (distances > lower)
        else:
            phase = distances * math.pi / upper
            inside = distances < upper
        return 0.5 * (torch.cos(phase) + 1.0) * inside.to(distances.dtype)


class ExpNormalSmearing(nn.Module):
    """PhysNet's exponential-normal radial basis, times a cosine envelope."""

    def __init__(self, cutoff_lower=0.0, cutoff_upper=DEFAULT_CUTOFF, num_rbf=50, trainable=True):
        super().__init__()
        self.cutoff_lower = float(cutoff_lower)
        self.cutoff_upper = float(cutoff_upper)
        self.cutoff_fn = CosineCutoff(0.0, cutoff_upper)
        self.alpha = 5.0 / (cutoff_upper - cutoff_lower)
        start = math.exp(-cutoff_upper + cutoff_lower)
        means = torch.linspace(start, 1.0, num_rbf)
        betas = torch.full((num_rbf,), (2.0 / num_rbf * (1.0 - start)) ** -2)
        _register(self, "means", means, trainable)
        _register(self, "betas", betas, trainable)

    def forward(self, dist: Tensor) -> Tensor:
        dist = dist.unsqueeze(-1)
        decay = torch.exp(self.alpha * (self.cutoff_lower - dist))
        return self.cutoff_fn(dist) * torch.exp(-self.betas * (decay - self.means) ** 2)


class GaussianSmearing(nn.Module):
    """Gaussians evenly spaced between the lower and upper cutoff."""

    def __init__(self, cutoff_lower=0.0, cutoff_upper=DEFAULT_CUTOFF, num_rbf=50, trainable=True):
        super().__init__()
        offset = torch.linspace(cutoff_lower, cutoff_upper, num_rbf)
        coeff = -0.5 / (offset[1] - offset[0]) ** 2
        _register(self, "coeff", coeff, trainable)
        _register(self, "offset", offset, trainable)

    def forward(self, dist: Tensor) -> Tensor:
        return torch.exp(self.coeff * (dist.unsqueeze(-1) - self.offset) ** 2)


def _register(module: nn.Module, name: str, value: Tensor, trainable: bool) -> None:
    if trainable:
        module.register_parameter(name, nn.Parameter(value))
    else:
        module.register_buffer(name, value)


class ShiftedSoftplus(nn.Module):
    """softplus(x) - log 2, with log 2 rounded to float32 exactly as torchmd-net does."""

    shift = float(torch.log(torch.tensor(2.0)))

    def forward(self, x: Tensor) -> Tensor:
        return F.softplus(x) - self.shift


RADIAL_BASES = {"expnorm": ExpNormalSmearing, "gauss": GaussianSmearing}
ACTIVATIONS = {
    "silu": nn.SiLU,
    "ssp": ShiftedSoftplus,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "mish": nn.Mish,
    "swish": nn.SiLU,  # torchmd-net's Swish with its default beta = 1
}


def check_choice(choices, name: str, what: str) -> str:
    """``name`` if it is one of ``choices``, else a ValueError that lists them."""
    if name not in choices:
        raise ValueError(f"unknown {what} {name!r}; choose one of {', '.join(sorted(choices))}")
    return name


def choose(table: dict, name: str, what: str):
    """``table[name]``, or a ValueError that lists the valid names."""
    return table[check_choice(table, name, what)]
