"""Ungraded tests for ``kwslab.prune``: the torch reference, input validation and helpers."""
import pytest
import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from kwslab import prune as P
from kwslab.models import DSCNN, TinyConv


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.25, 0.5, 0.7, 0.9, 0.99, 1.0])
def test_unstructured_mask_equals_torch_l1_unstructured(sparsity):
    # torch prunes round(amount * numel) weights chosen by topk(|w|, largest=False); on a
    # tensor without ties the choice is unique, so both masks must agree exactly.
    g = torch.Generator().manual_seed(0)
    weight = torch.randn(7, 5, 3, generator=g)
    assert torch.unique(weight.abs()).numel() == weight.numel()  # no ties
    module = nn.Conv1d(5, 7, 3)
    with torch.no_grad():
        module.weight.copy_(weight)
    torch_prune.l1_unstructured(module, "weight", amount=sparsity)
    assert torch.equal(P.magnitude_prune_mask(weight, sparsity), module.weight_mask.bool())


def test_row_mask_equals_torch_ln_structured():
    # torch's ln_structured keeps round((1 - amount) * rows) rows = our round(amount * rows)
    # pruned whenever no .5 case arises (12 rows, amount 0.25 -> 3 pruned either way).
    g = torch.Generator().manual_seed(1)
    weight = torch.randn(12, 6, generator=g)
    for norm, n in [("l1", 1), ("l2", 2), ("linf", float("inf"))]:
        module = nn.Linear(6, 12)
        with torch.no_grad():
            module.weight.copy_(weight)
        torch_prune.ln_structured(module, "weight", amount=0.25, n=n, dim=0)
        mask = P.magnitude_prune_mask(weight, 0.25, norm=norm, group_dim=0)
        assert torch.equal(mask, module.weight_mask.bool()), norm


@pytest.mark.parametrize("bad", [-0.1, 1.5, True, "0.5", float("nan")])
def test_magnitude_prune_mask_rejects_sparsity_outside_0_1(bad):
    with pytest.raises(ValueError, match="sparsity"):
        P.magnitude_prune_mask(torch.ones(3), bad)


def test_magnitude_prune_mask_rejects_unknown_norm_and_group_dim():
    with pytest.raises(ValueError, match="norm='l3'"):
        P.magnitude_prune_mask(torch.ones(2, 2), 0.5, norm="l3", group_dim=0)
    with pytest.raises(ValueError, match="group_dim=2"):
        P.magnitude_prune_mask(torch.ones(2, 2), 0.5, group_dim=2)


def test_negative_group_dim_equals_positive():
    weight = torch.randn(3, 4, generator=torch.Generator().manual_seed(2))
    assert torch.equal(P.magnitude_prune_mask(weight, 0.5, "l2", group_dim=-1),
                       P.magnitude_prune_mask(weight, 0.5, "l2", group_dim=1))


def test_layerwise_pruning_rejects_unknown_names_and_bad_sparsity():
    model = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    with pytest.raises(KeyError, match="'fc'"):
        P.apply_layerwise_pruning(model, {"fc": 0.5})
    with pytest.raises(ValueError, match="has no weight"):
        P.apply_layerwise_pruning(model, {"1": 0.5})
    with pytest.raises(ValueError, match=r"sparsities\['0'\]"):
        P.apply_layerwise_pruning(model, {"0": 2.0})


def test_global_pruning_needs_a_prunable_layer():
    with pytest.raises(ValueError, match="no layer of types"):
        P.apply_global_magnitude_pruning(nn.Sequential(nn.ReLU()), 0.5)


def test_sparsity_count_and_remove_reparam_on_a_pruned_model():
    torch.manual_seed(0)
    model = TinyConv(num_classes=4)
    total = 16652  # 648 + 16004
    assert P.count_nonzero_parameters(model) == total  # random init has no zeros
    assert P.sparsity_of(model) == 0.0
    P.apply_global_magnitude_pruning(model, 0.5)
    # weights: 640 conv + 16000 fc = 16640, round(0.5 * 16640) = 8320 pruned; 12 biases kept
    assert P.sparsity_of(model) == pytest.approx(8320 / 16640)
    assert P.count_nonzero_parameters(model) == total - 8320
    P.remove_pruning_reparam(model)
    assert not hasattr(model.conv1, "weight_orig")
    assert sorted(model.state_dict()) == sorted(TinyConv(num_classes=4).state_dict())
    assert P.count_nonzero_parameters(model) == total - 8320


