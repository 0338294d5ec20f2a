"""Graded tests for the quantization lab (kwslab.quantize).

Every expected number is derived by hand in the comment above it, following the numeric
spec in the kwslab.quantize module docstring (round half to even; asymmetric ranges widened
to include 0; symmetric weights in the narrow range [-127, 127]; int32 zero_point).
Where PyTorch has a reference (torch.quantize_per_tensor, torch.fake_quantize_per_*_affine,
the torch.ao observers, torch.float8_*), the test compares against it too.

Student functions are looked up through the module at call time (``Q.quantize``), so that a
grader can substitute an implementation. Minifloat tests are extra credit.
"""
import pytest
import torch
from torch import nn

from kwslab import quantize as Q
from kwslab.models import TinyConv

# torch.quantize_per_tensor / _per_channel (used as references only) warn that they are
# deprecated; the warning says nothing about the code under test.
pytestmark = pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning")


def _close(actual, expected, tol=1e-6):
    """float32 comparison: 1e-6 relative is about 8 float32 ulps, far below any grid step."""
    torch.testing.assert_close(actual, torch.as_tensor(expected, dtype=torch.float32),
                               rtol=tol, atol=tol)


def _equal_int(actual, expected):
    assert actual.dtype == torch.int32, f"expected int32 codes, got {actual.dtype}"
    assert torch.equal(actual, torch.tensor(expected, dtype=torch.int32)), \
        f"got {actual.tolist()}, expected {expected}"


@pytest.mark.graded(points=1)
def test_quant_range_full_and_narrow():
    # full: [-2**(b-1), 2**(b-1) - 1]; narrow drops the lowest code.
    # 8 bits: [-128, 127] and [-127, 127]; 4 bits: [-8, 7] and [-7, 7]; 2 bits: [-2, 1].
    assert Q.quant_range(8) == (-128, 127)
    assert Q.quant_range(8, narrow_range=True) == (-127, 127)
    assert Q.quant_range(4) == (-8, 7)
    assert Q.quant_range(4, narrow_range=True) == (-7, 7)
    assert Q.quant_range(2) == (-2, 1)


@pytest.mark.graded(points=2)
def test_choose_qparams_asymmetric_maps_min_and_max_to_int8_ends():
    # x in [-1, 3]: scale = (3 - (-1)) / (127 - (-128)) = 4/255
    # zero_point = -128 - round(-1 / (4/255)) = -128 - round(-63.75) = -128 + 64 = -64
    scale, zero_point = Q.choose_qparams(-1.0, 3.0, num_bits=8)
    assert scale.dtype == torch.float32 and zero_point.dtype == torch.int32
    assert scale.shape == () and zero_point.shape == ()
    assert scale.item() == pytest.approx(4 / 255, rel=1e-6)
    assert zero_point.item() == -64
    # x in [-0.5, 3]: scale = 3.5/255; zero_point = -128 - round(-0.5 * 255/3.5)
    # = -128 - round(-36.43) = -128 + 36 = -92
    scale, zero_point = Q.choose_qparams(-0.5, 3.0, num_bits=8)
    assert scale.item() == pytest.approx(3.5 / 255, rel=1e-6)
    assert zero_point.item() == -92


@pytest.mark.graded(points=1)
def test_choose_qparams_widens_range_to_include_zero():
    # [0.5, 2] -> [0, 2]: scale = 2/255, zero_point = -128 - round(0) = -128.
    scale, zero_point = Q.choose_qparams(0.5, 2.0)
    assert scale.item() == pytest.approx(2 / 255, rel=1e-6)
    assert zero_point.item() == -128
    # [-2, -1] -> [-2, 0]: scale = 2/255, zero_point = -128 - round(-2 / (2/255))
    # = -128 - (-255) = 127.
    scale, zero_point = Q.choose_qparams(-2.0, -1.0)
    assert scale.item() == pytest.approx(2 / 255, rel=1e-6)
    assert zero_point.item() == 127


@pytest.mark.graded(points=2)
def test_choose_qparams_symmetric_uses_max_abs_and_narrow_range():
    # x in [-2, 1]: max_abs = max(|-2|, |1|) = 2; narrow int8 [-127, 127]:
    # scale = 2 / ((127 - (-127)) / 2) = 2/127, zero_point = 0.
    scale, zero_point = Q.choose_qparams(-2.0, 1.0, num_bits=8, symmetric=True)
    assert scale.item() == pytest.approx(2 / 127, rel=1e-6)
    assert zero_point.item() == 0 and zero_point.dtype == torch.int32
    # full range [-128, 127]: scale = 2 / (255 / 2) = 4/255.
    scale, _ = Q.choose_qparams(-2.0, 1.0, symmetric=True, narrow_range=False)
    assert scale.item() == pytest.approx(4 / 255, rel=1e-6)


