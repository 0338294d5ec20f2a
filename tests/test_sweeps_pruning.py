"""Tests for the pruning sweeps (kwslab.sweeps) and the helpers they use: grouped pruning, MCU latency, profile parsing, weight clustering, LUT compression.

Tiny random models on tiny random features; exact counts are derived in the comments.
TinyConv on an 8 x 8 input with 3 classes: SamePad + conv 8 x (10, 8) stride 2 -> (8, 4, 4);
conv weights 8 * 80 = 640 (+ 8 biases), fc 3 x 128 = 384 (+ 3 biases): 1,024 weights,
1,035 parameters; MACs: conv 8 * 4 * 4 * 80 = 10,240 + fc 384 = 10,624.
"""
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from kwslab import export, firmware, prune, quantize, size_estimate, sweeps, train
from kwslab.models import TinyConv

ROW_FIELDS = {"sparsity", "measured_sparsity", "nonzero_params", "params", "val_accuracy",
              "test_accuracy", "finetuned_val_accuracy", "finetuned_test_accuracy",
              "nonzero_params_finetuned"}


def _tiny_model(input_shape=(8, 8), num_classes=3, seed=0) -> TinyConv:
    torch.manual_seed(seed)
    return TinyConv(num_classes, input_shape=input_shape).eval()


def _fake_data(input_shape=(8, 8), num_classes=3, n=24, copies=2, seed=0) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    x = lambda *s: rng.integers(-128, 128, (*s, *input_shape)).astype(np.int8)  # noqa: E731
    y = lambda m: rng.integers(0, num_classes, m).astype(np.int64)  # noqa: E731
    return SimpleNamespace(train_x=x(copies, n), train_y=y(n), val_x=x(n), val_y=y(n),
                           test_x=x(n), test_y=y(n))


def test_feature_batches_use_one_augmented_copy_per_epoch_and_every_clip_once():
    # copy k of the bank holds the value k everywhere; features are dequantized floats, so
    # epoch 0 sees one value only, epoch 1 another; each epoch yields all 10 labels once
    bank = np.stack([np.full((10, 2, 3), v, np.int8) for v in (-128, 0)])  # (K=2, N=10, 2, 3)
    labels = np.arange(10)
    batches = train.FeatureBatches(bank, labels, batch_size=4, seed=0)
    seen = []
    for _ in range(2):
        xs, ys = zip(*batches)
        assert [len(y) for y in ys] == [4, 4, 2]
        assert xs[0].shape == (4, 1, 2, 3) and xs[0].dtype == torch.float32
        assert sorted(torch.cat(ys).tolist()) == list(range(10))
        seen.append(torch.unique(torch.cat([x.flatten() for x in xs])).tolist())
    assert len(seen[0]) == 1 and len(seen[1]) == 1 and seen[0] != seen[1]
    with pytest.raises(ValueError, match="batch_size=0"):
        train.FeatureBatches(bank, labels, batch_size=0)
    with pytest.raises(ValueError, match="N = len"):
        train.FeatureBatches(bank, labels[:5])


def test_unstructured_sweep_rows_have_the_fields_and_sparsity_grows():
    model, data = _tiny_model(), _fake_data()
    rows = sweeps.unstructured_sweep(model, data, [0.9, 0.0, 0.5], finetune_epochs=1)
    assert [r["sparsity"] for r in rows] == [0.0, 0.5, 0.9]  # sorted
    assert all(set(r) == ROW_FIELDS for r in rows)
    # pruned: 0, round(0.5 * 1024) = 512, round(0.9 * 1024) = round(921.6) = 922 weights
    assert [r["measured_sparsity"] for r in rows] == [0.0, 512 / 1024, 922 / 1024]
    # random weights and biases have no zeros: nonzero = 1,035 - pruned
    assert [r["nonzero_params"] for r in rows] == [1035, 523, 113]
    assert all(r["params"] == 1035 for r in rows)
    # finetuning keeps the pruned weights at zero (the masks stay attached)
    assert [r["nonzero_params_finetuned"] for r in rows] == [1035, 523, 113]
    for r in rows:
        for key in ("val_accuracy", "test_accuracy", "finetuned_test_accuracy"):
            assert 0.0 <= r[key] <= 1.0
    assert model.conv1.weight.count_nonzero() == 640  # the input model is not modified
    with pytest.raises(ValueError, match="sparsities"):
        sweeps.unstructured_sweep(model, data, [0.5, 1.5])


