"""Confidence intervals for accuracies measured on small test sets.

A test split of 57 clips moves by 1.75 points per clip, so two accuracies a clip or two apart
are the same measurement. ``accuracy_interval`` gives the Wilson score interval of an accuracy
(the binomial proportion interval that stays inside [0, 1] and keeps close to its nominal
coverage for small n and accuracies near 1), computed by SciPy; ``format_accuracy`` writes it
the way tables and plot labels in the notebooks show it.

Example: 49 of 57 clips right -> 0.860, Wilson 95 % interval [0.747, 0.927].

References:
  1) E. B. Wilson, "Probable inference, the law of succession, and statistical inference",
     JASA 22 (1927) 209-212.
  2) L. D. Brown, T. T. Cai, A. DasGupta, "Interval estimation for a binomial proportion",
     Statistical Science 16 (2001) 101-133 (why not the normal approximation).
  3) ``scipy.stats.binomtest(...).proportion_ci(method="wilson")``.
"""
from __future__ import annotations

import numpy as np


def accuracy_interval(correct: int, total: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of the accuracy correct / total.

    Args:
        correct: clips classified right, 0 <= correct <= total.
        total: clips, > 0.
        confidence: in (0, 1).
    Returns:
        (low, high), 0 <= low <= correct / total <= high <= 1.
    Raises:
        ValueError: if total <= 0, correct is outside [0, total] or confidence outside (0, 1).
    Source: Wilson 1927; scipy.stats.binomtest(...).proportion_ci(method="wilson").
    """
    from scipy.stats import binomtest

    correct, total = int(correct), int(total)
    if total <= 0:
        raise ValueError(f"total must be > 0, got {total}")
    if not 0 <= correct <= total:
        raise ValueError(f"correct must be in [0, {total}], got {correct}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    ci = binomtest(correct, total).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def seed_summary(values, n: int) -> dict:
    """Accuracies of one configuration over several seeds: mean, sample sd, Wilson interval.

    Args:
        values: one accuracy per seed, each in [0, 1] (at least one).
        n: clips each accuracy was measured on; 0 when unknown (the interval is then NaN).
    Returns:
        {"mean", "sd" (NaN for one seed), "wilson95": [low, high] of the mean accuracy on n
        clips (test-set sampling alone; the seeds' spread is the sd), "n", "values"}, rounded
        to 4 decimals.
    Raises:
        ValueError: if values is empty.
    """
    import statistics

    values = [float(v) for v in values]
    if not values:
        raise ValueError("seed_summary needs at least one accuracy")
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else float("nan")
    lo, hi = accuracy_interval(round(mean * n), n) if n else (float("nan"), float("nan"))
    return {"mean": round(mean, 4), "sd": round(sd, 4), "wilson95": [round(lo, 4), round(hi, 4)],
            "n": n, "values": [round(v, 4) for v in values]}


def accuracy_with_interval(y_true, y_pred, confidence: float = 0.95) -> dict:
    """Accuracy of predictions with its Wilson interval.

    Args:
        y_true, y_pred: integer labels of shape (N,), N > 0.
    Returns:
        {"accuracy", "low", "high", "correct", "total"}.
    Raises:
        ValueError: if the shapes differ or N == 0.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(f"y_true {y_true.shape} and y_pred {y_pred.shape} must be equal 1-D shapes")
    correct, total = int((y_true == y_pred).sum()), len(y_true)
    low, high = accuracy_interval(correct, total, confidence)
    return {"accuracy": correct / total, "low": low, "high": high, "correct": correct, "total": total}


def format_accuracy(accuracy: float, total: int, digits: int = 3) -> str:
    """'0.860 [0.747, 0.927]': an accuracy on total clips with its Wilson 95 % interval.

    The number of right clips is recovered as round(accuracy * total).
    """
    low, high = accuracy_interval(round(accuracy * total), total)
    return f"{accuracy:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"