@pytest.mark.graded(points=2)
def test_choose_qparams_per_channel():
    # channel 0: [-1, 3] -> scale 4/255, zero_point -64 (as above)
    # channel 1: [0, 2]  -> scale 2/255, zero_point -128 - round(0) = -128
    # channel 2: [-4, 1] -> scale 5/255, zero_point -128 - round(-4 * 255/5) = -128 + 204 = 76
    scale, zero_point = Q.choose_qparams(torch.tensor([-1.0, 0.0, -4.0]),
                                         torch.tensor([3.0, 2.0, 1.0]))
    assert scale.shape == (3,) and zero_point.shape == (3,)
    _close(scale, [4 / 255, 2 / 255, 5 / 255])
    _equal_int(zero_point, [-64, -128, 76])


@pytest.mark.graded(points=2)
def test_quantize_rounds_half_to_even_and_clamps():
    # scale 0.5, zero_point 0: x / 0.5 = [-140, -1.5, -0.5, 0.5, 1.5, 2.5, 127.5, 140]
    # round half to even -> [-140, -2, 0, 0, 2, 2, 128, 140]; clamp to [-128, 127].
    x = torch.tensor([-70.0, -0.75, -0.25, 0.25, 0.75, 1.25, 63.75, 70.0])
    expected = [-128, -2, 0, 0, 2, 2, 127, 127]
    q = Q.quantize(x, 0.5, 0, -128, 127)
    _equal_int(q, expected)
    reference = torch.quantize_per_tensor(x, 0.5, 0, torch.qint8).int_repr()
    assert q.tolist() == reference.tolist()


@pytest.mark.graded(points=2)
def test_quantize_adds_zero_point():
    # scale 0.25, zero_point -10: x / 0.25 = [-4, 0, 2, 140] -> + (-10) = [-14, -10, -8, 130]
    # -> 130 clamped to 127.
    x = torch.tensor([-1.0, 0.0, 0.5, 35.0])
    _equal_int(Q.quantize(x, 0.25, -10, -128, 127), [-14, -10, -8, 127])
    # same with 0-d tensor qparams, as choose_qparams returns them
    q = Q.quantize(x, torch.tensor(0.25), torch.tensor(-10, dtype=torch.int32), -128, 127)
    _equal_int(q, [-14, -10, -8, 127])


@pytest.mark.graded(points=1)
def test_dequantize_subtracts_zero_point_then_scales():
    # (q - zero_point) * scale with scale 0.25, zero_point -10:
    # (-128 + 10) * 0.25 = -29.5; (-10 + 10) * 0.25 = 0; (127 + 10) * 0.25 = 34.25
    q = torch.tensor([-128, -10, 127], dtype=torch.int32)
    x = Q.dequantize(q, 0.25, -10)
    assert x.dtype == torch.float32
    _close(x, [-29.5, 0.0, 34.25])


@pytest.mark.graded(points=2)
def test_quantize_per_channel_along_axis_0():
    # row 0: scale 0.5, zero_point 0:   [1.0, -0.75, 2.6] / 0.5 = [2, -1.5, 5.2] -> [2, -2, 5]
    # row 1: scale 0.25, zero_point 1:  [1.0, -0.75, 2.6] / 0.25 = [4, -3, 10.4] -> +1
    #        -> [5, -2, 11]
    x = torch.tensor([[1.0, -0.75, 2.6], [1.0, -0.75, 2.6]])
    scale = torch.tensor([0.5, 0.25])
    zero_point = torch.tensor([0, 1], dtype=torch.int32)
    q = Q.quantize(x, scale, zero_point, -128, 127, axis=0)
    _equal_int(q, [[2, -2, 5], [5, -2, 11]])
    reference = torch.quantize_per_channel(x, scale.double(), zero_point.long(), 0,
                                           torch.qint8).int_repr()
    assert q.tolist() == reference.tolist()
    # back to float: row 0 [2, -2, 5] * 0.5 = [1, -1, 2.5]; row 1 ([5, -2, 11] - 1) * 0.25
    # = [1, -0.75, 2.5]
    _close(Q.dequantize(q, scale, zero_point, axis=0), [[1.0, -1.0, 2.5], [1.0, -0.75, 2.5]])


