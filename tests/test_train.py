"""robustnas.train: exact resume after a kill, PGD-AT beating standard training on PGD accuracy
(embedded CIFAR-10 sample), schedules, clipping, cutout, aux head, TRADES' loss, checkpoint
checks, config validation and the PreAct ResNet-18 baseline.

Training runs use tiny BN CNNs on the embedded sample downscaled to 16x16 (2000 train images,
1017 held-out test images), so the whole file takes well under a minute on one CPU thread.
"""
from __future__ import annotations

import copy
import math
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from robustnas.attacks import PGD
from robustnas.data import NormalizedModel, load_dataset
from robustnas.errors import RobustnasError
from robustnas.spaces._darts_ops import DartsNetwork
from robustnas.train import TrainConfig, cutout, drop_path_at, lr_at, preact_resnet18, trades_kl, train, training_loss
from robustnas.train._batches import as_pixels, cutout_centres, epoch_batches, eval_batches, to_tensor
from robustnas.train._log import COLUMNS, read_csv
from robustnas.train._losses import AttackView, optimizer_step, trades_examples


pytestmark = pytest.mark.usefixtures("one_thread")


def downscale(images: np.ndarray, factor: int = 2) -> np.ndarray:
    """uint8 NHWC -> float32 [0,1] NHWC, averaging factor x factor blocks."""
    n, h, w, c = images.shape
    blocks = images.reshape(n, h // factor, factor, w // factor, factor, c).astype(np.float32)
    return blocks.mean((2, 4)) / 255


def data16_arrays():
    """(train, held-out) pairs: the embedded sample's 2000 train and 1017 test images at 16x16."""
    train_set, test_set = load_dataset(), load_dataset(split="test")
    return (downscale(train_set.images), train_set.labels), (downscale(test_set.images), test_set.labels)


@pytest.fixture(scope="module")
def data16():
    return data16_arrays()


def tiny(width: int = 16, seed: int = 0, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(2 * width, 10),
    )
    return NormalizedModel.for_dataset(net, "cifar10")


def subset(pair, count: int):
    x, y = pair
    return x[:count], y[:count]


# --- the CPU evidence of §5 -----------------------------------------------------------------

def test_pgd_training_beats_standard_training_on_pgd_accuracy(data16, tmp_path):
    """Same network, seed and budget (2 epochs, cosine lr 0.1, batch 50): PGD-3 AT (eps 8/255, step
    4/255) vs standard training, PGD-10 accuracy (eps 8/255, step 2/255) on the 1017 held-out images.
    Measured (seed 0): standard 6.8% vs AT 17.3% PGD accuracy (clean 22.4% vs 21.5%); margins over
    seeds 0-4: +10.5, +11.0, +9.2, +6.6, +8.4 pp. At 4/255 they are +3.7, +4.6, +3.3, +3.3, +1.6 pp,
    too close to the noise of 1017 images (one standard error of a difference is about 1.5 pp),
    hence 8/255, the CIFAR budget of every protocol in the specs."""
    train_data, val_data = data16
    results = {}
    for adversarial in (None, "pgd"):
        config = TrainConfig(
            epochs=2, batch_size=50, lr=0.1, schedule="cosine", adversarial=adversarial,
            attack_eps=8 / 255, attack_step=4 / 255, attack_steps=3,
            eval_eps=8 / 255, eval_step=2 / 255, eval_steps=10, seed=0,
        )
        run = train(tiny(), train_data, val_data, config, tmp_path / str(adversarial), progress=False)
        results[adversarial] = run.last
    standard, adversarial = results[None], results["pgd"]
    assert adversarial["val_pgd_acc"] >= standard["val_pgd_acc"] + 0.05
    assert standard["val_pgd_acc"] < 0.10 < 0.14 < adversarial["val_pgd_acc"]  # 0.068 and 0.173 here
    assert min(standard["val_clean_acc"], adversarial["val_clean_acc"]) > 0.15  # both learned (chance: 0.10)


# --- checkpoints and exact resume ------------------------------------------------------------

class Killed(Exception):
    pass


def kill(epoch: int, row: dict) -> None:
    """on_epoch_end hook that stops a run right after epoch 1's checkpoint, like a kill would."""
    if epoch == 1:
        raise Killed


def test_killed_run_resumes_to_the_same_weights_and_log(data16, tmp_path):
    """3 epochs uninterrupted vs killed after epoch 1 and resumed into a differently initialised
    model: equal weights and BN statistics bit for bit, equal log rows (but seconds). The run
    uses every source of randomness: shuffling, crop/flip, cutout, PGD starts, dropout (global
    torch RNG), attacks in train-BN mode."""
    train_data, val_data = subset(data16[0], 200), subset(data16[1], 60)
    config = TrainConfig(
        epochs=3, batch_size=40, lr=0.05, schedule="cosine", cutout=4, adversarial="pgd", attack_bn="train",
        attack_eps=8 / 255, attack_step=4 / 255, attack_steps=2, eval_steps=2, seed=3,
    )
    whole = tiny(width=8, dropout=0.2)
    reference = train(whole, train_data, val_data, config, tmp_path / "whole", progress=False)

    with pytest.raises(Killed):
        train(tiny(width=8, dropout=0.2), train_data, val_data, config, tmp_path / "killed",
              on_epoch_end=kill, progress=False)
    assert len(read_csv(tmp_path / "killed" / "log.csv")) == 1
    resumed_model = tiny(width=8, seed=99, dropout=0.2)
    resumed = train(resumed_model, train_data, val_data, config, tmp_path / "killed", progress=False)

    assert resumed.resumed_after == 1 and len(resumed.log) == 3
    expected, got = whole.state_dict(), resumed_model.state_dict()
    assert expected.keys() == got.keys()
    assert all(torch.equal(expected[key], got[key]) for key in expected)
    without_time = lambda rows: [{k: v for k, v in row.items() if k != "seconds"} for row in rows]  # noqa: E731
    assert without_time(resumed.log) == without_time(reference.log)
    assert [row["lr"] for row in resumed.log] == [lr_at(config, epoch) for epoch in range(3)]
    assert read_csv(tmp_path / "killed" / "log.csv") == resumed.log
    assert list(read_csv(tmp_path / "killed" / "log.csv")[0]) == list(COLUMNS)
    final = torch.load(resumed.final, weights_only=True)
    assert all(torch.equal(final[key], got[key]) for key in got)
    assert (tmp_path / "killed" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a finished run resumes to itself: nothing left to train
    again = train(resumed_model, train_data, val_data, config, tmp_path / "killed", progress=False)
    assert again.resumed_after == 3 and again.log == resumed.log


KILLED_RUN = TrainConfig(epochs=3, batch_size=40, lr=0.05, adversarial="pgd", attack_steps=2, eval_steps=2, seed=4)


def killed_run_data(data16):
    return subset(data16[0], 120), subset(data16[1], 40)


def test_sigkilled_process_resumes_to_the_same_weights(data16, tmp_path):
    """A real kill: a child process trains and SIGKILLs itself right after epoch 1's checkpoint;
    this process resumes the run directory and matches an uninterrupted run bit for bit."""
    child = textwrap.dedent(f"""
        import os, signal, sys
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        import torch
        torch.set_num_threads(1)
        from test_train import KILLED_RUN, data16_arrays, killed_run_data, tiny
        from robustnas.train import train
        kill = lambda epoch, row: os.kill(os.getpid(), signal.SIGKILL)
        train(tiny(width=8, dropout=0.2), *killed_run_data(data16_arrays()), KILLED_RUN, {str(tmp_path / "run")!r},
              on_epoch_end=kill, progress=False)
    """)
    done = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr
    whole = tiny(width=8, dropout=0.2)
    train(whole, *killed_run_data(data16), KILLED_RUN, tmp_path / "whole", progress=False)
    resumed = tiny(width=8, seed=5, dropout=0.2)
    result = train(resumed, *killed_run_data(data16), KILLED_RUN, tmp_path / "run", progress=False)
    assert result.resumed_after == 1
    assert all(torch.equal(value, resumed.state_dict()[key]) for key, value in whole.state_dict().items())


def test_checkpoint_contents_load_with_weights_only(data16, tmp_path):
    train_data, val_data = subset(data16[0], 40), subset(data16[1], 10)
    config = TrainConfig(epochs=1, batch_size=20, eval_steps=1)
    train(tiny(width=4), train_data, val_data, config, tmp_path, progress=False)
    saved = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert {"format", "version", "epoch", "config", "model", "optimizer", "scaler", "log", "rng"} <= saved.keys()
    assert saved["epoch"] == 1 and saved["config"] == config.to_dict()
    assert isinstance(saved["rng"]["numpy"]["keys"], torch.Tensor) and saved["rng"]["numpy"]["keys"].shape == (624,)
    assert isinstance(saved["rng"]["python"]["words"], torch.Tensor) and saved["rng"]["python"]["words"].shape == (625,)


def test_resume_refuses_another_config_or_model_or_a_broken_file(data16, tmp_path):
    train_data, val_data = subset(data16[0], 40), subset(data16[1], 10)
    config = TrainConfig(epochs=2, batch_size=20, lr=0.05, eval_steps=1)
    with pytest.raises(Killed):
        train(tiny(width=4), train_data, val_data, config, tmp_path, on_epoch_end=kill, progress=False)
    other = TrainConfig(epochs=2, batch_size=20, lr=0.1, eval_steps=1, cutout=8)
    with pytest.raises(RobustnasError, match=r"another config \(cutout: 0 -> 8; lr: 0.05 -> 0.1\)"):
        train(tiny(width=4), train_data, val_data, other, tmp_path, progress=False)
    shapes = r"does not match the model \(shape: model.0.weight \[4, 3, 3, 3\] vs model \[6, 3, 3, 3\]"
    with pytest.raises(RobustnasError, match=shapes):
        train(tiny(width=6), train_data, val_data, config, tmp_path, progress=False)
    keys = r"unexpected: model.0.weight, .* and 11 more; shape: model.1.weight \[4\] vs model \[10, 768\]"
    with pytest.raises(RobustnasError, match=keys):
        train(NormalizedModel(nn.Sequential(nn.Identity(), nn.Linear(768, 10)), (0, 0, 0), (1, 1, 1)),
              train_data, val_data, config, tmp_path, progress=False)
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(RobustnasError, match="not a readable checkpoint"):
        train(tiny(width=4), train_data, val_data, config, tmp_path, progress=False)


# --- schedules, clipping, cutout ---------------------------------------------------------------

def test_cosine_and_step_schedules_give_the_exact_lr_per_epoch():
    cosine = TrainConfig(epochs=4, lr=0.1, schedule="cosine")
    assert [lr_at(cosine, e) for e in range(4)] == pytest.approx(
        [0.1, 0.1 * (1 + math.sqrt(0.5)) / 2, 0.05, 0.1 * (1 - math.sqrt(0.5)) / 2], abs=1e-16
    )
    warm = TrainConfig(epochs=50, lr=0.025, lr_min=0.001, schedule="cosine")  # ARNAS search (§B.3)
    step = TrainConfig(epochs=200, lr=0.1, milestones=(100, 150), gamma=0.1)  # CRoZe/ARNAS (§A.8, §B.5)
    assert [lr_at(step, e) for e in (0, 99, 100, 149, 150, 199)] == pytest.approx([0.1, 0.1, 0.01, 0.01, 0.001, 0.001])
    for config, make in (
        (warm, lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=50, eta_min=0.001)),
        (step, lambda o: torch.optim.lr_scheduler.MultiStepLR(o, milestones=[100, 150], gamma=0.1)),
    ):
        optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=config.lr)
        scheduler, torch_lrs = make(optimizer), []
        for _ in range(config.epochs):
            torch_lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        assert [lr_at(config, e) for e in range(config.epochs)] == pytest.approx(torch_lrs, rel=1e-12)
    drop_path = TrainConfig(epochs=4, drop_path_prob=0.2)
    assert [drop_path_at(drop_path, e) for e in range(4)] == pytest.approx([0.0, 0.05, 0.1, 0.15], abs=1e-16)


