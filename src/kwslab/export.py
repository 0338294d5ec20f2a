"""PyTorch model -> Keras twin -> fully int8 TFLite -> verified in TFLite Micro -> C files.

1. ``keras_twin`` walks the flat ``nn.Sequential`` of ``kwslab.models`` and builds the same
   network in Keras (NHWC) with the PyTorch weights copied: BatchNorm folded into the conv
   before it, "SAME" padding for ``SamePad2d``, and the fully connected weights permuted from
   PyTorch's (C, H, W) flatten order to Keras' (H, W, C). ``check_twin`` asserts equal logits.
2. ``convert_int8`` runs TFLiteConverter with a representative dataset (full int8: int8
   input and output, batch size 1) so the op list stays within CONV_2D, DEPTHWISE_CONV_2D,
   AVERAGE_POOL_2D, RESHAPE, FULLY_CONNECTED, SOFTMAX. The input scale is pinned to the
   device features' scale (``frontend.INPUT_SCALE``, zero point -128) by calibrating on
   features that span the whole int8 range, so the board feeds its int8 features unchanged.
3. ``run_litert`` (LiteRT, reference kernels) and ``run_tflm`` (the TFLite Micro
   interpreter, the code that runs on the board) classify int8 features; ``arena_bytes``
   finds the smallest working TFLM arena in a child process (a too-small arena can crash).
4. ``compact_tflite`` drops what TFLite Micro does not read (per-channel weight zero points,
   per-channel conv bias quantization, internal tensor names): a third of a DS-CNN's file.
5. ``export`` ties it together, writes ``model.tflite``, the compact ``model_device.tflite``
   and the C sources of the latter (``kwslab.firmware``) and returns a report.

References:
  1) TensorFlow Lite post-training integer quantization guide; TFLite 8-bit quantization
     spec (https://www.tensorflow.org/lite/performance/quantization_spec).
  2) tflite-micro ``python/tflite_micro/runtime.py`` (Python interpreter) and
     ``micro_speech/train/train_micro_speech_model.ipynb`` (conversion of tiny_conv).
  3) Jacob et al. 2018, arXiv:1712.05877 (BatchNorm folding, integer inference).
"""
from __future__ import annotations

import json
import logging
import math
import os
import re
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import frontend
from .models import SamePad2d, fold_batchnorm, layer_input_shapes

log = logging.getLogger(__name__)

ALLOWED_OPS = {"CONV_2D", "DEPTHWISE_CONV_2D", "AVERAGE_POOL_2D", "RESHAPE", "FULLY_CONNECTED",
               "SOFTMAX"}


COMPACT_CHECK_CLIPS = 512
"""Test clips on which ``export`` compares model.tflite with the compact device model."""


class ExportError(RuntimeError):
    """The converted model breaks a deploy contract (ops, input quantization, twin mismatch)."""


def tensorflow():
    """The tensorflow module, imported on first use (``import kwslab`` stays light), with its
    C++ log quiet and the GPU left to PyTorch (``kwslab._tf.import_tensorflow``).

    Raises:
        ImportError: naming the package to install when TensorFlow is missing.
    """
    from ._tf import import_tensorflow

    try:
        return import_tensorflow()
    except ImportError as e:
        raise ImportError("kwslab's export stage needs TensorFlow: pip install tensorflow-cpu "
                          "(or `pip install -r requirements.txt` for the tested versions)") from e


