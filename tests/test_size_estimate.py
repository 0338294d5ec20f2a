"""Ungraded checks of kwslab.size_estimate: references, errors, reports, boards, latency.

The graded tests (tests/graded/test_size_estimate.py) pin hand-derived numbers; these compare
with independent references (torch's FlopCounterMode, a real exported .tflite) and cover the
helpers students do not write.
"""
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from kwslab import size_estimate as S
from kwslab.models import build_model


def _model(name: str, num_classes: int) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, num_classes=num_classes).eval()


@pytest.mark.parametrize("name,num_classes", [("tiny_conv", 4), ("ds_cnn", 12), ("tc_cnn", 12)])
def test_flops_match_torch_flop_counter(name, num_classes):
    # FlopCounterMode counts 2 FLOPs per MAC for convolutions and matmuls, bias excluded,
    # and nothing for BatchNorm, ReLU, pooling: the same convention as count_flops.
    model = _model(name, num_classes)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 1, 49, 40))
    assert S.count_flops(model, (1, 49, 40)) == counter.get_total_flops()


def test_macs_of_a_grouped_conv_match_torch_flop_counter():
    model = nn.Sequential(nn.Conv2d(6, 9, (3, 2), stride=(2, 1), groups=3), nn.ReLU(),
                          nn.Flatten(), nn.LazyLinear(5))
    model(torch.zeros(1, 6, 11, 7))  # materialize the lazy layer
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(1, 6, 11, 7))
    _, macs = S.count_macs(model, (6, 11, 7))
    assert 2 * macs == counter.get_total_flops()


def test_default_input_shape_comes_from_the_model():
    model = _model("tiny_conv", 4)
    assert S.count_macs(model)[1] == S.count_macs(model, (1, 49, 40))[1] == 336_000
    with pytest.raises(ValueError, match="input_shape"):
        S.activation_sizes(nn.Sequential(nn.Linear(3, 2)))


def test_estimate_flash_bytes_default_overheads_tiny_conv():
    # calibrated on the exported tiny_conv (4 classes) int8 file, 19,216 bytes:
    # tensor data 16,976 + FLATBUFFER_BASE_BYTES 1,140 + 2 layers * 550 = 19,216
    assert S.FLATBUFFER_BASE_BYTES == 1_140 and S.FLATBUFFER_LAYER_BYTES == 550
    assert S.estimate_flash_bytes(_model("tiny_conv", 4), "int8") == 19_216


@pytest.mark.slow
@pytest.mark.parametrize("name,num_classes", [("tiny_conv", 4), ("ds_cnn", 12), ("tc_cnn", 12)])
def test_estimate_flash_bytes_within_ten_percent_of_exported_tflite(name, num_classes):
    np = pytest.importorskip("numpy")
    E = pytest.importorskip("kwslab.export")
    if not (hasattr(E, "keras_twin") and hasattr(E, "convert_int8")):
        pytest.skip("kwslab.export has no keras_twin/convert_int8")
    model = _model(name, num_classes)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():  # non-trivial BatchNorm and biases, as after training
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1, generator=g)
                m.running_var.uniform_(0.5, 2.0, generator=g)
                m.bias.normal_(0, 0.1, generator=g)
            elif isinstance(m, nn.Linear):
                m.bias.normal_(0, 0.1, generator=g)
    calibration = np.random.default_rng(0).uniform(0, 25.9, (20, 49, 40, 1)).astype(np.float32)
    tflite = E.convert_int8(E.keras_twin(model), calibration)
    estimate = S.estimate_flash_bytes(model, "int8")
    assert abs(estimate - len(tflite)) <= 0.10 * len(tflite), (estimate, len(tflite))


def test_ram_peak_ds_cnn_float32_and_naive_is_larger():
    sizes = S.activation_sizes(_model("ds_cnn", 12), (1, 49, 40), S.BYTES_PER_ELEMENT["float32"])
    # two live 25 x 20 x 64 float32 tensors: 2 * 128,000 = 256,000 bytes
    assert S.ram_peak_bytes(sizes) == 256_000
    assert S.ram_naive_bytes(sizes) > 10 * S.ram_peak_bytes(sizes)