def test_gradient_clipping_bounds_the_total_norm():
    torch.manual_seed(0)
    model = nn.Linear(10, 3)
    x, y = 100 * torch.randn(8, 10), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    raw = copy.deepcopy(model)
    F.cross_entropy(raw(x), y).backward()
    raw_norm = torch.cat([p.grad.flatten() for p in raw.parameters()]).norm()
    assert raw_norm > 10
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    optimizer_step(model, optimizer, F.cross_entropy(model(x), y), 0.5, scaler)
    grads = [p.grad for p in model.parameters()]
    assert torch.cat([g.flatten() for g in grads]).norm() == pytest.approx(0.5, rel=1e-5)
    for old, param, grad, raw_param in zip(before, model.parameters(), grads, raw.parameters()):
        torch.testing.assert_close(grad, raw_param.grad * 0.5 / raw_norm)  # same direction, scaled
        torch.testing.assert_close(param.detach(), old - 0.1 * grad)
    optimizer_step(raw, torch.optim.SGD(raw.parameters(), lr=0.1), F.cross_entropy(raw(x), y), 0.0, scaler)
    assert torch.cat([p.grad.flatten() for p in raw.parameters()]).norm() > 10  # 0 = off


def test_cutout_zeroes_one_square_clipped_at_the_borders():
    x = torch.ones(4, 3, 32, 32)
    out = cutout(x, 16, np.array([[16, 16], [0, 0], [0, 20], [31, 5]]))
    zeros = (out == 0).all(dim=1)  # same square in every channel
    assert ((out == 0).any(dim=1) == zeros).all()
    assert zeros.sum((1, 2)).tolist() == [256, 64, 128, 9 * 13]  # 16x16; 8x8; 8x16; rows 23-31 x cols 0-12
    assert zeros[0, 8:24, 8:24].all() and zeros[1, :8, :8].all()
    assert zeros[2, :8, 12:28].all() and zeros[3, 23:, :13].all()
    assert torch.equal(x, torch.ones(4, 3, 32, 32))  # input untouched
    assert cutout(torch.ones(1, 1, 8, 8), 3, np.array([[4, 4]])).eq(0).sum() == 9  # odd length keeps its size


