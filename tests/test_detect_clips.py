"""Tests for the one-clip and streaming helpers of notebook 4: feature mapping (frontend), trials, clip picking (detect), timeline plot, one clip in TFLM."""
from dataclasses import dataclass, field

import numpy as np
import pytest

from kwslab import detect, export, frontend, plots
from kwslab.config import Config
from kwslab.detect import Detection, Keyword

SCALE = 666 * 10 / 65536  # 0.10162353515625


def test_quantize_features_rounds_half_away_from_zero_and_clamps():
    # scale 0.5, zero point -128: f / scale = [0, 0.5, 1.5, 2, 400]
    # round half away from zero -> [0, 1, 2, 2, 400]; + (-128) -> [-128, -127, -126, -126, 272 -> 127]
    q = frontend.quantize_features(np.array([0.0, 0.25, 0.75, 1.0, 200.0]), 0.5, -128)
    assert q.dtype == np.int8
    assert q.tolist() == [-128, -127, -126, -126, 127]


def test_quantize_features_rejects_non_positive_scale():
    with pytest.raises(ValueError, match="scale"):
        frontend.quantize_features(np.zeros(2), 0.0, -128)


def test_feature_mapping_hand_values():
    # raw 0: 333 // 666 - 128 = -128; raw 333: 85581 // 666 = 128 -> 0;
    # raw 334: 85837 // 666 = 128 (85837 - 85248 = 589 < 666) -> 0; raw 700: 179533 // 666 = 269 -> 141 -> 127
    m = frontend.feature_mapping(np.array([0, 333, 334, 700]))
    assert m["device_int8"].tolist() == [-128, 0, 0, 127]
    assert m["float"].tolist() == [0.0, 13.0078125, 13.046875, 27.34375]  # raw * 10 / 256, exact in binary
    assert m["quantized_float"].tolist() == [-128, 0, 0, 127]


def test_device_scale_reproduces_device_int8_for_every_uint16():
    m = frontend.feature_mapping(np.arange(65536), SCALE, -128)
    np.testing.assert_array_equal(m["quantized_float"], m["device_int8"])


def test_a_slightly_wrong_scale_breaks_the_match():
    # scale 0.1 instead of 0.10162: raw 600 -> f = 23.4375 -> 234 - 128 = 106, device 153933 // 666 = 231 -> 103
    m = frontend.feature_mapping(np.array([600]), 0.1, -128)
    assert (int(m["quantized_float"][0]), int(m["device_int8"][0])) == (106, 103)


def test_trial_table_counts_docstring_example():
    rows = detect.trial_table([("yes", "yes"), ("yes", "no"), ("no", "no")], ["_silence_", "_unknown_", "yes", "no"])
    assert rows == [
        {"said": "yes", "trials": 2, "correct": 1, "accuracy": 0.5, "heard_as": {"yes": 1, "no": 1}},
        {"said": "no", "trials": 1, "correct": 1, "accuracy": 1.0, "heard_as": {"no": 1}},
    ]


@dataclass
class _Data:
    labels: tuple = ("_silence_", "_unknown_", "yes", "no")
    test_y: list = field(default_factory=list)
    test_names: list = field(default_factory=list)


@pytest.fixture()
def fake_split(tmp_path):
    """Test split: yes x3, no x1, _unknown_ x2, _silence_ x1; clip i holds the constant (i + 1) / 100."""
    import soundfile as sf

    entries = [("yes", 2), ("no", 3), ("yes", 2), ("_unknown_", 1), ("_silence_", 0), ("yes", 2),
               ("_unknown_", 1)]
    data = _Data()
    for i, (label, y) in enumerate(entries):
        if label == "_silence_":
            data.test_names.append("_silence_")
        else:
            folder = "bed" if label == "_unknown_" else label
            (tmp_path / folder).mkdir(exist_ok=True)
            name = f"{folder}/s{i}_nohash_0.wav"
            sf.write(tmp_path / name, np.full(16000, (i + 1) / 100, np.float32), 16000, subtype="PCM_16")
            data.test_names.append(name)
        data.test_y.append(y)
    return data, tmp_path