@pytest.mark.graded(points=2)
def test_fake_quantize_per_tensor_matches_torch():
    # scale 0.5, zero_point 3, range [-8, 7] (4 bits):
    # x = [-6, -1.25, 0.3, 1.9, 5]: x / 0.5 = [-12, -2.5, 0.6, 3.8, 10] -> round
    # [-12, -2, 1, 4, 10] -> + 3 = [-9, 1, 4, 7, 13] -> clamp [-8, 1, 4, 7, 7]
    # -> (q - 3) * 0.5 = [-5.5, -1, 0.5, 2, 2]
    x = torch.tensor([-6.0, -1.25, 0.3, 1.9, 5.0])
    y = Q.fake_quantize(x, 0.5, 3, -8, 7)
    _close(y, [-5.5, -1.0, 0.5, 2.0, 2.0])
    # a random tensor against PyTorch's own fake quantization (int8, scale 0.05, zp 3)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 5, generator=g) * 3
    reference = torch.fake_quantize_per_tensor_affine(
        x, torch.tensor(0.05), torch.tensor(3, dtype=torch.int32), -128, 127)
    _close(Q.fake_quantize(x, 0.05, 3, -128, 127), reference)


@pytest.mark.graded(points=2)
def test_fake_quantize_straight_through_gradient_is_clipped():
    # scale 1, zero_point 0, range [-2, 2]: round(x) = [-3, -2, -1, 0, 2, 3]
    # inside [-2, 2]?                            [ F,  T,  T, T, T, F]
    # d(sum)/dx with the clipped STE =           [ 0,  1,  1, 1, 1, 0]
    x = torch.tensor([-3.0, -2.4, -1.2, 0.3, 2.0, 2.6], requires_grad=True)
    y = Q.fake_quantize(x, 1.0, 0, -2, 2)
    _close(y.detach(), [-2.0, -2.0, -1.0, 0.0, 2.0, 2.0])
    y.sum().backward()
    _close(x.grad, [0.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    # PyTorch's fake quantization has the same gradient
    x_ref = x.detach().clone().requires_grad_(True)
    torch.fake_quantize_per_tensor_affine(x_ref, 1.0, 0, -2, 2).sum().backward()
    _close(x.grad, x_ref.grad)


@pytest.mark.graded(points=2)
def test_fake_quantize_per_channel_matches_torch_values_and_gradient():
    # 3 channels along axis 1 of a (2, 3, 4) tensor, 4-bit range [-8, 7].
    g = torch.Generator().manual_seed(1)
    x = (torch.randn(2, 3, 4, generator=g) * 2).requires_grad_(True)
    scale = torch.tensor([0.1, 0.25, 0.5])
    zero_point = torch.tensor([0, -2, 3], dtype=torch.int32)
    y = Q.fake_quantize(x, scale, zero_point, -8, 7, axis=1)
    x_ref = x.detach().clone().requires_grad_(True)
    y_ref = torch.fake_quantize_per_channel_affine(x_ref, scale, zero_point, 1, -8, 7)
    _close(y.detach(), y_ref.detach())
    upstream = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4)
    (y * upstream).sum().backward()
    (y_ref * upstream).sum().backward()
    _close(x.grad, x_ref.grad)
    # both kinds of elements occur (some clipped, some not), so the check can tell
    assert 0 < int((x.grad == 0).sum()) < 24


@pytest.mark.graded(points=2)
def test_weight_qparams_one_scale_per_output_channel():
    # Conv2d-shaped weight (C_out=2, C_in=1, 1, 3):
    # channel 0 max |w| = 1.27 -> scale 1.27 / 127 = 0.01
    # channel 1 max |w| = 2.54 -> scale 2.54 / 127 = 0.02; zero_points 0.
    w = torch.tensor([[[[-1.27, 0.5, 0.25]]], [[[0.1, -0.2, 2.54]]]])
    scale, zero_point = Q.weight_qparams(w, num_bits=8)
    _close(scale, [0.01, 0.02])
    _equal_int(zero_point, [0, 0])


@pytest.mark.graded(points=1)
def test_update_min_max_calibration_keeps_the_extremes():
    # start empty (+inf, -inf); batch 1 [-1, 2] -> (-1, 2);
    # batch 2 [-0.5, 3] -> (min(-1, -0.5), max(2, 3)) = (-1, 3)
    lo, hi = torch.tensor(float("inf")), torch.tensor(float("-inf"))
    lo, hi = Q.update_min_max(torch.tensor([[-1.0, 2.0]]), lo, hi)
    lo, hi = Q.update_min_max(torch.tensor([[-0.5, 3.0]]), lo, hi)
    assert (lo.item(), hi.item()) == (-1.0, 3.0)


@pytest.mark.graded(points=1)
def test_update_min_max_moving_average():
    # running (-1, 2), batch [-3, 4], c = 0.25:
    # min = -1 + 0.25 * (-3 - (-1)) = -1.5; max = 2 + 0.25 * (4 - 2) = 2.5
    lo, hi = Q.update_min_max(torch.tensor([-3.0, 0.0, 4.0]), torch.tensor(-1.0),
                              torch.tensor(2.0), averaging_constant=0.25)
    assert lo.item() == pytest.approx(-1.5) and hi.item() == pytest.approx(2.5)


@pytest.mark.graded(points=3)
def test_prepare_qat_returns_a_new_model_and_leaves_the_float_model_alone():
    torch.manual_seed(0)
    model = TinyConv(4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    qmodel = Q.prepare_qat(model, num_bits=8)
    assert qmodel is not model
    assert isinstance(qmodel.conv1, Q.QuantConv2d) and isinstance(qmodel.fc, Q.QuantLinear)
    # the float model keeps its float layers and weights
    assert type(model.conv1) is nn.Conv2d and type(model.fc) is nn.Linear
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), f"prepare_qat changed the float {name}"
    # the copy starts from the same weights but does not share their storage
    assert torch.equal(qmodel.fc.weight, model.fc.weight)
    with torch.no_grad():
        qmodel.fc.weight.add_(1.0)
        qmodel.conv1.weight.add_(1.0)
    assert torch.equal(model.fc.weight, before["fc.weight"]), "weights are shared"
    assert torch.equal(model.conv1.weight, before["conv1.weight"]), "weights are shared"


@pytest.mark.graded(points=1)
def test_quantize_rounds_x_over_scale_before_adding_zero_point():
    # scale 0.5, zero_point 1 (odd): x / 0.5 = [0.5, -0.5, 1.5, -1.5]
    # round half to even first -> [0, 0, 2, -2], then + 1 -> [1, 1, 3, -1].
    # (Rounding x / scale + zero_point = [1.5, 0.5, 2.5, -0.5] would give [2, 0, 2, 0],
    # what torch.quantize_per_tensor does on x86; the spec follows
    # torch.fake_quantize_per_tensor_affine, which rounds first.)
    x = torch.tensor([0.25, -0.25, 0.75, -0.75])
    _equal_int(Q.quantize(x, 0.5, 1, -128, 127), [1, 1, 3, -1])


@pytest.mark.graded(points=1)
def test_fake_quantize_rounds_x_over_scale_before_adding_zero_point():
    # as above: codes [1, 1, 3, -1] -> (q - 1) * 0.5 = [0, 0, 1, -1], as torch computes it
    x = torch.tensor([0.25, -0.25, 0.75, -0.75])
    y = Q.fake_quantize(x, 0.5, 1, -128, 127)
    _close(y, [0.0, 0.0, 1.0, -1.0])
    _close(y, torch.fake_quantize_per_tensor_affine(x, 0.5, 1, -128, 127))


@pytest.mark.graded(points=1)
def test_dequantize_int8_codes_do_not_wrap_around():
    # int8 codes, as a .tflite stores them, zero_point 10, scale 0.5:
    # (-128 - 10) * 0.5 = -69 (-138 does not fit in int8: compute in int32 or float);
    # (127 - 10) * 0.5 = 58.5; (0 - 10) * 0.5 = -5
    q = torch.tensor([-128, 127, 0], dtype=torch.int8)
    x = Q.dequantize(q, 0.5, 10)
    assert x.dtype == torch.float32
    _close(x, [-69.0, 58.5, -5.0])


@pytest.mark.graded(points=2)
def test_weight_qparams_honours_num_bits_and_guards_an_all_zero_channel():
    # Linear weight (3, 2), 4 bits: narrow range [-7, 7], scale[c] = max |w[c]| / 7:
    # row 0: 0.7 / 7 = 0.1; row 1: 0.14 / 7 = 0.02; row 2 all zero: SCALE_EPS = 2**-23
    w = torch.tensor([[-0.7, 0.35], [0.14, 0.0], [0.0, 0.0]])
    scale, zero_point = Q.weight_qparams(w, num_bits=4)
    assert scale.shape == (3,) and scale.dtype == torch.float32
    _close(scale[:2], [0.1, 0.02])
    assert scale[2].item() == torch.finfo(torch.float32).eps
    _equal_int(zero_point, [0, 0, 0])


@pytest.mark.graded(points=2)
def test_prepare_qat_passes_num_bits_and_keeps_each_layers_mode():
    torch.manual_seed(0)
    model = TinyConv(4).eval()
    qmodel = Q.prepare_qat(model, num_bits=4)
    assert qmodel.conv1.num_bits == 4 and qmodel.fc.num_bits == 4
    # eval in, eval out: every module, quantized twins included
    assert [m.training for m in qmodel.modules()] == [False] * len(list(qmodel.modules()))
    # 4-bit weights: each fc row takes at most 15 values, multiples of max |row| / 7
    w = qmodel.fc.fake_quantize_weight().detach()
    step = model.fc.weight.detach().abs().amax(dim=1, keepdim=True) / 7
    torch.testing.assert_close(w / step, torch.round(w / step), rtol=0, atol=1e-4)
    assert int((w / step).round().abs().max()) == 7
    # train in, train out
    qmodel = Q.prepare_qat(TinyConv(4).train(), num_bits=8)
    assert all(m.training for m in qmodel.modules())


@pytest.mark.graded(points=2)
def test_quantize_model_ptq_folds_batchnorm_and_passes_num_bits():
    # conv 1 -> 2 channels, 1 x 1, weights [1, -2], no bias; BatchNorm (eps 0):
    # gamma [2, 1], beta [0.5, -1], running_mean [0.25, 1], running_var [4, 0.25]
    # g = gamma / sqrt(var) = [2 / 2, 1 / 0.5] = [1, 2]
    # folded weight [1 * 1, -2 * 2] = [1, -4]; bias (0 - mean) * g + beta
    # = [-0.25 + 0.5, -2 - 1] = [0.25, -3]
    conv = nn.Conv2d(1, 2, 1, bias=False)
    bn = nn.BatchNorm2d(2, eps=0.0)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, -2.0]).view(2, 1, 1, 1))
        bn.weight.copy_(torch.tensor([2.0, 1.0]))
        bn.bias.copy_(torch.tensor([0.5, -1.0]))
        bn.running_mean.copy_(torch.tensor([0.25, 1.0]))
        bn.running_var.copy_(torch.tensor([4.0, 0.25]))
    model = nn.Sequential(conv, bn).eval()
    x = torch.tensor([0.0, 0.5, 1.5, 1.0]).view(1, 1, 2, 2)
    qmodel = Q.quantize_model_ptq(model, [x], num_bits=4)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in qmodel.modules())
    assert isinstance(qmodel[0], Q.QuantConv2d) and qmodel[0].num_bits == 4
    assert not any(m.training for m in qmodel.modules())
    _close(qmodel[0].weight.detach().flatten(), [1.0, -4.0])
    _close(qmodel[0].bias.detach(), [0.25, -3.0])
    # input range [0, 1.5], 4 bits [-8, 7]: scale 1.5 / 15 = 0.1, zero_point -8;
    # 0.5 -> 5 -> 0.5 exactly, so the output is the folded conv of x
    with torch.no_grad():
        y = qmodel(x)
    expected = torch.stack([x[0, 0] * 1 + 0.25, x[0, 0] * -4 - 3])[None]
    _close(y, expected, tol=1e-5)


