"""Graded tests for the pruning lab (``kwslab.prune``).

Student functions are looked up through the module at call time (``P.magnitude_prune_mask``)
so the instructor harness can swap in seeded wrong implementations. Every test is a plain
function without fixtures. Expected values are derived by hand in the comments.
"""
import math

import pytest
import torch
from torch import nn

from kwslab import prune as P
from kwslab.models import DSCNN, TinyConv


def _num_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _two_linear_model() -> nn.Sequential:
    # layer "0": weight [[4, -1], [3, 0.5]], bias [0.1, 0.2]; layer "2": weight [[-0.2, 0.3]]
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[4.0, -1.0], [3.0, 0.5]]))
        model[0].bias.copy_(torch.tensor([0.1, 0.2]))
        model[2].weight.copy_(torch.tensor([[-0.2, 0.3]]))
        model[2].bias.copy_(torch.tensor([0.05]))
    return model


def _small_conv_model() -> nn.Sequential:
    # (N, 1, 4, 4) -> conv 3 x (3, 3) -> (N, 3, 2, 2) -> flatten 12 -> linear 3 classes
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(12, 3))


def _random_batches(num_batches: int = 3) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(8, 1, 4, 4, generator=g), torch.randint(0, 3, (8,), generator=g))
            for _ in range(num_batches)]


def _weights_after_forward(model: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    # The weights the forward pass uses (a pruning hook recomputes them before each forward).
    model.eval()
    with torch.no_grad():
        model(x)
    return {name: m.weight.detach().clone() for name, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.Linear))}


def _randomize_batchnorm(model: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(torch.randn(c, generator=g))
                m.bias.copy_(torch.randn(c, generator=g))
                m.running_mean.copy_(torch.randn(c, generator=g))
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)


# ------------------------------------------------------------------ magnitude_prune_mask

@pytest.mark.graded(points=2)
def test_magnitude_prune_mask_4x4_keeps_four_largest_magnitudes():
    weight = torch.tensor([[0.10, -0.90, 0.30, 0.60],
                           [-0.50, 0.20, -1.40, 0.05],
                           [0.70, -0.15, 0.40, -1.10],
                           [0.25, 1.20, -0.35, 0.80]])
    # sparsity 0.75: round(0.75 * 16) = 12 pruned, 4 kept: the largest |w| are
    # 1.4 (1, 2), 1.2 (3, 1), 1.1 (2, 3), 0.9 (0, 1) -- three of them negative.
    expected = torch.zeros(4, 4, dtype=torch.bool)
    expected[0, 1] = expected[1, 2] = expected[2, 3] = expected[3, 1] = True
    mask = P.magnitude_prune_mask(weight, 0.75)
    assert mask.dtype == torch.bool
    assert torch.equal(mask, expected)
    # for single weights L1, L2 and L-infinity all equal |w|: same mask
    assert torch.equal(P.magnitude_prune_mask(weight, 0.75, norm="l2"), expected)
    assert torch.equal(P.magnitude_prune_mask(weight, 0.75, norm="linf"), expected)


@pytest.mark.graded(points=2)
def test_magnitude_prune_mask_number_pruned_is_round_of_sparsity_times_numel():
    # weights 1..n, so the pruned ones are the first k: mask = (index >= k)
    cases = [
        (6, 0.25, 2),   # round(1.5) = 2 (floor would give 1)
        (10, 0.25, 2),  # round(2.5) = 2, half to even (ceil / half-up would give 3)
        (10, 0.3, 3),   # 0.3 * 10 = 3.0000000000000004 -> 3 (ceil would give 4)
        (7, 0.5, 4),    # round(3.5) = 4
        (5, 0.1, 0),    # round(0.5) = 0
    ]
    for n, sparsity, num_pruned in cases:
        weight = torch.arange(1, n + 1, dtype=torch.float32)
        mask = P.magnitude_prune_mask(weight, sparsity)
        assert torch.equal(mask, torch.arange(n) >= num_pruned), (n, sparsity)


@pytest.mark.graded(points=1)
def test_magnitude_prune_mask_ties_prune_the_lower_index_first():
    # |w| = [1, 1, 1, 2], prune round(0.5 * 4) = 2: the two lowest-index 1s
    mask = P.magnitude_prune_mask(torch.tensor([1.0, -1.0, 1.0, 2.0]), 0.5)
    assert mask.tolist() == [False, False, True, True]
    # all equal, prune round(0.25 * 4) = 1: index 0
    mask = P.magnitude_prune_mask(torch.full((2, 2), -3.0), 0.25)
    assert mask.tolist() == [[False, True], [True, True]]