def test_batches_are_contiguous_nchw_copies():
    """NHWC pixels -> C-contiguous NCHW (a transposed view made pyautoattack's APGD-T crash)."""
    images = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    x = to_tensor(images)
    assert x.is_contiguous() and x.shape == (2, 3, 4, 4)
    assert x[1, 2, 3, 0].item() == np.float32(images[1, 3, 0, 2]) / np.float32(255)
    x[0, 0, 0, 0] = 7.0  # a copy: the (possibly read-only) pixels are untouched
    assert images[0, 0, 0, 0] == 0
    batch, labels = next(eval_batches(as_pixels((images, np.array([3, 5])), "test_data"), 2))
    assert batch.is_contiguous() and labels.tolist() == [3, 5]


def test_epoch_batches_are_seeded_and_cut_one_square_per_image():
    images = (np.full((120, 16, 16, 3), 255, dtype=np.uint8), np.arange(120) % 10)
    first = list(epoch_batches(as_pixels(images, "train_data"), 50, seed=1, epoch=2, augment=False, cutout_length=6))
    again = list(epoch_batches(as_pixels(images, "train_data"), 50, seed=1, epoch=2, augment=False, cutout_length=6))
    assert len(first) == 2  # 120 images, batch 50: the short batch is dropped
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    centres = cutout_centres(50, 16, 16, np.random.default_rng(0))
    for x, _ in first:
        for mask in (x == 0).all(dim=1):
            rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
            assert mask.sum() == len(rows) * len(cols) > 0  # one axis-aligned rectangle
            assert len(rows) == 6 or rows[0] == 0 or rows[-1] == 15  # full size unless cut by a border
            assert len(cols) == 6 or cols[0] == 0 or cols[-1] == 15
            assert len(rows) >= 3 and len(cols) >= 3  # a centre inside the image keeps half the square
    assert centres.min() >= 0 and centres.max() <= 15
    # the same images as float NCHW tensors give the same batches as uint8 NHWC arrays
    as_float = (torch.from_numpy(images[0]).permute(0, 3, 1, 2).float() / 255, torch.from_numpy(images[1]))
    floats = list(epoch_batches(as_pixels(as_float, "train_data"), 50, seed=1, epoch=2, augment=True, cutout_length=6))
    uints = list(epoch_batches(as_pixels(images, "train_data"), 50, seed=1, epoch=2, augment=True, cutout_length=6))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(floats, uints))


