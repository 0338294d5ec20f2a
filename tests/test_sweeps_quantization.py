"""Checks of the quantization sweeps (kwslab.sweeps) and the QAT helpers of kwslab.quantize on tiny random
models and random int8 features: no dataset, a few seconds in all."""
import copy
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from kwslab import quantize as Q
from kwslab import sweeps, train
from kwslab.config import TrainConfig
from kwslab.models import DSCNN, TinyConv

LABELS = ("_silence_", "_unknown_", "yes")


@pytest.fixture
def small_dscnn(randomize_batchnorm):
    """A DS-CNN with 8 channels and one block, BatchNorm given non-trivial statistics."""
    torch.manual_seed(0)
    return randomize_batchnorm(DSCNN(len(LABELS), channels=8, num_blocks=1)).eval()


def _tiny_conv(seed: int = 0) -> TinyConv:
    torch.manual_seed(seed)
    return TinyConv(len(LABELS)).eval()


def _snapshot(model: nn.Module):
    return ({k: v.clone() for k, v in model.state_dict().items()},
            [type(m) for m in model.modules()], model.training)


def _assert_unchanged(model: nn.Module, snapshot) -> None:
    state, types, training = snapshot
    assert [type(m) for m in model.modules()] == types, "the float model's layers were replaced"
    assert model.training == training, "the float model's train/eval mode changed"
    now = model.state_dict()
    assert now.keys() == state.keys()
    changed = [k for k in state if not torch.equal(now[k], state[k])]
    assert not changed, f"the float model's tensors changed: {changed}"


# ---- qat_to_float --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["tiny_conv", "ds_cnn"])
def test_qat_to_float_equals_qat_model_without_activation_quantization(name, request):
    # What is compared: in eval mode, the converted float model and the QAT model with each
    # layer's input fake quantization replaced by the identity compute the same ops on the
    # same weight values (the fake-quantized ones) and the same BatchNorm, so the logits are
    # bit-for-bit equal. With activation quantization left on (4 bits), they differ.
    model = _tiny_conv() if name == "tiny_conv" else request.getfixturevalue("small_dscnn")
    qmodel = Q.prepare_qat(model, num_bits=4)
    x = torch.rand(6, 1, 49, 40) * 26
    Q.calibrate(qmodel, [x])
    fmodel = Q.qat_to_float(qmodel)
    assert not any(isinstance(m, Q._FakeQuantMixin) for m in fmodel.modules())
    assert type(fmodel) is type(qmodel) and list(fmodel._modules) == list(qmodel._modules)

    weights_only = copy.deepcopy(qmodel)  # the QAT model, input quantization switched off
    for m in weights_only.modules():
        if isinstance(m, Q._FakeQuantMixin):
            m.fake_quantize_input = lambda t: t  # instance attribute shadows the method
    with torch.no_grad():
        out_float, out_ref, out_qat = fmodel(x), weights_only(x), qmodel(x)
    assert torch.equal(out_float, out_ref)
    assert not torch.equal(out_float, out_qat), "4-bit activation quantization should change the logits"


def test_qat_to_float_weights_are_the_fake_quantized_grid_values(small_dscnn):
    qmodel = Q.prepare_qat(small_dscnn, num_bits=3)
    fmodel = Q.qat_to_float(qmodel)
    float_layers = dict(fmodel.named_modules())
    for name, q in qmodel.named_modules():
        if not isinstance(q, Q._FakeQuantMixin):
            continue
        f = float_layers[name]
        assert type(f) in (nn.Conv2d, nn.Linear)
        assert torch.equal(f.weight, q.fake_quantize_weight())
        assert (f.bias is None) == (q.bias is None)
        # 3 bits, narrow range [-3, 3]: at most 7 values per output channel
        for row in f.weight.detach().reshape(f.weight.shape[0], -1):
            assert len(torch.unique(row)) <= 7
    # the BatchNorm that prepare_qat kept is still there, with its statistics
    assert torch.equal(fmodel.bn1.running_var, qmodel.bn1.running_var)


def test_qat_to_float_leaves_the_qat_model_alone_and_rejects_a_float_model():
    qmodel = Q.prepare_qat(_tiny_conv(), num_bits=8)
    before = _snapshot(qmodel)
    Q.qat_to_float(qmodel)
    _assert_unchanged(qmodel, before)
    with pytest.raises(ValueError, match="no QuantConv2d/QuantLinear"):
        Q.qat_to_float(_tiny_conv())


# ---- sweeps --------------------------------------------------------------------------------

