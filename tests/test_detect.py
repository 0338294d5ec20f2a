"""Tests for kwslab.detect: RecognizeCommands decisions, stitching, scoring, streaming."""
from pathlib import Path

import numpy as np
import pytest

from kwslab.config import Config, FrontendConfig
from kwslab.detect import (Detection, Keyword, RecognizeCommands, false_alarm_causes, recognize,
                           score_detections, stitch_recording, window_end_times_ms)

REPO = Path(__file__).resolve().parents[1]
YES = [-128, 127]  # class 1 certain: average of (score + 128) = 255


def _decisions(rc, seq):
    return [(r.label_index, r.score, r.is_new_command)
            for r in (rc.process_latest_results(s, t) for t, s in seq)]


def test_no_decision_until_minimum_count_and_quarter_window():
    # t=0, 100: fewer than 3 results; t=200: 3 results but span 200 ms < 1000 // 4 = 250;
    # t=300: 4 results over 300 ms -> class 1 average 127 + 128 = 255 > 200 -> new command.
    rc = RecognizeCommands(2)
    got = _decisions(rc, [(t, YES) for t in (0, 100, 200, 300)])
    assert got == [(0, 0, False), (0, 0, False), (0, 0, False), (1, 255, True)]


def test_repeat_is_suppressed_for_suppression_ms():
    # New at 300; repeats at 400..1800 are within 1500 ms (1800 - 300 = 1500 is still
    # suppressed, "<="); 1900 - 300 = 1600 > 1500 -> new again.
    rc = RecognizeCommands(2)
    seq = [(t, YES) for t in range(0, 2001, 100)]
    new_times = [t for (t, _), d in zip(seq, _decisions(rc, seq)) if d[2]]
    assert new_times == [300, 1900]


def test_threshold_is_strict():
    # score 72 -> average 72 + 128 = 200, not > 200; score 73 -> 201 > 200.
    for score, expected in ((72, False), (73, True)):
        rc = RecognizeCommands(2)
        last = _decisions(rc, [(t, [-128, score]) for t in (0, 100, 200, 300)])[-1]
        assert last == (1, 200 + (score - 72), expected)


def test_average_uses_integer_division_over_window():
    # 3 classes, results at 0, 100, 200, 300 ms with class 2 scores 127, 127, -128, 127:
    # sums of (s + 128): 255 * 3 + 0 = 765; 765 // 4 = 191 -> top class 2, not > 200.
    rc = RecognizeCommands(3)
    seq = [(0, [-128, -128, 127]), (100, [-128, -128, 127]), (200, [-128, -128, -128]),
           (300, [-128, -128, 127])]
    assert _decisions(rc, seq)[-1] == (2, 191, False)


def test_old_results_leave_the_window():
    # Class 1 from 0 to 900 ms, then class 2 from 1000 ms. At 1900 ms the window keeps
    # results with time >= 900: one class-1 (900) and ten class-2 (1000..1900):
    # class 2 average = 10 * 255 // 11 = 231, class 1 = 255 // 11 = 23.
    rc = RecognizeCommands(3)
    seq = [(t, [-128, 127, -128]) for t in range(0, 1000, 100)]
    seq += [(t, [-128, -128, 127]) for t in range(1000, 2000, 100)]
    got = _decisions(rc, seq)
    assert got[-1][:2] == (2, 231)
    # First class-2 command: the window keeps times >= t - 1000 (11 results). At 1700 ms:
    # 3 class-1 (700..900), 8 class-2 -> 8 * 255 // 11 = 185 (no); at 1800: 9 * 255 // 11
    # = 208 > 200 -> new. Class 1 never fires again: suppressed until 1800, and below 200
    # from 1400 on (6 * 255 // 11 = 139).
    new = [(t, d[0]) for (t, _), d in zip(seq, got) if d[2]]
    assert new == [(300, 1), (1800, 2)]


def test_background_class_is_never_suppressed():
    # Class 0 (_silence_) tops every window: each decision after the third is new, since
    # nothing is suppressed after the background class.
    rc = RecognizeCommands(2)
    got = _decisions(rc, [(t, [127, -128]) for t in range(0, 700, 100)])
    assert [d[2] for d in got] == [False, False, False, True, True, True, True]