@pytest.mark.graded(points=1)
def test_magnitude_prune_mask_ties_beyond_16_weights():
    # 40 weights of |w| = 1 (signs alternate): round(0.5 * 40) = 20 pruned, indices 0..19.
    # (torch.sort without stable=True keeps ties in order only up to 16 elements on CPU.)
    weight = torch.tensor([(-1.0) ** i for i in range(40)]).view(4, 10)
    assert torch.equal(P.magnitude_prune_mask(weight, 0.5), (torch.arange(40) >= 20).view(4, 10))
    # |w| = 1, 2, 1, 2, ...: round(0.25 * 40) = 10 pruned: the first ten 1s, indices 0, 2, .., 18
    weight = torch.tensor([1.0, -2.0] * 20)
    expected = torch.ones(40, dtype=torch.bool)
    expected[0:20:2] = False
    assert torch.equal(P.magnitude_prune_mask(weight, 0.25), expected)


@pytest.mark.graded(points=1)
def test_magnitude_prune_mask_sparsity_zero_keeps_all_and_one_prunes_all():
    weight = torch.tensor([[0.0, -2.0, 3.0], [1.0, 0.5, -0.5]])
    assert torch.equal(P.magnitude_prune_mask(weight, 0.0), torch.ones(2, 3, dtype=torch.bool))
    assert torch.equal(P.magnitude_prune_mask(weight, 1.0), torch.zeros(2, 3, dtype=torch.bool))


@pytest.mark.graded(points=2)
def test_magnitude_prune_mask_row_groups_l1_l2_linf_keep_different_rows():
    rows = torch.tensor([[3.0, -3.0, 3.0, -3.0],
                         [-6.0, 5.0, 0.0, 0.0],
                         [0.0, 0.0, -7.0, 0.0]])
    # L1 = 12, 11, 7; L2 = 6, sqrt(61) = 7.81, 7; Linf = 3, 6, 7.
    # sparsity 2/3: round(2/3 * 3 groups) = 2 rows pruned, the largest-norm row kept.
    for norm, kept_row in [("l1", 0), ("l2", 1), ("linf", 2)]:
        expected = torch.zeros(3, 4, dtype=torch.bool)
        expected[kept_row] = True
        mask = P.magnitude_prune_mask(rows, 2 / 3, norm=norm, group_dim=0)
        assert torch.equal(mask, expected), norm


@pytest.mark.graded(points=2)
def test_magnitude_prune_mask_filter_groups_take_the_norm_of_the_whole_kernel():
    # 3 filters of 1 input channel and a 2 x 2 kernel, taps (row-major):
    # A [3, 3, 3, 3]: L1 12, L2 6, Linf 3;  B [0, 0, 0, 7]: L1 7, L2 7, Linf 7;
    # C [5, 4, 0, 0]: L1 9, L2 sqrt(41) = 6.40, Linf 5.
    # sparsity 2/3: round(2) = 2 filters pruned, the one of largest norm kept:
    # L1 -> A, L2 -> B, Linf -> B
    filters = torch.tensor([[3.0, 3.0, 3.0, 3.0], [0.0, 0.0, 0.0, -7.0], [5.0, -4.0, 0.0, 0.0]])
    weight = filters.view(3, 1, 2, 2)
    for norm, kept in [("l1", 0), ("l2", 1), ("linf", 1)]:
        expected = torch.zeros(3, 1, 2, 2, dtype=torch.bool)
        expected[kept] = True
        assert torch.equal(P.magnitude_prune_mask(weight, 2 / 3, norm, group_dim=0), expected), norm
        # the same filters as the input channels of one output channel (group_dim 1)
        mask = P.magnitude_prune_mask(weight.transpose(0, 1), 2 / 3, norm, group_dim=1)
        assert torch.equal(mask, expected.transpose(0, 1)), norm


# ------------------------------------------------------ global and layer-wise pruning

