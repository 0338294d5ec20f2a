"""Graded tests for kwslab.size_estimate (parameters, flash, RAM, MACs/FLOPs).

Every expected number is derived by hand in the comment above its assert. Models:
tiny_conv with 4 classes (silence, unknown, yes, no) and ds_cnn with 12 classes, input
(1, 49, 40), batch size 1; plus small hand-made layers. Student functions are looked up
through the module at call time (``S.count_parameters``) so a grader can patch them.
"""
import pytest
import torch
from torch import nn

from kwslab import size_estimate as S
from kwslab.models import SamePad2d, build_model


def _tiny_conv() -> nn.Module:
    torch.manual_seed(0)
    return build_model("tiny_conv", num_classes=4)


def _ds_cnn() -> nn.Module:
    torch.manual_seed(0)
    return build_model("ds_cnn", num_classes=12)


def _conv_bn() -> nn.Module:
    """Conv2d(2 -> 3, 3 x 3, no bias) -> BatchNorm2d(3): 54 conv weights, 6 BN parameters,
    7 BN buffers (running_mean 3, running_var 3, num_batches_tracked 1)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3, bias=False), nn.BatchNorm2d(3))


class _Block(nn.Module):
    """Leaves inside a block, one leaf called twice, call order != definition order.

    x (1, 1, 2, 2) -> block.0 Conv2d(1 -> 1, 1 x 1) -> block.1 ReLU -> act -> act (the same
    ReLU again) -> flatten (a function, not a module) -> fc Linear(4 -> 2).
    """

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)  # defined first, called last
        self.block = nn.Sequential(nn.Conv2d(1, 1, 1), nn.ReLU())
        self.act = nn.ReLU()

    def forward(self, x):
        x = self.act(self.act(self.block(x)))
        return self.fc(x.flatten(1))


def _record(name, kind, input_shape, output_shape, allocates, bytes_per_element=1):
    return S.ActivationSize(name=name, kind=kind, input_shape=input_shape,
                            output_shape=output_shape, bytes_per_element=bytes_per_element,
                            allocates=allocates)


# ------------------------------------------------------------------ count_parameters


@pytest.mark.graded(points=2)
def test_count_parameters_tiny_conv_counts_weights_and_biases():
    # conv1: 8 filters * (1 * 10 * 8) weights + 8 biases = 648
    # fc: 4000 inputs * 4 classes + 4 biases = 16,004      -> 16,652
    assert S.count_parameters(_tiny_conv()) == 16_652


@pytest.mark.graded(points=2)
def test_count_parameters_skips_batchnorm_buffers_and_frozen_weights():
    model = _conv_bn()
    # parameters: conv 3 * 2 * 3 * 3 = 54, BN weight 3 + bias 3 = 6 -> 60
    # (the 7 BN buffers running_mean/var, num_batches_tracked are not parameters: not 67)
    assert S.count_parameters(model) == 60
    model[0].weight.requires_grad_(False)
    # frozen conv: trainable only the 6 BN parameters; all parameters still 60
    assert S.count_parameters(model) == 6
    assert S.count_parameters(model, trainable_only=False) == 60


@pytest.mark.graded(points=1)
def test_count_parameters_nested_blocks_and_a_shared_weight():
    # a: Linear(4 -> 4) inside a block; b: Linear(4 -> 4) whose weight IS a's weight.
    # a.weight 16 + a.bias 4 + b.bias 4 = 24 (the shared weight counts once, not 40)
    a, b = nn.Linear(4, 4), nn.Linear(4, 4)
    b.weight = a.weight
    model = nn.Sequential(nn.Sequential(a), b)
    assert S.count_parameters(model) == 24


# ------------------------------------------------------------------ flash_bytes


@pytest.mark.graded(points=2)
def test_flash_bytes_tiny_conv_float32_and_int8():
    model = _tiny_conv()
    # 16,652 parameters (see test_count_parameters_tiny_conv...) * 4 bytes = 66,608
    assert S.flash_bytes(model, 4) == 66_608
    # * 1 byte = 16,652 (bytes, not bits: not 133,216)
    assert S.flash_bytes(model, 1) == 16_652


@pytest.mark.graded(points=1)
def test_flash_bytes_counts_frozen_parameters_but_not_buffers():
    model = _conv_bn()
    model[0].weight.requires_grad_(False)
    # a frozen weight is still stored: all 60 parameters (54 + 6) * 4 bytes = 240
    # (not 6 * 4 = 24 trainable only, not 67 * 4 = 268 with the BN buffers)
    assert S.flash_bytes(model, 4) == 240


# ------------------------------------------------------------------ estimate_flash_bytes


@pytest.mark.graded(points=2)
def test_estimate_flash_bytes_tiny_conv_int8_tensor_data():
    # weights: conv 8 * 80 = 640 + fc 4 * 4000 = 16,000 -> 16,640 bytes at 1 byte
    # int32 biases: (8 + 4) channels * 4 bytes = 48
    # per-channel qparams, weight and bias tensors: 2 * (8 + 4) * (4 + 8) = 288
    # 16,640 + 48 + 288 = 16,976
    assert S.estimate_flash_bytes(_tiny_conv(), "int8", base_overhead_bytes=0,
                                  layer_overhead_bytes=0) == 16_976


@pytest.mark.graded(points=1)
def test_estimate_flash_bytes_tiny_conv_overheads_and_float32():
    model = _tiny_conv()
    # int8 with overheads: 16,976 + 1,000 + 2 layers * 100 = 18,176
    assert S.estimate_flash_bytes(model, "int8", base_overhead_bytes=1_000,
                                  layer_overhead_bytes=100) == 18_176
    # float32: (16,640 weights + 12 biases) * 4 bytes = 66,608, no qparams
    assert S.estimate_flash_bytes(model, "float32", base_overhead_bytes=0,
                                  layer_overhead_bytes=0) == 66_608


@pytest.mark.graded(points=2)
def test_estimate_flash_bytes_folds_batchnorm_into_conv():
    # Conv2d(2 -> 3, 3 x 3, no bias) + BatchNorm2d(3): BN folds into a 3-channel int32 bias
    # int8: 54 weights + 3 * 4 bias bytes + 2 * 3 * 12 qparams = 54 + 12 + 72 = 138
    # (BN's 6 parameters are gone: not 144 or 162)
    model = _conv_bn()
    assert S.estimate_flash_bytes(model, "int8", base_overhead_bytes=0,
                                  layer_overhead_bytes=0) == 138
    # float32: (54 + 3) * 4 = 228, plus overheads 10 + 1 layer * 5 = 243
    assert S.estimate_flash_bytes(model, "float32", base_overhead_bytes=10,
                                  layer_overhead_bytes=5) == 243


# ------------------------------------------------------------------ activation_sizes


@pytest.mark.graded(points=2)
def test_activation_sizes_tiny_conv_shapes_in_call_order():
    sizes = S.activation_sizes(_tiny_conv(), (1, 49, 40), bytes_per_element=1)
    assert [s.name for s in sizes] == ["pad1", "conv1", "relu1", "dropout1", "flatten", "fc"]
    # SAME padding for a (10, 8) kernel, stride 2 on 49 x 40: 3 + 4 rows, 3 + 3 columns
    assert sizes[0].input_shape == (1, 1, 49, 40)
    assert sizes[0].output_shape == (1, 1, 58, 46)
    # conv: ceil(49 / 2) = 25, ceil(40 / 2) = 20, 8 channels
    assert sizes[1].output_shape == (1, 8, 25, 20)
    assert sizes[4].output_shape == (1, 4000)
    assert sizes[5].input_shape == (1, 4000)
    assert sizes[5].output_shape == (1, 4)
    # only conv1 and fc write a new buffer in the deployed model
    assert [s.allocates for s in sizes] == [False, True, False, False, False, True]


@pytest.mark.graded(points=1)
def test_activation_sizes_bytes_per_element_and_no_hooks_left():
    model = _tiny_conv()
    model.train()
    sizes = S.activation_sizes(model, (1, 49, 40), bytes_per_element=4)
    # conv1 output 8 * 25 * 20 = 4,000 float32 elements = 16,000 bytes
    assert sizes[1].output_bytes == 16_000
    # hooks removed: a second dry run records the same 6 layers, not 12
    assert len(S.activation_sizes(model, (1, 49, 40), bytes_per_element=4)) == 6
    assert all(len(m._forward_hooks) == 0 for m in model.modules())
    assert model.training  # the caller's mode is restored


@pytest.mark.graded(points=2)
def test_activation_sizes_records_every_leaf_call_in_call_order():
    sizes = S.activation_sizes(_Block(), (1, 2, 2), bytes_per_element=1)
    # leaves only (not "block" or the model), one record per call, in call order
    assert [s.name for s in sizes] == ["block.0", "block.1", "act", "act", "fc"]
    assert [s.kind for s in sizes] == ["Conv2d", "ReLU", "ReLU", "ReLU", "Linear"]
    assert sizes[0].input_shape == (1, 1, 2, 2) and sizes[4].input_shape == (1, 4)
    assert sizes[4].output_shape == (1, 2)


# ------------------------------------------------------------------ ram_naive_bytes


@pytest.mark.graded(points=1)
def test_ram_naive_bytes_sums_input_and_every_output():
    sizes = [_record("conv", "Conv2d", (1, 2, 4, 4), (1, 3, 4, 4), True),
             _record("relu", "ReLU", (1, 3, 4, 4), (1, 3, 4, 4), False),
             _record("fc", "Linear", (1, 48), (1, 5), True)]
    # input 32 + conv 48 + relu 48 + fc 5 = 133 (every tensor its own buffer)
    assert S.ram_naive_bytes(sizes) == 133


@pytest.mark.graded(points=1)
def test_ram_naive_bytes_tiny_conv_int8():
    sizes = S.activation_sizes(_tiny_conv(), (1, 49, 40), bytes_per_element=1)
    # input 49 * 40 = 1,960 + pad 58 * 46 = 2,668 + conv, relu, dropout, flatten 4 * 4,000
    # + fc 4 = 1,960 + 2,668 + 16,000 + 4 = 20,632
    assert S.ram_naive_bytes(sizes) == 20_632


# ------------------------------------------------------------------ ram_peak_bytes


@pytest.mark.graded(points=2)
def test_ram_peak_bytes_tiny_conv_int8_and_float32():
    model = _tiny_conv()
    # int8: conv1 reads the 49 * 40 input (1,960 B, not the padded 2,668) and writes 4,000
    # -> 5,960; fc: 4,000 + 4 = 4,004; peak 5,960
    assert S.ram_peak_bytes(S.activation_sizes(model, (1, 49, 40), 1)) == 5_960
    # float32: 4 * 5,960 = 23,840
    assert S.ram_peak_bytes(S.activation_sizes(model, (1, 49, 40), 4)) == 23_840


@pytest.mark.graded(points=2)
def test_ram_peak_bytes_follows_live_buffers():
    sizes = [_record("pad", "SamePad2d", (1, 1, 4, 4), (1, 1, 8, 8), False),
             _record("conv", "Conv2d", (1, 1, 8, 8), (1, 2, 4, 4), True),
             _record("relu", "ReLU", (1, 2, 4, 4), (1, 2, 4, 4), False),
             _record("conv2", "Conv2d", (1, 2, 4, 4), (1, 3, 4, 4), True),
             _record("fc", "Linear", (1, 48), (1, 3), True)]
    # the live buffer starts as the input, 16 B; pad and relu allocate nothing
    # conv: 16 + 32 = 48; conv2: 32 + 48 = 80; fc: 48 + 3 = 51 -> peak 80
    # (not the padded 64 + 32 = 96 for conv, not the naive sum 16+64+32+32+48+3 = 195)
    assert S.ram_peak_bytes(sizes) == 80


# ------------------------------------------------------------------ layer_macs


@pytest.mark.graded(points=2)
def test_layer_macs_conv_and_linear():
    conv = nn.Conv2d(3, 4, (3, 2))
    # output 1 * 4 * 5 * 6 = 120 elements, each 3 channels * 3 * 2 = 18 MACs -> 2,160
    assert S.layer_macs(conv, (1, 3, 7, 7), (1, 4, 5, 6)) == 2_160
    fc = nn.Linear(10, 7)
    # 10 * 7 = 70 per example; batch of 2 -> 140 (bias adds are not MACs)
    assert S.layer_macs(fc, (1, 10), (1, 7)) == 70
    assert S.layer_macs(fc, (2, 10), (2, 7)) == 140


@pytest.mark.graded(points=2)
def test_layer_macs_depthwise_and_grouped_conv():
    # depthwise: groups = 8 = in_channels: output 8 * 5 * 5 = 200, each 1 * 3 * 3 = 9 -> 1,800
    # (ignoring groups would give 200 * 8 * 9 = 14,400)
    dw = nn.Conv2d(8, 8, 3, groups=8, bias=False)
    assert S.layer_macs(dw, (1, 8, 7, 7), (1, 8, 5, 5)) == 1_800
    # groups = 2: output 6 * 4 * 4 = 96, each (4 / 2) * 1 * 1 = 2 -> 192
    grouped = nn.Conv2d(4, 6, 1, groups=2)
    assert S.layer_macs(grouped, (1, 4, 4, 4), (1, 6, 4, 4)) == 192


@pytest.mark.graded(points=1)
def test_layer_macs_zero_for_layers_without_weights_and_folded_batchnorm():
    shape = (1, 8, 5, 5)
    for layer in (nn.ReLU(), nn.Dropout(0.5), nn.BatchNorm2d(8), SamePad2d(3)):
        assert S.layer_macs(layer, shape, shape) == 0, type(layer).__name__
    assert S.layer_macs(nn.AvgPool2d(5), shape, (1, 8, 1, 1)) == 0
    assert S.layer_macs(nn.Flatten(), shape, (1, 200)) == 0


# ------------------------------------------------------------------ count_macs


@pytest.mark.graded(points=2)
def test_count_macs_tiny_conv_per_layer_and_total():
    per_layer, total = S.count_macs(_tiny_conv(), (1, 49, 40))
    # conv1: 25 * 20 * 8 outputs * (1 * 10 * 8) = 320,000; fc: 4000 * 4 = 16,000
    assert per_layer == [("pad1", 0), ("conv1", 320_000), ("relu1", 0), ("dropout1", 0),
                         ("flatten", 0), ("fc", 16_000)]
    assert total == 336_000


@pytest.mark.graded(points=1)
def test_count_macs_of_nested_blocks():
    # _Block has no input_shape attribute: the shape passed in is the one used
    per_layer, total = S.count_macs(_Block(), (1, 2, 2))
    # block.0: 1 * 1 * 2 * 2 = 4 outputs * (1 input channel * 1 * 1) = 4; fc: 2 * 4 = 8
    assert per_layer == [("block.0", 4), ("block.1", 0), ("act", 0), ("act", 0), ("fc", 8)]
    assert total == 12


# ------------------------------------------------------------------ count_flops


@pytest.mark.graded(points=1)
def test_count_flops_is_two_per_mac_tiny_conv():
    # 2 FLOPs (multiply + add) per MAC, bias adds not counted: 2 * 336,000 = 672,000
    assert S.count_flops(_tiny_conv(), (1, 49, 40)) == 672_000


@pytest.mark.graded(points=1)
def test_count_flops_of_nested_blocks():
    # 2 * 12 MACs (see test_count_macs_of_nested_blocks) = 24, at the shape passed in
    assert S.count_flops(_Block(), (1, 2, 2)) == 24


### BEGIN HIDDEN TESTS
@pytest.mark.graded(points=2)
def test_count_parameters_ds_cnn_hidden():
    # conv1 64 * 10 * 4 = 2,560 (no bias); bn1 2 * 64 = 128
    # per block: dw 64 * 3 * 3 = 576, bn 128, pw 64 * 64 = 4,096, bn 128 -> 4,928; * 4 = 19,712
    # fc 64 * 12 + 12 = 780                          -> 2,560 + 128 + 19,712 + 780 = 23,180
    # (with BN buffers 9 * (64 + 64 + 1) = 1,161 more: 24,341)
    assert S.count_parameters(_ds_cnn()) == 23_180


@pytest.mark.graded(points=2)
def test_estimate_flash_bytes_ds_cnn_int8_hidden():
    # weights: 2,560 + 4 * (576 + 4,096) + 768 = 22,016
    # channels: 9 convs * 64 + 12 = 588 -> int32 biases 2,352, qparams 588 * 2 * 12 = 14,112
    # 22,016 + 2,352 + 14,112 = 38,480; + 1,000 + 10 layers * 100 = 40,480
    model = _ds_cnn()
    assert S.estimate_flash_bytes(model, "int8", base_overhead_bytes=0,
                                  layer_overhead_bytes=0) == 38_480
    assert S.estimate_flash_bytes(model, "int8", base_overhead_bytes=1_000,
                                  layer_overhead_bytes=100) == 40_480


@pytest.mark.graded(points=2)
def test_ram_peak_bytes_ds_cnn_int8_hidden():
    sizes = S.activation_sizes(_ds_cnn(), (1, 49, 40), 1)
    # two live 25 * 20 * 64 = 32,000-byte activations: 64,000
    assert S.ram_peak_bytes(sizes) == 64_000


@pytest.mark.graded(points=2)
def test_count_macs_ds_cnn_hidden():
    per_layer, total = S.count_macs(_ds_cnn(), (1, 49, 40))
    macs = dict(per_layer)
    # conv1: 25 * 20 * 64 = 32,000 outputs * 10 * 4 = 1,280,000
    # dw: 32,000 * 3 * 3 = 288,000; pw: 32,000 * 64 = 2,048,000; fc 64 * 12 = 768
    assert (macs["conv1"], macs["dw1"], macs["pw1"], macs["fc"]) == (
        1_280_000, 288_000, 2_048_000, 768)
    assert macs["bn1"] == macs["pool"] == 0
    # 1,280,000 + 4 * (288,000 + 2,048,000) + 768 = 10,624,768
    assert total == 10_624_768


@pytest.mark.graded(points=1)
def test_count_flops_ds_cnn_hidden():
    # 2 * 10,624,768 = 21,249,536
    assert S.count_flops(_ds_cnn(), (1, 49, 40)) == 21_249_536


class _Broken(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        self.fc(x)
        raise RuntimeError("broken forward")


@pytest.mark.graded(points=1)
def test_activation_sizes_single_leaf_model_and_failing_forward_hidden():
    # a model that is one leaf is its own only layer, named "" as in named_modules()
    sizes = S.activation_sizes(nn.Linear(3, 2), (3,), bytes_per_element=4)
    assert [(s.name, s.kind, s.input_shape, s.output_shape) for s in sizes] == [
        ("", "Linear", (1, 3), (1, 2))]
    assert sizes[0].output_bytes == 8
    # the forward pass raises: the error propagates, no hook stays, the mode is restored
    model = _Broken().train()
    with pytest.raises(RuntimeError, match="broken forward"):
        S.activation_sizes(model, (3,))
    assert not model.fc._forward_hooks and model.training


@pytest.mark.graded(points=1)
def test_estimate_flash_bytes_finds_layers_inside_blocks_hidden():
    # conv 1 -> 2, 3 x 3, no bias, inside a block: 18 weights; fc 8 -> 3: 24 weights
    # int8: 42 weights + (2 + 3) * 4 bias bytes + 2 * 5 * 12 qparams = 42 + 20 + 120 = 182
    model = nn.Sequential(nn.Sequential(nn.Conv2d(1, 2, 3, bias=False)), nn.Flatten(),
                          nn.Linear(8, 3))
    assert S.estimate_flash_bytes(model, "int8", base_overhead_bytes=0,
                                  layer_overhead_bytes=0) == 182


@pytest.mark.graded(points=1)
def test_ram_bytes_when_a_layer_reads_an_earlier_buffer_hidden():
    # fc reads the model input again (a skip), not conv's output:
    # naive = input 4 + conv 8 + fc 2 = 14 (not the inputs 4 + 4 plus the last output 2 = 10)
    sizes = [_record("conv", "Conv2d", (1, 4), (1, 8), True),
             _record("fc", "Linear", (1, 4), (1, 2), True)]
    assert S.ram_naive_bytes(sizes) == 14
    # no layer allocates: the peak is the input alone, 10 bytes
    assert S.ram_peak_bytes([_record("relu", "ReLU", (1, 10), (1, 10), False)]) == 10


@pytest.mark.graded(points=1)
def test_layer_macs_batch_of_two_is_an_int_hidden():
    # conv 3 -> 4, (3, 2) kernel, batch 2: output 2 * 4 * 5 * 6 = 240 elements * 18 = 4,320
    macs = S.layer_macs(nn.Conv2d(3, 4, (3, 2)), (2, 3, 7, 7), (2, 4, 5, 6))
    assert macs == 4_320 and type(macs) is int
### END HIDDEN TESTS