def _clip_id(audio):  # the constant (i + 1) / 100 back to i
    return int(round(float(audio[0]) * 100)) - 1


def test_label_clips_takes_the_first_n_of_a_label_in_order(fake_split):
    data, folder = fake_split
    assert [_clip_id(a) for a in detect.label_clips(data, folder, "yes", 2)] == [0, 2]
    assert [_clip_id(a) for a in detect.label_clips(data, folder, "yes")] == [0, 2, 5]
    with pytest.raises(ValueError, match="_silence_"):
        detect.label_clips(data, folder, "_silence_")


def test_stream_clips_round_robin_keywords_plus_unknown(fake_split):
    data, folder = fake_split
    # keywords round robin: yes#0 (clip 0), no#0 (clip 1), yes#1 (clip 2), then no has run out: yes#2 (clip 5)
    picked = detect.stream_clips(data, folder, num_keywords=4, num_unknown=1, seed=0)
    assert sorted((_clip_id(a), lab) for a, lab in picked) == [(0, "yes"), (1, "no"), (2, "yes"), (3, "_unknown_"),
                                                              (5, "yes")]
    again = detect.stream_clips(data, folder, num_keywords=4, num_unknown=1, seed=0)
    assert [_clip_id(a) for a, _ in again] == [_clip_id(a) for a, _ in picked]  # seeded order


def test_plot_timeline_averages_scores_over_the_window():
    import matplotlib

    matplotlib.use("Agg")
    # class 0 scores + 128 = [0, 200, 255, 0] at [0, 500, 1000, 1600] ms; window 1000 ms:
    # at 1600 ms only 1000 and 1600 remain (>= 600): (255 + 0) / 2 = 127.5; at 1000: (0+200+255)/3
    times = np.array([0, 500, 1000, 1600])
    scores = np.array([[-128, 127], [72, -128], [127, -128], [-128, 127]], np.int8)
    labels = ["_silence_", "yes"]
    axes = plots.plot_timeline(np.zeros(32000, np.int16), times, scores, labels,
                           [Keyword("yes", 500, 1500)], [Detection("yes", 1600, 210)])
    line = axes[1].get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), [0.0, 100.0, 455 / 3, 127.5])
    np.testing.assert_allclose(line.get_xdata(), [0.0, 0.5, 1.0, 1.6])
    legend = [t.get_text() for t in axes[1].get_legend().get_texts()]
    assert legend == ["silence", "yes", "threshold 200"]
    assert axes[1].get_xlabel() == "time (s)" and axes[0].get_title() and axes[1].get_title()


@pytest.fixture(scope="module")
def placeholder_model():
    return export.build_placeholder_tflite(Config())


@pytest.mark.slow
def test_classify_audio_runs_the_loudest_second_through_tflm(placeholder_model):
    from kwslab import export

    rng = np.random.default_rng(0)
    audio = np.zeros(24000, np.float32)                       # 1.5 s of silence ...
    audio[6000:14000] = 0.3 * rng.standard_normal(8000)       # ... with a burst at 0.375-0.875 s
    r = detect.classify_audio(audio, placeholder_model, Config())
    window = audio[0:16000]  # the loudest 16000-sample window starts at 0 (the first that holds the burst)
    feats = frontend.compute_features(window)
    np.testing.assert_array_equal(r["features"], feats)
    scores = export.run_tflm(placeholder_model, feats[None])[0]
    np.testing.assert_array_equal(r["scores_int8"], scores)
    assert r["index"] == int(np.argmax(scores)) and r["label"] == Config().data.labels[r["index"]]
    # softmax output: scale 1/256, zero point -128 -> probabilities (q + 128) / 256, summing to ~1
    np.testing.assert_allclose(r["probabilities"], (scores.astype(float) + 128) / 256)
    assert r["probabilities"].sum() == pytest.approx(1.0, abs=4 / 256)
    with pytest.raises(ValueError, match="1-D"):
        detect.classify_audio(np.zeros((2, 16000)), placeholder_model, Config())
