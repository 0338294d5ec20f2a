"""kwslab.stats: Wilson intervals, checked by hand and against the closed form."""
import math

import pytest

from kwslab import stats


def _wilson(k, n, z=1.959963984540054):
    # Wilson 1927: (p + z^2/2n +- z sqrt(p(1-p)/n + z^2/4n^2)) / (1 + z^2/n)
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def test_accuracy_interval_matches_the_closed_form():
    # 49 of 57: p = 0.8596; the interval [0.747, 0.927] quoted in the module docstring
    low, high = stats.accuracy_interval(49, 57)
    assert (low, high) == pytest.approx(_wilson(49, 57), abs=1e-9)
    assert (round(low, 3), round(high, 3)) == (0.747, 0.927)


def test_accuracy_interval_at_zero_and_all_right_stays_in_unit_range():
    # k = 0, n = 10: low = 0, high = z^2/n / (1 + z^2/n) = 0.3842 / 1.3842 = 0.2775
    assert stats.accuracy_interval(0, 10) == pytest.approx((0.0, 0.27754), abs=1e-5)
    low, high = stats.accuracy_interval(10, 10)
    assert high == pytest.approx(1.0) and low == pytest.approx(1 - 0.27754, abs=1e-5)


def test_one_clip_of_57_is_inside_the_interval():
    # a one-clip difference (1.75 points) is far smaller than the interval's width (~18 points)
    low, high = stats.accuracy_interval(49, 57)
    assert low < 48 / 57 < 50 / 57 < high


def test_accuracy_with_interval_counts_and_format():
    r = stats.accuracy_with_interval([0, 1, 1, 2], [0, 1, 2, 2])
    assert (r["correct"], r["total"], r["accuracy"]) == (3, 4, 0.75)
    assert (r["low"], r["high"]) == pytest.approx(_wilson(3, 4))
    assert stats.format_accuracy(49 / 57, 57) == "0.860 [0.747, 0.927]"


@pytest.mark.parametrize("args, match", [((1, 0), "total must be > 0"), ((5, 4), r"correct must be in \[0, 4\]"),
                                         ((-1, 4), "correct must be"), ((1, 4, 1.0), "confidence")])
def test_accuracy_interval_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        stats.accuracy_interval(*args)


def test_accuracy_with_interval_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="equal 1-D shapes"):
        stats.accuracy_with_interval([0, 1], [0])


def test_seed_summary_is_mean_sample_sd_and_the_wilson_interval_of_the_mean():
    from kwslab.stats import accuracy_interval, seed_summary

    s = seed_summary([0.8339, 0.8441, 0.8407], 295)
    assert s["mean"] == pytest.approx(0.8396, abs=1e-4)
    assert s["sd"] == pytest.approx(0.0052, abs=1e-4)  # sample sd (n - 1), not population
    lo, hi = accuracy_interval(round(0.83957 * 295), 295)
    assert s["wilson95"] == [round(lo, 4), round(hi, 4)] and s["n"] == 295
    one = seed_summary([0.9], 0)
    assert math.isnan(one["sd"]) and all(math.isnan(v) for v in one["wilson95"])
    with pytest.raises(ValueError, match="at least one"):
        seed_summary([], 10)