def test_count_nonzero_sees_weights_updated_after_the_last_forward():
    model = nn.Sequential(nn.Linear(3, 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.tensor([[1.0, 2.0, 3.0]]))
    P.apply_layerwise_pruning(model, {"0": 1 / 3})  # prunes 1.0
    with torch.no_grad():
        model[0].weight_orig.fill_(5.0)  # module.weight is stale until the next forward
    assert P.count_nonzero_parameters(model) == 2


def test_finetune_with_masks_zeroes_weights_of_an_unpruned_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    mask = torch.tensor([[True, False, True, False], [False, True, True, True]])
    batches = [(torch.randn(5, 1, 2, 2), torch.randint(0, 2, (5,))) for _ in range(2)]
    losses = P.finetune(model, batches, epochs=3, lr=0.05, masks={"1": mask})
    assert len(losses) == 3 and all(loss > 0 for loss in losses)
    assert torch.all(model[1].weight[~mask] == 0)
    assert torch.all(model[1].weight[mask] != 0)
    assert not model.training


def test_finetune_rejects_bad_masks_and_epochs():
    model = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(ValueError, match="epochs=0"):
        P.finetune(model, [], epochs=0)
    with pytest.raises(ValueError, match="'fc'"):
        P.finetune(model, [], epochs=1, masks={"fc": torch.ones(2, 2, dtype=torch.bool)})
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        P.finetune(model, [], epochs=1, masks={"0": torch.ones(3, dtype=torch.bool)})


def test_prune_channels_leaves_batchnorm_statistics_of_the_original_alone():
    model = DSCNN(num_classes=3, input_shape=(9, 8), channels=8, num_blocks=1).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    small = P.prune_channels(model, 0.5)
    assert model.training and small.training  # the dry pass ran in eval mode
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    # 8 -> round(8 * 0.5) = 4 channels; input (9, 8) -> conv1 stride 2 -> (5, 4)
    assert small.conv1.weight.shape == (4, 1, 10, 4)
    assert small.eval()(torch.randn(2, 9, 8)).shape == (2, 3)


def test_prune_channels_on_a_weight_pruned_model_gives_plain_parameters():
    torch.manual_seed(0)
    model = TinyConv(num_classes=2, input_shape=(8, 6), channels=4)
    P.apply_global_magnitude_pruning(model, 0.5)
    small = P.prune_channels(model, 0.5)
    assert not hasattr(small.conv1, "weight_orig")
    assert hasattr(model.conv1, "weight_orig")  # the input keeps its reparametrization
    # input (8, 6) -> (4, 3) per channel = 12 features; 2 channels -> fc in 24
    assert small.fc.weight.shape == (2, 24)


def test_prune_channels_channel_sparsity_zero_keeps_the_model_function():
    torch.manual_seed(0)
    model = DSCNN(num_classes=3, input_shape=(9, 8), channels=6, num_blocks=2).eval()
    small = P.prune_channels(model, 0.0).eval()
    x = torch.randn(2, 9, 8)
    with torch.no_grad():
        torch.testing.assert_close(small(x), model(x))


def test_prune_channels_rejects_unknown_layers_and_bad_models():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.GroupNorm(2, 4), nn.Conv2d(4, 2, 1))
    model.input_shape = (5, 5)
    with pytest.raises(TypeError, match="'1' \\(GroupNorm\\)"):
        P.prune_channels(model, 0.5)
    with pytest.raises(ValueError, match="input_shape"):
        P.prune_channels(nn.Sequential(nn.Conv2d(1, 2, 1)), 0.5)
    with pytest.raises(TypeError, match="nn.Sequential"):
        P.prune_channels(nn.Conv2d(1, 2, 1), 0.5)
    with pytest.raises(ValueError, match="channel_sparsity"):
        P.prune_channels(TinyConv(2), 1.2)


def test_slice_conv2d_rejects_grouped_convs_and_mismatched_depthwise_keeps():
    with pytest.raises(ValueError, match="groups=2"):
        P.slice_conv2d(nn.Conv2d(4, 4, 1, groups=2), torch.tensor([0]))
    with pytest.raises(ValueError, match="same channels"):
        P.slice_conv2d(nn.Conv2d(3, 3, 1, groups=3), torch.tensor([0]), torch.tensor([1]))


def test_channels_to_keep_and_importance_validate_inputs():
    with pytest.raises(ValueError, match="channel_sparsity=-0.5"):
        P.channels_to_keep(torch.ones(3), -0.5)
    with pytest.raises(ValueError, match="1-D"):
        P.channels_to_keep(torch.ones(2, 2), 0.5)
    with pytest.raises(TypeError, match="ReLU"):
        P.channel_importance(nn.ReLU())
    with pytest.raises(ValueError, match="affine"):
        P.channel_importance(nn.BatchNorm2d(3, affine=False))
