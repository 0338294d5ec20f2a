"""export.compact_tflite: the device model drops only what TFLite Micro never reads."""
import numpy as np
import pytest

from kwslab import export

pytestmark = [pytest.mark.slow, pytest.mark.tflm]

CHANNELS = 12  # the small_dscnn_int8 fixture (tests/conftest.py)


@pytest.fixture
def converted(small_dscnn_int8):
    """A small DS-CNN (per-channel conv, depthwise and pointwise weights) in int8."""
    return small_dscnn_int8[1:]


def _quantization(tflite):
    from tflite_micro.tensorflow.lite.micro.compression import model_editor

    graph = model_editor.read(tflite).subgraphs[0]
    return graph, {t.index: t.quantization for t in graph.tensors}


def test_compact_model_gives_identical_tflm_outputs_and_is_smaller(converted):
    tflite, x = converted
    compact, stats = export.compact_tflite(tflite)
    # 5 per-channel convolutions (conv1, dw1, pw1, dw2, pw2) of 12 channels: 11 zero points
    # dropped from each weight and 11 scales + zero points from each bias
    assert stats["zero_points_dropped"] == 5 * (CHANNELS - 1)
    assert stats["bias_scales_dropped"] == 5 * (CHANNELS - 1)
    saved = 8 * stats["zero_points_dropped"] + 12 * stats["bias_scales_dropped"]
    assert stats["bytes_before"] == len(tflite) and stats["bytes_after"] == len(compact)
    assert len(tflite) - len(compact) >= saved  # names saved more on top
    np.testing.assert_array_equal(export.run_tflm(compact, x), export.run_tflm(tflite, x))
    assert export.io_quantization(compact) == export.io_quantization(tflite)
    assert export.op_names(compact) == export.op_names(tflite)


def test_weights_and_weight_scales_are_untouched(converted):
    tflite, _ = converted
    compact, _ = export.compact_tflite(tflite)
    (g0, q0), (g1, q1) = _quantization(tflite), _quantization(compact)
    assert len(g0.tensors) == len(g1.tensors)
    for t0, t1 in zip(g0.tensors, g1.tensors):
        if t0.buffer is None or not t0.buffer.data:
            continue
        np.testing.assert_array_equal(t0.array, t1.array)
        if t0.array.dtype == np.int8:
            assert t1.quantization.scales == t0.quantization.scales
            assert set(t1.quantization.zero_points) == {0}
    io = {t.index for t in list(g1.inputs) + list(g1.outputs)}
    assert all(t.name == "" for t in g1.tensors if t.index not in io)
    assert all(t.name for t in g1.tensors if t.index in io)


def test_compacting_twice_changes_nothing(converted):
    compact, _ = export.compact_tflite(converted[0])
    again, stats = export.compact_tflite(compact)
    assert again == compact
    assert (stats["zero_points_dropped"], stats["bias_scales_dropped"], stats["names_cleared"]) == (0, 0, 0)


def test_litert_refuses_the_compact_model_so_host_tools_keep_model_tflite(converted):
    from ai_edge_litert.interpreter import Interpreter

    compact, _ = export.compact_tflite(converted[0])
    with pytest.raises((ValueError, RuntimeError)):
        Interpreter(model_content=compact).allocate_tensors()
    Interpreter(model_content=converted[0]).allocate_tensors()


def test_nonzero_weight_zero_points_are_refused(converted):
    from tflite_micro.tensorflow.lite.micro.compression import model_editor

    model = model_editor.read(converted[0])
    graph = model.subgraphs[0]
    weight = next(op.inputs[1] for op in graph.operators if op.opcode_name == "DEPTHWISE_CONV_2D")
    weight.quantization.zero_points = [1] * len(weight.quantization.zero_points)
    with pytest.raises(ValueError, match="nonzero zero points"):
        export.compact_tflite(bytes(model.build()))


def test_export_refuses_a_device_model_whose_outputs_differ(tmp_path, monkeypatch,
                                                            tiny_conv_export_case):
    """The guard in export.export: a rewrite that changed a weight must not reach the boards."""
    from tflite_micro.tensorflow.lite.micro.compression import model_editor

    cfg, model, data = tiny_conv_export_case
    real = export.compact_tflite

    def broken(tflite):
        compact, stats = real(tflite)
        m = model_editor.read(compact)
        fc = next(op for op in m.subgraphs[0].operators if op.opcode_name == "FULLY_CONNECTED")
        w = fc.inputs[1]
        w.buffer.data = (np.frombuffer(w.buffer.data, np.int8) // 2).astype(np.int8).tobytes()
        return bytes(m.build()), stats

    monkeypatch.setattr(export, "compact_tflite", broken)
    with pytest.raises(export.ExportError, match="compact device model"):
        export.export(model, cfg, data, tmp_path / "out", progress=False)
    assert not (tmp_path / "out" / "model_data.cpp").exists()