# --- losses ----------------------------------------------------------------------------------

def test_aux_head_loss_is_added_with_its_weight_on_a_darts_net():
    torch.manual_seed(0)
    model = NormalizedModel.for_dataset(DartsNetwork("DARTS_V2", C=4, layers=3, auxiliary=True), "cifar10")
    x, y = torch.rand(6, 3, 32, 32), torch.tensor([0, 1, 2, 3, 4, 5])
    model.train()
    logits, aux = model(x)  # train mode: (logits, aux_logits)
    assert logits.shape == aux.shape == (6, 10)
    model.eval()
    assert model(x).shape == (6, 10)  # eval mode: logits only
    model.train()
    loss, used = training_loss(model, x, y, TrainConfig(aux_weight=0.4), seed=0)
    torch.testing.assert_close(used, logits)
    torch.testing.assert_close(loss, F.cross_entropy(logits, y) + 0.4 * F.cross_entropy(aux, y))
    with pytest.raises(RobustnasError, match="no auxiliary logits"):
        training_loss(tiny(width=4), torch.rand(4, 3, 16, 16), y[:4], TrainConfig(aux_weight=0.4), seed=0)


def test_darts_net_trains_with_aux_head_drop_path_and_pgd(tmp_path):
    """train() end to end on a small DARTS net: aux loss, DARTS' linear drop-path schedule, PGD-AT."""
    images = load_dataset(limit_per_class=8)
    torch.manual_seed(0)
    net = DartsNetwork("DARTS_V2", C=4, layers=3, auxiliary=True)
    config = TrainConfig(epochs=2, batch_size=20, aux_weight=0.4, drop_path_prob=0.2, adversarial="pgd",
                         attack_steps=1, eval_steps=1, cutout=16)
    model = NormalizedModel.for_dataset(net, "cifar10")
    result = train(model, images, images.subset(range(10)), config, tmp_path, progress=False)
    assert net.drop_path_prob == pytest.approx(0.1)  # 0.2 * epoch 1 / 2 epochs
    assert [row["epoch"] for row in result.log] == [1, 2] and all(row["val_pgd_acc"] is not None for row in result.log)