def keras_twin(model: nn.Sequential, input_shape=(49, 40), softmax: bool = True):
    """Build the Keras (NHWC, batch size 1) twin of a flat kwslab model with its weights.

    Supported layers: SamePad2d (+ the Conv2d after it -> padding "same"), Conv2d (regular or
    depthwise with groups == in_channels == out_channels), BatchNorm2d (folded into the conv
    before it), ReLU, Dropout (dropped), AvgPool2d, Flatten, Linear.

    Args:
        model: a kwslab model in eval mode (float32).
        input_shape: (T, F) = (49, 40).
        softmax: append a Softmax layer (the exported model outputs probabilities).
    Returns:
        keras.Model mapping (1, T, F, 1) float32 to (1, C).
    Raises:
        ExportError: for a layer it cannot translate (names it).
    """
    tensorflow()  # sets the log level before Keras loads TensorFlow
    import keras

    model = model.eval()
    layers = list(model.named_children())
    in_shapes = layer_input_shapes(model, input_shape)
    inputs = keras.Input((*input_shape, 1), batch_size=1, name="features")
    x = inputs
    i, pending_same = 0, None
    while i < len(layers):
        name, layer = layers[i]
        if isinstance(layer, SamePad2d):
            pending_same = layer
        elif isinstance(layer, nn.Conv2d):
            if layer.dilation != (1, 1):
                raise ExportError(f"layer {name}: dilation {layer.dilation} is not supported")
            padding = "valid"
            if pending_same is not None:
                padding = "same"
                if pending_same.kernel_size != layer.kernel_size or pending_same.stride != layer.stride:
                    raise ExportError(f"layer {name}: SamePad2d does not match the conv's kernel/stride")
            elif layer.padding not in ((0, 0), "valid"):
                raise ExportError(f"layer {name}: symmetric padding {layer.padding}; use SamePad2d")
            w = layer.weight.detach()
            b = layer.bias.detach() if layer.bias is not None else None
            if i + 1 < len(layers) and isinstance(layers[i + 1][1], nn.BatchNorm2d):
                w, b = fold_batchnorm(w, b, layers[i + 1][1])
                i += 1
            if b is None:
                b = torch.zeros(w.shape[0])
            w, b = w.detach().float().numpy(), b.detach().float().numpy()
            if layer.groups == 1:
                k = keras.layers.Conv2D(layer.out_channels, layer.kernel_size, layer.stride, padding,
                                        name=name)
                x = k(x)
                k.set_weights([w.transpose(2, 3, 1, 0), b])  # (O, I, kh, kw) -> (kh, kw, I, O)
            elif layer.groups == layer.in_channels == layer.out_channels:
                k = keras.layers.DepthwiseConv2D(layer.kernel_size, layer.stride, padding, name=name)
                x = k(x)
                k.set_weights([w.transpose(2, 3, 0, 1), b])  # (C, 1, kh, kw) -> (kh, kw, C, 1)
            else:
                raise ExportError(f"layer {name}: grouped conv with groups={layer.groups} "
                                  "is neither regular nor depthwise")
            pending_same = None
        elif isinstance(layer, nn.BatchNorm2d):
            raise ExportError(f"layer {name}: BatchNorm2d must follow a Conv2d to be folded")
        elif isinstance(layer, nn.ReLU):
            x = keras.layers.ReLU(name=name)(x)
        elif isinstance(layer, nn.Dropout):
            pass
        elif isinstance(layer, nn.AvgPool2d):
            k = layer.kernel_size
            s = layer.stride or k
            x = keras.layers.AveragePooling2D(k, s, name=name)(x)
        elif isinstance(layer, nn.Flatten):
            x = keras.layers.Reshape((-1,), name=name)(x)
            flatten_chw = in_shapes[i]
        elif isinstance(layer, nn.Linear):
            w = layer.weight.detach().float().numpy()
            if i > 0 and isinstance(layers[i - 1][1], nn.Flatten) and len(flatten_chw) == 3:
                c, h, wd = flatten_chw  # torch flattens (C, H, W); Keras flattens (H, W, C)
                w = w.reshape(-1, c, h, wd).transpose(0, 2, 3, 1).reshape(w.shape[0], -1)
            b = layer.bias.detach().float().numpy() if layer.bias is not None else np.zeros(w.shape[0], np.float32)
            k = keras.layers.Dense(layer.out_features, name=name)
            x = k(x)
            k.set_weights([w.T, b])
        else:
            raise ExportError(f"layer {name}: {type(layer).__name__} has no Keras translation")
        i += 1
    if softmax:
        x = keras.layers.Softmax(name="softmax")(x)
    return keras.Model(inputs, x, name="kws")


def twin_logits(kmodel, x_int8: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """Outputs (N, C) of a Keras twin for int8 features (N, T, F), run in batches.

    The twin's input has batch size 1 (as the board runs it); its layers are re-applied to a
    batch-free input here, sharing the weights, for speed.
    """
    import keras

    feats = frontend.to_float(x_int8)[..., None]  # (N, T, F, 1)
    inp = keras.Input(kmodel.inputs[0].shape[1:])
    x = inp
    for layer in kmodel.layers[1:]:
        x = layer(x)
    flexible = keras.Model(inp, x)
    return np.concatenate([flexible(feats[i:i + batch_size], training=False).numpy()
                           for i in range(0, len(feats), batch_size)])


def check_twin(model: nn.Module, kmodel_logits, x_int8: np.ndarray, atol: float = 1e-4) -> float:
    """Max |PyTorch logits - Keras twin logits| on int8 features; raises ExportError if > atol."""
    from .train import predict_logits

    ref = predict_logits(model, x_int8, device="cpu")
    diff = float(np.abs(ref - twin_logits(kmodel_logits, x_int8)).max()) if len(x_int8) else 0.0
    if diff > atol:
        raise ExportError(f"Keras twin differs from the PyTorch model: max |d logits| = {diff:.2e} > {atol}")
    return diff


def representative_features(x_int8: np.ndarray, num_samples: int = 300, seed: int = 0) -> np.ndarray:
    """Float features (N, T, F, 1) for calibration, spanning the full int8 input range.

    The first sample gets one feature at int8 -128 (0.0) and one at 127 (25.914), so the
    converter's input range is exactly [0, 255 * INPUT_SCALE] and it picks scale INPUT_SCALE,
    zero point -128: the device's int8 features then feed the model unchanged.
    """
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(x_int8), size=min(num_samples, len(x_int8)), replace=False)
    q = x_int8[np.sort(pick)].copy()
    q[0, 0, 0], q[0, 0, 1] = -128, 127
    return frontend.to_float(q)[..., None]


def convert_int8(kmodel, calibration: np.ndarray) -> bytes:
    """Full-integer TFLite model (int8 weights, activations, input and output).

    Args:
        kmodel: Keras twin with batch size 1.
        calibration: float32 (N, T, F, 1) features for activation ranges.
    Returns:
        The .tflite flatbuffer bytes.
    """
    tf = tensorflow()
    conv = tf.lite.TFLiteConverter.from_keras_model(kmodel)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([c[None]] for c in calibration.astype(np.float32))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    # One weight scale per dense layer (not per output channel): Chirale_TensorFlowLite
    # 2.0.0's TFLite Micro (the Nano's library) applies channel 0's scale to every output of
    # a per-channel FULLY_CONNECTED, so per-channel dense weights mis-scale all other classes
    # on the board. Convolutions stay per-channel.
    conv._experimental_disable_per_channel_quantization_for_dense_layers = True
    return _quiet_convert(conv)