def test_ptq_sweep_one_row_per_bit_width_and_float_model_untouched(small_dscnn, random_features):
    model, data = small_dscnn, random_features()
    before = _snapshot(model)
    rows, models = sweeps.ptq_sweep(model, data, bits=(8, 2, 4), num_calibration=16)
    assert [r["num_bits"] for r in rows] == [8, 2, 4]
    assert {r["method"] for r in rows} == {"PTQ"}
    for r in rows:
        assert 0.0 <= r["val_accuracy"] <= 1.0 and 0.0 <= r["test_accuracy"] <= 1.0
        # accuracies are multiples of 1/12 (12 clips), not placeholders
        assert r["test_accuracy"] * 12 == pytest.approx(round(r["test_accuracy"] * 12))
    assert sorted(models) == [2, 4, 8]
    assert all(q.conv1.num_bits == b for b, q in models.items())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in models[4].modules())  # folded
    _assert_unchanged(model, before)


def test_qat_sweep_trains_copies_and_leaves_the_float_model_untouched(random_features):
    model, data = _tiny_conv().train(), random_features()
    before = _snapshot(model)
    cfg = dataclasses.replace(TrainConfig(), epochs=1, batch_size=24, learning_rate=1e-2)
    rows, models = sweeps.qat_sweep(model, data, bits=(2, 8), train_cfg=cfg, num_calibration=16)
    assert [(r["method"], r["num_bits"], r["epochs"]) for r in rows] == [("QAT", 2, 1), ("QAT", 8, 1)]
    for r in rows:
        assert 0.0 <= r["val_accuracy"] <= 1.0 and 0.0 <= r["test_accuracy"] <= 1.0
    _assert_unchanged(model, before)
    # the copies were trained: their weights moved away from the float model's
    assert not torch.equal(models[8].fc.weight, model.fc.weight)
    assert not models[8].training and isinstance(models[8].fc, Q.QuantLinear)


def test_qat_finetune_starts_from_calibrated_ranges(random_features):
    # The first layer's input range must cover the calibration data, which spans the whole
    # int8 range, before training starts (one full-batch epoch, learning rate ~0: the moving
    # average of batch extremes over the same 24 clips then keeps that range).
    model, data = _tiny_conv(), random_features()
    data.train_x[0, 0, 0, 0], data.train_x[0, 0, 0, 1] = -128, 127
    cfg = dataclasses.replace(TrainConfig(), epochs=1, batch_size=24, learning_rate=1e-9)
    qmodel, hist = sweeps.qat_finetune(model, data, 8, cfg, num_calibration=24)
    assert hist.epoch == [1]
    # int8 127 -> (127 + 128) * 6660 / 65536 = 25.914 (frontend.to_float: scale 666 * 10 /
    # 65536, zero point -128); int8 -128 -> 0
    assert float(qmodel.conv1.act_max) == pytest.approx(255 * 6660 / 65536, rel=1e-6)
    assert float(qmodel.conv1.act_min) == 0.0


# ---- accuracies, tables and weights --------------------------------------------------------

class _ConstantClass(nn.Module):
    def __init__(self, label: int):
        super().__init__()
        self.label = label
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x):
        logits = torch.zeros(x.shape[0], len(LABELS))
        logits[:, self.label] = 1.0
        return logits


def test_accuracies_are_fractions_of_correct_clips(random_features):
    data = random_features()
    data.val_y = np.array([1, 1, 0, 2] * 3)       # 6 of 12 are class 1 -> 0.5
    data.test_y = np.array([1, 0, 0, 0] * 3)      # 3 of 12 -> 0.25
    assert train.accuracies(_ConstantClass(1), data) == {"val_accuracy": 0.5, "test_accuracy": 0.25}


def test_qparams_table_by_hand():
    # conv1 input range [0, 25.5] (the SamePad zeros widen nothing: 0 is the minimum):
    # 8 bits: scale = 25.5 / 255 = 0.1, zero_point = -128 - round(0 / 0.1) = -128.
    qmodel = Q.prepare_qat(_tiny_conv(), num_bits=8)
    x = torch.zeros(1, 1, 49, 40)
    x[0, 0, 0, 0] = 25.5
    Q.calibrate(qmodel, [x])
    rows = Q.qparams_table(qmodel)
    assert [r["layer"] for r in rows] == ["conv1", "fc"]
    conv = rows[0]
    assert (conv["input_min"], conv["input_max"]) == (0.0, 25.5)
    assert conv["input_scale"] == pytest.approx(0.1)
    assert conv["input_zero_point"] == -128
    assert conv["channels"] == 8
    # weight scale of channel c = max |w[c]| / 127
    w_scale = qmodel.conv1.weight.detach().abs().amax(dim=(1, 2, 3)) / 127
    assert conv["weight_scale_min"] == pytest.approx(float(w_scale.min()))
    assert conv["weight_scale_max"] == pytest.approx(float(w_scale.max()))


