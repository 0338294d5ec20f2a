"""Firmware in the loop: the boards' application cross-compiled for a Cortex-M4F and run in
QEMU (mps2-an386, semihosting, -icount shift=0) against the Python side, bit for bit.

For the committed deploy model and a freshly exported one, with the Nano's TFLite Micro
(Chirale_TensorFLowLite 2.0.0 sources + CMSIS-NN, softfp) and the PSoC 6's (Infineon's
prebuilt ml-tflite-micro, hard float), on 20 real test clips and one stitched recording of
real clips over real background noise:
  * every int8 feature value of every window the device scores == kwslab.frontend's
    (to_int8(compute_raw(audio))),
  * its int8 scores == the TFLite Micro Python interpreter's on the same windows,
  * its "Heard ..." detections == kwslab.detect's RecognizeCommands at the board's cadence.
The features are exact because the device installs the host's filterbank tables
(model_settings.h, kwslab.firmware.filterbank_tables): the tests below also check that
those tables equal the micro frontend library's own on the host (gcc, glibc) for several
configs, and that the library built with the boards' flags computes the tables of a fused
multiply-add (GCC's vfma.f32 in CalculateCenterFrequencies) instead -- the divergence the
installed tables remove.
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
    differs = np.argwhere(sim.features.reshape(-1, t, f) != np.asarray(feats).reshape(-1, t, f))
    assert len(differs) == 0, \
        f"{what}: int8 features differ at (window, frame, channel) {differs.tolist()[:20]}"
    assert sim.detections == dets, what


TABLE_CONFIGS = {  # FrontendConfig overrides: default, fewer channels in a narrower band,
    # 80 channels (some of width 0: the library's zero-padding path), 8 kHz audio
    "default": {},
    "32ch_20-4000Hz": {"num_channels": 32, "lower_band_limit_hz": 20.0, "upper_band_limit_hz": 4000.0},
    "80ch": {"num_channels": 80, "upper_band_limit_hz": 7999.0},
    "8kHz_20ch": {"sample_rate_hz": 8000, "upper_band_limit_hz": 3900.0, "num_channels": 20},
}


def _settings_dir(tmp_path, frontend: dict):
    cfg = Config().replace(frontend=frontend)
    (tmp_path / "model_settings.h").write_text(firmware.model_settings_header(
        cfg, input_scale=firmware.FEATURE_INPUT_SCALE, input_zero_point=-128, ops=["CONV_2D"],
        arena_bytes=1000, model_name="tables"))
    return tmp_path, cfg.frontend


def _same_tables(a: dict, b: dict) -> list:
    """Names of the tables that differ (empty if all equal)."""
    assert a.keys() == b.keys()
    return [k for k in a if not np.array_equal(a[k], b[k])]


@pytest.mark.parametrize("name", sorted(TABLE_CONFIGS))
def test_filterbank_tables_equal_the_host_library(sim_sdk, sim_build_dir, tmp_path, name):
    """kwslab.firmware.filterbank_tables == FilterbankPopulateState compiled for the host (the
    code and maths library of TensorFlow's frontend op), table for table, value for value."""
    model_dir, fe = _settings_dir(tmp_path, TABLE_CONFIGS[name])
    host = fs.library_filterbank_tables(model_dir, sim_build_dir, "host", sim_sdk)
    assert host["num_channels"] == fe.num_channels and len(host["weights"]) > 4 * fe.num_channels
    assert _same_tables(firmware.filterbank_tables(fe), host) == []
    # and the header carries exactly these tables
    parsed = firmware.parse_model_settings((model_dir / "model_settings.h").read_text())
    assert parsed["kFilterbankWeights"] == host["weights"].tolist()
    assert parsed["kFilterbankChannelWidths"] == host["channel_widths"].tolist()
    assert parsed["kFilterbankStartIndex"] == host["start_index"]


@pytest.mark.parametrize("variant", fs.VARIANTS)
def test_board_built_library_computes_fused_multiply_add_tables(sim_sdk, sim_build_dir, tmp_path,
                                                                variant):
    """Why the device installs the host's tables: the library built with a board's flags
    and run on the emulated Cortex-M4F computes the channel centres with a fused
    multiply-add, which changes weights of the top channel (default config: 2 of 316)."""
    model_dir, fe = _settings_dir(tmp_path, {})
    board = fs.library_filterbank_tables(model_dir, sim_build_dir, variant, sim_sdk)
    host = firmware.filterbank_tables(fe)
    assert _same_tables(host, board) == ["weights", "unweights"]
    assert np.flatnonzero(host["weights"] != board["weights"]).tolist() == [293, 297]
    assert _same_tables(firmware.filterbank_tables(fe, fused_multiply_add=True), board) == []


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
def test_reference_kernel_variant_scores_equal_and_costs_more(sim_sdk, sim_build_dir, recordings):
    """TFLite Micro's reference int8 kernels (emulator/reference_kernels.cpp) in place of
    Chirale's CMSIS-NN ones: the same scores as the TFLite Micro Python interpreter (which
    runs the reference kernels) and several times CMSIS-NN's instructions per invocation."""
    from kwslab import export

    cfg = Config()
    t, f = cfg.frontend.feature_shape
    labels = list(cfg.data.labels)
    tflite = firmware.parse_c_array((fb.SKETCH_DIR / "model_data.cpp").read_text())
    clips, _, _ = recordings
    invoke = {}
    for variant in (fs.REFERENCE_VARIANT, "chirale"):
        elf = fs.build_sim(fb.SKETCH_DIR, sim_build_dir, variant, 1, sim_sdk)
        sims = [fs.run_sim(elf, audio, t * f, len(labels), labels) for _, audio in clips[:2]]
        for sim in sims:
            host = export.run_tflm(tflite, sim.features.reshape(-1, t, f)).astype(np.int8)
            np.testing.assert_array_equal(sim.scores, host, err_msg=variant)
        invoke[variant] = fs.instructions(sims[0])["invoke_instructions"]
    assert invoke[fs.REFERENCE_VARIANT] > 3 * invoke["chirale"] > 1_500_000, invoke


@pytest.mark.slow
def test_committed_model_dense_layers_are_per_tensor(models):
    """Chirale 2.0.0's FULLY_CONNECTED applies channel 0's scale to all outputs: the export
    must quantize dense weights with a single scale (convolutions may be per-channel)."""
    from tflite_micro.tensorflow.lite.micro.compression import model_editor

    for name, (_, tflite, _) in models.items():
        graph = model_editor.read(tflite).subgraphs[0]
        fc_weights = [op.inputs[1] for op in graph.operators if op.opcode_name == "FULLY_CONNECTED"]
        assert fc_weights, name
        for tensor in fc_weights:
            scales = tensor.quantization.scales
            assert not isinstance(scales, list) or len(scales) == 1, (name, tensor.index)


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


@pytest.mark.slow
@pytest.mark.parametrize("variant", fs.VARIANTS)
def test_int4_weights_run_on_the_boards_libraries(sim_sdk, sim_build_dir, recordings, variant,
                                                  tmp_path):
    """The committed model with packed int4 convolution weights (export.int4_tflite, then
    the compact device form): each board's TFLite Micro build unpacks them and scores the
    windows exactly as the TFLite Micro Python interpreter does the same file."""
    from kwslab import export

    cfg = Config()
    t, f = cfg.frontend.feature_shape
    labels = list(cfg.data.labels)
    committed = firmware.parse_c_array((fb.SKETCH_DIR / "model_data.cpp").read_text())
    int4, stats = export.int4_tflite(committed)
    int4, _ = export.compact_tflite(int4)
    assert stats["tensors"] == 1 and len(int4) < len(committed)
    model_dir = fs.model_folder(int4, cfg, tmp_path / "int4", export.measure_arena_bytes(int4),
                                "int4")
    clips, _, _ = recordings
    elf = fs.build_sim(model_dir, sim_build_dir, variant, 1, sim_sdk)
    for name, audio in clips[:3]:
        sim = fs.run_sim(elf, audio, t * f, len(labels), labels)
        host = export.run_tflm(int4, sim.features.reshape(-1, t, f)).astype(np.int8)
        np.testing.assert_array_equal(sim.scores, host, err_msg=f"{variant}/{name}")
        _check(sim, fs.host_twin(audio, int4, cfg, 1), f"int4/{variant}/{name}", int4, cfg)