def _ptq_example_model():
    layer = nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.27, -0.333], [0.2345, -2.54]]))
    return nn.Sequential(layer)


@pytest.mark.graded(points=3)
def test_quantize_model_ptq_by_hand():
    # Weights, symmetric per row, [-127, 127]:
    #   row 0: scale 1.27/127 = 0.01: [1.27, -0.333] -> [127, -33.3 -> -33] -> [1.27, -0.33]
    #   row 1: scale 2.54/127 = 0.02: [0.2345, -2.54] -> [11.725 -> 12, -127] -> [0.24, -2.54]
    # Input range from the first 2 calibration batches (the 3rd, with 10.0, is skipped):
    #   min -0.5, max 2.0 -> scale 2.5/255, zero_point -128 - round(-51) = -77.
    # Test input [3, -1] is clipped to the ends of the range: 3 -> 306 - 77 -> 127
    #   -> (127 + 77) * 2.5/255 = 2.0; -1 -> -102 - 77 -> -128 -> -51 * 2.5/255 = -0.5.
    # Test input [0.7, 0.1]: 0.7 / (2.5/255) = 71.4 -> 71; 0.1 -> 10.2 -> 10, i.e.
    #   a = 71 * 2.5/255, b = 10 * 2.5/255.
    model = _ptq_example_model()
    loader = [torch.tensor([[0.0, 1.0]]), torch.tensor([[2.0, -0.5]]), torch.tensor([[10.0, 0.0]])]
    qmodel = Q.quantize_model_ptq(model, loader, num_bits=8, num_batches=2)
    assert isinstance(qmodel[0], Q.QuantLinear)
    assert not qmodel.training
    assert (qmodel[0].act_min.item(), qmodel[0].act_max.item()) == (-0.5, 2.0)
    a, b = 71 * 2.5 / 255, 10 * 2.5 / 255
    expected = [[1.27 * 2.0 + (-0.33) * (-0.5), 0.24 * 2.0 + (-2.54) * (-0.5)],
                [1.27 * a + (-0.33) * b, 0.24 * a + (-2.54) * b]]
    with torch.no_grad():
        y = qmodel(torch.tensor([[3.0, -1.0], [0.7, 0.1]]))
    _close(y, expected, tol=1e-5)