def test_trades_kl_is_batchmean_kl_of_clean_to_adversarial():
    """TRADES trades.py: KLDivLoss(sum)(log_softmax(adv), softmax(clean)) / batch = mean_i KL(p_clean || p_adv)."""
    clean = torch.tensor([[2.0, 0.0, -1.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    adv = torch.tensor([[0.5, 1.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    p = [math.exp(v) / (math.exp(2) + 1 + math.exp(-1)) for v in (2, 0, -1)]
    q = [math.exp(v) / (math.exp(0.5) + math.exp(1) + 1) for v in (0.5, 1, 0)]
    kl = sum(pi * math.log(pi / qi) for pi, qi in zip(p, q))
    assert kl == pytest.approx(0.6199104872887976, abs=1e-15)
    assert float(trades_kl(clean, adv)) == pytest.approx(kl / 2, abs=1e-15)  # second sample: KL 0
    assert float(trades_kl(adv, clean)) == pytest.approx(0.7215866346183051 / 2, abs=1e-15)  # not symmetric


def test_trades_loss_is_clean_ce_plus_beta_kl_at_its_own_inner_maximum():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 5))
    x, y = torch.rand(8, 3, 4, 4), torch.arange(8) % 5
    config = TrainConfig(adversarial="trades", trades_beta=6.0, attack_eps=0.031, attack_step=0.007, attack_steps=10)
    loss, logits = training_loss(model, x, y, config, seed=7)
    x_adv = trades_examples(AttackView(model, keep_train_mode=False), x, config, seed=7)
    torch.testing.assert_close(logits, model(x))
    torch.testing.assert_close(loss, F.cross_entropy(model(x), y) + 6.0 * trades_kl(model(x), model(x_adv)))
    assert (x_adv - x).abs().max() <= 0.031 + 1e-7 and x_adv.min() >= 0 and x_adv.max() <= 1
    start = (x + 0.001 * torch.randn(x.shape, generator=torch.Generator().manual_seed(7))).clamp(0, 1)
    with torch.no_grad():
        assert float(trades_kl(model(x), model(x_adv))) > 10 * float(trades_kl(model(x), model(start)))


def test_pgd_training_attack_bn_mode_eval_or_train():
    """attack_bn='eval': x_adv is PGD against running statistics, one BN update (the training
    forward); 'train': every attack forward uses and updates batch statistics (steps + 1 updates)."""
    x, y = torch.rand(10, 3, 16, 16), torch.arange(10)
    for mode, updates in (("eval", 1), ("train", 4)):
        model = tiny(width=4)
        model.train()
        reference = copy.deepcopy(model)
        config = TrainConfig(adversarial="pgd", attack_bn=mode, attack_step=2 / 255, attack_steps=3)
        loss, _ = training_loss(model, x, y, config, seed=5)
        assert int(model.model[1].num_batches_tracked) == updates
        assert model.training and all(m.training for m in model.modules())
        if mode == "eval":
            x_adv = PGD(8 / 255, 2 / 255, 3, seed=5)(reference, x, y)
            torch.testing.assert_close(loss, F.cross_entropy(reference(x_adv), y))


# --- config and device checks ----------------------------------------------------------------

@pytest.mark.parametrize(
    "changes, message",
    [
        ({"epochs": 0}, r"epochs must be >= 1, got epochs=0"),
        ({"batch_size": 1}, r"batch_size must be >= 2"),
        ({"schedule": "linear"}, r"schedule must be one of step, cosine, got schedule='linear'"),
        ({"milestones": (150, 100)}, r"milestones must be increasing"),
        ({"lr_min": 0.2}, r"lr_min must be in \[0, lr\], got lr_min=0.2, lr=0.1"),
        ({"adversarial": "fgsm"}, r"adversarial must be None, 'pgd' or 'trades'"),
        ({"attack_bn": "frozen"}, r"attack_bn must be 'eval' or 'train'"),
        ({"attack_start": "normal"}, r"attack_start must be one of uniform, gaussian, none, got attack_start='normal'"),
        ({"attack_steps": 0}, r"the training attack needs"),
        ({"drop_path_prob": 1.0}, r"drop_path_prob must be in \[0, 1\)"),
        ({"lr": "0.1"}, r"TrainConfig.lr must be a finite number, got '0.1'"),
        ({"epochs": 2.5}, r"TrainConfig.epochs must be an integer"),
        ({"amp": 1}, r"TrainConfig.amp must be True or False"),
    ],
)
def test_config_validation_names_the_field(changes, message):
    with pytest.raises(RobustnasError, match=message):
        TrainConfig(**changes)


def test_cpu_amp_drop_path_and_data_errors(data16, tmp_path):
    train_data, val_data = subset(data16[0], 40), subset(data16[1], 10)
    with pytest.raises(RobustnasError, match="amp=True needs the model on a CUDA device"):
        train(tiny(width=4), train_data, val_data, TrainConfig(amp=True), tmp_path)
    with pytest.raises(RobustnasError, match="no drop_path_prob attribute"):
        train(tiny(width=4), train_data, val_data, TrainConfig(batch_size=20, drop_path_prob=0.2), tmp_path)
    with pytest.raises(RobustnasError, match="need at least batch_size=128 training images"):
        train(tiny(width=4), train_data, val_data, TrainConfig(), tmp_path)
    with pytest.raises(RobustnasError, match=r"float images must be \[0,1\] pixels"):
        as_pixels((train_data[0] * 255, train_data[1]), "train_data")
    assert not list(tmp_path.iterdir())  # nothing written before the checks


# --- the baseline network --------------------------------------------------------------------

def test_preact_resnet18_parameter_counts():
    """He et al. / Rice et al. (final BN-ReLU): 11,172,170; kuangliu's copy without it: 11,171,146."""
    with_bn, without_bn = preact_resnet18(10), preact_resnet18(10, bn_before_fc=False)
    assert sum(p.numel() for p in with_bn.parameters()) == 11_172_170
    assert sum(p.numel() for p in without_bn.parameters()) == 11_171_146
    assert sum(p.numel() for p in preact_resnet18(100).parameters()) == 11_172_170 + 90 * 513
    assert sum(1 for block in with_bn.blocks if block.shortcut is not None) == 3
    assert with_bn.eval()(torch.rand(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("start", ["uniform", "gaussian", "none"])
def test_training_attack_starts_as_configured(start, monkeypatch):
    import robustnas.train._losses as losses

    seen = []
    real = losses.PGD
    monkeypatch.setattr(losses, "PGD", lambda *a, **k: seen.append(k["start"]) or real(*a, **k))
    model = tiny(width=4)
    training_loss(model, torch.rand(4, 3, 16, 16), torch.tensor([0, 1, 2, 3]),
                  TrainConfig(adversarial="pgd", attack_steps=1, attack_start=start), seed=0)
    assert seen == [start]
