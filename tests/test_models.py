"""Model shapes, parameter counts and TensorFlow-style SAME padding."""
import pytest
import torch

from kwslab import models


def test_registry_and_unknown_name():
    assert set(models.MODELS) == {"tiny_conv", "ds_cnn", "tc_cnn"}
    with pytest.raises(KeyError, match="tiny_conv"):
        models.build_model("resnet", 4)


@pytest.mark.parametrize("name,classes,params", [
    # tiny_conv: conv 8*1*10*8 + 8 = 648; fc 8*25*20*C + C -> C=4: 16004; total 16652
    ("tiny_conv", 4, 648 + 16004),
    # ds_cnn: conv1 64*10*4 = 2560 (no bias) + BN 128; 4 blocks of dw 64*9 = 576 + BN 128
    # + pw 64*64 = 4096 + BN 128 -> 4928 each; fc 64*12 + 12 = 780 -> 2688 + 19712 + 780
    ("ds_cnn", 12, 2560 + 128 + 4 * (576 + 128 + 4096 + 128) + 780),
    # tc_cnn: conv1 64*1*40 = 2560 (no bias) + BN 128; 4 blocks of dw 64*9*1 = 576 + BN 128
    # + pw 4096 + BN 128; fc 780: the same count as ds_cnn, spent on time instead of space
    ("tc_cnn", 12, 2560 + 128 + 4 * (576 + 128 + 4096 + 128) + 780),
])
def test_parameter_counts(name, classes, params):
    m = models.build_model(name, classes)
    assert sum(p.numel() for p in m.parameters()) == params
    assert m(torch.zeros(2, 49, 40)).shape == (2, classes)
    assert m(torch.zeros(2, 1, 49, 40)).shape == (2, classes)


def test_same_padding_matches_tensorflow_rule():
    # k (10, 8), stride 2, 49 x 40: out 25 x 20; rows pad (24*2 + 10 - 49) = 9 -> 4 top, 5 bottom
    # columns (19 * 2 + 8 - 40) = 6 -> 3 left, 3 right
    pad = models.SamePad2d((10, 8), 2)
    assert pad.pads(49, 40) == (3, 3, 4, 5)
    # k 3, stride 1: total 2 -> 1 and 1 on each side
    assert models.SamePad2d(3, 1).pads(25, 20) == (1, 1, 1, 1)
    out = torch.nn.Conv2d(1, 1, (10, 8), stride=2)(pad(torch.zeros(1, 1, 49, 40)))
    assert out.shape[-2:] == (25, 20)


def test_tiny_conv_same_padding_against_tensorflow():
    tf = pytest.importorskip("tensorflow")
    torch.manual_seed(0)
    m = models.build_model("tiny_conv", 4).eval()
    x = torch.randn(1, 1, 49, 40)
    conv = m.conv1
    want = tf.nn.conv2d(x.permute(0, 2, 3, 1).numpy(), conv.weight.detach().permute(2, 3, 1, 0).numpy(),
                        strides=2, padding="SAME").numpy() + conv.bias.detach().numpy()
    got = conv(m.pad1(x)).permute(0, 2, 3, 1).detach().numpy()
    assert abs(got - want).max() < 1e-4


def test_tc_cnn_convolves_time_only():
    # conv1 sees all 40 channels of one frame -> (C, 49, 1); three stride-2 blocks -> 25, 13, 7
    m = models.build_model("tc_cnn", 12).eval()
    shapes = models.layer_input_shapes(m, (49, 40))
    names = [n for n, _ in m.named_children()]
    assert shapes[names.index("relu1")] == (64, 49, 1)
    assert shapes[names.index("pool")] == (64, 7, 1)
    assert m.dw1.kernel_size == (9, 1) and m.dw1.stride == (2, 2) and m.dw4.stride == (1, 1)
    # conv1 weighs each mel channel on its own: shuffling the channels of every frame the
    # same way changes the logits (no frequency-shift invariance, unlike DS-CNN's kernels)
    x = torch.randn(1, 1, 49, 40)
    assert not torch.allclose(m(x), m(x[..., torch.randperm(40)]))
    with pytest.raises(ValueError, match="dropout"):
        models.build_model("tc_cnn", 12, dropout=0.5)