@pytest.mark.graded(points=2)
def test_global_pruning_uses_one_threshold_across_layers():
    model = _two_linear_model()
    # 6 weights |w| = 4, 1, 3, 0.5 | 0.2, 0.3; round(0.5 * 6) = 3 pruned: 0.2, 0.3, 0.5.
    # Layer "2" loses both weights (layer by layer it would keep 0.3).
    masks = P.apply_global_magnitude_pruning(model, 0.5)
    assert sorted(masks) == ["0", "2"]
    assert all(m.dtype == torch.bool for m in masks.values())
    assert masks["0"].tolist() == [[True, True], [True, False]]
    assert masks["2"].tolist() == [[False, False]]
    weights = _weights_after_forward(model, torch.ones(1, 2))
    assert weights["0"].tolist() == [[4.0, -1.0], [3.0, 0.0]]
    assert weights["2"].tolist() == [[0.0, 0.0]]
    # biases are not pruned: y = relu([4 - 1 + 0.1, 3 + 0.2]) . [0, 0] + 0.05 = 0.05
    assert model(torch.ones(1, 2)).item() == pytest.approx(0.05)


@pytest.mark.graded(points=1)
def test_global_pruning_ties_across_layers_of_nested_blocks():
    # layer "0" (2 x 10) and layer "1.1" (10 x 2, inside a block): 40 weights, all |w| = 0.5.
    # round(0.25 * 40) = 10 pruned; ties go by index in the concatenation in
    # named_modules() order: the first 10 weights of layer "0" (its row 0).
    model = nn.Sequential(nn.Linear(10, 2, bias=False),
                          nn.Sequential(nn.ReLU(), nn.Linear(2, 10, bias=False)))
    with torch.no_grad():
        model[0].weight.fill_(0.5)
        model[1][1].weight.copy_(torch.tensor([0.5, -0.5]).repeat(10, 1))
    masks = P.apply_global_magnitude_pruning(model, 0.25)
    assert sorted(masks) == ["0", "1.1"]
    assert masks["0"].tolist() == [[False] * 10, [True] * 10]
    assert masks["1.1"].tolist() == [[True, True]] * 10


@pytest.mark.graded(points=2)
def test_global_pruning_zeroes_weights_and_they_stay_zero_through_finetuning():
    model = _small_conv_model()
    # 27 conv + 36 linear weights = 63; round(0.6 * 63) = round(37.8) = 38 pruned
    masks = P.apply_global_magnitude_pruning(model, 0.6)
    assert sum(int((~m).sum()) for m in masks.values()) == 38
    batches = _random_batches()
    x = batches[0][0]
    before = _weights_after_forward(model, x)
    for name, mask in masks.items():
        assert torch.all(before[name][~mask] == 0), name
    P.finetune(model, batches, epochs=2, lr=0.1)
    after = _weights_after_forward(model, x)
    for name, mask in masks.items():
        assert torch.all(after[name][~mask] == 0), f"pruned weights of {name} revived"
        assert not torch.equal(after[name][mask], before[name][mask]), "no training happened"


@pytest.mark.graded(points=2)
def test_layerwise_pruning_gives_each_layer_its_own_sparsity():
    model = _two_linear_model()
    # layer "0": round(0.5 * 4) = 2 pruned: |w| 0.5 and 1; layer "2": round(0.5 * 2) = 1
    # pruned: 0.2
    masks = P.apply_layerwise_pruning(model, {"0": 0.5, "2": 0.5})
    assert all(m.dtype == torch.bool for m in masks.values())
    assert masks["0"].tolist() == [[True, False], [True, False]]
    assert masks["2"].tolist() == [[False, True]]
    weights = _weights_after_forward(model, torch.ones(1, 2))
    assert weights["0"].tolist() == [[4.0, 0.0], [3.0, 0.0]]
    assert weights["2"].tolist() == [[0.0, pytest.approx(0.3)]]


@pytest.mark.graded(points=2)
def test_layerwise_pruning_persists_and_leaves_unnamed_layers_alone():
    model = _small_conv_model()
    linear_before = model[3].weight.detach().clone()
    # conv: round(0.5 * 27) = round(13.5) = 14 pruned (half to even)
    masks = P.apply_layerwise_pruning(model, {"0": 0.5})
    assert list(masks) == ["0"]
    assert int((~masks["0"]).sum()) == 14
    batches = _random_batches()
    weights = _weights_after_forward(model, batches[0][0])
    assert torch.equal(weights["3"], linear_before)
    P.finetune(model, batches, epochs=2, lr=0.1)
    weights = _weights_after_forward(model, batches[0][0])
    assert torch.all(weights["0"][~masks["0"]] == 0)