def test_layer_weights_returns_grid_values_of_quantized_layers():
    model = _tiny_conv()
    q2 = Q.prepare_qat(model, num_bits=2)
    row = Q.layer_weights(q2, "fc", channel=1)
    # 2 bits, narrow range [-1, 1]: the values are -s, 0, s with s = max |w[1]|
    s = float(model.fc.weight[1].detach().abs().max())
    assert set(np.unique(row).tolist()) <= {-s, 0.0, s}
    assert row.shape == (4000,)
    np.testing.assert_array_equal(Q.layer_weights(model, "fc"), model.fc.weight.detach().numpy().ravel())
    with pytest.raises(KeyError, match="'nope'"):
        Q.layer_weights(model, "nope")


def test_calibration_batches_take_the_first_bank_copy(random_features):
    data = random_features(n_train=10)
    batches = train.calibration_batches(data.train_x, num_examples=7, batch_size=3)
    assert [tuple(b.shape) for b in batches] == [(3, 1, 49, 40), (3, 1, 49, 40), (1, 1, 49, 40)]
    # frontend.to_float: int8 -128 -> 0.0, each int8 step is 666 * 10 / 65536
    expected = (data.train_x[0, 0].astype(np.float32) + 128) * 6660 / 65536
    np.testing.assert_allclose(batches[0][0, 0].numpy(), expected, rtol=1e-6)
    with pytest.raises(ValueError, match="no features"):
        train.calibration_batches(data.train_x[:, :0])


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Statistics for quantized inputs:UserWarning")
def test_int8_tflite_of_converted_model_stores_exactly_the_qat_weight_codes(small_dscnn):
    # The converter quantizes each conv output channel symmetrically with scale
    # max|w| / 127; a channel already on an 8-bit grid (max |code| = 127) keeps its codes,
    # and folding BatchNorm multiplies a channel by g, which scales the grid with it (and
    # flips the signs when gamma < 0). So the file's conv codes are the QAT codes, per
    # channel. Dense layers are exported per tensor (the deploy library scales
    # FULLY_CONNECTED per tensor only), so fc's per-channel QAT codes are re-quantized
    # onto one grid: whether they survive depends on the rows' scales, so fc is not checked.
    from kwslab import export

    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, size=(8, 49, 40)).astype(np.int8)
    dscnn = small_dscnn
    with torch.no_grad():
        dscnn.bn_pw1.weight[0] = -0.7  # one negative gamma
    for model in (_tiny_conv(), dscnn):
        qmodel = Q.prepare_qat(model, num_bits=8)
        Q.calibrate(qmodel, [torch.from_numpy(x).float()])
        fmodel = Q.qat_to_float(qmodel)
        tflite = export.convert_int8(export.keras_twin(fmodel), export.representative_features(x))
        match = sweeps.weight_codes_match(tflite, qmodel)
        names = [n for n, m in qmodel.named_modules() if isinstance(m, Q._FakeQuantMixin)]
        convs = [n for n in names if n != "fc"]
        assert {n: match[n] for n in convs} == {n: True for n in convs}, match
        # the check can fail: one weight of conv1's channel 0 moved by one grid step (a code
        # away from the channel's maximum) changes that channel's multiset of codes
        moved = copy.deepcopy(qmodel)
        with torch.no_grad():
            s0 = Q.weight_qparams(moved.conv1.weight)[0][0]
            row = moved.conv1.weight[0].view(-1)
            row[int(torch.argmin(row.abs()))] += s0
        assert sweeps.weight_codes_match(tflite, moved)["conv1"] is False


def test_qat_finetune_with_four_bit_weights_keeps_eight_bit_activations(random_features):
    model, data = _tiny_conv(), random_features()
    cfg = dataclasses.replace(TrainConfig(), epochs=1, batch_size=24)
    qmodel, _ = sweeps.qat_finetune(model, data, 8, cfg, num_calibration=24, weight_bits=4)
    layers = [m for m in qmodel.modules() if isinstance(m, (Q.QuantConv2d, Q.QuantLinear))]
    assert [(m.num_bits, m.weight_bits) for m in layers] == [(8, 4), (8, 4)]
    # a copy computes from its own weight (the bound method is rebound by deepcopy)
    twin = copy.deepcopy(qmodel)
    with torch.no_grad():
        twin.conv1.weight.mul_(2.0)
    torch.testing.assert_close(twin.conv1.fake_quantize_weight(),
                               2.0 * qmodel.conv1.fake_quantize_weight())
    for layer in Q.qat_to_float(qmodel).modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            rows = layer.weight.detach().reshape(layer.weight.shape[0], -1)
            # symmetric narrow 4-bit grid: at most 15 values per output channel, and the
            # largest magnitude of each row is exactly 7 steps
            assert max(len(torch.unique(r)) for r in rows) <= 15
            steps = rows.abs().amax(1, keepdim=True) / 7
            torch.testing.assert_close(rows / steps, torch.round(rows / steps))
    with pytest.raises(ValueError):
        sweeps.set_weight_bits(qmodel, 1)
