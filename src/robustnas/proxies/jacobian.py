"""Input-Jacobian proxies, NAS-Bench-Suite-Zero semantics (spec zero-cost-proxies-and-rf-study.md
§1.3 epe_nas, §1.8 jacov).

Both read J = d(sum of all logits)/dx from the shared train-mode forward (``ev.input_jacobian()``),
one row per sample (nas-without-training #17: the Jacobian of the summed output), and correlate
rows, i.e. samples (#7). Correlations use ``numpy.corrcoef`` in float64 as the reference does.
A row with zero variance makes its correlations 0/0 (the reference then returns NaN): such cases
raise ``ProxyUndefined`` naming the cause.
"""
from __future__ import annotations

import numpy as np

from robustnas.proxies._evaluation import Evaluation
from robustnas.proxies._registry import ProxyUndefined, register

ONE_PASS = "1 forward + 1 backward to the input"
K = 1e-5  # the reference's regulariser in jacov and epe_nas


def _jacobian_rows(ev: Evaluation) -> np.ndarray:
    """J as float64 numpy [N, D]; rows with zero variance have no correlation (reference: NaN)."""
    rows = ev.input_jacobian().cpu().double().numpy()
    constant = np.flatnonzero(rows.std(axis=1) == 0)
    if constant.size:
        raise ProxyUndefined(
            f"input-Jacobian rows {constant[:5].tolist()}{'...' if constant.size > 5 else ''} are constant "
            "(the output does not depend on those inputs), so their correlations are undefined"
        )
    return rows


@register("jacov", needs_data=True, needs_labels=False, higher_is_better=True, passes=1.0, cost=ONE_PASS, uses=("input_grad",))
def jacov(ev: Evaluation) -> float:
    """Jacobian covariance score -sum_i[log(l_i+k) + 1/(l_i+k)] over eigenvalues of corrcoef(J) (Mellor et al. v1).

    The reference takes ``np.linalg.eig``; the matrix is symmetric, so ``eigvalsh`` gives the same
    eigenvalues without spurious complex parts (spec §1.8 pitfall).
    """
    rows = _jacobian_rows(ev)
    if rows.shape[0] < 2:
        raise ProxyUndefined("jacov correlates samples and needs a batch of at least 2")
    eigenvalues = np.linalg.eigvalsh(np.corrcoef(rows))
    score = -np.sum(np.log(eigenvalues + K) + 1.0 / (eigenvalues + K))
    if not np.isfinite(score):
        raise ProxyUndefined(f"eigenvalues of the correlation matrix give a non-finite score ({score})")
    return float(score)


@register("epe_nas", needs_data=True, needs_labels=True, higher_is_better=True, passes=0.95, cost=ONE_PASS, uses=("input_grad",))
def epe_nas(ev: Evaluation) -> float:
    """EPE-NAS (Lopes et al. 2021): per-class sums of log(|corrcoef(J_c)| + k), combined as in spec §1.3.

    C = number of logits. C <= 100: sum_c |s_c|. C > 100: s_c is divided by the class size,
    singleton classes are skipped (the reference's ``len()`` of a 0-d array raises), and the score
    is (1/#classes) sum_c sum_c' |s_c - s_c'|.
    """
    rows = ev.input_jacobian().cpu().double().numpy()
    labels = ev.labels().detach().cpu().numpy()
    if labels.ndim == 2:
        labels = labels.argmax(axis=1)  # one-hot targets, as the reference accepts
    if labels.shape != (rows.shape[0],):
        raise ProxyUndefined(f"epe_nas needs one integer label per sample, got labels of shape {labels.shape}")
    many_classes = ev.forward().logits.shape[-1] > 100
    per_class = _per_class_scores(rows, labels, many_classes)
    if not per_class:
        raise ProxyUndefined("with more than 100 classes epe_nas needs a class with at least 2 samples in the batch")
    scores = list(per_class.values())
    if many_classes:
        return float(sum(abs(a - b) for a in scores for b in scores) / len(scores))
    return float(sum(abs(s) for s in scores))


def _per_class_scores(rows: np.ndarray, labels: np.ndarray, many_classes: bool) -> dict[int, float]:
    """s_c = sum log(|R_c| + k) per class, classes in order of first appearance (as the reference)."""
    scores: dict[int, float] = {}
    for label in dict.fromkeys(labels.tolist()):
        members = rows[labels == label]
        if len(members) == 1 and many_classes:
            continue
        if np.any(members.std(axis=1) == 0):
            raise ProxyUndefined(
                f"an input-Jacobian row of class {label} is constant (the output does not depend on that "
                "input), so its correlations are undefined"
            )
        correlations = np.corrcoef(members[0] if len(members) == 1 else members)  # one row: 1.0
        score = np.sum(np.log(np.abs(correlations) + K))
        scores[label] = score / len(members) if many_classes else score
    return scores