@pytest.mark.graded(points=1)
def test_layerwise_pruning_sparsity_is_a_fraction_even_as_an_int():
    model = _small_conv_model()
    # sparsity 1 (an int) is the whole layer: all 27 conv weights, not torch's count of 1;
    # sparsity 0 leaves the linear layer's 36 weights
    masks = P.apply_layerwise_pruning(model, {"3": 0, "0": 1})
    assert masks["0"].dtype == torch.bool
    assert int(masks["0"].sum()) == 0 and int(masks["3"].sum()) == 36
    weights = _weights_after_forward(model, torch.randn(1, 1, 4, 4))
    assert int(torch.count_nonzero(weights["0"])) == 0


# ---------------------------------------------------------------- channel importance

@pytest.mark.graded(points=1)
def test_channel_importance_of_conv_filters_in_three_norms():
    conv = nn.Conv2d(2, 2, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[3.0, -4.0], [-1.0, 1.0]]).view(2, 2, 1, 1))
    # filter 0: |3| + |-4| = 7, sqrt(9 + 16) = 5, max = 4; filter 1: 2, sqrt(2), 1
    torch.testing.assert_close(P.channel_importance(conv, "l1"), torch.tensor([7.0, 2.0]))
    torch.testing.assert_close(P.channel_importance(conv, "l2"),
                               torch.tensor([5.0, math.sqrt(2.0)]))
    torch.testing.assert_close(P.channel_importance(conv, "linf"), torch.tensor([4.0, 1.0]))
    torch.testing.assert_close(P.channel_importance(conv), torch.tensor([5.0, math.sqrt(2.0)]))


@pytest.mark.graded(points=1)
def test_channel_importance_norms_whole_filters_without_the_bias():
    # Conv2d(1 -> 2, 2 x 2 kernel) with a bias that plays no part:
    # filter 0 taps [3, 0, 0, -4]: L1 7, L2 5, Linf 4; filter 1 [1, 1, 1, 1]: L1 4, L2 2, Linf 1
    conv = nn.Conv2d(1, 2, 2)
    with torch.no_grad():
        taps = torch.tensor([[3.0, 0.0, 0.0, -4.0], [1.0, 1.0, 1.0, 1.0]])
        conv.weight.copy_(taps.view(2, 1, 2, 2))
        conv.bias.copy_(torch.tensor([10.0, -10.0]))
    for norm, expected in [("l1", [7.0, 4.0]), ("l2", [5.0, 2.0]), ("linf", [4.0, 1.0])]:
        importance = P.channel_importance(conv, norm)
        assert not importance.requires_grad  # detached
        torch.testing.assert_close(importance, torch.tensor(expected))
    # Linear rows [1, -2, 2] and [0, 0, -1]: L2 3 and 1
    linear = nn.Linear(3, 2)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, -2.0, 2.0], [0.0, 0.0, -1.0]]))
    torch.testing.assert_close(P.channel_importance(linear, "l2"), torch.tensor([3.0, 1.0]))


@pytest.mark.graded(points=1)
def test_channel_importance_of_batchnorm_is_abs_gamma():
    bn = nn.BatchNorm2d(3)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([0.5, -2.0, 1.0]))
        bn.running_mean.fill_(10.0)  # statistics play no part
    torch.testing.assert_close(P.channel_importance(bn), torch.tensor([0.5, 2.0, 1.0]))


@pytest.mark.graded(points=2)
def test_channels_to_keep_takes_the_largest_and_returns_them_sorted():
    importance = torch.tensor([0.5, 3.0, 1.0, 2.0, 0.1, 4.0, 2.5, 0.2])
    # channel_sparsity 0.5: keep round(8 * 0.5) = 4: importances 4 (5), 3 (1), 2.5 (6), 2 (3)
    assert P.channels_to_keep(importance, 0.5).tolist() == [1, 3, 5, 6]
    # channel_sparsity 0.3: keep round(8 * 0.7) = round(5.6) = 6 (floor: 5): drop 0.1 (4), 0.2 (7)
    assert P.channels_to_keep(importance, 0.3).tolist() == [0, 1, 2, 3, 5, 6]


