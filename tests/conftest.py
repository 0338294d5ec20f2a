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