### BEGIN HIDDEN TESTS
@pytest.mark.graded(points=1)
def test_choose_qparams_all_zero_range_uses_epsilon_scale():
    # [0, 0]: scale would be 0 -> clamped to float32 eps = 2**-23; zero_point
    # -128 - round(0 / eps) = -128 (asymmetric) and 0 (symmetric); zeros come back as 0.
    eps = torch.finfo(torch.float32).eps
    scale, zero_point = Q.choose_qparams(0.0, 0.0)
    assert scale.item() == eps and zero_point.item() == -128
    scale, zero_point = Q.choose_qparams(0.0, 0.0, symmetric=True)
    assert scale.item() == eps and zero_point.item() == 0
    _close(Q.fake_quantize(torch.zeros(3), scale, zero_point, -127, 127), [0.0, 0.0, 0.0])


@pytest.mark.graded(points=2)
def test_choose_qparams_matches_torch_observers():
    from torch.ao.quantization import MinMaxObserver, PerChannelMinMaxObserver
    g = torch.Generator().manual_seed(2)
    x = torch.randn(50, generator=g) * 2 + 0.5
    observer = MinMaxObserver(dtype=torch.qint8)
    observer(x)
    ref_scale, ref_zero_point = observer.calculate_qparams()
    scale, zero_point = Q.choose_qparams(x.min(), x.max())
    _close(scale, ref_scale.reshape(()))
    assert zero_point.item() == ref_zero_point.item()
    # per-channel symmetric narrow range = torch's per-channel symmetric with [-127, 127]
    w = torch.randn(4, 3, 2, 2, generator=g)
    observer = PerChannelMinMaxObserver(ch_axis=0, dtype=torch.qint8, quant_min=-127,
                                        quant_max=127, qscheme=torch.per_channel_symmetric)
    observer(w)
    ref_scale, _ = observer.calculate_qparams()
    scale, zero_point = Q.weight_qparams(w)
    _close(scale, ref_scale)
    _equal_int(zero_point, [0, 0, 0, 0])