@pytest.mark.graded(points=1)
def test_channels_to_keep_rounding_minimum_and_ties():
    # C = 10, channel_sparsity 0.75: keep round(2.5) = 2 (half to even); importance 0..9 -> [8, 9]
    assert P.channels_to_keep(torch.arange(10.0), 0.75).tolist() == [8, 9]
    # C = 64, channel_sparsity 0.3: keep round(44.8) = 45 -> the 45 largest of 0..63 are 19..63
    assert P.channels_to_keep(torch.arange(64.0), 0.3).tolist() == list(range(19, 64))
    # channel_sparsity 1: at least one channel survives, the most important
    assert P.channels_to_keep(torch.tensor([1.0, 5.0, 2.0]), 1.0).tolist() == [1]
    # ties: equal importance -> lower index kept
    assert P.channels_to_keep(torch.ones(4), 0.5).tolist() == [0, 1]
    # 40 equal importances (beyond the 16 that an unstable CPU sort keeps in order):
    # keep round(40 * 0.5) = 20, the channels 0..19, as int64
    keep = P.channels_to_keep(torch.ones(40), 0.5)
    assert keep.dtype == torch.int64 and keep.tolist() == list(range(20))
    # C = 5, channel_sparsity 0.3: keep round(5 * 0.7) = round(3.5) = 4 (not 5 - round(1.5) = 3)
    assert P.channels_to_keep(torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0]), 0.3).tolist() == [0, 1, 2, 3]


# ------------------------------------------------------------------- layer slicing

@pytest.mark.graded(points=2)
def test_slice_conv2d_keeps_chosen_output_and_input_channels():
    torch.manual_seed(0)
    conv = nn.Conv2d(3, 4, (2, 3), stride=2, padding=1)
    out_keep, in_keep = torch.tensor([0, 3]), torch.tensor([1, 2])
    new = P.slice_conv2d(conv, out_keep, in_keep)
    assert (new.in_channels, new.out_channels, new.groups) == (2, 2, 1)
    assert (new.kernel_size, new.stride, new.padding) == ((2, 3), (2, 2), (1, 1))
    torch.testing.assert_close(new.weight, conv.weight[[0, 3]][:, [1, 2]], rtol=0, atol=0)
    torch.testing.assert_close(new.bias, conv.bias[[0, 3]], rtol=0, atol=0)
    # same outputs as the full conv when the dropped input channel 0 is zero
    x = torch.randn(2, 3, 5, 6)
    x[:, 0] = 0
    torch.testing.assert_close(new(x[:, in_keep]), conv(x)[:, out_keep])
    assert conv.weight.shape == (4, 3, 2, 3)  # the original is not modified


@pytest.mark.graded(points=2)
def test_slice_conv2d_depthwise_keeps_one_group_per_channel():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False)  # weight (4, 1, 3, 3)
    keep = torch.tensor([0, 2])
    new = P.slice_conv2d(conv, keep, keep)
    # 2 channels, 2 groups, weight (2, 1, 3, 3) = the filters of channels 0 and 2
    assert (new.in_channels, new.out_channels, new.groups) == (2, 2, 2)
    assert new.bias is None
    torch.testing.assert_close(new.weight, conv.weight[[0, 2]], rtol=0, atol=0)
    x = torch.randn(1, 4, 5, 5)
    torch.testing.assert_close(new(x[:, keep]), conv(x)[:, keep])


@pytest.mark.graded(points=2)
def test_slice_batchnorm2d_slices_gamma_beta_and_running_statistics():
    bn = nn.BatchNorm2d(4, eps=1e-3, momentum=0.3)
    bn.num_batches_tracked.fill_(7)
    with torch.no_grad():
        bn.weight.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
        bn.bias.copy_(torch.tensor([-1.0, -2.0, -3.0, -4.0]))
        bn.running_mean.copy_(torch.tensor([0.1, 0.2, 0.3, 0.4]))
        bn.running_var.copy_(torch.tensor([1.5, 2.5, 3.5, 4.5]))
    new = P.slice_batchnorm2d(bn, torch.tensor([1, 3]))
    assert new.num_features == 2 and new.eps == 1e-3 and new.momentum == 0.3
    assert new.num_batches_tracked.item() == 7
    assert new.weight.tolist() == [2.0, 4.0]
    assert new.bias.tolist() == [-2.0, -4.0]
    assert new.running_mean.tolist() == pytest.approx([0.2, 0.4])
    assert new.running_var.tolist() == [2.5, 4.5]
    bn.eval()
    new.eval()
    x = torch.randn(2, 4, 3, 3)
    torch.testing.assert_close(new(x[:, [1, 3]]), bn(x)[:, [1, 3]])


