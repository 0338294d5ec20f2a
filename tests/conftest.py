"""Shared fixtures: the Speech Commands folder and small feature sets."""
import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="session")
def data_dir():
    """The real Speech Commands folder (../shared subset in CI); skip when absent."""
    from kwslab import dataset

    try:
        return dataset.find_data_dir()
    except FileNotFoundError as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no Speech Commands data: {e}")


# ---- shared fixtures of the ungraded tests (no dataset, a few milliseconds each) ----


@pytest.fixture
def random_features():
    """Factory of FeatureData holding random int8 features and labels (no dataset).

    make(labels, input_shape=(T, F), n_train, n_eval, copies, seed) -> FeatureData with a
    (copies, n_train, T, F) training bank and (n_eval, T, F) validation and test splits.
    """
    import numpy as np

    from kwslab.frontend import FeatureData

    def make(labels=("_silence_", "_unknown_", "yes"), input_shape=(49, 40), n_train=24,
             n_eval=12, copies=2, seed=0):
        rng = np.random.default_rng(seed)
        feats = lambda *shape: rng.integers(-128, 128, size=(*shape, *input_shape)).astype(np.int8)  # noqa: E731
        ys = lambda n: rng.integers(0, len(labels), size=n).astype(np.int64)  # noqa: E731
        return FeatureData(labels=tuple(labels), train_x=feats(copies, n_train), train_y=ys(n_train),
                           val_x=feats(n_eval), val_y=ys(n_eval), test_x=feats(n_eval),
                           test_y=ys(n_eval), test_names=["_silence_"] * n_eval, stats={})

    return make


@pytest.fixture
def randomize_batchnorm():
    """randomize(model, seed) gives every BatchNorm2d non-trivial running statistics and
    affine parameters (mean in [-0.5, 0.5), var in [0.5, 1.5), gamma in [0.5, 1.5), beta in
    [-0.5, 0.5)), so folding and quantization tests see more than the identity."""
    import torch
    from torch import nn

    def randomize(model, seed=0):
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, nn.BatchNorm2d):
                    c = m.num_features
                    m.running_mean.copy_(torch.rand(c, generator=g) - 0.5)
                    m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                    m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                    m.bias.copy_(torch.rand(c, generator=g) - 0.5)
        return model

    return randomize


@pytest.fixture
def tiny_conv_export_case():
    """(cfg, model, data) for export tests without a dataset: the default Config, an
    untrained tiny_conv (seeded) and a namespace holding what ``export.export`` reads:
    a one-copy bank of 64 random int8 clips and 16 random test clips with labels."""
    from types import SimpleNamespace

    import numpy as np
    import torch

    from kwslab.config import Config
    from kwslab.models import TinyConv

    torch.manual_seed(0)
    cfg = Config()
    model = TinyConv(cfg.data.num_classes).eval()
    rng = np.random.default_rng(0)
    x = lambda *s: rng.integers(-128, 128, (*s, 49, 40)).astype(np.int8)  # noqa: E731
    data = SimpleNamespace(train_x=x(1, 64), test_x=x(16), test_y=rng.integers(0, 4, 16))
    return cfg, model, data


@pytest.fixture(scope="session")
def small_dscnn_int8():
    """(model, tflite, x): an untrained DS-CNN (5 classes, 12 channels, 2 blocks, input
    20 x 16; per-channel conv, depthwise and pointwise weights), its int8 conversion and the
    40 random int8 clips it was calibrated on (the inputs the tests run)."""
    import numpy as np
    import torch

    from kwslab import export
    from kwslab.models import DSCNN

    shape = (20, 16)
    torch.manual_seed(0)
    model = DSCNN(5, input_shape=shape, channels=12, num_blocks=2).eval()
    x = np.random.default_rng(0).integers(-128, 128, (40, *shape)).astype(np.int8)
    tflite = export.convert_int8(export.keras_twin(model, shape), export.representative_features(x, seed=0))
    return model, tflite, x
