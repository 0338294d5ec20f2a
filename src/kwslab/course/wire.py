"""The data that crosses between the grader and a sandboxed student worker.

Grader -> worker: a pickle (the grader's own objects: tensors, models, lists; the worker is
the one that cannot be trusted, so unpickling there is fine). Worker -> grader: never a
pickle. A reply is one frame: an 8-byte length, a JSON header, then raw byte blobs. The JSON
describes plain data only: numbers, strings, lists, tuples, dicts, sets, tensors and numpy
arrays (dtype from a fixed list, shape, and a blob of raw bytes), torch dtypes and sizes, and
objects of a few allowed classes (torch.nn modules, torch's pruning methods, the classes of
the package under test that the grader itself defines) as their attribute dicts. The grader
rebuilds objects with ``cls.__new__`` and never calls a method of the worker's classes: no
code travels from the worker to the grader, and a reply cannot grow beyond
``MAX_REPLY_BYTES``.

Identity survives the trip where tests look at it: a returned tensor or module that *is*
one of the call's arguments comes back as a reference to the grader's own object, and an
argument the student function changed in place is synced back into the grader's object
(``sync_into``).

Source: Python ``pickle`` docs ("never unpickle data received from an untrusted source"),
``json``; PyTorch ``torch.frombuffer``, ``torch.nn.Module.__dict__`` layout.
"""
from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import pickle
import struct
from collections import OrderedDict
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

MAX_REPLY_BYTES = 256 * 2**20
MAX_REQUEST_BYTES = 1024 * 2**20
MAX_NODES = 2_000_000
TORCH_DTYPES = {str(d).removeprefix("torch."): d for d in (
    torch.float32, torch.float64, torch.float16, torch.bfloat16, torch.int8, torch.int16,
    torch.int32, torch.int64, torch.uint8, torch.bool, torch.complex64, torch.complex128)}
NUMPY_KINDS = set("biufc")


KEEP = type("Keep", (), {"__repr__": lambda self: "KEEP"})()
"""Decoded from an argument the worker could not send back: the grader keeps its own."""


class StudentCallable:
    """Stands in the grader for a function the student code left behind (e.g. a hook on a
    model): it counts, but calling it is an error, since the grader never runs student code."""

    def __init__(self, name: str):
        self.name = name

    def __call__(self, *args, **kwargs):
        raise RuntimeError(f"the student code left a callable ({self.name}) that the "
                           "grader does not run")

    def __repr__(self) -> str:
        return f"<student callable {self.name}>"


class WireError(ValueError):
    """A reply that is not well-formed plain data, or an object that cannot be sent."""


