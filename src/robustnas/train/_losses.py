"""Training losses: standard CE, PGD-AT (Madry et al. 2018) and TRADES (Zhang et al. 2019), plus aux head.

BN mode of the training attack (``TrainConfig.attack_bn``):

* "eval" (default): the attack sees BN running statistics; the update then runs in train mode.
  This is what the CRoZe and ARNAS training codes do (crose-and-arnas.md §A.8, §B.5) and what
  TRADES' ``trades_loss`` does (``model.eval()`` around the attack), and what
  ``robustnas.attacks`` does anyway, so the attacks are used as they are.
* "train": the attack sees batch statistics (and drop path), as in Rice et al.'s PGD-AT of
  PreAct ResNet-18 (locuslab/robust_overfitting: ``attack_pgd`` runs inside ``model.train()``);
  every attack forward then also updates the BN running statistics, as there. Implemented by
  :class:`AttackView`, whose ``eval()`` leaves the wrapped network in train mode.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from robustnas.attacks import PGD, frozen_eval
from robustnas.errors import RobustnasError
from robustnas.train._config import TrainConfig

TRADES_START_STD = 0.001  # TRADES' start: x + 0.001 * N(0, 1) (trades.py)


class AttackView(nn.Module):
    """The network as the training attack sees it: logits only (no aux tuple) and, with
    ``keep_train_mode``, BN batch statistics during the attack (``eval()`` only flags the view)."""

    def __init__(self, model: nn.Module, keep_train_mode: bool) -> None:
        super().__init__()
        self.model = model
        self.keep_train_mode = keep_train_mode

    def train(self, mode: bool = True) -> "AttackView":
        self.training = mode
        if not self.keep_train_mode:
            self.model.train(mode)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return split_outputs(self.model(x))[0]


def split_outputs(out: torch.Tensor | tuple) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(logits, aux_logits or None): DARTS/ARNAS nets return a pair in train mode with the aux head on."""
    if isinstance(out, (tuple, list)):
        return out[0], out[1]
    return out, None


def batch_seed(seed: int, epoch: int, batch: int) -> int:
    """Seed of one batch's attack randomness, a function of (seed, epoch, batch) only (exact resume)."""
    return int(np.random.SeedSequence([seed, epoch, batch]).generate_state(1)[0])


def trades_kl(clean_logits: torch.Tensor, adv_logits: torch.Tensor) -> torch.Tensor:
    """TRADES' robust term: KL(p_clean || p_adv) summed over classes, averaged over the batch.

    TRADES' trades.py computes ``nn.KLDivLoss(size_average=False)(log_softmax(f(x_adv)),
    softmax(f(x)))`` / batch_size, i.e. sum_k p_clean,k (log p_clean,k - log p_adv,k) per sample,
    batch mean; the clean distribution is the target (not detached, as there).
    """
    return F.kl_div(F.log_softmax(adv_logits, dim=1), F.softmax(clean_logits, dim=1), reduction="batchmean")


def trades_examples(view: nn.Module, x: torch.Tensor, config: TrainConfig, seed: int) -> torch.Tensor:
    """TRADES' inner maximisation: L-inf sign steps on KL(p_clean || p_adv(x')) from x + 0.001 N(0,1),
    projected onto the eps-ball and [0,1] after each step (trades.py, distance 'l_inf')."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    x = x.detach()
    low, high = (x - config.attack_eps).clamp(min=0), (x + config.attack_eps).clamp(max=1)
    with frozen_eval(view):
        with torch.no_grad():
            p_clean = F.softmax(view(x), dim=1)
        noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_adv = (x + TRADES_START_STD * noise).clamp(0, 1)
        for _ in range(config.attack_steps):
            with torch.enable_grad():
                x_adv.requires_grad_(True)
                kl = F.kl_div(F.log_softmax(view(x_adv), dim=1), p_clean, reduction="sum")
                (grad,) = torch.autograd.grad(kl, x_adv)
            x_adv = torch.min(torch.max(x_adv.detach() + config.attack_step * grad.sign(), low), high)
    return x_adv


def training_loss(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, config: TrainConfig, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(loss, logits of the main CE term) for one batch; ``model`` in train mode, x in [0,1].

    standard: CE(f(x)); pgd: CE(f(x_pgd)) (Madry et al. 2018, uniform random start);
    trades: CE(f(x)) + beta * KL(p(x) || p(x_trades)). With ``aux_weight`` > 0, plus
    aux_weight * CE(aux(.)) of the same forward as the main CE (DARTS train.py; under PGD-AT the
    aux head thus sees the adversarial batch, whereas ARNAS' code takes it from an extra clean
    forward, crose-and-arnas.md §B.5, a quirk not reproduced here).
    """
    view = AttackView(model, keep_train_mode=config.attack_bn == "train")
    if config.adversarial == "pgd":
        x = PGD(config.attack_eps, config.attack_step, config.attack_steps, start=config.attack_start,
                seed=seed)(view, x, y)
    logits, aux = split_outputs(model(x))
    loss = F.cross_entropy(logits, y)
    if config.adversarial == "trades":
        x_adv = trades_examples(view, x, config, seed)
        loss = loss + config.trades_beta * trades_kl(logits, split_outputs(model(x_adv))[0])
    if config.aux_weight > 0:
        if aux is None:
            raise RobustnasError(
                "aux_weight > 0 but the model returned no auxiliary logits in train mode; build it "
                "with auxiliary=True (DARTS/ARNAS nets) or set aux_weight=0"
            )
        loss = loss + config.aux_weight * F.cross_entropy(aux, y)
    return loss, logits


def optimizer_step(
    model: nn.Module, optimizer: torch.optim.Optimizer, loss: torch.Tensor, grad_clip: float,
    scaler: torch.amp.GradScaler,
) -> None:
    """Backward, clip the total gradient L2 norm to ``grad_clip`` (0 = off; after unscaling), step."""
    optimizer.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    scaler.step(optimizer)
    scaler.update()
