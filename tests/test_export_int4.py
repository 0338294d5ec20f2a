"""export.int4_tflite: packed int4 weights that TFLite Micro runs, and QAT weights that survive them exactly."""
import numpy as np
import pytest
import torch

from kwslab import export
from kwslab import quantize as Q
from kwslab import sweeps
from kwslab.models import DSCNN

SHAPE = (20, 16)  # the small_dscnn_int8 fixture (tests/conftest.py)
CHANNELS = 12  # the small_dscnn_int8 fixture (tests/conftest.py)


def test_int4_codes_requantize_each_channel_to_its_own_max():
    # channel 0: max |q| 127 -> codes * 7 / 127; channel 1: max 14 -> codes / 2; channel 2 zeros
    q8 = np.array([[127, -64, 18], [14, -7, 2], [0, 0, 0]], np.int8)
    codes, scales = export.int4_codes(q8, np.array([0.01, 0.5, 0.2]), axis=0)
    np.testing.assert_array_equal(codes, [[7, -4, 1], [7, -4, 1], [0, 0, 0]])
    # -64 * 7 / 127 = -3.53 -> -4; -7 / 2 = -3.5 -> -4 (round half to even); 2 / 2 = 1
    np.testing.assert_allclose(scales, [0.01 * 127 / 7, 0.5 * 14 / 7, 0.2])
    assert codes.dtype == np.int8


def test_int4_codes_along_the_last_axis_and_bad_arguments():
    q8 = np.array([[[10, -127]], [[-5, 127]]], np.int8)  # channels on axis 2
    codes, scales = export.int4_codes(q8, [1.0, 2.0], axis=2)
    np.testing.assert_array_equal(codes[..., 0], [[7], [-4]])   # 10 * 7 / 10, -5 * 7 / 10
    np.testing.assert_array_equal(codes[..., 1], [[-7], [7]])
    np.testing.assert_allclose(scales, [10 / 7, 2 * 127 / 7])
    with pytest.raises(ValueError, match="num_bits=5"):
        export.int4_codes(q8, [1.0, 2.0], axis=2, num_bits=5)
    with pytest.raises(ValueError, match="2 scales for 1 channels"):
        export.int4_codes(q8, [1.0, 2.0], axis=1)


def test_pack_int4_puts_the_even_element_in_the_low_nibble():
    assert export.pack_int4(np.array([1, -1, 7, -8, 3], np.int8)) == bytes([0xF1, 0x87, 0x03])
    assert export.pack_int4(np.zeros((2, 2), np.int8)) == bytes(2)
    with pytest.raises(ValueError, match=r"\[-8, 7\]"):
        export.pack_int4(np.array([9], np.int8))


def _unpack(data: bytes, n: int) -> np.ndarray:
    b = np.frombuffer(data, np.uint8).astype(np.int16)
    lo, hi = b & 0xF, b >> 4
    out = np.stack([lo, hi], 1).reshape(-1)[:n]
    return np.where(out > 7, out - 16, out).astype(np.int8)


def test_pack_round_trips_through_an_independent_unpacker():
    codes = np.random.default_rng(0).integers(-8, 8, 101).astype(np.int8)
    np.testing.assert_array_equal(_unpack(export.pack_int4(codes), 101), codes)


@pytest.fixture
def converted(small_dscnn_int8):
    return small_dscnn_int8


@pytest.mark.slow
@pytest.mark.tflm
def test_packed_model_runs_in_tflm_like_its_unpacked_reference(converted):
    from tflite_micro.tensorflow.lite.micro.compression import model_editor
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    _, tflite, x = converted
    reference, _ = export.int4_tflite(tflite, packed=False)
    packed, stats = export.int4_tflite(tflite)
    # conv1, dw1, pw1, dw2, pw2; the converter's FULLY_CONNECTED weight has one scale: int8
    assert stats["tensors"] == 5 and stats["skipped"] == ["FULLY_CONNECTED"]
    weights = 12 * 10 * 4 + 2 * (12 * 9 + 12 * 12)
    assert stats["weights"] == weights
    assert len(tflite) - len(packed) >= weights // 2 - 64
    np.testing.assert_array_equal(export.run_tflm(packed, x), export.run_tflm(reference, x))
    compact, _ = export.compact_tflite(packed)
    np.testing.assert_array_equal(export.run_tflm(compact, x), export.run_tflm(reference, x))
    graph = model_editor.read(packed).subgraphs[0]
    int4 = [t for t in graph.tensors if t.dtype == schema.TensorType.INT4]
    assert len(int4) == 5
    ref_graph = model_editor.read(reference).subgraphs[0]
    for t in int4:
        codes = ref_graph.tensors[t.index].array
        assert np.abs(codes).max() <= 7
        np.testing.assert_array_equal(_unpack(t.buffer.data, codes.size), codes.reshape(-1))
    # PTQ to 4 bits changes outputs: the codes really are coarser than int8's
    assert not np.array_equal(export.run_tflm(reference, x), export.run_tflm(tflite, x))


