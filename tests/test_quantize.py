"""Non-graded checks of kwslab.quantize: input validation, BatchNorm folding, PTQ and QAT on
the lab's models (random weights and inputs, no dataset)."""
import pytest
import torch
from torch import nn

from kwslab import quantize as Q
from kwslab.models import DSCNN, TinyConv


def _randomize_batchnorm(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial running statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.running_mean.copy_(torch.rand(c, generator=g) * 2 - 1)
                m.running_var.copy_(torch.rand(c, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                m.bias.copy_(torch.rand(c, generator=g) - 0.5)
    return model


# ---- validation ---------------------------------------------------------------------------

@pytest.mark.parametrize("call, match", [
    (lambda: Q.quant_range(1), "num_bits=1"),
    (lambda: Q.quant_range(17), "num_bits=17"),
    (lambda: Q.choose_qparams(2.0, 1.0), "x_min"),
    (lambda: Q.choose_qparams(torch.zeros(2), torch.ones(3)), "shape"),
    (lambda: Q.choose_qparams(0.0, float("inf")), "finite"),
    (lambda: Q.quantize(torch.ones(2), 0.0, 0), "scale must be > 0"),
    (lambda: Q.quantize(torch.ones(2), 0.1, 0, 5, 5), "quant_min=5"),
    (lambda: Q.quantize(torch.ones(2, 3), torch.ones(2), torch.zeros(2), axis=1), "axis=1"),
    (lambda: Q.quantize(torch.ones(2, 3), torch.ones(2), torch.zeros(2)), "per-tensor"),
    (lambda: Q.quantize(torch.ones(2, 3), torch.ones(2), torch.zeros(2), axis=2), "out of range"),
    (lambda: Q.fake_quantize(torch.ones(2), -1.0, 0), "scale must be > 0"),
    (lambda: Q.update_min_max(torch.ones(0), torch.tensor(0.0), torch.tensor(1.0)), "empty"),
    (lambda: Q.update_min_max(torch.ones(2), torch.tensor(0.0), torch.tensor(1.0), 1.5),
     "averaging_constant"),
    (lambda: Q.minifloat_quantize(torch.ones(2), 0, 3), "exponent_bits"),
])
def test_invalid_input_raises_value_error_naming_the_value(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_minifloat_keeps_nan_and_saturates_inf():
    y = Q.minifloat_quantize(torch.tensor([float("nan"), float("inf"), -float("inf"), 0.0]), 4, 3)
    assert torch.isnan(y[0])
    assert y[1:].tolist() == [480.0, -480.0, 0.0]


def test_fake_quantize_equals_dequantize_of_quantize():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 5, generator=g) * 3
    scale, zero_point = Q.choose_qparams(x.amin(dim=(0, 2)), x.amax(dim=(0, 2)), num_bits=6)
    qmin, qmax = Q.quant_range(6)
    expected = Q.dequantize(Q.quantize(x, scale, zero_point, qmin, qmax, axis=1), scale,
                            zero_point, axis=1)
    torch.testing.assert_close(Q.fake_quantize(x, scale, zero_point, qmin, qmax, axis=1),
                               expected, rtol=0, atol=0)


# ---- BatchNorm folding --------------------------------------------------------------------

def test_fold_batchnorm_gives_the_same_outputs_without_batchnorm():
    torch.manual_seed(0)
    model = _randomize_batchnorm(DSCNN(4, channels=8, num_blocks=2)).eval()
    folded = Q.fold_batchnorm(model)
    x = torch.randn(2, 1, 49, 40)
    with torch.no_grad():
        # float32 sums in a different order: agreement to about 1e-6 relative
        torch.testing.assert_close(folded(x), model(x), rtol=1e-5, atol=1e-5)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 5  # untouched
    assert isinstance(folded, DSCNN) and "bn1" not in dict(folded.named_children())


def test_fold_batchnorm_leaves_a_model_without_batchnorm_equal():
    torch.manual_seed(0)
    model = TinyConv(4).eval()
    folded = Q.fold_batchnorm(model)
    assert folded is not model
    assert [type(m) for m in folded] == [type(m) for m in model]
    for (name, a), b in zip(model.state_dict().items(), folded.state_dict().values()):
        assert torch.equal(a, b), name


# ---- PTQ and QAT on the lab's models ------------------------------------------------------

def _relative_error(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).abs().max() / b.abs().max()).item()


def test_ptq_8_bit_changes_tiny_conv_logits_only_slightly():
    torch.manual_seed(0)
    model = TinyConv(4).eval()
    x = torch.randn(16, 1, 49, 40)
    loader = [(x[:8], torch.zeros(8)), (x[8:], torch.zeros(8))]  # (inputs, labels) pairs
    with torch.no_grad():
        y_float = model(x)
        y8 = Q.quantize_model_ptq(model, loader, num_bits=8)(x)
        y4 = Q.quantize_model_ptq(model, loader, num_bits=4)(x)
    err8, err4 = _relative_error(y8, y_float), _relative_error(y4, y_float)
    # measured: 8 bits about 1-2 % of the largest logit, 4 bits about 10-20 times more
    assert 0 < err8 < 0.05, f"8-bit PTQ relative logit error {err8:.4f}"
    assert err4 > 3 * err8, f"4-bit error {err4:.4f} should exceed 8-bit error {err8:.4f}"


def test_ptq_weights_lie_on_the_int8_grid():
    torch.manual_seed(0)
    qmodel = Q.quantize_model_ptq(TinyConv(4), [torch.randn(4, 1, 49, 40)])
    w = qmodel.fc.fake_quantize_weight().detach()
    scale, _ = Q.weight_qparams(qmodel.fc.weight)
    codes = w / scale[:, None]
    torch.testing.assert_close(codes, codes.round(), rtol=0, atol=1e-3)
    assert codes.abs().max().round().item() == 127  # the largest weight of a row maps to 127


def test_ptq_on_ds_cnn_folds_batchnorm_and_stays_close():
    torch.manual_seed(0)
    model = _randomize_batchnorm(DSCNN(4, channels=8, num_blocks=1)).eval()
    x = torch.randn(8, 1, 49, 40)
    qmodel = Q.quantize_model_ptq(model, [x], num_bits=8)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in qmodel.modules())
    assert isinstance(qmodel.dw1, Q.QuantConv2d) and qmodel.dw1.groups == 8
    with torch.no_grad():
        assert _relative_error(qmodel(x), model(x)) < 0.05


def test_qat_model_trains_one_step():
    torch.manual_seed(0)
    model = TinyConv(4)
    qmodel = Q.prepare_qat(model, num_bits=8).train()
    optimizer = torch.optim.SGD(qmodel.parameters(), lr=0.1)
    x, y = torch.randn(4, 1, 49, 40), torch.tensor([0, 1, 2, 3])
    before = qmodel.fc.weight.detach().clone()
    loss = nn.functional.cross_entropy(qmodel(x), y)
    loss.backward()
    assert torch.isfinite(loss)
    assert qmodel.conv1.weight.grad.abs().sum() > 0 and qmodel.fc.weight.grad.abs().sum() > 0
    optimizer.step()
    assert not torch.equal(qmodel.fc.weight, before)
    assert torch.equal(model.fc.weight, before)  # the float model did not move
    # the input ranges were observed; eval mode freezes them
    observed = qmodel.fc.act_max.clone()
    qmodel.eval()
    with torch.no_grad():
        qmodel(x * 10)
    assert torch.equal(qmodel.fc.act_max, observed)


def test_uncalibrated_model_in_eval_mode_raises():
    qmodel = Q.prepare_qat(TinyConv(4)).eval()
    with pytest.raises(RuntimeError, match="calibrate"):
        qmodel(torch.zeros(1, 1, 49, 40))


def test_calibrate_rejects_float_models_and_empty_loaders():
    with pytest.raises(ValueError, match="prepare_qat"):
        Q.calibrate(TinyConv(4), [torch.zeros(1, 1, 49, 40)])
    with pytest.raises(ValueError, match="no batch"):
        Q.calibrate(Q.prepare_qat(TinyConv(4)), [])