def test_time_going_backwards_raises():
    rc = RecognizeCommands(2)
    rc.process_latest_results(YES, 100)
    with pytest.raises(ValueError, match="earlier"):
        rc.process_latest_results(YES, 99)


def test_recognize_drops_background_labels():
    times = np.arange(0, 700, 100)
    scores = np.array([[127, -128, -128]] * 4 + [[-128, -128, 127]] * 3, np.int8)
    # Silence is new at 300 (255) and 400 (4 * 255 // 5 = 204 > 200), both dropped; then
    # silence 4 * 255 // 6 = 170 and 4 * 255 // 7 = 145, "yes" 85 and 109: nothing > 200.
    assert recognize(times, scores, ["_silence_", "_unknown_", "yes"]) == []
    got = recognize(times, scores, ["_silence_", "_unknown_", "yes"], include_background=True)
    assert [(d.label, d.time_ms, d.score) for d in got] == [("_silence_", 300, 255),
                                                            ("_silence_", 400, 204)]


def test_window_end_times_match_micro_speech_framing():
    # window k ends at (480 + 320 * (k + 48)) / 16 ms: 990, 1010, 1030 for 51 frames.
    assert window_end_times_ms(51, FrontendConfig()).tolist() == [990, 1010, 1030]


def test_stitch_recording_places_clips_and_reports_times():
    clip_a = np.full(1600, 1000, np.int16)   # 100 ms
    clip_b = np.full(3200, -2000, np.int16)  # 200 ms
    audio, truth = stitch_recording([(clip_a, "yes"), (clip_b, "no")], None, gap_ms=50,
                                    lead_ms=10)
    # 10 ms lead (160) + 1600 + 50 ms gap (800) + 3200 + 800 + 160 = 6720 samples.
    assert audio.dtype == np.int16 and len(audio) == 6720
    assert truth == [Keyword("yes", 10, 110), Keyword("no", 160, 360)]
    assert (audio[160:1760] == 1000).all() and (audio[2560:5760] == -2000).all()
    assert (audio[:160] == 0).all() and (audio[1760:2560] == 0).all()


def test_stitch_recording_adds_noise_at_volume():
    noise = np.full(100, 0.5, np.float32)
    audio, _ = stitch_recording([(np.zeros(160, np.float32), "yes")], noise, gap_ms=0,
                                lead_ms=0, noise_volume=0.1)
    # 0.1 * 0.5 * 32768 = 1638.4 -> 1638 everywhere.
    assert (audio == 1638).all()


def test_score_detections_docstring_example():
    truth = [Keyword("yes", 1000, 2000), Keyword("no", 3000, 4000)]
    dets = [Detection("yes", 1800, 230), Detection("yes", 2600, 220), Detection("no", 3900, 210)]
    s = score_detections(dets, truth, tolerance_ms=500, duration_ms=3_600_000)
    assert (s["hits"], s["misses"], s["false_alarms"]) == (2, 0, 1)
    assert s["recall"] == 1.0 and s["false_alarms_per_hour"] == pytest.approx(1.0)


def test_score_detections_wrong_label_is_miss_and_false_alarm():
    # "no" fired inside the "yes" clip: yes missed, and the "no" is a false alarm.
    # 1 false alarm over 1,800,000 ms (half an hour) = 2 per hour.
    s = score_detections([Detection("no", 1500, 240)], [Keyword("yes", 1000, 2000)],
                         duration_ms=1_800_000)
    assert (s["hits"], s["misses"], s["false_alarms"], s["recall"]) == (0, 1, 1, 0.0)
    assert s["false_alarms_per_hour"] == pytest.approx(2.0)


def test_false_alarm_causes_docstring_example():
    yes = Keyword("yes", 1000, 2000)
    go = Keyword("go", 4000, 5000)
    dets = [Detection("yes", 1500, 230), Detection("yes", 2500, 220), Detection("no", 4600, 240),
            Detection("yes", 9000, 210)]
    out = false_alarm_causes(dets, [yes], [yes, go])
    assert [(d.time_ms, cause, clip) for d, cause, clip in out] == [
        (2500, "repeat", yes), (4600, "distractor", go), (9000, "noise", None)]
    # the count agrees with score_detections'
    assert len(out) == score_detections(dets, [yes])["false_alarms"]


