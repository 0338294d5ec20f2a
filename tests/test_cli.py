"""The `kwslab` command line: run -> export -> detect on real clips, and clear errors."""
import json

import numpy as np
import pytest
import soundfile as sf

from kwslab import cli, dataset, detect
from kwslab.config import TWELVE_CLASS_WORDS



@pytest.mark.slow
@pytest.mark.tflm
def test_run_export_detect_chain(data_dir, tmp_path, capsys):
    runs, cache = tmp_path / "runs", tmp_path / "cache"
    assert cli.main(["run", "--data", str(data_dir), "--max-clips", "15", "--epochs", "2",
                     "--augmented-copies", "1", "--runs", str(runs), "--name", "smoke",
                     "--cache", str(cache)]) == 0
    out = capsys.readouterr().out
    assert "int8 test (TFLM)" in out and "report:" in out
    run_dir = runs / "smoke"
    report = json.loads((run_dir / "report.json").read_text())
    assert report["tflm_litert_agreement"] == 1.0

    export_dir = tmp_path / "export"
    assert cli.main(["export", str(run_dir / "checkpoint.pt"), "--data", str(data_dir),
                     "--out", str(export_dir), "--cache", str(cache)]) == 0
    exported = json.loads(capsys.readouterr().out)
    # Same checkpoint, same calibration data: the same model bytes as the run's export.
    assert (export_dir / "model.tflite").read_bytes() == (run_dir / "model.tflite").read_bytes()
    assert exported["tflite_bytes"] == report["tflite_bytes"]

    clip = dataset.read_wav(data_dir / "yes" / "f2e59fea_nohash_1.wav")
    wav = tmp_path / "long.wav"
    sf.write(wav, np.concatenate([np.zeros(8000), clip, np.zeros(16000)]).astype(np.float32), 16000,
             subtype="PCM_16")
    assert cli.main(["detect", str(wav), "--model", str(run_dir / "model.tflite"),
                     "--config", str(run_dir / "config.json")]) == 0
    for line in capsys.readouterr().out.splitlines():  # label <tab> time_ms <tab> score
        label, time_ms, score = line.split("\t")
        assert label in report["config"]["data"]["words"] and 0 <= int(time_ms) <= 2500
        assert 0 <= int(score) <= 255


@pytest.mark.slow
@pytest.mark.tflm
def test_missing_data_folder_is_a_clear_error(tmp_path, capsys):
    missing = tmp_path / "nothing"
    assert cli.main(["run", "--data", str(missing), "--runs", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "does not exist" in err


@pytest.mark.slow
@pytest.mark.tflm
def test_bad_words_option_is_refused():
    with pytest.raises(SystemExit):
        cli.main(["run", "--words", ","])
    assert cli._words("12") == ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")


def test_run_model_typo_fails_before_any_work(capsys):
    from kwslab import cli

    with pytest.raises(SystemExit) as e:
        cli.main(["run", "--model", "tiny-conv"])
    assert e.value.code == 2
    assert "invalid choice: 'tiny-conv'" in capsys.readouterr().err


@pytest.mark.parametrize("argv,expected", [
    # (model, words, dropout, epochs, learning_rate): the recipes `kwslab run` always used
    (["run"], ("tiny_conv", ("yes", "no"), 0.5, 200, 1e-3)),
    (["run", "--model", "ds_cnn", "--words", "12"],
     ("ds_cnn", TWELVE_CLASS_WORDS, 0.2, 60, 2e-3)),
    (["run", "--model", "ds_cnn", "--words", "yes,no", "--epochs", "5", "--lr", "0.01"],
     ("ds_cnn", ("yes", "no"), 0.2, 5, 0.01)),
])
def test_run_config_is_the_preset_plus_the_options(argv, expected):
    from kwslab import cli

    cfg = cli.run_config(cli.build_parser().parse_args(argv))
    assert (cfg.model.name, cfg.data.words, cfg.model.dropout, cfg.train.epochs,
            cfg.train.learning_rate) == expected
    assert (cfg.train.batch_size, cfg.train.seed, cfg.train.augment) == (100, 0, True)
    assert cfg.data.max_clips_per_label is None


def test_run_set_changes_config_fields_last():
    from kwslab import cli

    argv = ["run", "--epochs", "5", "--set", "data.unknown_percentage=400",
            "--set", "recognize.average_window_ms=500", "--set", "train.epochs=7",
            "--set", "model.name=ds_cnn"]
    cfg = cli.run_config(cli.build_parser().parse_args(argv))
    assert cfg.data.unknown_percentage == 400 and cfg.recognize.average_window_ms == 500
    assert cfg.train.epochs == 7 and cfg.model.name == "ds_cnn"
    assert cfg.data.words == ("yes", "no")  # the rest is the preset's


@pytest.mark.parametrize("item,message", [
    ("data.unknown_percentage", "expected section.field=value"),
    ("unknown_percentage=400", "expected section.field=value"),
    ("dataset.unknown_percentage=400", "no config section 'dataset'"),
    ("data.unknown_pct=400", "data has no field 'unknown_pct'"),
])
def test_run_set_typo_is_a_clear_error_before_any_work(item, message, capsys):
    from kwslab import cli

    assert cli.main(["run", "--set", item]) != 0
    assert message in capsys.readouterr().err