@pytest.mark.graded(points=2)
def test_slice_linear_inputs_keeps_a_block_of_hw_features_per_channel():
    linear = nn.Linear(6, 2)  # C = 3 channels, H*W = 2 features each
    with torch.no_grad():
        linear.weight.copy_(torch.arange(12.0).view(2, 6))
        linear.bias.copy_(torch.tensor([0.5, -0.5]))
    # keep channels 0 and 2 -> features 0, 1 (channel 0) and 4, 5 (channel 2)
    new = P.slice_linear_inputs(linear, torch.tensor([0, 2]), 2)
    assert (new.in_features, new.out_features) == (4, 2)
    assert new.weight.tolist() == [[0.0, 1.0, 4.0, 5.0], [6.0, 7.0, 10.0, 11.0]]
    assert new.bias.tolist() == [0.5, -0.5]


@pytest.mark.graded(points=1)
def test_slice_conv2d_keeps_dtype_and_train_eval_mode():
    torch.manual_seed(0)
    conv = nn.Conv2d(2, 3, 3).double().eval()
    new = P.slice_conv2d(conv, torch.tensor([0, 2]))
    assert new.weight.dtype == torch.float64 and not new.training
    assert torch.equal(new.weight, conv.weight[[0, 2]])  # float64 values, not via float32
    assert P.slice_conv2d(nn.Conv2d(2, 3, 3).train(), torch.tensor([1])).training


@pytest.mark.graded(points=1)
def test_slice_batchnorm2d_keeps_dtype_and_train_eval_mode():
    bn = nn.BatchNorm2d(3).double().eval()
    with torch.no_grad():
        bn.running_var.copy_(torch.tensor([0.1, 0.2, 0.3], dtype=torch.float64))
    new = P.slice_batchnorm2d(bn, torch.tensor([0, 2]))
    assert new.weight.dtype == new.running_var.dtype == torch.float64 and not new.training
    assert torch.equal(new.running_var, bn.running_var[[0, 2]])
    assert P.slice_batchnorm2d(nn.BatchNorm2d(3).train(), torch.tensor([0, 2])).training


@pytest.mark.graded(points=1)
def test_slice_linear_inputs_keeps_dtype_and_train_eval_mode():
    torch.manual_seed(0)
    linear = nn.Linear(6, 2).double().eval()  # C = 3 channels, H*W = 2
    new = P.slice_linear_inputs(linear, torch.tensor([0, 2]), 2)
    assert new.weight.dtype == torch.float64 and not new.training
    assert torch.equal(new.weight, linear.weight[:, [0, 1, 4, 5]])
    assert P.slice_linear_inputs(nn.Linear(6, 2).train(), torch.tensor([1]), 2).training


# ------------------------------------------------------------ channel pruning (surgery)

@pytest.mark.graded(points=2)
def test_prune_channels_tiny_conv_shapes_and_parameter_count():
    torch.manual_seed(0)
    model = TinyConv(num_classes=4)
    small = P.prune_channels(model, 0.5)
    # keep round(8 * 0.5) = 4 filters of 1 x 10 x 8: conv 4 * 80 + 4 = 324;
    # fc reads 4 channels * 25 * 20 = 2000 features: 2000 * 4 + 4 = 8004; total 8328
    assert small.conv1.weight.shape == (4, 1, 10, 8)
    assert small.conv1.bias.shape == (4,)
    assert small.fc.weight.shape == (4, 2000)
    assert _num_params(small) == 8328
    assert _num_params(model) == 16652  # 648 + 16004, the original is untouched
    assert small(torch.randn(2, 49, 40)).shape == (2, 4)


@pytest.mark.graded(points=3)
def test_prune_channels_ds_cnn_shapes_and_parameter_count():
    torch.manual_seed(0)
    model = DSCNN(num_classes=12)
    small = P.prune_channels(model, 0.25)
    # keep round(64 * 0.75) = 48 channels everywhere:
    # conv1 48 * 1 * 10 * 4 = 1920, bn1 2 * 48 = 96,
    # each block: dw 48 * 9 = 432 + bn 96 + pw 48 * 48 = 2304 + bn 96 = 2928, x 4 = 11712,
    # fc 48 * 12 + 12 = 588; total 1920 + 96 + 11712 + 588 = 14316 (full model: 23180)
    assert small.conv1.weight.shape == (48, 1, 10, 4)
    assert small.bn1.running_var.shape == (48,)
    assert small.dw1.weight.shape == (48, 1, 3, 3) and small.dw1.groups == 48
    assert small.pw1.weight.shape == (48, 48, 1, 1)
    assert small.bn_pw4.running_mean.shape == (48,)
    assert small.fc.weight.shape == (12, 48)
    assert _num_params(small) == 14316
    assert _num_params(model) == 23180
    assert small.eval()(torch.randn(2, 49, 40)).shape == (2, 12)


