"""The training loop and evaluation; the DS-CNN and TC-CNN recipes through the whole pipeline."""
import json

import pytest
import torch

from kwslab import models, pipeline, train
from kwslab.config import Config


@pytest.mark.slow
@pytest.mark.tflm
@pytest.mark.parametrize("name", ["ds_cnn", "tc_cnn"])
def test_model_learns_through_pipeline_run(name, data_dir, tmp_path):
    # Regression: ds_cnn outside the CLI trained with Dropout(p=1.0) before pooling: the
    # classifier saw only zeros, no gradient reached the convolutions, and Adam with a zero
    # gradient leaves them exactly at their initial values (weight_decay 0).
    cfg = Config.for_model(name, ("yes", "no"), smoke=True,
                           data={"max_clips_per_label": 10}, train={"epochs": 4})
    torch.manual_seed(cfg.train.seed)  # pipeline.run builds the model after the same seed
    init = models.build_model(cfg.model.name, cfg.data.num_classes, dropout=cfg.model.dropout)
    pipeline.run(cfg, data_dir, tmp_path / "run", cache_dir=tmp_path / "cache",
                 num_augmented=1, progress=False)
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    trained, _, _ = train.load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert hist["train_loss"][-1] < hist["train_loss"][0]
    for layer in ("conv1", "dw1", "pw4"):
        change = (getattr(trained, layer).weight - getattr(init, layer).weight).abs().max().item()
        assert change > 1e-4, f"{layer} did not train (max |change| {change:.1e})"
    # the exported int8 model was checked in TFLite Micro and written with the model's ops
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["config"]["model"]["name"] == name
    assert report["tflm_litert_agreement"] == 1.0
    assert "DEPTHWISE_CONV_2D" in report["ops"]
