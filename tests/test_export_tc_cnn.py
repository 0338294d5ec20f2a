"""The temporal-convolution model (tc_cnn) through the whole export path.

Untrained weights with non-trivial BatchNorm statistics (as after training); 12 classes on
the device's 49 x 40 features. What must hold for the model to be a registry entry: the
Keras twin computes the PyTorch logits, the int8 model uses only ops the deploy library
registers, and TFLite Micro (the board's interpreter) agrees with LiteRT, also in the
compact device form.
"""
import numpy as np
import pytest
import torch
from torch import nn

from kwslab import export, models

pytestmark = [pytest.mark.slow, pytest.mark.tflm]


@pytest.fixture(scope="module")
def tc_cnn_case():
    torch.manual_seed(0)
    model = models.build_model("tc_cnn", 12).eval()
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.weight.uniform_(0.5, 1.5, generator=g)
                m.bias.normal_(0, 0.1, generator=g)
    x = np.random.default_rng(0).integers(-128, 60, (24, 49, 40)).astype(np.int8)
    kmodel_logits = export.keras_twin(model, softmax=False)
    tflite = export.convert_int8(export.keras_twin(model), export.representative_features(x))
    return model, kmodel_logits, tflite, x


def test_keras_twin_computes_the_pytorch_logits(tc_cnn_case):
    model, kmodel_logits, _, x = tc_cnn_case
    assert export.check_twin(model, kmodel_logits, x, atol=1e-4) <= 1e-4
    # the check can fail: a twin of other weights is refused
    torch.manual_seed(5)
    other = models.build_model("tc_cnn", 12).eval()
    with pytest.raises(export.ExportError, match="differs"):
        export.check_twin(other, kmodel_logits, x, atol=1e-4)


def test_int8_model_uses_only_deploy_ops_and_tflm_agrees_with_litert(tc_cnn_case):
    _, _, tflite, x = tc_cnn_case
    assert set(export.model_ops(tflite)) <= export.ALLOWED_OPS
    assert export.op_names(tflite).count("DEPTHWISE_CONV_2D") == 4
    q = export.io_quantization(tflite)
    assert q["input"]["dtype"] == q["output"]["dtype"] == "int8"
    assert q["input"]["shape"] == [1, 49, 40, 1]
    ref = export.run_litert(tflite, x)
    assert np.array_equal(export.run_tflm(tflite, x), ref)
    compact, _ = export.compact_tflite(tflite)
    assert len(compact) < len(tflite)
    assert np.array_equal(export.run_tflm(compact, x), ref)
    # the int8 model keeps the float model's decisions on most clips
    model, *_ = tc_cnn_case
    from kwslab.train import predict_logits
    agree = (predict_logits(model, x, device="cpu").argmax(1) == ref.argmax(1)).mean()
    assert agree >= 0.75, agree