def test_prune_unstructured_finetunes_the_kept_weights():
    model, data = _tiny_model(), _fake_data()
    pruned, _ = sweeps.prune_unstructured(model, data, 0.5, finetune_epochs=1)
    kept = pruned.fc.weight_mask.bool()
    assert not torch.equal(pruned.fc.weight_orig[kept], model.fc.weight[kept])
    no_tune, row = sweeps.prune_unstructured(model, data, 0.5, finetune_epochs=0)
    assert torch.equal(no_tune.fc.weight, model.fc.weight * no_tune.fc.weight_mask)
    assert row["test_accuracy"] == row["finetuned_test_accuracy"]


def test_group_dims_prune_filters_and_fc_input_columns():
    assert prune.group_dims(_tiny_model()) == {"conv1": 0, "fc": 1}


def test_grouped_sweep_prunes_whole_groups_and_norms_pick_differently():
    model, data = _tiny_model(), _fake_data()
    rows = sweeps.grouped_sweep(model, data, [0.5], norms=("l1", "l2", "linf"), finetune_epochs=1)
    assert [r["norm"] for r in rows] == ["l1", "l2", "linf"]
    # 4 of 8 filters (4 * 80 = 320 weights) and 64 of 128 fc columns (64 * 3 = 192 weights)
    # pruned: (320 + 192) / 1024 = 0.5; nonzero 1,035 - 512 = 523 (biases stay)
    assert all(r["measured_sparsity"] == 0.5 and r["nonzero_params"] == 523 for r in rows)
    assert rows[0]["same_groups_as_l1"] == 1.0
    # random weights: L-infinity (max |w|) cannot agree with L1 on all 68 groups
    assert rows[2]["same_groups_as_l1"] < 1.0
    with pytest.raises(ValueError, match="norm='l3'"):
        sweeps.grouped_sweep(model, data, [0.5], norms=("l3",))


def test_structured_sweep_counts_params_and_macs_on_the_smaller_model():
    model, data = _tiny_model(), _fake_data()
    rows = sweeps.structured_sweep(model, data, [0.5, 0.0], finetune_epochs=1, latency_s=0.01,
                              latency_repeats=2)
    assert [r["channel_sparsity"] for r in rows] == [0.0, 0.5]
    assert [r["channels"] for r in rows] == [{"conv1": 8}, {"conv1": 4}]
    # channel sparsity 0.5: conv 4 * 80 + 4 = 324, fc 3 * 64 + 3 = 195 -> 519 parameters;
    # MACs 4 * 4 * 4 * 80 = 5,120 + 3 * 64 = 192 -> 5,312
    assert [r["params"] for r in rows] == [1035, 519]
    assert [r["macs"] for r in rows] == [10_624, 5_312]
    assert all(r["cpu_latency_ms"] > 0 for r in rows)
    assert all(0.0 <= r["finetuned_val_accuracy"] <= 1.0 for r in rows)
    with pytest.raises(ValueError, match="latency_repeats=0"):
        sweeps.structured_sweep(model, data, [0.5], latency_repeats=0)


def test_prune_structured_can_finetune_with_the_training_loop():
    """finetune_cfg: the pruned model is trained by train.train (cosine schedule), not by
    prune.finetune; the same config gives the same weights, zero epochs of either keep them."""
    from kwslab.config import TrainConfig

    model, data = _tiny_model(), _fake_data()
    data.labels = ("a", "b", "c")
    cfg = TrainConfig(epochs=2, batch_size=8, learning_rate=0.05, seed=0)
    untouched, _ = sweeps.prune_structured(model, data, 0.5, finetune_epochs=0, latency_s=0.01)
    a, row = sweeps.prune_structured(model, data, 0.5, latency_s=0.01, finetune_cfg=cfg)
    b, _ = sweeps.prune_structured(model, data, 0.5, latency_s=0.01, finetune_cfg=cfg)
    adam, _ = sweeps.prune_structured(model, data, 0.5, finetune_epochs=2, lr=0.05, latency_s=0.01)
    assert row["channels"] == {"conv1": 4} and not a.training
    weights = lambda m: torch.cat([p.detach().flatten() for p in m.parameters()])  # noqa: E731
    assert not torch.equal(weights(a), weights(untouched))
    assert torch.equal(weights(a), weights(b))
    assert not torch.equal(weights(a), weights(adam))  # another optimizer path