def _quiet_convert(converter) -> bytes:
    """converter.convert() without its known printout and warnings (see kwslab._tf)."""
    from ._tf import quiet_converter

    with quiet_converter():
        return bytes(converter.convert())


def convert_float(kmodel) -> bytes:
    """float32 TFLite model (for the size/accuracy comparison in notebook 4)."""
    return _quiet_convert(tensorflow().lite.TFLiteConverter.from_keras_model(kmodel))


def _litert(tflite: bytes):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    it = Interpreter(model_content=tflite, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    it.allocate_tensors()
    return it


def op_names(tflite: bytes) -> list[str]:
    """Op names of a .tflite model in execution order, duplicates kept.

    Builtin ops by name (``"CONV_2D"``), custom ops by their custom code (``"TFLM_DECODE"``
    of a LUT-compressed model), read from the flatbuffer.

    Args:
        tflite: the model flatbuffer.
    Returns:
        e.g. ``["CONV_2D", "RESHAPE", "FULLY_CONNECTED", "SOFTMAX"]`` for tiny_conv.
    Source: tflite-micro ``tensorflow/lite/micro/compression/model_editor.py``.
    """
    from tflite_micro.tensorflow.lite.micro.compression import model_editor

    return [op.custom_code or op.opcode_name
            for op in model_editor.read(bytes(tflite)).subgraphs[0].operators]


def model_ops(tflite: bytes) -> list[str]:
    """The distinct op names of a .tflite model, sorted (e.g. ["CONV_2D", "SOFTMAX", ...])."""
    return sorted(set(op_names(tflite)))


def io_quantization(tflite: bytes) -> dict:
    """Input/output dtype, shape, scale and zero point of a model, read from the flatbuffer.

    Args:
        tflite: a .tflite model (also a ``compact_tflite`` one, which LiteRT refuses).
    Returns:
        {"input": {"dtype": "int8", "shape": [1, 49, 40, 1], "scale": float,
        "zero_point": int}, "output": {...}}; scale 0.0 and zero point 0 for a float tensor
        (as LiteRT reports them).
    """
    from tflite_micro.tensorflow.lite.micro.compression import model_editor

    graph = model_editor.read(bytes(tflite)).subgraphs[0]
    out = {}
    for kind, tensor in (("input", graph.inputs[0]), ("output", graph.outputs[0])):
        q = tensor.quantization
        scales = [] if q is None else (q.scales if isinstance(q.scales, list) else [q.scales])
        zeros = [] if q is None else (q.zero_points if isinstance(q.zero_points, list) else [q.zero_points])
        out[kind] = {"dtype": np.dtype(tensor.numpy_dtype).name, "shape": [int(s) for s in tensor.shape],
                     "scale": float(scales[0]) if scales else 0.0,
                     "zero_point": int(zeros[0]) if zeros else 0}
    return out


def _to_model_input(x: np.ndarray, detail: dict) -> np.ndarray:
    """int8 device features -> the model's input dtype (int8 as is; float: dequantized)."""
    if np.dtype(detail["dtype"]) == np.int8:
        return x.astype(np.int8)
    return frontend.to_float(x)


def run_litert(tflite: bytes, x_int8: np.ndarray) -> np.ndarray:
    """Raw outputs (N, C) of a .tflite model in LiteRT with reference kernels (no XNNPACK)."""
    it = _litert(tflite)
    inp, out = it.get_input_details()[0], it.get_output_details()[0]
    res = []
    for x in x_int8:
        it.set_tensor(inp["index"], _to_model_input(x, inp).reshape(inp["shape"]))
        it.invoke()
        res.append(it.get_tensor(out["index"]).reshape(-1).copy())
    return np.array(res)


def run_tflm(tflite: bytes, x_int8: np.ndarray, arena_bytes: int = 200_000) -> np.ndarray:
    """Raw outputs of a .tflite model in the TFLite Micro interpreter (the board's kernels).

    One interpreter runs the N inputs one after another (batch size 1, as on the device).

    Args:
        tflite: the model flatbuffer.
        x_int8: int8 device features of shape (N, T, F); a float model gets them
            dequantized (``frontend.to_float``).
        arena_bytes: tensor arena given to the interpreter, bytes (>= what
            ``measure_arena_bytes`` reports).
    Returns:
        Outputs of shape (N, C), in the model's output dtype (int8 for the deploy model).
    Raises:
        RuntimeError: from TFLM if the model does not fit the arena or uses an unknown op.
    Source: tflite-micro ``python/tflite_micro/runtime.py`` (``Interpreter.from_bytes``).
    """
    from tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(tflite, arena_size=int(arena_bytes))
    detail = it.get_input_details(0)
    res = []
    for x in x_int8:
        it.set_input(_to_model_input(x, detail).reshape(detail["shape"]), 0)
        it.invoke()
        res.append(np.asarray(it.get_output(0)).reshape(-1).copy())
    return np.array(res)


_ARENA_CHILD = r"""
import sys, numpy as np
from tflite_micro import runtime
model = open(sys.argv[1], "rb").read()
it = runtime.Interpreter.from_bytes(model, arena_size=int(sys.argv[2]))
d = it.get_input_details(0)
it.set_input(np.zeros(d["shape"], d["dtype"]), 0)
it.invoke()
sys.stdout.flush()
if sys.argv[3] == "print":
    it.print_allocations()
print("OK", flush=True)
"""


def _arena_child(path: str, size: int, mode: str, timeout_s: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _ARENA_CHILD, path, str(size), mode],
                          capture_output=True, text=True, timeout=timeout_s)


