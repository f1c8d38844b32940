"""Per-dataset normalisation constants and a model wrapper that normalises inside the network.

Attacks and corruptions work on [0,1] pixels (an epsilon of 8/255 is a pixel budget), so models
are wrapped in NormalizedModel and never see pre-normalised inputs.

Constants (per channel R, G, B; std is the standard deviation over all pixels of the train split):

* CIFAR-10, CIFAR-100 and ImageNet16-120: the values NB201 trains with (Dong & Yang 2020,
  ``xautodl/datasets/get_dataset_with_transform.py``); tests recompute the CIFAR ones from the
  raw subsets in shared/data.
* Tiny-ImageNet-200: mean (0.4802, 0.4481, 0.3975), std (0.2770, 0.2691, 0.2821), the
  full-train-split values in common use; the 20,000-image train subset in shared/data gives
  the same to within 0.005 (checked by a test).
* SVHN: mean (0.4377, 0.4438, 0.4728), std (0.1980, 0.2010, 0.1970), the train-split values
  in common use (e.g. widespread SVHN training code); not recomputed here, since no SVHN copy
  is available to this project.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from robustnas.data._names import CIFAR10, CIFAR100, IMAGENET16_PREFIX, SVHN, TINY_IMAGENET, canonical_dataset
from robustnas.errors import RobustnasError

Triple = tuple[float, float, float]

NORMALIZATION: dict[str, tuple[Triple, Triple]] = {
    CIFAR10: ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    CIFAR100: ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    IMAGENET16_PREFIX
    + "120": ((122.68 / 255, 116.66 / 255, 104.01 / 255), (63.22 / 255, 61.26 / 255, 65.09 / 255)),
    TINY_IMAGENET: ((0.4802, 0.4481, 0.3975), (0.2770, 0.2691, 0.2821)),
    SVHN: ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
}


def normalization(dataset: str) -> tuple[Triple, Triple]:
    """(mean, std) of a dataset in [0,1] pixel units; every ImageNet16-N subset uses NB201's values."""
    name = canonical_dataset(dataset)
    if name.startswith(IMAGENET16_PREFIX):
        name = IMAGENET16_PREFIX + "120"
    if name not in NORMALIZATION:
        raise RobustnasError(
            f"no normalisation constants for dataset {dataset!r}; known: {', '.join(NORMALIZATION)} "
            "(or pass mean and std to NormalizedModel yourself)"
        )
    return NORMALIZATION[name]


class NormalizedModel(nn.Module):
    """``model((x - mean) / std)`` for x in [0,1] pixels, [B,3,H,W]; gradients reach the pixels."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise RobustnasError(f"mean and std need 3 values each and std > 0, got mean={mean}, std={std}")
        self.model = model
        # Not persistent: the state_dict stays the wrapped model's, the constants come from the code.
        self.register_buffer(
            "mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False
        )
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    @classmethod
    def for_dataset(cls, model: nn.Module, dataset: str) -> "NormalizedModel":
        """Wrap ``model`` with the standard constants of ``dataset`` (see NORMALIZATION)."""
        mean, std = normalization(dataset)
        return cls(model, mean, std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)