@pytest.mark.graded(points=1)
def test_quantize_4_bit_per_channel_along_last_axis():
    # axis 1 of a (2, 2) tensor, 4 bits [-8, 7], scales [1, 0.5], zero_points [2, -1]:
    # column 0: [3.5, -20] / 1 = [3.5, -20] -> [4, -20] + 2 = [6, -18] -> clamp [6, -8]
    # column 1: [0.75, 1.25] / 0.5 = [1.5, 2.5] -> [2, 2] - 1 = [1, 1]
    x = torch.tensor([[3.5, 0.75], [-20.0, 1.25]])
    q = Q.quantize(x, torch.tensor([1.0, 0.5]), torch.tensor([2, -1], dtype=torch.int32),
                   -8, 7, axis=1)
    _equal_int(q, [[6, 1], [-8, 1]])


@pytest.mark.graded(points=1)
def test_dequantize_per_channel_axis_1():
    # columns: scale [0.5, 2], zero_point [1, -3]:
    # column 0: ([1, -1] - 1) * 0.5 = [0, -1]; column 1: ([-3, 0] + 3) * 2 = [0, 6]
    q = torch.tensor([[1, -3], [-1, 0]], dtype=torch.int32)
    x = Q.dequantize(q, torch.tensor([0.5, 2.0]), torch.tensor([1, -3], dtype=torch.int32),
                     axis=1)
    _close(x, [[0.0, 0.0], [-1.0, 6.0]])