@pytest.mark.slow
@pytest.mark.tflm
def test_four_bit_qat_weights_survive_int4_storage_exactly(converted):
    # weights trained on the 4-bit grid (activations 8-bit): the int8 file holds them as
    # codes round(k * 127 / 7) per channel, and int4 storage keeps exactly those weights
    model, _, x = converted
    qmodel = sweeps.set_weight_bits(Q.prepare_qat(model, 8), 4)
    Q.calibrate(qmodel, [torch.from_numpy(x.astype(np.float32))])
    float_model = Q.qat_to_float(qmodel)
    for layer in float_model:
        if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)):
            per_channel = layer.weight.detach().reshape(layer.weight.shape[0], -1)
            assert max(len(torch.unique(row)) for row in per_channel) <= 15
    tflite = export.convert_int8(export.keras_twin(float_model, SHAPE),
                                 export.representative_features(x, seed=0))
    reference, _ = export.int4_tflite(tflite, packed=False)
    packed, _ = export.int4_tflite(tflite)
    from tflite_micro.tensorflow.lite.micro.compression import model_editor

    g8, g4 = model_editor.read(tflite).subgraphs[0], model_editor.read(reference).subgraphs[0]
    checked = 0
    for t8, t4 in zip(g8.tensors, g4.tensors):
        if t8.buffer is None or not t8.buffer.data or t8.array.dtype != np.int8:
            continue
        # the same grid points: a 4-bit weight k * s is stored in int8 as round(k * s / s8)
        # (within half an int8 step s8 / 2) and the int4 code recovers k * s from it
        axis = t8.quantization.axis or 0
        shape = [1] * t8.array.ndim
        shape[axis] = -1
        s8 = np.reshape(t8.quantization.scales, shape)
        real8 = t8.array * s8
        real4 = t4.array * np.reshape(t4.quantization.scales, shape)
        assert (np.abs(real4 - real8) <= 0.5 * s8 * (1 + 1e-5)).all()
        checked += 1
    assert checked == 6  # 5 int4 + the int8 fully connected weight, unchanged
    # only the int32 biases are rounded to their new scale: outputs move by <= 1 step
    out8, out4 = export.run_tflm(tflite, x).astype(int), export.run_tflm(packed, x).astype(int)
    assert np.abs(out8 - out4).max() <= 1
    np.testing.assert_array_equal(export.run_tflm(packed, x), export.run_tflm(reference, x))


def test_int4_refuses_a_float_model():
    model = DSCNN(3, input_shape=SHAPE, channels=4, num_blocks=1).eval()
    tflite = export.convert_float(export.keras_twin(model, SHAPE))
    with pytest.raises(ValueError, match="not an int8 tensor"):
        export.int4_tflite(tflite)


@pytest.mark.slow
@pytest.mark.tflm
def test_deploy_int4_writes_the_board_files_and_refuses_a_broken_packing(tmp_path, monkeypatch,
                                                                        tiny_conv_export_case):
    from kwslab import firmware

    cfg, model, data = tiny_conv_export_case
    row = sweeps.deploy_int4(model, cfg, data, tmp_path / "ok")
    device = (tmp_path / "ok" / "model_int4_device.tflite").read_bytes()
    assert row["int4_device_bytes"] == len(device) < row["device_tflite_bytes"]
    assert row["int4_weights"] == 8 * 10 * 8  # the conv; the per-tensor fc stays int8
    c_array = firmware.parse_c_array((tmp_path / "ok" / "int4" / "model_data.cpp").read_text())
    assert c_array == device
    settings = (tmp_path / "ok" / "int4" / "model_settings.h").read_text()
    assert str(row["int4_arena_bytes"]) in settings
    assert row["int4_arena_bytes"] >= row["arena_bytes"]  # + the unpacked filter's scratch

    real = export.pack_int4
    monkeypatch.setattr(export, "pack_int4", lambda codes: real(-np.asarray(codes)))
    with pytest.raises(ValueError, match="differs from its unpacked reference"):
        sweeps.deploy_int4(model, cfg, data, tmp_path / "broken")