@pytest.mark.graded(points=2)
def test_prune_channels_tiny_conv_same_outputs_when_pruned_filters_are_zero():
    torch.manual_seed(0)
    model = TinyConv(num_classes=4).eval()
    zeroed = [1, 4, 6, 7]  # importance 0: these 4 of 8 filters go at channel_sparsity 0.5
    with torch.no_grad():
        model.conv1.weight[zeroed] = 0
        model.conv1.bias[zeroed] = 0  # so their feature maps are exactly 0
    small = P.prune_channels(model, 0.5).eval()
    torch.testing.assert_close(small.conv1.weight, model.conv1.weight[[0, 2, 3, 5]],
                               rtol=0, atol=0)
    x = torch.randn(3, 49, 40)
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x))


@pytest.mark.graded(points=3)
def test_prune_channels_ds_cnn_same_outputs_when_pruned_channels_are_unused():
    torch.manual_seed(0)
    model = DSCNN(num_classes=12).eval()
    _randomize_batchnorm(model, seed=1)
    g = torch.Generator().manual_seed(2)
    # For each pruned conv, 16 of 64 filters get importance 0 (removed at channel_sparsity 0.25) and
    # the layer reading them ignores them, so removing them changes no output.
    producer_consumer = [("conv1", "pw1"), ("pw1", "pw2"), ("pw2", "pw3"), ("pw3", "pw4"),
                         ("pw4", "fc")]
    with torch.no_grad():
        for producer, consumer in producer_consumer:
            zeroed = torch.randperm(64, generator=g)[:16]
            getattr(model, producer).weight[zeroed] = 0
            getattr(model, consumer).weight[:, zeroed] = 0
    small = P.prune_channels(model, 0.25).eval()
    x = torch.randn(3, 49, 40)
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x), rtol=1e-4, atol=1e-5)


### BEGIN HIDDEN TESTS
@pytest.mark.graded(points=1)
def test_hidden_magnitude_prune_mask_conv_filter_and_input_groups():
    weight = torch.zeros(3, 2, 1, 1)
    weight[:, :, 0, 0] = torch.tensor([[1.0, -5.0], [2.0, 2.0], [-0.5, 0.5]])
    # filters (group_dim 0), L1: 6, 4, 1; round(1/3 * 3) = 1 pruned -> filter 2
    mask = P.magnitude_prune_mask(weight, 1 / 3, norm="l1", group_dim=0)
    assert mask.shape == weight.shape
    assert mask[:, :, 0, 0].tolist() == [[True, True], [True, True], [False, False]]
    # input channels (group_dim 1), L2: sqrt(1 + 4 + 0.25) = 2.29, sqrt(25 + 4 + 0.25) = 5.41
    # -> round(0.5 * 2) = 1 pruned: input channel 0
    mask = P.magnitude_prune_mask(weight, 0.5, norm="l2", group_dim=1)
    assert mask[:, :, 0, 0].tolist() == [[False, True], [False, True], [False, True]]


@pytest.mark.graded(points=1)
def test_hidden_global_pruning_respects_layer_types():
    model = _small_conv_model()
    conv_before = model[0].weight.detach().clone()
    # only the 36 linear weights: round(0.5 * 36) = 18 pruned
    masks = P.apply_global_magnitude_pruning(model, 0.5, layer_types=(nn.Linear,))
    assert list(masks) == ["3"]
    assert int((~masks["3"]).sum()) == 18
    weights = _weights_after_forward(model, torch.randn(1, 1, 4, 4))
    assert torch.equal(weights["0"], conv_before)
    assert int((weights["3"] == 0).sum()) == 18