@pytest.mark.graded(points=1)
def test_fake_quantize_gradient_at_asymmetric_range_ends():
    # scale 0.5, zero_point -3, range [-8, 7]: q = round(x / 0.5) - 3
    # x = [-2.5, -2.8, 5.0, 5.3]: x/0.5 = [-5, -5.6, 10, 10.6] -> [-5, -6, 10, 11] - 3
    #   = [-8, -9, 7, 8]: inside [T, F, T, F] -> gradient [1, 0, 1, 0]
    # values: clamp [-8, -8, 7, 7] -> (q + 3) * 0.5 = [-2.5, -2.5, 5, 5]
    x = torch.tensor([-2.5, -2.8, 5.0, 5.3], requires_grad=True)
    y = Q.fake_quantize(x, 0.5, -3, -8, 7)
    _close(y.detach(), [-2.5, -2.5, 5.0, 5.0])
    y.sum().backward()
    _close(x.grad, [1.0, 0.0, 1.0, 0.0])


@pytest.mark.graded(points=2)
def test_qat_model_passes_gradients_to_its_own_weights():
    torch.manual_seed(0)
    model = TinyConv(4)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    qmodel = Q.prepare_qat(model, num_bits=8).train()
    x = torch.randn(2, 1, 49, 40)
    loss = nn.functional.cross_entropy(qmodel(x), torch.tensor([0, 3]))
    loss.backward()
    for name in ("conv1", "fc"):
        grad = getattr(qmodel, name).weight.grad
        assert grad is not None and torch.isfinite(grad).all(), f"no gradient on {name}"
        assert grad.abs().sum() > 0, f"zero gradient on {name}.weight (STE missing?)"
        assert getattr(model, name).weight.grad is None, "gradient reached the float model"
    with torch.no_grad():
        for p in qmodel.parameters():
            p -= 0.1 * p.grad
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), f"a QAT step changed the float {name}"
    # the training step observed the input ranges (moving average starts at batch 1)
    assert qmodel.conv1.act_min.item() == pytest.approx(x.min().item())


@pytest.mark.graded(points=2)
def test_quantize_model_ptq_leaves_the_float_model_alone():
    torch.manual_seed(0)
    model = TinyConv(4).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(3, 1, 49, 40)
    with torch.no_grad():
        y_before = model(x)
        qmodel = Q.quantize_model_ptq(model, [x], num_bits=4)
        y_quant = qmodel(x)
    assert qmodel is not model
    assert type(model.conv1) is nn.Conv2d and type(model.fc) is nn.Linear
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), f"PTQ changed the float {name}"
    with torch.no_grad():
        assert torch.equal(model(x), y_before)
    # 4-bit PTQ changes the logits (so the quantized model is really a different one)
    assert not torch.allclose(y_quant, y_before, atol=1e-4)


@pytest.mark.graded(points=1)
def test_choose_qparams_zero_point_rounds_half_to_even():
    # x in [-3.5, 251.5]: scale = 255 / 255 = 1; x_min / scale = -3.5 -> round half to even
    # -> -4 -> zero_point = -128 - (-4) = -124 (round half up would give -3 -> -125)
    scale, zero_point = Q.choose_qparams(-3.5, 251.5)
    assert scale.item() == 1.0 and zero_point.item() == -124


@pytest.mark.graded(points=1)
def test_choose_qparams_symmetric_per_channel_is_per_channel():
    # channels [-1, 0.5] and [-0.5, 2]: max_abs 1 and 2 -> scales 1/127 and 2/127
    scale, zero_point = Q.choose_qparams(torch.tensor([-1.0, -0.5]), torch.tensor([0.5, 2.0]),
                                         symmetric=True)
    _close(scale, [1 / 127, 2 / 127])
    _equal_int(zero_point, [0, 0])


@pytest.mark.graded(points=1)
def test_weight_qparams_along_axis_1():
    # axis 1 of a (2, 3) weight: columns [1, 2], [-4, 1], [0.5, -1.5] -> max |w| 2, 4, 1.5
    # -> scales 2/127, 4/127, 1.5/127
    w = torch.tensor([[1.0, -4.0, 0.5], [2.0, 1.0, -1.5]])
    scale, _ = Q.weight_qparams(w, axis=1)
    _close(scale, [2 / 127, 4 / 127, 1.5 / 127])


class _MyConv(nn.Conv2d):
    """A Conv2d subclass: QUANT_LAYERS matches exact types, so prepare_qat leaves it float."""


@pytest.mark.graded(points=1)
def test_prepare_qat_converts_exact_types_only():
    model = nn.Sequential(_MyConv(1, 2, 1), nn.Flatten(), nn.Linear(2, 2))
    qmodel = Q.prepare_qat(model)
    assert type(qmodel[0]) is _MyConv and type(qmodel[2]) is Q.QuantLinear
    # preparing a prepared model changes nothing: its observed range stays
    qmodel[2].act_min.fill_(-1.0)
    qmodel[2].act_max.fill_(1.0)
    again = Q.prepare_qat(qmodel)
    assert type(again[2]) is Q.QuantLinear
    assert (again[2].act_min.item(), again[2].act_max.item()) == (-1.0, 1.0)