# ---------------------------------------------------------------- framing
def _read_exact(stream, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = stream.read(left)
        if not chunk:
            raise EOFError(f"stream closed with {left} of {n} bytes missing")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def write_request(stream, payload: bytes) -> None:
    stream.write(struct.pack(">Q", len(payload)) + payload)
    stream.flush()


def read_request(stream) -> bytes:
    (n,) = struct.unpack(">Q", _read_exact(stream, 8))
    if n > MAX_REQUEST_BYTES:
        raise WireError(f"request of {n} bytes")
    return _read_exact(stream, n)


def pack_reply(header: dict, blobs: list[bytes]) -> bytes:
    head = json.dumps({**header, "blobs": [len(b) for b in blobs]}).encode()
    body = struct.pack(">I", len(head)) + head + b"".join(blobs)
    return struct.pack(">Q", len(body)) + body


def unpack_reply(body: bytes) -> tuple[dict, list[bytes]]:
    """(header, blobs) of a reply body (the bytes after the 8-byte length)."""
    if len(body) < 4:
        raise WireError("reply shorter than its header length")
    (h,) = struct.unpack(">I", body[:4])
    if 4 + h > len(body):
        raise WireError("reply header runs past the reply")
    try:
        header = json.loads(body[4:4 + h].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise WireError(f"reply header is not JSON: {e}") from None
    if not isinstance(header, dict) or not isinstance(header.get("blobs"), list):
        raise WireError("reply header is not an object with a blob list")
    blobs, at = [], 4 + h
    for n in header["blobs"]:
        if not isinstance(n, int) or n < 0 or at + n > len(body):
            raise WireError("blob sizes do not match the reply")
        blobs.append(body[at:at + n])
        at += n
    return header, blobs


# ---------------------------------------------------------------- grader -> worker
def _grad_leaf(t: torch.Tensor) -> torch.Tensor:
    return t.requires_grad_(True)


try:  # pickles classes and functions of the test files by value (the worker cannot
    import cloudpickle  # import the tests); a dependency of joblib, hence of librosa
    _Base = cloudpickle.Pickler
except ImportError:  # pragma: no cover - then test-file classes cannot be sent
    cloudpickle, _Base = None, pickle.Pickler


def send_by_value(module) -> None:
    """Pickle module's classes and functions by value in requests (a test file's helpers)."""
    if cloudpickle is not None:
        cloudpickle.register_pickle_by_value(module)


class _Pickler(_Base):
    """Pickles non-leaf tensors that require grad as fresh leaves that require grad."""

    def reducer_override(self, obj):
        if isinstance(obj, torch.Tensor) and obj.requires_grad and obj.grad_fn is not None:
            return _grad_leaf, (obj.detach(),)
        if _Base is not pickle.Pickler:
            return super().reducer_override(obj)
        return NotImplemented


def dumps_request(obj: Any) -> bytes:
    import io
    buf = io.BytesIO()
    _Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buf.getvalue()


def walk_inputs(obj: Any) -> list[Any]:
    """Tensors and modules reachable from obj, each once, in a fixed order (both sides
    walk their own copy of the arguments the same way, so index k names the same object)."""
    out, seen = [], set()

    def walk(o):
        if id(o) in seen:
            return
        if isinstance(o, torch.Tensor):
            seen.add(id(o))
            out.append(o)
        elif isinstance(o, nn.Module):
            seen.add(id(o))
            out.append(o)
            for v in list(o.__dict__.values()):
                walk(v)
        elif isinstance(o, (list, tuple)):
            seen.add(id(o))
            for v in o:
                walk(v)
        elif isinstance(o, dict):
            seen.add(id(o))
            for v in list(o.values()):
                walk(v)
    walk(obj)
    return out


# ---------------------------------------------------------------- worker -> grader: encode
def _storage_key(t: torch.Tensor):
    try:
        return (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape),
                tuple(t.stride()), t.dtype)
    except (RuntimeError, NotImplementedError):
        return None


class Encoder:
    """Plain-data encoding of a worker-side value (runs in the sandbox).

    Args:
        inputs: the call's argument objects (walk_inputs order); a value that is one of
            them is sent as a reference. Empty to send everything by value.
    """

    def __init__(self, inputs: list[Any] = ()):
        self.blobs: list[bytes] = []
        self.memo: dict[int, int] = {}
        self.keep: list[Any] = []
        self.count = 0
        self.by_id = {id(o): k for k, o in enumerate(inputs)}
        self.by_storage = {}
        for k, o in enumerate(inputs):
            if isinstance(o, torch.Tensor):
                key = _storage_key(o)
                if key is not None:
                    self.by_storage.setdefault(key, k)

    def _blob(self, data: bytes) -> int:
        self.blobs.append(data)
        return len(self.blobs) - 1

    def encode(self, o: Any) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise WireError(f"more than {MAX_NODES} values")
        if o is None or isinstance(o, (bool, str)):
            return o
        if isinstance(o, int) and type(o) in (int, bool):
            return o
        if isinstance(o, float) and type(o) is float:
            return o if math.isfinite(o) else {"F": repr(o)}
        if isinstance(o, np.generic):
            if o.dtype.kind not in NUMPY_KINDS:
                raise WireError(f"numpy scalar of dtype {o.dtype}")
            return {"ns": o.dtype.str, "b": self._blob(o.tobytes())}
        if isinstance(o, torch.dtype):
            return {"dt": str(o).removeprefix("torch.")}
        if isinstance(o, torch.Size):
            return {"sz": [int(v) for v in o]}
        if isinstance(o, torch.device):
            return {"dev": str(o)}
        if isinstance(o, complex):
            return {"c": [o.real, o.imag]}
        if isinstance(o, type):
            return {"C": f"{o.__module__}:{o.__qualname__}"}
        if callable(o) and (inspect.isfunction(o) or inspect.ismethod(o) or
                            inspect.isbuiltin(o) or isinstance(o, functools.partial)):
            return {"fn": str(getattr(o, "__qualname__", type(o).__name__))[:200]}
        k = self.by_id.get(id(o))
        if k is not None:
            return {"ri": k, "kind": _kind(o)}
        if isinstance(o, torch.Tensor):
            key = _storage_key(o)
            if key is not None and key in self.by_storage:
                return {"ri": self.by_storage[key], "kind": _kind(o)}
        if id(o) in self.memo:
            return {"ro": self.memo[id(o)]}
        self.memo[id(o)] = len(self.memo)
        self.keep.append(o)
        if isinstance(o, torch.Tensor):
            return self._tensor(o)
        if isinstance(o, np.ndarray):
            if o.dtype.kind not in NUMPY_KINDS:
                raise WireError(f"numpy array of dtype {o.dtype}")
            return {"N": self._blob(np.ascontiguousarray(o).tobytes()), "dtype": o.dtype.str,
                    "shape": list(o.shape)}
        if isinstance(o, tuple) and not hasattr(o, "_fields"):
            return {"t": [self.encode(v) for v in o]}
        if isinstance(o, list) and type(o) is list:
            return {"l": [self.encode(v) for v in o]}
        if isinstance(o, (set, frozenset)):
            return {"s": [self.encode(v) for v in o]}
        if type(o) in (dict, OrderedDict):
            return {"d" if type(o) is dict else "od":
                    [[self.encode(a), self.encode(b)] for a, b in o.items()]}
        if isinstance(o, nn.Module) or dataclasses.is_dataclass(o) or \
                type(o).__module__ == "torch.nn.utils.prune":
            cls = type(o)
            state = {"d": [[name, self.encode(v)] for name, v in vars(o).items()]}
            return {"O": f"{cls.__module__}:{cls.__qualname__}", "st": state}
        raise WireError(f"a value of type {type(o).__module__}.{type(o).__qualname__} "
                        "cannot be sent to the grader")

    def _tensor(self, t: torch.Tensor) -> dict:
        name = str(t.dtype).removeprefix("torch.")
        if name not in TORCH_DTYPES:
            raise WireError(f"tensor of dtype {t.dtype}")
        data = t.detach().to("cpu").contiguous()
        raw = (data.view(torch.int16) if t.dtype == torch.bfloat16 else data).numpy().tobytes()
        return {"T": self._blob(raw), "dtype": name, "shape": list(t.shape),
                "rg": bool(t.requires_grad), "P": isinstance(t, nn.Parameter)}


def _kind(o: Any) -> str:
    if isinstance(o, torch.Tensor):
        return f"tensor{list(o.shape)}{o.dtype}"
    return f"{type(o).__module__}:{type(o).__qualname__}"


def encode_reply(header: dict, values: dict[str, Any], inputs: list[Any] = ()) -> bytes:
    """A reply frame: header + each of values encoded (references to inputs allowed)."""
    enc = Encoder(inputs)
    body = {k: enc.encode(v) for k, v in values.items()}
    return pack_reply({**header, "values": body}, enc.blobs)


# ---------------------------------------------------------------- grader side: decode
class Decoder:
    """Rebuilds plain data from a reply in the grader (never runs worker code).

    Args:
        blobs: the reply's byte blobs.
        inputs: the grader's own argument objects, in walk_inputs order.
        resolve: "module:qualname" -> class, raising WireError for a class not allowed.
    """

    def __init__(self, blobs: list[bytes], inputs: list[Any], resolve: Callable[[str], type]):
        self.blobs, self.inputs, self.resolve = blobs, inputs, resolve
        self.memo: list[Any] = []
        self.count = 0

    def decode(self, n: Any) -> Any:
        self.count += 1
        if self.count > MAX_NODES:
            raise WireError(f"more than {MAX_NODES} values")
        if n is None or isinstance(n, (bool, int, float, str)):
            return n
        if not isinstance(n, dict) or not n:
            raise WireError(f"unexpected node {str(n)[:80]}")
        if "F" in n:
            value = float(n["F"])
            if math.isfinite(value):
                raise WireError("finite float sent as special")
            return value
        if "ri" in n:
            k = n["ri"]
            if not isinstance(k, int) or not 0 <= k < len(self.inputs) \
                    or _kind(self.inputs[k]) != n.get("kind"):
                raise WireError("reference to an argument that does not match it")
            return self.inputs[k]
        if "ro" in n:
            k = n["ro"]
            if not isinstance(k, int) or not 0 <= k < len(self.memo):
                raise WireError("reference to an unknown value")
            return self.memo[k]
        if "ns" in n:
            dtype = self._np_dtype(n["ns"])
            return np.frombuffer(self._get_blob(n["b"]), dtype=dtype, count=1)[0].copy()
        if "dt" in n:
            return self._torch_dtype(n["dt"])
        if "sz" in n:
            return torch.Size([int(self._int(v)) for v in n["sz"]])
        if "dev" in n:
            return torch.device(str(n["dev"]))
        if "c" in n:
            return complex(float(n["c"][0]), float(n["c"][1]))
        if "C" in n:
            return self.resolve(str(n["C"]))
        if "K" in n:
            return KEEP
        if "fn" in n:
            return StudentCallable(str(n["fn"]))
        slot = len(self.memo)
        self.memo.append(None)
        if "T" in n:
            self.memo[slot] = value = self._tensor(n)
            return value
        if "N" in n:
            dtype = self._np_dtype(n["dtype"])
            shape = [self._int(v) for v in n["shape"]]
            value = np.frombuffer(self._get_blob(n["N"]), dtype=dtype).copy().reshape(shape)
            self.memo[slot] = value
            return value
        if "t" in n:
            value = tuple(self.decode(v) for v in self._list(n["t"]))
        elif "l" in n:
            value = self.memo[slot] = []
            value.extend(self.decode(v) for v in self._list(n["l"]))
        elif "s" in n:
            value = set(self.decode(v) for v in self._list(n["s"]))
        elif "d" in n or "od" in n:
            value = self.memo[slot] = {} if "d" in n else OrderedDict()
            for pair in self._list(n.get("d", n.get("od"))):
                if not isinstance(pair, list) or len(pair) != 2:
                    raise WireError("dict entry is not a pair")
                value[self.decode(pair[0])] = self.decode(pair[1])
        elif "O" in n:
            cls = self.resolve(str(n["O"]))
            value = self.memo[slot] = cls.__new__(cls)
            pairs = n["st"].get("d") if isinstance(n["st"], dict) else None
            state = {}
            for pair in self._list(pairs):
                if not isinstance(pair, list) or len(pair) != 2 or type(pair[0]) is not str:
                    raise WireError("object state is not a dict of names")
                state[pair[0]] = self.decode(pair[1])
            value.__dict__.update(state)
        else:
            raise WireError(f"unknown node kind {sorted(n)[:3]}")
        self.memo[slot] = value
        return value

    @staticmethod
    def _int(v):
        if type(v) is not int:
            raise WireError("expected an int")
        return v

    @staticmethod
    def _list(v):
        if not isinstance(v, list):
            raise WireError("expected a list")
        return v

    def _get_blob(self, k) -> bytes:
        if type(k) is not int or not 0 <= k < len(self.blobs):
            raise WireError("unknown blob")
        return self.blobs[k]

    @staticmethod
    def _torch_dtype(name) -> torch.dtype:
        if name not in TORCH_DTYPES:
            raise WireError(f"dtype {str(name)[:40]} not allowed")
        return TORCH_DTYPES[name]

    @staticmethod
    def _np_dtype(name) -> np.dtype:
        try:
            dtype = np.dtype(str(name))
        except TypeError:
            raise WireError(f"numpy dtype {str(name)[:40]}") from None
        if dtype.kind not in NUMPY_KINDS or dtype.hasobject:
            raise WireError(f"numpy dtype {dtype} not allowed")
        return dtype

    def _tensor(self, n: dict) -> torch.Tensor:
        dtype = self._torch_dtype(n["dtype"])
        shape = [self._int(v) for v in n["shape"]]
        raw = self._get_blob(n["T"])
        numel = math.prod(shape)
        itemsize = torch.empty((), dtype=dtype).element_size()
        if any(s < 0 for s in shape) or numel * itemsize != len(raw):
            raise WireError("tensor bytes do not match its shape and dtype")
        if numel == 0:
            t = torch.empty(shape, dtype=dtype)
        else:
            t = torch.frombuffer(bytearray(raw), dtype=dtype).reshape(shape)
        if n.get("P"):
            return nn.Parameter(t, requires_grad=bool(n.get("rg")))
        if n.get("rg") and (t.is_floating_point() or t.is_complex()):
            t.requires_grad_(True)
        return t


# ---------------------------------------------------------------- grader side: sync back
def _same_tensor_layout(a, b) -> bool:
    return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and \
        a.shape == b.shape and a.dtype == b.dtype and \
        isinstance(a, nn.Parameter) == isinstance(b, nn.Parameter)


def sync_into(orig: Any, new: Any) -> Any:
    """Make the grader's object orig look like new (the worker's copy after the call),
    keeping orig's identity and that of its tensors and submodules where they still fit.
    Returns the object to use (orig, or new where orig cannot be updated in place)."""
    if orig is new or new is KEEP:
        return orig
    if _same_tensor_layout(orig, new):
        if not _bitwise_equal(orig, new):  # copying an unchanged tensor would bump its
            with torch.no_grad():           # version and break a saved autograd graph
                orig.copy_(new)
        return orig
    if isinstance(orig, nn.Module) and type(orig) is type(new):
        old_d, new_d = orig.__dict__, dict(new.__dict__)
        for key, value in list(new_d.items()):
            before = old_d.get(key)
            if isinstance(value, dict) and isinstance(before, dict) and \
                    key in ("_parameters", "_buffers", "_modules"):
                merged = type(value)()
                for name, v in value.items():
                    o = before.get(name)
                    merged[name] = sync_into(o, v) if _fits(o, v) else v
                new_d[key] = merged
            elif _fits(before, value):
                new_d[key] = sync_into(before, value)
        old_d.clear()
        old_d.update(new_d)
        return orig
    if type(orig) is list and type(new) is list:
        merged = [sync_into(o, v) if _fits(o, v) else v for o, v in zip(orig, new)]
        orig[:] = merged + new[len(merged):]
        return orig
    if type(orig) is dict and type(new) is dict:
        merged = {k: (sync_into(orig[k], v) if k in orig and _fits(orig[k], v) else v)
                  for k, v in new.items()}
        orig.clear()
        orig.update(merged)
        return orig
    return new


def _bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.numel() == 0:
        return True
    return torch.equal(a.detach().contiguous().reshape(-1).view(torch.uint8),
                       b.detach().contiguous().reshape(-1).view(torch.uint8))


def _fits(a, b) -> bool:
    if a is None or b is None:
        return False
    if isinstance(a, torch.Tensor):
        return _same_tensor_layout(a, b)
    if isinstance(a, nn.Module):
        return type(a) is type(b)
    return type(a) in (list, dict) and type(a) is type(b)