def measure_arena_bytes(tflite: bytes, max_bytes: int = 1 << 20) -> int:
    """Smallest tensor arena (bytes) with which the model runs in TFLite Micro.

    Reads TFLM's own ``print_allocations()`` total (child process, generous arena) and
    confirms that this size runs. Falls back to a bisection (16-byte resolution) over child
    processes if the total cannot be read. Child processes because a too-small arena can
    abort the interpreter.

    Args:
        tflite: the model flatbuffer.
        max_bytes: the largest arena tried.
    Returns:
        Arena bytes (tiny_conv yes/no: about 9.5 KB; ds_cnn 12-class: about 72 KB).
    Raises:
        ExportError: if the model does not run even with max_bytes.
    Source: tflite-micro ``RecordingMicroAllocator`` / ``print_allocations``.
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.tflite")
        Path(path).write_bytes(tflite)
        probe = _arena_child(path, max_bytes, "print")
        text = probe.stdout + probe.stderr
        m = re.search(r"[Tt]otal buffer usage[^\d]*(\d+)", text) or re.search(r"\[RecordingMicroAllocator\] Arena allocation total (\d+) bytes", text)
        works = lambda n: "OK" in _arena_child(path, n, "run").stdout  # noqa: E731
        if m:
            total = int(m.group(1))
            if works(total):
                return total
        lo, hi = 0, max_bytes  # bisection: lo fails, hi works
        if not works(hi):
            raise ExportError(f"model does not run in TFLite Micro even with a {max_bytes}-byte arena:\n{text[-2000:]}")
        while hi - lo > 16:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if works(mid) else (mid, hi)
        return hi


def export(model: nn.Module, cfg, data, out_dir: str | Path, *, deploy_dirs=None,
           model_name: str = "kws", check_atol: float = 1e-4, progress: bool = True) -> dict:
    """Convert a trained model to int8 TFLite, verify it on the test split, write C files.

    Args:
        model: trained kwslab model (PyTorch, float).
        cfg: its kwslab.config.Config.
        data: kwslab.frontend.FeatureData (train bank for calibration, test split for checks).
        out_dir: where model.tflite (LiteRT and host tools), model_device.tflite (the
            ``compact_tflite`` form the boards flash), model_float.tflite and the C sources
            (of model_device.tflite) go.
        deploy_dirs: extra folders for model_data.h, model_data.cpp and model_settings.h (the sketches);
            None writes none.
    Returns:
        dict with tflite_bytes, device_tflite_bytes (flash of the model on the board),
        compact (``compact_tflite`` stats), float_tflite_bytes, ops, input/output quantization,
        int8_test accuracy (the device model in TFLM), litert accuracy (model.tflite),
        tflm_litert_agreement, float-vs-int8 agreement, twin max |d logits|, arena_bytes,
        timings and written file paths.
    Raises:
        ExportError: twin mismatch, ops outside ALLOWED_OPS, input quantization that differs
            from the device features' scale/zero point, a compact device model whose TFLite
            Micro outputs differ from the converted model's.
    """
    from . import firmware
    from .train import predict_logits

    timings = {}
    t = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.to("cpu").eval()
    shape = cfg.frontend.feature_shape
    twin_check = keras_twin(model, shape, softmax=False)
    twin_diff = check_twin(model, twin_check, data.test_x[:64], atol=check_atol)
    kmodel = keras_twin(model, shape, softmax=True)
    timings["twin"] = time.perf_counter() - t

    t = time.perf_counter()
    # The first augmented copy: the same clips whatever the bank size, so re-exporting a
    # checkpoint reproduces the run's model bytes.
    calib = representative_features(data.train_x[0], seed=cfg.train.seed)
    tflite = convert_int8(kmodel, calib)
    float_tflite = convert_float(kmodel)
    timings["convert"] = time.perf_counter() - t

    ops = model_ops(tflite)
    if not set(ops) <= ALLOWED_OPS:
        raise ExportError(f"model uses ops outside the deploy set: {sorted(set(ops) - ALLOWED_OPS)}")
    quant = io_quantization(tflite)
    if (quant["input"]["zero_point"] != frontend.INPUT_ZERO_POINT
            or abs(quant["input"]["scale"] / frontend.INPUT_SCALE - 1) > 1e-5):
        raise ExportError(f"input quantization {quant['input']} differs from the device features' "
                          f"scale {frontend.INPUT_SCALE:.8f} / zero point {frontend.INPUT_ZERO_POINT}")

    t = time.perf_counter()
    y = data.test_y
    float_pred = predict_logits(model, data.test_x, device="cpu").argmax(1)
    litert_pred = run_litert(tflite, data.test_x).argmax(1)
    timings["litert"] = time.perf_counter() - t
    t = time.perf_counter()
    # int8 accuracy is the device model's (what the boards flash); model.tflite must give the
    # same outputs in TFLite Micro (checked on up to COMPACT_CHECK_CLIPS test clips: the
    # rewrite touches no value a kernel computes with, and a full second pass costs ~7 min
    # on the full data set's 5,151 test clips)
    device_tflite, compact = compact_tflite(tflite)
    tflm_out = run_tflm(device_tflite, data.test_x)
    tflm_pred = tflm_out.argmax(1)
    n_check = min(len(data.test_x), COMPACT_CHECK_CLIPS)
    if not np.array_equal(run_tflm(tflite, data.test_x[:n_check]), tflm_out[:n_check]):
        raise ExportError("the compact device model's TFLite Micro outputs differ from model.tflite's "
                          f"on the test split ({compact})")
    timings["tflm"] = time.perf_counter() - t
    t = time.perf_counter()
    arena = measure_arena_bytes(device_tflite)
    timings["arena"] = time.perf_counter() - t

    (out_dir / "model.tflite").write_bytes(tflite)
    (out_dir / "model_device.tflite").write_bytes(device_tflite)
    (out_dir / "model_float.tflite").write_bytes(float_tflite)
    files = [out_dir / "model.tflite", out_dir / "model_device.tflite"]
    mean = lambda a: float(np.mean(a)) if len(a) else 0.0  # noqa: E731
    kwargs = dict(input_scale=quant["input"]["scale"], input_zero_point=quant["input"]["zero_point"],
                  ops=list(dict.fromkeys(op_names(device_tflite))),  # run order
                  arena_bytes=arena, model_name=model_name)
    files += firmware.write_deploy_files(device_tflite, cfg, out_dirs=[out_dir], **kwargs)
    if deploy_dirs:
        files += firmware.write_deploy_files(device_tflite, cfg, out_dirs=[Path(d) for d in deploy_dirs], **kwargs)
    report = {
        "tflite_bytes": len(tflite),
        "device_tflite_bytes": len(device_tflite),
        "compact": compact,
        "float_tflite_bytes": len(float_tflite),
        "ops": ops,
        "io": quant,
        "twin_max_abs_logit_diff": twin_diff,
        "int8_test": mean(tflm_pred == y),
        "litert_int8_test": mean(litert_pred == y),
        "float_test": mean(float_pred == y),
        "tflm_litert_agreement": mean(tflm_pred == litert_pred),
        "int8_float_agreement": mean(tflm_pred == float_pred),
        "arena_bytes": arena,
        "int8_test_predictions": tflm_pred.tolist(),
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
        "files": [str(f) for f in files],
    }
    (out_dir / "export.json").write_text(json.dumps(
        {k: v for k, v in report.items() if k != "int8_test_predictions"}, indent=1))
    return report


# ----------------------------------------------------------------------------- weight codes and TFLite Micro LUT compression


def tflite_weight_codes(tflite: bytes) -> dict[str, np.ndarray]:
    """int8 weight codes of every conv / fully connected layer of a .tflite model.

    Returns:
        {layer name (the Keras twin's, i.e. the PyTorch name): int8 array (C, K)}, one row
        per output channel (the tensor's quantized dimension moved first), in the file's
        element order (Keras' (kh, kw, in) rather than PyTorch's (in, kh, kw)).
    """
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_content=tflite)
    out = {}
    for d in it.get_tensor_details():
        m = re.search(r"/(\w+?)_\d+/(convolution|depthwise|MatMul)$", d["name"])
        if not m or np.dtype(d["dtype"]) != np.int8 or ";" in d["name"]:
            continue
        axis = d["quantization_parameters"]["quantized_dimension"]
        codes = np.moveaxis(it.get_tensor(d["index"]), axis, 0)
        out[m.group(1)] = codes.reshape(codes.shape[0], -1)
    return out


WEIGHT_OPS = {"CONV_2D": 1, "DEPTHWISE_CONV_2D": 1, "FULLY_CONNECTED": 1}
"""Op name -> index of its weight input, the tensors ``lut_spec`` considers."""


def lut_spec(tflite: bytes, max_bitwidth: int = 7) -> tuple[list, list[dict]]:
    """A LUT compression spec for every constant int8 weight tensor that LUT can shrink.

    Per-channel tables along each tensor's quantized dimension (0 for CONV_2D and
    FULLY_CONNECTED, 3 = last for DEPTHWISE_CONV_2D); the index bit width is the smallest
    that holds the largest number of distinct values in one channel. A tensor is left out
    if it needs more than max_bitwidth bits or if compression would not make it smaller.

    Args:
        tflite: an int8 .tflite model.
        max_bitwidth: 1..7.
    Returns:
        (specs for ``tflite_micro.compression.compress``, rows: one per weight tensor with
        tensor (index), name, op, shape, distinct_max (per channel), index_bitwidth (None if
        left out), bytes (int8 data), lut_bytes (indices + value tables; None if left out)).
    Raises:
        ValueError: if max_bitwidth is not in 1..7.
    Source: tflite-micro ``compression/lut.py`` (index packing, value tables of
        2**bitwidth entries per channel) and ``spec_builder.py``.
    """
    from tflite_micro import compression
    from tflite_micro.tensorflow.lite.micro.compression import model_editor, spec

    if not 1 <= max_bitwidth <= 7:
        raise ValueError(f"max_bitwidth={max_bitwidth} should be in 1..7")
    graph = model_editor.read(bytes(tflite)).subgraphs[0]
    builder, rows, seen = compression.SpecBuilder(), [], set()
    for op in graph.operators:
        position = WEIGHT_OPS.get(op.opcode_name)
        if position is None or len(op.inputs) <= position or op.inputs[position] is None:
            continue
        tensor = op.inputs[position]
        if tensor.index in seen or tensor.buffer is None or not tensor.buffer.data:
            continue
        seen.add(tensor.index)
        array = tensor.array
        axis = tensor.quantization.axis if tensor.quantization is not None else None
        channels = (np.moveaxis(array, axis or 0, 0).reshape(array.shape[axis or 0], -1)
                    if axis is not None else array.reshape(1, -1))
        distinct = max(len(np.unique(c)) for c in channels)
        bits = max(1, math.ceil(math.log2(distinct)))
        lut_bytes = math.ceil(array.size * bits / 8) + len(channels) * 2 ** bits
        keep = bits <= max_bitwidth and lut_bytes < array.nbytes and array.dtype == np.int8
        if keep:
            mode = spec.PerChannel(axis) if axis is not None else spec.PerTensor()
            builder.add_tensor(0, tensor.index).with_lut(bits, mode)
        rows.append({"tensor": tensor.index, "name": tensor.name, "op": op.opcode_name,
                     "shape": tuple(int(s) for s in array.shape), "distinct_max": distinct,
                     "index_bitwidth": bits if keep else None, "bytes": int(array.nbytes),
                     "lut_bytes": lut_bytes if keep else None})
    return builder.build(), rows


def lut_compress(tflite: bytes, max_bitwidth: int = 7) -> tuple[bytes, list[dict]]:
    """TFLite Micro LUT compression of every weight tensor ``lut_spec`` selects.

    The result holds DECODE (custom op ``TFLM_DECODE``) operators that expand each
    compressed tensor into the arena right before the op that reads it: flash shrinks, the
    arena grows by the decompressed tensors alive at the peak (or put them in a separate
    buffer with the interpreter's ``alt_decompression_memory_size``). The pip package's
    Python interpreter (``tflite_micro.runtime``) runs such models; on a board the
    TFLM library must be built with compression enabled.

    Returns:
        (compressed .tflite bytes, the rows of ``lut_spec``).
    Raises:
        ValueError: if no tensor can be compressed (the message lists each tensor's
            distinct values per channel).
    """
    from tflite_micro import compression

    specs, rows = lut_spec(tflite, max_bitwidth)
    if not specs:
        raise ValueError("no weight tensor has few enough distinct values per channel for LUT "
                         f"compression (max_bitwidth={max_bitwidth}): "
                         f"{[(r['name'], r['distinct_max']) for r in rows]}; "
                         "use cluster_weights first")
    return bytes(compression.compress(tflite, specs)), rows


BIAS_OPS = {"CONV_2D": 2, "DEPTHWISE_CONV_2D": 2}
"""Op name -> index of its bias input whose quantization TFLite Micro never reads for int8
(``PopulateConvolutionQuantizationParams`` checks the bias scale only for uint8)."""


def compact_tflite(tflite: bytes) -> tuple[bytes, dict]:
    """Drop what TFLite Micro does not read from an int8 model: same outputs, less flash.

    Three rewrites of the flatbuffer (``model_editor``), none touching weights or the
    parameters the kernels compute with:

    1. weight zero points: a per-channel weight tensor stores one int64 zero point per
       channel, all 0 (symmetric int8 weights); TFLite Micro's allocator accepts a single
       zero point and broadcasts it ("as a space-saving optimization, zero point arrays for
       weights can be reduced to a single value", ``micro_allocator.cc``): 8 bytes per
       channel saved;
    2. CONV_2D / DEPTHWISE_CONV_2D bias quantization: per-channel scale and zero point of
       the int32 bias (12 bytes per channel) become one scale and one zero point, because
       the int8 kernels derive the bias scale from input and filter scales;
    3. tensor names of every tensor except the model's inputs and outputs become empty
       (TFLite Micro addresses tensors by index).

    The result is a model for the device: TFLite Micro runs it with outputs identical to
    the input model (``export.export`` checks this on the test split); LiteRT refuses
    rewrite 1 (its builder wants as many zero points as scales), so host tools keep
    reading the unmodified ``model.tflite``.

    Args:
        tflite: an int8 .tflite flatbuffer (``convert_int8``).
    Returns:
        (compact .tflite bytes, {"bytes_before", "bytes_after", "zero_points_dropped",
        "bias_scales_dropped", "names_cleared"}).
    Raises:
        ValueError: if a weight tensor has a nonzero zero point (not a symmetric int8
            weight; nothing can be dropped safely).
    Source: tflite-micro ``tensorflow/lite/micro/micro_allocator.cc``
        (``InitializeTfLiteTensorFromFlatbuffer``) and ``tensorflow/lite/kernels/kernel_util.cc``
        (``PopulateConvolutionQuantizationParams``).
    """
    from tflite_micro.tensorflow.lite.micro.compression import model_editor

    model = model_editor.read(bytes(tflite))
    graph = model.subgraphs[0]
    weights, biases = {}, {}
    for op in graph.operators:
        for table, index in ((weights, WEIGHT_OPS.get(op.opcode_name)), (biases, BIAS_OPS.get(op.opcode_name))):
            if index is not None and len(op.inputs) > index and op.inputs[index] is not None:
                table[op.inputs[index].index] = op.inputs[index]
    stats = {"bytes_before": len(tflite), "zero_points_dropped": 0, "bias_scales_dropped": 0,
             "names_cleared": 0}
    for tensor in weights.values():
        q = tensor.quantization
        zeros = q.zero_points if q is not None and isinstance(q.zero_points, list) else None
        if not zeros or len(zeros) < 2:
            continue
        if any(int(z) != 0 for z in zeros):
            raise ValueError(f"weight tensor {tensor.name!r} has nonzero zero points; "
                             "only symmetric int8 weights can share one")
        stats["zero_points_dropped"] += len(zeros) - 1
        q.zero_points = [0]
    for tensor in biases.values():
        q = tensor.quantization
        if q is not None and isinstance(q.scales, list) and len(q.scales) > 1:
            stats["bias_scales_dropped"] += len(q.scales) - 1
            tensor.quantization = model_editor.Quantization(scales=[float(q.scales[0])], zero_points=[0])
    io = {t.index for t in list(graph.inputs) + list(graph.outputs)}
    for tensor in graph.tensors:
        if tensor.index not in io and tensor.name:
            tensor.name = ""
            stats["names_cleared"] += 1
    # read() keeps the metadata buffers in the buffer list and build() writes them again:
    # without pruning every rewrite would add a copy (~144 bytes)
    model_editor.prune_buffers(model)
    compact = bytes(model.build())
    stats["bytes_after"] = len(compact)
    return compact, stats


INT4_OPS = {"CONV_2D": (1, 2), "DEPTHWISE_CONV_2D": (1, 2), "FULLY_CONNECTED": (1, 2)}
"""Op name -> (weight input, bias input) of the ops whose int8 kernels in TFLite Micro (and
in the deploy library's CMSIS-NN wrappers) accept packed int4 weights."""


def int4_codes(q8: np.ndarray, scales: np.ndarray, axis: int, num_bits: int = 4
               ) -> tuple[np.ndarray, np.ndarray]:
    """Requantize symmetric per-channel int8 weight codes to num_bits codes.

    Per channel c: m = max |q8[c]|, new scale[c] = scale[c] * m / (2**(num_bits-1) - 1), codes
    round(q8 * (2**(num_bits-1) - 1) / m) in the narrow range [-(2**(b-1) - 1), 2**(b-1) - 1]
    (a channel of zeros keeps its scale). Weights trained with 4-bit fake quantization
    (``sweeps.qat_finetune(..., weight_bits=4)``) sit on this grid already, so for them the
    codes represent the same real weights; for other weights this is 4-bit post-training
    quantization of the int8 model.

    Args:
        q8: int8 codes, any shape; axis: the channel axis of the scales.
        scales: float per-channel scales, shape (q8.shape[axis],).
        num_bits: 2..4.
    Returns:
        (codes int8 of q8's shape, new scales float64 (C,)).
    Raises:
        ValueError: num_bits outside 2..4, or scales not one per channel.
    Source: TFLite quantization spec (symmetric per-axis weights, narrow range).
    """
    if not 2 <= num_bits <= 4:
        raise ValueError(f"num_bits={num_bits}: packed int4 storage holds 2..4-bit codes")
    q8 = np.asarray(q8)
    scales = np.asarray(scales, np.float64).reshape(-1)
    if scales.size != q8.shape[axis]:
        raise ValueError(f"{scales.size} scales for {q8.shape[axis]} channels on axis {axis}")
    qmax = 2 ** (num_bits - 1) - 1
    moved = np.moveaxis(q8.astype(np.int32), axis, 0).reshape(scales.size, -1)
    m = np.abs(moved).max(axis=1)
    ratio = np.where(m > 0, qmax / np.maximum(m, 1), 1.0)
    codes = np.clip(np.round(moved * ratio[:, None]), -qmax, qmax).astype(np.int8)
    new_scales = np.where(m > 0, scales * m / qmax, scales)
    shape = np.moveaxis(q8, axis, 0).shape
    return np.moveaxis(codes.reshape(shape), 0, axis), new_scales


def pack_int4(codes: np.ndarray) -> bytes:
    """Pack int4 codes two per byte as TFLite Micro unpacks them: element 2i in the low
    nibble of byte i, element 2i + 1 in the high nibble, in row-major order; an odd count
    leaves the last high nibble 0. Source: tflite-micro ``portable_tensor_utils.cc``
    (``UnpackDenseInt4IntoInt8``)."""
    flat = np.asarray(codes, np.int8).reshape(-1)
    if flat.size and (flat.min() < -8 or flat.max() > 7):
        raise ValueError("int4 codes must lie in [-8, 7]")
    nibbles = (flat.astype(np.int16) & 0xF).astype(np.uint8)
    if nibbles.size % 2:
        nibbles = np.append(nibbles, np.uint8(0))
    return (nibbles[0::2] | (nibbles[1::2] << 4)).astype(np.uint8).tobytes()


def int4_tflite(tflite: bytes, num_bits: int = 4, *, packed: bool = True) -> tuple[bytes, dict]:
    """Store the per-channel weights of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED as
    int4: about half the weight bytes of an int8 model.

    Every weight tensor of those ops with one scale per output channel is requantized with
    ``int4_codes`` (a weight with a single scale for many channels, as the converter writes
    FULLY_CONNECTED weights, stays int8: 15 levels shared by every row cost accuracy for a
    few hundred bytes) and, with packed,
    written as a TensorType.INT4 tensor of the same shape (``pack_int4``, ceil(n / 2)
    bytes), which TFLite Micro's int8 kernels unpack into a scratch buffer of the arena
    (the arena grows by the largest weight tensor, in bytes). Each int32 bias is rescaled
    to its new scale input_scale * weight_scale[c] (rounded: for weights already on the
    4-bit grid this rounding is the only change, and outputs move by at most one int8 step).
    With packed False the same codes stay int8: the reference the packed model must equal
    output for output (tests and ``sweeps.deploy_int4`` check it).

    Args:
        tflite: an int8 .tflite flatbuffer with symmetric per-channel weights
            (``convert_int8``; before ``compact_tflite``).
        num_bits: weight code width, 2..4 (codes in [-(2**(b-1) - 1), 2**(b-1) - 1]).
        packed: INT4 storage (True) or the same codes as INT8 (False).
    Returns:
        (.tflite bytes, {"bytes_before", "bytes_after", "tensors": number rewritten,
        "weights": number of weight values rewritten, "skipped": op names of per-tensor
        weights left int8}).
    Raises:
        ValueError: a weight tensor that is not int8 with zero points of 0, or num_bits
            outside 2..4.
    Source: tflite-micro ``kernels/conv.cc``, ``depthwise_conv.cc``, ``fully_connected.cc``
    (kTfLiteInt4 filters) and the TFLite schema (``TensorType.INT4``).
    """
    from tflite_micro.tensorflow.lite.micro.compression import model_editor
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    model = model_editor.read(bytes(tflite))
    graph = model.subgraphs[0]
    stats = {"bytes_before": len(tflite), "tensors": 0, "weights": 0, "skipped": []}
    done = set()
    for op in graph.operators:
        index = INT4_OPS.get(op.opcode_name)
        if index is None:
            continue
        w_i, b_i = index
        weight = op.inputs[w_i]
        if weight.index in done:
            continue
        q = weight.quantization
        if weight.dtype != schema.TensorType.INT8 or q is None:
            raise ValueError(f"{op.opcode_name} weight {weight.name!r} is not an int8 tensor")
        scales = np.atleast_1d(np.asarray(q.scales, np.float64))
        zeros = np.atleast_1d(np.asarray(q.zero_points))
        if np.any(zeros != 0):
            raise ValueError(f"weight {weight.name!r} has nonzero zero points")
        q8 = weight.array
        if scales.size == 1 and q8.shape[int(q.axis or 0)] > 1:
            # one scale for the whole tensor (the converter's FULLY_CONNECTED weights): 15
            # levels for every row would cost accuracy for a few hundred bytes; stays int8
            stats["skipped"].append(op.opcode_name)
            done.add(weight.index)
            continue
        axis = int(q.axis or 0)
        codes, new_scales = int4_codes(q8, scales, axis, num_bits)
        if packed:
            weight.buffer.data = pack_int4(codes)
            weight.dtype = schema.TensorType.INT4
        else:
            weight.array = codes
        weight.quantization = model_editor.Quantization(
            scales=[float(v) for v in new_scales], zero_points=[0] * new_scales.size,
            axis=q.axis)
        bias = op.inputs[b_i] if len(op.inputs) > b_i else None
        if bias is not None and bias.buffer is not None:
            bq = bias.quantization
            b32 = bias.array.astype(np.float64)
            ratio = scales / new_scales
            bias.array = np.clip(np.round(b32 * ratio), -2**31, 2**31 - 1).astype(np.int32)
            old_bias_scales = np.atleast_1d(np.asarray(bq.scales, np.float64))
            bias.quantization = model_editor.Quantization(
                scales=[float(v) for v in old_bias_scales / ratio],
                zero_points=[0] * ratio.size, axis=bq.axis)
        done.add(weight.index)
        stats["tensors"] += 1
        stats["weights"] += int(q8.size)
    model_editor.prune_buffers(model)
    out = bytes(model.build())
    stats["bytes_after"] = len(out)
    return out, stats


def zlib_bytes(tflite: bytes) -> int:
    """Size of the model after zlib (level 9): a rough bound on what an entropy coder of the
    zeros and repeated values could save (TFLite Micro has no such decoder)."""
    return len(zlib.compress(bytes(tflite), 9))


def build_placeholder_tflite(cfg, seed: int = 0) -> bytes:
    """An UNTRAINED int8 model with the deploy input/output, so the sketches build as-is.

    Conv2D(4, 10x8, stride 2, ReLU) -> Flatten -> Dense(C) -> Softmax on a (1, T, F, 1)
    input, converted with full int8 quantization; the representative data spans exactly
    [0, 255 * frontend.INPUT_SCALE], so the input scale is frontend.INPUT_SCALE and the zero
    point -128. Ops: CONV_2D, RESHAPE, FULLY_CONNECTED, SOFTMAX. Its outputs mean nothing:
    the export stage overwrites it with a trained model.
    """
    tf = tensorflow()
    tf.keras.utils.set_random_seed(seed)
    t, f = cfg.frontend.feature_shape
    inputs = tf.keras.Input((t, f, 1), batch_size=1)
    x = tf.keras.layers.Conv2D(4, (10, 8), strides=(2, 2), padding="same",
                               activation="relu")(inputs)
    x = tf.keras.layers.Flatten()(x)
    x = tf.keras.layers.Dense(cfg.data.num_classes)(x)
    model = tf.keras.Model(inputs, tf.keras.layers.Softmax()(x))
    top = 255 * frontend.INPUT_SCALE

    rng = np.random.default_rng(seed)
    calibration = rng.uniform(0, top, (8, t, f, 1)).astype(np.float32)  # (N, T, F, 1)
    calibration[:, 0, 0, 0], calibration[:, 0, 1, 0] = 0.0, top
    return convert_int8(model, calibration)