### END HIDDEN TESTS


# ---- extra credit: minifloat -------------------------------------------------------------

@pytest.mark.graded(points=2, extra_credit=True)
def test_minifloat_e2m1_grid():
    # E2M1, bias 1: subnormal step 2**(1-1-1) = 0.5 -> {0, 0.5}; normals 2**(e-1) * {1, 1.5}
    # for e = 1, 2, 3 -> {1, 1.5, 2, 3, 4, 6}; largest 2**(3-1) * (2 - 0.5) = 6.
    #  0.2 / 0.5 = 0.4 -> 0      0.25 / 0.5 = 0.5 -> 0 (tie, even)   0.3 -> 0.6 -> 1 -> 0.5
    #  0.75 / 0.5 = 1.5 -> 2 -> 1.0 (tie, even)   1.25 / 0.5 = 2.5 -> 2 -> 1.0 (tie, even)
    #  2.5 / 1 = 2.5 -> 2 (tie)  3.5 / 1 = 3.5 -> 4 (tie)  5 / 2 = 2.5 -> 2 -> 4 (tie)
    #  7 / 2 = 3.5 -> 4 -> 8 -> saturates to 6            -5.1 / 2 = -2.55 -> -3 -> -6
    x = torch.tensor([0.2, 0.25, 0.3, 0.75, 1.25, 2.5, 3.5, 5.0, 7.0, -5.1])
    y = Q.minifloat_quantize(x, exponent_bits=2, mantissa_bits=1)
    _close(y, [0.0, 0.0, 0.5, 1.0, 1.0, 2.0, 4.0, 4.0, 6.0, -6.0])


@pytest.mark.graded(points=2, extra_credit=True)
def test_minifloat_e4m3_values_and_saturation():
    # E4M3, bias 7: step in [1, 2) is 2**-3 = 0.125: 1.0625 / 0.125 = 8.5 -> 8 -> 1.0;
    # 1.1875 / 0.125 = 9.5 -> 10 -> 1.25.  In [256, 512) the step is 2**(8-3) = 32:
    # 300 / 32 = 9.375 -> 9 -> 288.  Smallest subnormal 2**(1-7-3) = 2**-9:
    # 0.003 / 2**-9 = 1.536 -> 2 -> 2**-8 = 0.00390625.  Largest 2**(15-7) * 1.875 = 480:
    # 500 -> 480, -1000 -> -480.
    x = torch.tensor([1.0625, 1.1875, 300.0, 0.003, 500.0, -1000.0])
    y = Q.minifloat_quantize(x, exponent_bits=4, mantissa_bits=3)
    _close(y, [1.0, 1.25, 288.0, 0.00390625, 480.0, -480.0])
    # below 448 the grid is OCP FP8 E4M3's: compare with torch.float8_e4m3fn
    g = torch.Generator().manual_seed(3)
    x = (torch.randn(200, generator=g) * torch.exp(torch.randn(200, generator=g) * 4))
    x = x.clamp(-448.0, 448.0)
    reference = x.to(torch.float8_e4m3fn).to(torch.float32)
    _close(Q.minifloat_quantize(x, 4, 3), reference, tol=0)


### BEGIN HIDDEN TESTS
@pytest.mark.graded(points=1, extra_credit=True)
def test_minifloat_e5m2_matches_torch_and_honours_bias():
    # E5M2 (bias 15) below 57344 is torch.float8_e5m2's grid.
    g = torch.Generator().manual_seed(4)
    x = (torch.randn(200, generator=g) * torch.exp(torch.randn(200, generator=g) * 6))
    x = x.clamp(-57344.0, 57344.0)
    reference = x.to(torch.float8_e5m2).to(torch.float32)
    _close(Q.minifloat_quantize(x, 5, 2), reference, tol=0)
    # E2M1 with bias 0: normals 2**(e - 0) * {1, 1.5} for e = 1..3 -> {2, 3, 4, 6, 8, 12},
    # largest 2**3 * 1.5 = 12; subnormals 2**(1 - 0) * {0, 0.5} = {0, 1} (step 1):
    # 0.4 -> 0; 0.6 -> 1; in [8, 16) the step is 4: 10 / 4 = 2.5 -> 2 -> 8; 13 -> 12
    y = Q.minifloat_quantize(torch.tensor([0.4, 0.6, 10.0, 13.0]), 2, 1, bias=0)
    _close(y, [0.0, 1.0, 8.0, 12.0])
### END HIDDEN TESTS
