"""benchmarks/bench_learning_curve.py: speaker-disjoint subsets and the trend fit."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_learning_curve as lc  # noqa: E402

from kwslab.dataset import Example  # noqa: E402


def _examples():
    # 8 speakers with 1..8 clips each, plus 10 silence clips without a speaker
    out = [Example(Path(f"w/s{k}_nohash_{i}.wav"), 2, f"s{k}") for k in range(8) for i in range(k + 1)]
    return out + [Example(None, 0, None) for _ in range(10)]


def test_speaker_subset_keeps_whole_speakers_and_the_same_fraction_of_silence():
    ex = _examples()
    idx = lc.speaker_subset(ex, 0.5, seed=0)
    speakers = {ex[i].speaker for i in idx if ex[i].speaker}
    assert len(speakers) == 4
    # every clip of a kept speaker, none of the others
    assert sorted(i for i in idx if ex[i].speaker) == [i for i, e in enumerate(ex) if e.speaker in speakers]
    assert sum(ex[i].speaker is None for i in idx) == 5
    assert list(idx) == sorted(set(idx.tolist()))
    assert len(lc.speaker_subset(ex, 1.0, seed=3)) == len(ex)
    assert set(lc.speaker_subset(ex, 0.25, seed=1).tolist()) != set(lc.speaker_subset(ex, 0.25, seed=2).tolist())
    with pytest.raises(ValueError, match="fraction=0"):
        lc.speaker_subset(ex, 0, seed=0)


def test_trend_is_a_log2_line_and_extrapolates_to_the_target():
    # accuracy 0.6, 0.7, 0.8 at 10, 20, 40 speakers: +0.1 per doubling -> 0.9 at 80
    points = [{"speakers": s, "float_test": a} for s, a in ((10, 0.6), (20, 0.7), (40, 0.8))]
    fit = lc.trend(points, 0.9)
    assert fit["per_doubling"] == pytest.approx(0.1) and fit["speakers_for_target"] == 80
    flat = [{"speakers": s, "float_test": 0.7} for s in (10, 20)]
    assert lc.trend(flat, 0.9)["speakers_for_target"] is None
    assert lc.trend(points[:1], 0.9) == {}