def test_false_alarm_causes_wrong_keyword_and_tolerance_edges():
    yes, no = Keyword("yes", 1000, 2000), Keyword("no", 5000, 6000)
    off = Keyword("_unknown_", 2500, 3500)
    dets = [Detection("no", 1200, 240),   # inside "yes": the wrong keyword
            Detection("yes", 3000, 230),  # 3000 <= 2000 + 1000: the hit on "yes"
            Detection("yes", 4501, 220),  # 4501 > 3500 + 1000: after the distractor's span
            Detection("yes", 4500, 220)]  # == 3500 + 1000: still the distractor's span
    out = false_alarm_causes(dets, [yes, no], [yes, no, off])
    assert [(d.time_ms, cause) for d, cause, _ in out] == [
        (1200, "other keyword"), (4500, "distractor"), (4501, "noise")]
    s = score_detections(dets, [yes, no])
    assert (s["hits"], s["false_alarms"]) == (1, 3)


def _committed_model() -> bytes:
    from kwslab.firmware import parse_c_array

    return parse_c_array((REPO / "arduino" / "kws_nano33ble" / "model_data.cpp").read_text())


@pytest.mark.slow
@pytest.mark.tflm
def test_first_stream_window_equals_single_clip_pipeline():
    # The frontend starts fresh at the stream start, so the first 1 s window of the stream
    # must give the same TFLM output as that second computed as a lone clip; later windows
    # carry frontend state and differ from per-clip features (that is the point).
    from kwslab import frontend
    from kwslab.detect import stream_scores

    cfg = Config()
    rng = np.random.default_rng(0)
    audio = (rng.normal(0, 3000, 16000 + 320 * 5)).astype(np.int16)
    model = _committed_model()
    q = frontend.to_int8(frontend.compute_raw(audio, cfg.frontend))
    times, scores = stream_scores(q, model, cfg.frontend)
    assert times.tolist() == [990, 1010, 1030, 1050, 1070, 1090]
    q0 = frontend.to_int8(frontend.compute_raw(audio[:16000], cfg.frontend))
    _, s0 = stream_scores(q0, model, cfg.frontend)
    assert scores.shape == (6, cfg.data.num_classes)
    np.testing.assert_array_equal(scores[0], s0[0])


@pytest.mark.slow
@pytest.mark.tflm
def test_detect_stream_on_stitched_real_clips(data_dir):
    # Real clips + real background noise through the whole twin. The committed model may be
    # the untrained placeholder, so only structure is checked: every reported command is at
    # a window end time, in order, with a score above the threshold, and the scoring
    # accounts for every detection.
    import soundfile as sf

    from kwslab.detect import detect_stream

    cfg = Config()
    clips = [(sf.read(str(sorted((Path(data_dir) / w).glob("*.wav"))[0]), dtype="int16")[0], w)
             for w in ("yes", "no")]
    noise = sf.read(str(sorted((Path(data_dir) / "_background_noise_").glob("*.wav"))[0]),
                    dtype="int16")[0]
    audio, truth = stitch_recording(clips, noise, gap_ms=500, lead_ms=500)
    dets = detect_stream(audio, _committed_model(), cfg, include_background=True)
    n_frames = 1 + (len(audio) - 480) // 320
    valid_times = set(window_end_times_ms(n_frames, cfg.frontend).tolist())
    assert all(d.time_ms in valid_times and d.score > 200 for d in dets)
    assert [d.time_ms for d in dets] == sorted(d.time_ms for d in dets)
    assert {d.label for d in dets} <= set(cfg.data.labels)
    s = score_detections([d for d in dets if not d.label.startswith("_")], truth,
                         duration_ms=len(audio) / 16)
    assert s["hits"] + s["false_alarms"] == sum(not d.label.startswith("_") for d in dets)