def test_mcu_latency_is_macs_over_throughput_and_clock():
    # tiny_conv: 336,000 MACs / 0.5 MACs per cycle = 672,000 cycles / 64 MHz = 10.5 ms
    assert size_estimate.mcu_latency_ms(336_000) == pytest.approx(10.5)
    assert size_estimate.mcu_latency_ms(1_000_000, clock_hz=100e6, macs_per_cycle=1.0) == pytest.approx(10.0)
    with pytest.raises(ValueError, match="macs_per_cycle"):
        size_estimate.mcu_latency_ms(10, macs_per_cycle=0)


def test_parse_profile_averages_the_sketch_lines():
    text = ("boot ok\nprofile_us capture=800 features=1500 invoke=9000 post=40 dropped_strides=0\n"
            "heard yes (212)\n"
            "profile_us capture=820 features=1540 invoke=9100 post=60 dropped_strides=2\n")
    assert firmware.parse_profile(text) == {"capture": 810.0, "features": 1520.0, "invoke": 9050.0,
                                     "post": 50.0, "dropped_strides": 1.0}
    assert firmware.parse_profile("no profiling here") is None
    with pytest.raises(ValueError, match="invoke=fast"):
        firmware.parse_profile("profile_us invoke=fast")


def test_cluster_weights_leaves_few_values_per_channel_and_keeps_zeros():
    model = _tiny_model()
    with torch.no_grad():
        model.fc.weight[0, :10] = 0.0
    quantize.cluster_weights(model, 4)
    for w in (model.conv1.weight.flatten(1), model.fc.weight):
        assert max(len(torch.unique(row)) for row in w) <= 4
    assert torch.equal(model.fc.weight[0, :10], torch.zeros(10))
    assert (model.fc.weight[0, 10:] != 0).all()  # no weight became zero by clustering
    with pytest.raises(ValueError, match="num_values=1"):
        quantize.cluster_weights(model, 1)


@pytest.mark.slow
@pytest.mark.tflm
def test_lut_compression_shrinks_the_model_and_tflm_outputs_stay_the_same():
    from kwslab import export

    # 20 x 16 input: conv (8, 10, 8, 8) 640 int8 weights, fc 4 x 640 = 2,560 int8 weights
    model = _tiny_model(input_shape=(20, 16), num_classes=4)
    rng = np.random.default_rng(0)
    x = rng.integers(-128, 128, (16, 20, 16)).astype(np.int8)
    calibration = export.representative_features(x, seed=0)
    plain = export.convert_int8(export.keras_twin(model, (20, 16)), calibration)
    with pytest.raises(ValueError, match="cluster_weights"):
        export.lut_compress(plain)  # up to 80+ distinct int8 values per channel: no gain
    quantize.cluster_weights(model, 4)
    tflite = export.convert_int8(export.keras_twin(model, (20, 16)), calibration)
    compressed, rows = export.lut_compress(tflite)
    # 4 values per channel. The conv is quantized per channel: 2-bit indices, 640 * 2 / 8
    # = 160 B + 8 tables * 4 B. Dense layers are exported per tensor (the deploy library
    # scales FULLY_CONNECTED per tensor only), so fc's 4 rows x 4 values share one scale:
    # up to 16 distinct codes -> 4-bit indices, 2,560 * 4 / 8 = 1,280 B + one 16-entry table.
    assert {r["op"]: r["index_bitwidth"] for r in rows} == {"CONV_2D": 2, "FULLY_CONNECTED": 4}
    assert {r["op"]: r["lut_bytes"] for r in rows} == {"CONV_2D": 160 + 32,
                                                       "FULLY_CONNECTED": 1280 + 16}
    # tables save (640 - 192) + (2,560 - 1,296) = 1,712 B, less the DECODE ops' metadata
    assert len(compressed) < len(tflite) - 1000
    assert export.op_names(compressed).count("TFLM_DECODE") == 2
    assert "TFLM_DECODE" not in export.op_names(tflite)
    np.testing.assert_array_equal(export.run_tflm(compressed, x), export.run_tflm(tflite, x))
