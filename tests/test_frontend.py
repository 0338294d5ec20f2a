"""The training features are the device's features: parity with TFLite Micro's golden data."""
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kwslab import frontend
from kwslab.config import FrontendConfig

GOLDEN_DIR = Path(__file__).resolve().parents[2] / "shared" / "golden"
GOLDEN = GOLDEN_DIR / "micro_features_golden.json"


def _golden():
    if not GOLDEN.exists():
        if os.environ.get("CI"):  # the headline parity test must never vanish in CI
            pytest.fail(f"golden features not found at {GOLDEN}")
        pytest.skip(f"golden features not found at {GOLDEN}")
    return json.loads(GOLDEN.read_text())


def _clip_path(name, clip, data_dir):
    return (data_dir / name) if clip["where"] == "speech_commands_subset" else GOLDEN_DIR / name


def test_golden_params_equal_our_frontend_config():
    p = _golden()["frontend_params"]
    cfg = FrontendConfig()
    assert (p["sample_rate_hz"], p["window_size_ms"], p["window_step_ms"], p["num_channels"]) == (
        cfg.sample_rate_hz, cfg.window_size_ms, cfg.window_stride_ms, cfg.num_channels)
    assert (p["lower_band_limit_hz"], p["upper_band_limit_hz"]) == (cfg.lower_band_limit_hz, cfg.upper_band_limit_hz)
    assert (p["smoothing_bits"], p["even_smoothing"], p["odd_smoothing"], p["min_signal_remaining"]) == (
        cfg.smoothing_bits, cfg.even_smoothing, cfg.odd_smoothing, cfg.min_signal_remaining)
    assert (p["enable_pcan"], p["pcan_strength"], p["pcan_offset"], p["gain_bits"]) == (
        cfg.enable_pcan, cfg.pcan_strength, cfg.pcan_offset, cfg.gain_bits)
    assert (p["enable_log"], p["scale_shift"]) == (cfg.enable_log, cfg.scale_shift)


def test_int8_features_equal_tflite_micro_golden_all_4000_values(data_dir):
    # Two whole 1 s clips (49 x 40) and two 30 ms clips (1 x 40): 2 * 1960 + 2 * 40 = 4000.
    golden = _golden()["clips"]
    compared = 0
    for name, clip in golden.items():
        audio, rate = sf.read(_clip_path(name, clip, data_dir), dtype="int16")
        assert rate == 16000
        got = frontend.to_int8(frontend.compute_raw(audio))
        want = np.array(clip["int8"], np.int8).reshape(clip["shape"])
        assert got.shape == want.shape, name
        mismatch = np.argwhere(got != want)
        assert len(mismatch) == 0, f"{name}: {len(mismatch)} values differ, first at {mismatch[:3].tolist()}"
        compared += want.size
    assert compared == 4000


def test_batched_features_equal_per_clip_features(data_dir):
    # The batched (vectorized) path must not mix state between clips.
    golden = _golden()["clips"]
    names = [n for n, c in golden.items() if c["shape"][0] == 49]
    audio = np.stack([sf.read(data_dir / n, dtype="int16")[0] for n in names] * 3)
    batched = frontend.compute_raw(audio, batch_size=4)
    assert np.array_equal(batched, frontend.compute_raw_loop(audio))
    for i, n in enumerate(names * 3):
        want = np.array(golden[n]["int8"], np.int8).reshape(49, 40)
        assert np.array_equal(frontend.to_int8(batched[i]), want)


def test_shapes_and_dtypes():
    cfg = FrontendConfig()
    assert cfg.num_frames == 49 and cfg.feature_shape == (49, 40)  # 1 + (16000 - 480) // 320
    raw = frontend.compute_raw(np.zeros((3, 16000), np.int16))
    assert raw.shape == (3, 49, 40) and raw.dtype == np.uint16
    q = frontend.compute_features(np.zeros(16000, np.float32))
    assert q.shape == (49, 40) and q.dtype == np.int8


def test_int8_formula_on_hand_computed_values():
    # q = clamp(((raw * 256) + 333) // 666 - 128, -128, 127)
    raw = np.array([0, 1, 2, 332, 333, 334, 666, 665, 1000, 65535], np.uint16)
    # 0: 333//666 = 0 -> -128;   1: 589//666 = 0 -> -128;   2: 845//666 = 1 -> -127
    # 332: 85325//666 = 128 -> 0;  333: 85581//666 = 128 -> 0;  334: 85837//666 = 128 -> 0
    # 666: 170829//666 = 256 -> 128 -> 127 (clamped);  665: 170573//666 = 256 -> 127 (clamped)
    # 1000: 256333//666 = 384 -> 256 -> 127;  65535: huge -> 127
    want = np.array([-128, -128, -127, 0, 0, 0, 127, 127, 127, 127], np.int8)
    got = frontend.to_int8(raw)
    assert got.dtype == np.int8
    np.testing.assert_array_equal(got, want)
    # 331: 85069//666 = 127 -> -1 (first value below 0)
    assert frontend.to_int8(np.array([331]))[0] == -1


def test_float_features_round_trip_through_model_input_quantization():
    q = np.arange(-128, 128, dtype=np.int8)
    f = frontend.to_float(q)
    assert f[0] == 0.0 and f[-1] == pytest.approx(25.914, abs=1e-3)
    # The exported model quantizes its input with scale INPUT_SCALE and zero point -128.
    back = np.round(f / frontend.INPUT_SCALE) + frontend.INPUT_ZERO_POINT
    np.testing.assert_array_equal(back.astype(np.int8), q)


def test_wrong_audio_dtype_is_refused():
    with pytest.raises(TypeError, match="int16"):
        frontend.compute_raw(np.zeros(16000, np.float32))
    with pytest.raises(ValueError, match="shorter than one"):
        frontend.compute_raw(np.zeros(100, np.int16))


def test_audio_to_int16_inverts_reading():
    x = np.array([-32768, -1, 0, 1, 32767], np.int16)
    np.testing.assert_array_equal(frontend.audio_to_int16(x / 32768.0), x)
    assert frontend.audio_to_int16(np.array([1.5, -1.5])).tolist() == [32767, -32768]


def test_cache_recomputes_when_key_changes_and_survives_corruption(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return {"x": np.arange(3)}

    a = frontend.cached(tmp_path, "t", "k1", compute)
    b = frontend.cached(tmp_path, "t", "k1", compute)
    assert len(calls) == 1 and np.array_equal(a["x"], b["x"])
    frontend.cached(tmp_path, "t", "k2", compute)
    assert len(calls) == 2
    (tmp_path / "t-k1.npz").write_bytes(b"not a zip")
    assert np.array_equal(frontend.cached(tmp_path, "t", "k1", compute)["x"], np.arange(3))
    assert len(calls) == 3
    assert frontend.cache_key(a=1, b=[1, 2]) != frontend.cache_key(a=1, b=[1, 3])


def test_missing_tensorflow_says_what_to_install(monkeypatch):
    import builtins
    import sys

    from kwslab import frontend
    from kwslab.config import FrontendConfig

    real_import = builtins.__import__

    def no_tensorflow(name, *args, **kwargs):
        if name == "tensorflow" or name.startswith("tensorflow."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorflow)
    for mod in [m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setattr(frontend, "_GRAPHS", {})
    cfg = FrontendConfig(num_channels=39)  # a config no other test has traced
    with pytest.raises(ImportError, match="pip install tensorflow-cpu"):
        frontend.compute_raw(np.zeros(16000, np.int16), cfg)