def test_size_report_and_fits_nano33ble():
    report = S.size_report(_model("ds_cnn", 12), dtype="int8")
    assert report["params"] == 23_180
    assert report["macs"] == 10_624_768 and report["flops"] == 2 * 10_624_768
    assert report["ram_peak_bytes"] == 64_000
    assert report["flash_bytes"] == 38_480 + 1_140 + 10 * 550
    usage = S.fits(report, "nano33ble")
    # 64,000 / 262,144 = 24.41 %; 45,120 / 1,048,576 = 4.30 %
    assert usage["ram_percent"] == pytest.approx(24.4140625)
    assert usage["flash_percent"] == pytest.approx(100 * 45_120 / 1_048_576)
    assert usage["fits"] is True


def test_fits_reports_overflow_and_unknown_board():
    report = {"flash_bytes": 3_000_000, "ram_peak_bytes": 100_000}
    usage = S.fits(report, "psoc62")
    # 3,000,000 / 2,097,152 = 143 % of the PSoC 62's flash: does not fit
    assert usage["flash_percent"] == pytest.approx(143.05, abs=0.01)
    assert usage["fits"] is False
    assert S.fits(report, {"flash_bytes": 4_000_000, "ram_bytes": 200_000})["fits"] is True
    with pytest.raises(KeyError, match="unknown board 'uno'"):
        S.fits(report, "uno")
    with pytest.raises(KeyError, match="ram_peak_bytes"):
        S.fits({"flash_bytes": 1}, "psoc62")


def test_boards_budgets():
    assert S.BOARDS["nano33ble"] == {"flash_bytes": 1024 * 1024, "ram_bytes": 256 * 1024}
    assert S.BOARDS["psoc62"] == {"flash_bytes": 2048 * 1024, "ram_bytes": 1024 * 1024}


def test_errors_name_the_bad_value():
    model = _model("tiny_conv", 4)
    with pytest.raises(ValueError, match="bytes_per_weight.*0.5"):
        S.flash_bytes(model, 0.5)
    with pytest.raises(ValueError, match="'int4'"):
        S.estimate_flash_bytes(model, "int4")
    with pytest.raises(ValueError, match="overheads"):
        S.estimate_flash_bytes(model, "int8", base_overhead_bytes=-1)
    with pytest.raises(ValueError, match="empty"):
        S.ram_peak_bytes([])
    with pytest.raises(ValueError, match="empty"):
        S.ram_naive_bytes([])
    with pytest.raises(TypeError, match="Conv1d"):
        S.layer_macs(nn.Conv1d(2, 2, 3), (1, 2, 5), (1, 2, 3))
    with pytest.raises(ValueError, match="bytes_per_element"):
        S.activation_sizes(model, (1, 49, 40), bytes_per_element=0)


def test_activation_sizes_restores_eval_mode_and_accepts_3d_input():
    model = _model("tiny_conv", 4)  # eval mode
    sizes = S.activation_sizes(model, (49, 40))  # (N, T, F) input: unsqueezed by the model
    assert not model.training
    assert sizes[1].output_shape == (1, 8, 25, 20)


def test_measure_latency_ms_is_positive():
    ms = S.measure_latency_ms(_model("tiny_conv", 4), device="cuda", min_run_time_s=0.05)
    assert 0 < ms < 1_000
    with pytest.raises(ValueError, match="device"):
        S.measure_latency_ms(_model("tiny_conv", 4), device="tpu")


@pytest.mark.slow
@pytest.mark.tflm
@pytest.mark.parametrize("name,classes,channel_sparsity",
                         [("tiny_conv", 4, 0.0), ("tiny_conv", 4, 0.5), ("ds_cnn", 12, 0.0),
                          ("tc_cnn", 12, 0.0), ("tc_cnn", 12, 0.5)])
def test_tflm_arena_estimate_within_two_percent_of_measured_arena(name, classes,
                                                                  channel_sparsity):
    import numpy as np

    from kwslab import export, models, prune

    torch.manual_seed(0)
    model = models.build_model(name, classes).eval()
    if channel_sparsity:
        model = prune.prune_channels(model, channel_sparsity).eval()
    x = np.random.default_rng(0).integers(-128, 60, (32, 49, 40)).astype(np.int8)
    tflite = export.convert_int8(export.keras_twin(model), export.representative_features(x))
    measured = export.measure_arena_bytes(tflite)
    assert S.estimate_tflm_arena_bytes(model) == pytest.approx(measured, rel=0.02)
