"""Firmware in the loop: the boards' application cross-compiled for a Cortex-M4F and run in
QEMU (mps2-an386, semihosting, -icount shift=0) against the Python side, bit for bit.

For the committed deploy model and a freshly exported one, with the Nano's TFLite Micro
(Chirale_TensorFLowLite 2.0.0 sources + CMSIS-NN, softfp) and the PSoC 6's (Infineon's
prebuilt ml-tflite-micro, hard float), on 20 real test clips and one stitched recording of
real clips over real background noise:
  * the device's int8 feature windows == kwslab.frontend's (to_int8(compute_raw(audio))),
    except a known, bounded divergence: on 1 of the 20 clips (no/85834399_nohash_0) the
    device computes 2 of 1,960 values of the top channel (39) differently (-43 vs -37,
    -29 vs -33). The device's micro frontend is the same C code built against newlib's
    maths instead of glibc's; the divergence is allowed only in the top channel, at most
    MAX_TOP_CHANNEL_DIFFS values per window, and any new one fails,
  * its int8 scores == the TFLite Micro Python interpreter's on the same windows,
  * its "Heard ..." detections == kwslab.detect's RecognizeCommands at the board's cadence.
Needs the device SDK, arm-none-eabi-gcc and qemu-system-arm (skips without, fails in CI).
"""
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from kwslab import firmware, firmware_build as fb, firmware_sim as fs
from kwslab.config import Config

pytestmark = pytest.mark.tflm

N_CLIPS = 20
MAX_TOP_CHANNEL_DIFFS = 2  # per 49 x 40 window; see the module docstring
SMOKE = Config().replace(data={"max_clips_per_label": 25}, train={"epochs": 3})


@pytest.fixture(scope="session")
def sim_sdk():
    try:
        fb.require_tools(fb.GCC, fb.GXX, "make", fs.QEMU)
        return fb.require_sdk()
    except fb.DeviceSdkMissing as e:
        if os.environ.get("CI"):
            pytest.fail(f"{e} (required in CI)")
        pytest.skip(str(e))


@pytest.fixture(scope="session")
def sim_build_dir(tmp_path_factory):
    # tests/test_firmware_build.py's Nano folder (same rule): Chirale is compiled once.
    env = os.environ.get("KWSLAB_FIRMWARE_BUILD")
    return (Path(env) if env else tmp_path_factory.getbasetemp() / "firmware") / "nano"


@pytest.fixture(scope="session")
def models(data_dir, tmp_path_factory):
    """(name, model folder, tflite bytes, config): the committed model and a fresh export."""
    from kwslab import pipeline

    committed = (fb.SKETCH_DIR, firmware.parse_c_array((fb.SKETCH_DIR / "model_data.cpp").read_text()),
                 Config())
    out = tmp_path_factory.mktemp("fresh")
    pipeline.run(SMOKE, data_dir, out, cache_dir=tmp_path_factory.mktemp("cache"),
                 num_augmented=2, progress=False)
    fresh = (out, (out / "model.tflite").read_bytes(), SMOKE)
    return {"committed": committed, "fresh": fresh}


@pytest.fixture(scope="session")
def recordings(data_dir):
    """20 test clips (int16, padded to 1 s) and a stitched recording with its truth."""
    import soundfile as sf

    from kwslab.detect import stitch_recording

    data_dir = Path(data_dir)
    names = (data_dir / "testing_list.txt").read_text().split()
    wanted = [n for n in names if n.split("/")[0] in ("yes", "no")]
    others = [n for n in names if n.split("/")[0] not in ("yes", "no")]
    picks = wanted[:N_CLIPS - 4] + others[:4]
    clips = []
    for name in picks:
        a = sf.read(str(data_dir / name), dtype="int16")[0][:16000]
        clips.append((name, np.pad(a, (0, 16000 - len(a)))))
    noise = sf.read(str(sorted((data_dir / "_background_noise_").glob("*.wav"))[0]),
                    dtype="int16")[0]
    stitched, truth = stitch_recording([(a, n.split("/")[0]) for n, a in clips[:8]], noise,
                                       gap_ms=700, lead_ms=500)
    return clips, stitched, truth


def _check(sim, twin, what, tflite, cfg):
    from kwslab import export

    times, feats, scores, dets = twin
    assert len(sim.times_ms) == len(times) > 0, what
    np.testing.assert_array_equal(sim.times_ms, times, err_msg=f"{what}: window times")
    # Scores: the TFLite Micro Python interpreter on the device's own windows.
    t, f = cfg.frontend.feature_shape
    host = export.run_tflm(tflite, sim.features.reshape(-1, t, f)).astype(np.int8)
    np.testing.assert_array_equal(sim.scores, host, err_msg=f"{what}: int8 scores")
    t_frames = sim.features.reshape(-1, t, f)
    differs = t_frames != np.asarray(feats).reshape(-1, t, f)  # (windows, T, F)
    np.testing.assert_array_equal(differs[..., :-1], False,
                                  err_msg=f"{what}: int8 features below the top channel")
    assert differs[..., -1].sum(axis=1).max(initial=0) <= MAX_TOP_CHANNEL_DIFFS, \
        f"{what}: top-channel feature differences {np.argwhere(differs).tolist()}"
    assert sim.detections == dets, what