@pytest.mark.graded(points=2)
def test_hidden_prune_channels_at_channel_sparsity_0_3_parameter_counts():
    # tiny_conv: keep round(8 * 0.7) = round(5.6) = 6: conv 6 * 80 + 6 = 486,
    # fc 6 * 500 * 4 + 4 = 12004 -> 12490
    assert _num_params(P.prune_channels(TinyConv(num_classes=4), 0.3)) == 12490
    # ds_cnn: keep round(64 * 0.7) = round(44.8) = 45: conv1 45 * 40 = 1800, bn1 90,
    # block 45 * 9 + 90 + 45 * 45 + 90 = 2610, x 4 = 10440, fc 45 * 12 + 12 = 552 -> 12882
    assert _num_params(P.prune_channels(DSCNN(num_classes=12), 0.3)) == 12882


@pytest.mark.graded(points=1)
def test_hidden_prune_channels_keeps_the_filters_of_largest_l1_norm():
    torch.manual_seed(0)
    model = TinyConv(num_classes=2, channels=4).eval()
    with torch.no_grad():
        # filters constant 0.5, -0.1, 0.3, -0.2 -> L1 40, 8, 24, 16 (80 weights each)
        for c, v in enumerate([0.5, -0.1, 0.3, -0.2]):
            model.conv1.weight[c] = v
    small = P.prune_channels(model, 0.5, norm="l1")
    # keep round(4 * 0.5) = 2: filters 0 and 2
    torch.testing.assert_close(small.conv1.weight, model.conv1.weight[[0, 2]], rtol=0, atol=0)
    torch.testing.assert_close(small.conv1.bias, model.conv1.bias[[0, 2]], rtol=0, atol=0)
    # fc columns: channel 0 -> features 0..499, channel 2 -> 1000..1499
    expected = torch.cat([model.fc.weight[:, 0:500], model.fc.weight[:, 1000:1500]], dim=1)
    torch.testing.assert_close(small.fc.weight, expected, rtol=0, atol=0)


@pytest.mark.graded(points=1)
def test_hidden_slice_linear_inputs_one_feature_per_channel_and_depthwise_bias():
    linear = nn.Linear(4, 1)
    with torch.no_grad():
        linear.weight.copy_(torch.tensor([[1.0, 2.0, 3.0, 4.0]]))
    assert P.slice_linear_inputs(linear, torch.tensor([1, 3]), 1).weight.tolist() == [[2.0, 4.0]]
    conv = nn.Conv2d(3, 3, 1, groups=3)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1, 1))
        conv.bias.copy_(torch.tensor([0.1, 0.2, 0.3]))
    new = P.slice_conv2d(conv, in_keep=torch.tensor([2]))
    assert new.groups == 1 and new.weight.flatten().tolist() == [3.0]
    assert new.bias.tolist() == pytest.approx([0.3])


@pytest.mark.graded(points=2)
def test_hidden_pruning_a_pruned_layer_multiplies_the_masks_and_returns_the_product():
    # layer "0" weight [[4, -1], [3, 0.5]] already pruned by hand at 4 and 3:
    # its weight is now [[0, -1], [0, 0.5]], |w| = [0, 1, 0, 0.5]
    model = _two_linear_model()
    torch.nn.utils.prune.custom_from_mask(model[0], "weight",
                                          torch.tensor([[False, True], [False, True]]))
    # layer-wise 0.25: round(1) = 1 pruned, the first 0 (index 0): new mask
    # [[F, T], [T, T]]; in effect old * new = [[F, T], [F, T]] (returned and applied)
    masks = P.apply_layerwise_pruning(model, {"0": 0.25})
    assert masks["0"].tolist() == [[False, True], [False, True]]
    assert model[0].weight_mask.tolist() == [[0.0, 1.0], [0.0, 1.0]]
    # layer-wise 0.75: 3 pruned: 0 (index 0), 0 (index 2), 0.5 -> [[F, T], [F, F]]
    # (ranking weight_orig [4, 1, 3, 0.5] instead would prune 0.5, 1, 3)
    masks = P.apply_layerwise_pruning(model, {"0": 0.75})
    assert masks["0"].tolist() == [[False, True], [False, False]]
    # global, same start: 6 weights [0, 1, 0, 0.5 | 0.2, 0.3], round(1/6 * 6) = 1 pruned:
    # the 0 at index 0 -> in effect [[F, T], [F, T]] and [[T, T]]
    model = _two_linear_model()
    torch.nn.utils.prune.custom_from_mask(model[0], "weight",
                                          torch.tensor([[False, True], [False, True]]))
    masks = P.apply_global_magnitude_pruning(model, 1 / 6)
    assert masks["0"].tolist() == [[False, True], [False, True]]
    assert masks["2"].tolist() == [[True, True]]
### END HIDDEN TESTS
