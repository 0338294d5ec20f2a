"""The main job end to end on real clips (smoke size), and its determinism."""
import json

import numpy as np
import pytest

from kwslab import export, firmware, frontend, pipeline, train
from kwslab.config import Config

pytestmark = [pytest.mark.slow, pytest.mark.tflm]

SMOKE = Config().replace(data={"max_clips_per_label": 25}, train={"epochs": 3})


@pytest.fixture(scope="module")
def smoke_run(data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cache = tmp_path_factory.mktemp("cache")
    report = pipeline.run(SMOKE, data_dir, out, cache_dir=cache, num_augmented=2, progress=False)
    return out, cache, report


def test_report_has_the_promised_keys_and_files(smoke_run):
    out, _, r = smoke_run
    for key in ("data", "accuracy", "tflm_litert_agreement", "tflite_bytes", "arena_bytes", "ops",
                "params", "macs", "timings_s"):
        assert key in r, key
    assert set(r["accuracy"]) >= {"float_val", "float_test", "int8_test"}
    assert r["timings_s"]["total"] > 0
    assert json.loads((out / "report.json").read_text())["tflite_bytes"] == r["tflite_bytes"]
    for name in ("checkpoint.pt", "history.json", "model.tflite", "model_data.cpp", "model_data.h",
                 "model_settings.h", "report.md", "history.png", "confusion_int8.png"):
        assert (out / name).is_file(), name


def test_exported_model_meets_the_deploy_contract(smoke_run):
    out, _, r = smoke_run
    tflite = (out / "model.tflite").read_bytes()
    assert len(tflite) == r["tflite_bytes"] and len(tflite) <= 20_000
    assert set(r["ops"]) <= export.ALLOWED_OPS
    assert r["ops"] == ["CONV_2D", "FULLY_CONNECTED", "RESHAPE", "SOFTMAX"]
    q = export.io_quantization(tflite)
    assert q["input"]["dtype"] == "int8" and q["output"]["dtype"] == "int8"
    assert q["input"]["shape"] == [1, 49, 40, 1]
    assert q["input"]["zero_point"] == -128
    assert q["input"]["scale"] == pytest.approx(frontend.INPUT_SCALE, rel=1e-6)
    assert r["tflm_litert_agreement"] == 1.0
    assert 0 < r["arena_bytes"] <= 10_240
    # the C array is the compact device model: smaller, the same TFLite Micro outputs
    device = (out / "model_device.tflite").read_bytes()
    assert firmware.parse_c_array((out / "model_data.cpp").read_text()) == device
    assert len(device) == r["device_tflite_bytes"] < len(tflite)
    assert export.compact_tflite(tflite)[0] == device


def test_confusion_counts_every_test_clip(smoke_run):
    _, _, r = smoke_run
    cm = np.array(r["confusion_int8_test"])
    assert cm.sum() == sum(v for k, v in r["data"]["testing"].items() if k != "speakers")
    assert np.trace(cm) / cm.sum() == pytest.approx(r["accuracy"]["int8_test"])


def test_same_seed_gives_the_same_numbers(smoke_run, data_dir, tmp_path):
    out, cache, r = smoke_run
    again = pipeline.run(SMOKE, data_dir, tmp_path, cache_dir=cache, num_augmented=2, progress=False)
    assert again["accuracy"] == r["accuracy"]
    assert again["tflite_bytes"] == r["tflite_bytes"]
    h1, h2 = (json.loads((d / "history.json").read_text()) for d in (out, tmp_path))
    assert h1["train_loss"] == h2["train_loss"]


def test_checkpoint_round_trip(smoke_run):
    out, _, _ = smoke_run
    model, cfg, ckpt = train.load_checkpoint(out / "checkpoint.pt")
    assert cfg == SMOKE
    assert ckpt["history"]["epoch"] == [1, 2, 3]
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train.load_checkpoint(out / "missing.pt")