def test_host_twin_cadence_scores_every_nth_window():
    """detect.stream_scores(every_slices=n) is the every-slice stream taken every n-th
    window, starting with the first full one (the boards' cadence)."""
    from kwslab import detect

    cfg = Config()
    tflite = firmware.parse_c_array((fb.SKETCH_DIR / "model_data.cpp").read_text())
    feats = np.random.default_rng(0).integers(-128, 128, (60, 40)).astype(np.int8)
    t1, s1 = detect.stream_scores(feats, tflite, cfg.frontend)
    t3, s3 = detect.stream_scores(feats, tflite, cfg.frontend, every_slices=3)
    assert t1.tolist()[:3] == [990, 1010, 1030] and len(t1) == 12
    assert t3.tolist() == t1[::3].tolist() == [990, 1050, 1110, 1170]
    np.testing.assert_array_equal(s3, s1[::3])
    with pytest.raises(ValueError, match="every_slices"):
        detect.stream_scores(feats, tflite, cfg.frontend, every_slices=0)


@pytest.mark.slow
@pytest.mark.parametrize("variant", fs.VARIANTS)
@pytest.mark.parametrize("model", ["committed", "fresh"])
def test_emulated_device_equals_host_bit_for_bit(sim_sdk, sim_build_dir, models, recordings,
                                                 variant, model, tmp_path):
    model_dir, tflite, cfg = models[model]
    board = "nano33ble" if variant == "chirale" else "psoc6"
    every = fs.BOARD_INFERENCE_EVERY_SLICES[board]
    t, f = cfg.frontend.feature_shape
    labels = list(cfg.data.labels)
    clips, stitched, truth = recordings

    # Single clips: one window each (49 frames of 1 s); the cadence does not matter.
    elf1 = fs.build_sim(model_dir, sim_build_dir, variant, 1, sim_sdk)
    with ThreadPoolExecutor(2) as pool:  # one QEMU process per clip, two at a time
        sims = list(pool.map(lambda c: fs.run_sim(elf1, c[1], t * f, len(labels), labels), clips))
    for (name, audio), sim in zip(clips, sims):
        twin = fs.host_twin(audio, tflite, cfg, 1)
        _check(sim, twin, f"{model}/{variant}/{name}", tflite, cfg)

    # The stitched recording at the board's inference cadence.
    elf = fs.build_sim(model_dir, sim_build_dir, variant, every, sim_sdk)
    sim = fs.run_sim(elf, stitched, t * f, len(labels), labels)
    twin = fs.host_twin(stitched, tflite, cfg, every)
    _check(sim, twin, f"{model}/{variant}/stitched", tflite, cfg)
    if model == "committed":
        assert twin[3], "the committed model should hear some of the 8 keywords"
    assert int(np.median(sim.profile_ticks[:, 2])) * fs.TICK_INSTRUCTIONS > 500_000


@pytest.mark.slow
def test_committed_model_dense_layers_are_per_tensor(models):
    """Chirale 2.0.0's FULLY_CONNECTED applies channel 0's scale to all outputs: the export
    must quantize dense weights with a single scale (convolutions may be per-channel)."""
    from ai_edge_litert.interpreter import Interpreter

    for name, (_, tflite, _) in models.items():
        it = Interpreter(model_content=tflite)
        fc_weights = {op["inputs"][1] for op in it._get_ops_details()
                      if op["op_name"] == "FULLY_CONNECTED"}
        assert fc_weights, name
        for d in it.get_tensor_details():
            if d["index"] in fc_weights:
                assert len(d["quantization_parameters"]["scales"]) == 1, (name, d["name"])


@pytest.mark.slow
def test_cli_firmware_simulate_reports_instructions_and_host_match(sim_sdk, sim_build_dir,
                                                                   recordings, tmp_path, capsys):
    import soundfile as sf

    from kwslab.cli import main

    _, stitched, _ = recordings
    wav = tmp_path / "stitched.wav"
    sf.write(str(wav), stitched, 16000, subtype="PCM_16")
    assert main(["firmware", "simulate", str(wav), "--board", "psoc6", "--compare",
                 "--build-dir", str(sim_build_dir)]) == 0
    out = capsys.readouterr().out
    assert "psoc6 (ml-tflite-micro), one inference every 2 slices" in out
    assert "per inference" in out and "host twin" in out and ": identical" in out
    assert main(["firmware", "simulate", str(tmp_path / "missing.wav")]) == 2
