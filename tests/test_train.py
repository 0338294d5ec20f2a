"""The training loop and evaluation; the DS-CNN recipe through the whole pipeline."""
import json

import pytest
import torch

from kwslab import models, pipeline, train
from kwslab.config import Config


@pytest.mark.slow
@pytest.mark.tflm
def test_ds_cnn_learns_through_pipeline_run(data_dir, tmp_path):
    # Regression: ds_cnn outside the CLI trained with Dropout(p=1.0) before pooling: the
    # classifier saw only zeros, no gradient reached the convolutions, and Adam with a zero
    # gradient leaves them exactly at their initial values (weight_decay 0).
    cfg = Config.for_model("ds_cnn", ("yes", "no"), smoke=True,
                           data={"max_clips_per_label": 10}, train={"epochs": 4})
    torch.manual_seed(cfg.train.seed)  # pipeline.run builds the model after the same seed
    init = models.build_model(cfg.model.name, cfg.data.num_classes, dropout=cfg.model.dropout)
    pipeline.run(cfg, data_dir, tmp_path / "run", cache_dir=tmp_path / "cache",
                 num_augmented=1, progress=False)
    hist = json.loads((tmp_path / "run" / "history.json").read_text())
    trained, _, _ = train.load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert hist["train_loss"][-1] < hist["train_loss"][0]
    for name in ("conv1", "dw1", "pw4"):
        change = (getattr(trained, name).weight - getattr(init, name).weight).abs().max().item()
        assert change > 1e-4, f"{name} did not train (max |change| {change:.1e})"
