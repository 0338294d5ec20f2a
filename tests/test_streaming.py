"""kwslab.streaming: chunked audio gives exactly the whole-recording twin's results."""
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kwslab import frontend
from kwslab.config import Config, FrontendConfig
from kwslab.detect import detect_stream, stitch_recording, stream_scores
from kwslab.streaming import MicroFrontend, StreamingDetector

REPO = Path(__file__).resolve().parents[1]


def _committed_model() -> bytes:
    from kwslab.firmware import parse_c_array

    return parse_c_array((REPO / "arduino" / "kws_nano33ble" / "model_data.cpp").read_text())


def _chunks(n: int, seed: int, max_len: int = 3000):
    """Random chunk boundaries over n samples, empty chunks included."""
    rng = np.random.default_rng(seed)
    pos = 0
    while pos < n:
        step = int(rng.integers(0, max_len))
        yield pos, min(n, pos + step)
        pos += step


def test_chunked_frontend_equals_whole_recording_op():
    # Noise plus a rising tone, 2.5 s: 1 + (40000 - 480) // 320 = 124 frames. The stream
    # state (window overlap, noise estimate, PCAN) must carry across every chunk boundary.
    rng = np.random.default_rng(0)
    n = 40_000
    tone = 8000 * np.sin(2 * np.pi * np.cumsum(np.linspace(200, 3000, n)) / 16000)
    audio = np.clip(tone + rng.normal(0, 500, n), -32768, 32767).astype(np.int16)
    fe = MicroFrontend()
    got = np.concatenate([fe.process(audio[a:b]) for a, b in _chunks(n, seed=1)])
    want = frontend.compute_raw_loop(audio[None])[0]
    assert got.shape == want.shape == (124, 40)
    np.testing.assert_array_equal(got, want)


def test_docstring_example_frames_per_chunk():
    # 480 samples make the first frame, then one per 320: after 1000 samples 1 + (1000 -
    # 480) // 320 = 2 frames; the 16 chunks of 1000 samples give 49 frames in all.
    fe = MicroFrontend(FrontendConfig())
    audio = np.random.default_rng(0).normal(0, 1000, 16000).astype(np.int16)
    counts = [len(fe.process(audio[i:i + 1000])) for i in range(0, 16000, 1000)]
    assert counts[0] == 2 and sum(counts) == 49
    assert fe.process(np.zeros(0, np.int16)).shape == (0, 40)


def test_reset_starts_a_new_stream():
    audio = np.random.default_rng(1).normal(0, 2000, 8000).astype(np.int16)
    fe = MicroFrontend()
    first = fe.process(audio)
    fe.reset()
    np.testing.assert_array_equal(fe.process(audio), first)


def test_bad_audio_is_refused():
    fe = MicroFrontend()
    with pytest.raises(TypeError, match="int16"):
        fe.process(np.zeros(100, np.float32))
    with pytest.raises(ValueError, match="1-D"):
        fe.process(np.zeros((2, 100), np.int16))
    fe.close()
    with pytest.raises(ValueError, match="closed"):
        fe.process(np.zeros(10, np.int16))


@pytest.mark.slow
@pytest.mark.tflm
def test_streaming_detector_equals_detect_stream_on_real_clips(data_dir):
    # Test-split clips of yes and no over real background noise, pushed in random chunks:
    # the same int8 features, window scores and commands as the whole-recording twin.
    cfg = Config()
    clips = [(sf.read(str(sorted((Path(data_dir) / w).glob("*.wav"))[i]), dtype="int16")[0], w)
             for w, i in (("yes", 0), ("no", 1))]
    noise = sf.read(str(sorted((Path(data_dir) / "_background_noise_").glob("*.wav"))[0]),
                    dtype="int16")[0]
    audio, _ = stitch_recording(clips, noise, gap_ms=1000, lead_ms=1000, noise_volume=0.05)
    model = _committed_model()

    det = StreamingDetector(model, cfg)
    updates = [det.push(audio[a:b]) for a, b in _chunks(len(audio), seed=2, max_len=4000)]
    feats = np.concatenate([u.features for u in updates])
    times = np.concatenate([u.times_ms for u in updates])
    scores = np.concatenate([u.scores for u in updates])
    got = [d for u in updates for d in u.detections]

    want_feats = frontend.to_int8(frontend.compute_raw_loop(audio[None])[0])  # eager: no tracing
    want_times, want_scores = stream_scores(want_feats, model, cfg.frontend)
    np.testing.assert_array_equal(feats, want_feats)
    np.testing.assert_array_equal(times, want_times)
    np.testing.assert_array_equal(scores, want_scores)
    assert got == detect_stream(audio, model, cfg)
    assert "yes" in [d.label for d in got]  # the committed model hears the first clip
    assert updates[-1].audio_ms == len(audio) * 1000 // 16000
