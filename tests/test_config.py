"""Config presets, the RecognizeCommands settings and the repository paths."""
import json

import pytest

from kwslab import config, models
from kwslab.config import PRESETS, TWELVE_CLASS_WORDS, Config, RecognizeConfig


def test_for_model_defaults_to_the_micro_speech_recipe():
    cfg = Config.for_model()
    assert (cfg.model.name, cfg.model.dropout) == ("tiny_conv", 0.5)
    assert cfg.data.words == ("yes", "no")
    assert (cfg.train.epochs, cfg.train.learning_rate) == (200, 1e-3)


def test_ds_cnn_recipe_is_the_12_class_task_with_dropout_below_a_half():
    cfg = Config.for_model("ds_cnn")
    assert cfg.data.words == TWELVE_CLASS_WORDS and cfg.data.num_classes == 12
    assert (cfg.model.dropout, cfg.train.epochs, cfg.train.learning_rate) == (0.2, 60, 2e-3)
    model = models.build_model(cfg.model.name, cfg.data.num_classes, dropout=cfg.model.dropout)
    assert model.dropout2.p == pytest.approx(0.4)  # 2 * dropout before pooling


def test_naming_ds_cnn_alone_no_longer_gives_dropout_one():
    # The old trap: Config().replace(model={"name": "ds_cnn"}) kept tiny_conv's 0.5, and DS-CNN
    # drops 2 * 0.5 = 1.0 of its pooled features.
    cfg = Config().replace(model={"name": "ds_cnn"})
    model = models.build_model(cfg.model.name, cfg.data.num_classes, dropout=cfg.model.dropout)
    assert model.dropout2.p < 1
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 0.5\)"):
        models.build_model("ds_cnn", 12, dropout=0.5)


def test_for_model_words_smoke_and_overrides():
    cfg = Config.for_model("ds_cnn", ("up", "down"), smoke=True, train={"seed": 3})
    assert cfg.data.words == ("up", "down")
    assert cfg.data.max_clips_per_label == config.SMOKE["data"]["max_clips_per_label"]
    assert cfg.train.epochs == config.SMOKE["train"]["epochs"]
    assert (cfg.train.seed, cfg.train.learning_rate) == (3, 2e-3)


def test_for_model_names_the_presets_on_a_typo():
    with pytest.raises(ValueError, match="ds_cnn.*tiny_conv"):
        Config.for_model("tiny-conv")


def test_presets_cover_the_model_registry():
    assert set(PRESETS) == set(models.MODELS)


def test_config_round_trips_through_json_with_recognize_settings():
    cfg = Config.for_model("ds_cnn").replace(recognize={"detection_threshold": 220})
    back = Config.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and back.recognize.detection_threshold == 220


def test_old_config_without_recognize_loads_with_micro_speech_defaults():
    d = Config().to_dict()
    del d["recognize"]
    assert Config.from_dict(d).recognize == RecognizeConfig(1000, 200, 1500, 3)


def test_deploy_dirs_are_the_sketch_and_the_psoc6_app():
    root = config.repo_root()
    assert (root / "pyproject.toml").is_file()
    assert [p.relative_to(root).as_posix() for p in config.deploy_dirs()] == [
        "arduino/kws_nano33ble", "psoc6/kws_psoc6/source"]


def test_outside_a_checkout_paths_fail_with_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(config, "REPO_ROOT", tmp_path)
    with pytest.raises(FileNotFoundError, match="not from a repository checkout"):
        config.deploy_dirs()


def test_model_width_is_a_config_option_that_survives_a_checkpoint(tmp_path):
    from kwslab import train

    cfg = Config.for_model("ds_cnn", ("yes", "no"), model={"channels": 32})
    model = models.model_from_config(cfg)
    assert model.conv1.out_channels == 32 and model.pw4.in_channels == 32
    assert sum(p.numel() for p in model.parameters()) == 7236  # the yes/no small-flash DS-CNN
    assert models.model_from_config(Config.for_model("ds_cnn")).conv1.out_channels == 64
    train.save_checkpoint(tmp_path / "c.pt", model, cfg, train.History())
    loaded, loaded_cfg, _ = train.load_checkpoint(tmp_path / "c.pt")
    assert loaded_cfg.model.channels == 32 and loaded.fc.in_features == 32
    with pytest.raises(ValueError, match="channels=0"):
        models.build_model("tiny_conv", 4, channels=0)
