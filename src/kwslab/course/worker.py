"""The sandboxed side of grading: runs student functions on the grader's inputs.

Started by the grader inside the sandbox as ``python -m kwslab.course.worker IN_FD OUT_FD``.
It reads pickled requests from IN_FD (written by the grader: its own objects) and answers each
on OUT_FD in plain data (``kwslab.course.wire``): a function's return value, the arguments as
the function left them (for in-place changes), or the exception it raised. Nothing it sends
decides a score: the graded test that called it runs in the grader and compares there.
Student code runs in this process and may tamper with it; it can then only change what its
own functions appear to return, which it controls anyway.

Requests (dicts): ``{"op": "import", "module"}``; ``{"op": "call", "module", "name", "args",
"kwargs", "grad"}`` (name may be ``Class.method``); ``{"op": "backward", ...same...,
"grad_outputs"}`` recomputes the call with autograd and returns the gradients of its tensor
inputs that require grad (the grader's autograd reaches into the sandbox this way).

Source: PrairieLearn's Python autograder (student code in a separate unprivileged process,
results checked by the parent).
"""
from __future__ import annotations

import importlib
import os
import pickle
import sys
import traceback

import torch

from kwslab.course import wire


def _resolve(module: str, name: str):
    obj = importlib.import_module(module)
    for part in name.split("."):
        obj = getattr(obj, part)
    return obj


def flat_tensors(obj) -> list[torch.Tensor]:
    """Tensors inside tuples, lists and dict values of a result, in order (both sides)."""
    out = []
    if isinstance(obj, torch.Tensor):
        out.append(obj)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            out += flat_tensors(v)
    elif isinstance(obj, dict):
        for v in obj.values():
            out += flat_tensors(v)
    return out


def _lenient(enc: wire.Encoder, value):
    """An argument as it is now, or "keep yours" when it cannot be sent (e.g. a class)."""
    blobs, memo = len(enc.blobs), dict(enc.memo)
    try:
        return enc.encode(value)
    except wire.WireError:
        del enc.blobs[blobs:]
        enc.memo = memo
        return {"K": 1}


def handle(req: dict) -> bytes:
    op = req.get("op")
    if op == "import":
        importlib.import_module(req["module"])
        return wire.encode_reply({"ok": True}, {})
    fn = _resolve(req["module"], req["name"])
    args, kwargs = req["args"], req["kwargs"]
    inputs = wire.walk_inputs((args, kwargs))
    if op == "call":
        try:
            with torch.set_grad_enabled(bool(req.get("grad"))):
                result = fn(*args, **kwargs)
        except BaseException as e:  # report it with the arguments as the error left them
            enc = wire.Encoder()
            changed = {"t": [{"l": [_lenient(enc, a) for a in args]},
                             {"d": [[k, _lenient(enc, v)] for k, v in kwargs.items()]}]}
            return _error_reply(e, {"args": changed}, enc.blobs)
        enc = wire.Encoder(inputs)
        body = {"result": enc.encode(result)}
        enc.by_id, enc.by_storage, enc.memo = {}, {}, {}  # arguments go back by value
        body["args"] = {"t": [{"l": [_lenient(enc, a) for a in args]},
                              {"d": [[k, _lenient(enc, v)] for k, v in kwargs.items()]}]}
        return wire.pack_reply({"ok": True, "values": body}, enc.blobs)
    if op == "backward":
        grad_in = [t for t in inputs if isinstance(t, torch.Tensor) and t.requires_grad]
        with torch.enable_grad():
            result = fn(*args, **kwargs)
        outs = [t for t in flat_tensors(result) if t.is_floating_point() or t.is_complex()]
        pairs = [(o, g) for o, g in zip(outs, req["grad_outputs"])
                 if g is not None and o.requires_grad]
        grads = [None] * len(grad_in)
        if pairs and grad_in:
            grads = list(torch.autograd.grad([o for o, _ in pairs], grad_in,
                                             [g for _, g in pairs], allow_unused=True))
        return wire.encode_reply({"ok": True}, {"grads": grads})
    raise ValueError(f"unknown request {op!r}")


def _error_reply(e: BaseException, values: dict | None = None, blobs=()) -> bytes:
    frames = [f for f in traceback.extract_tb(e.__traceback__)
              if not f.filename.endswith(("course/worker.py", "course/wire.py"))]
    tb = "".join(traceback.format_list(frames)) + \
        "".join(traceback.format_exception_only(type(e), e))
    return wire.pack_reply({"ok": False, "exc": type(e).__name__, "message": str(e)[:4000],
                            "traceback": tb[-6000:], "values": values or {}}, list(blobs))


def main(argv: list[str]) -> None:
    fd_in, fd_out = int(argv[0]), int(argv[1])
    requests = os.fdopen(fd_in, "rb")
    replies = os.fdopen(fd_out, "wb")
    torch.set_num_threads(1)
    replies.write(wire.pack_reply({"ok": True, "ready": True}, []))
    replies.flush()
    while True:
        try:
            payload = wire.read_request(requests)
        except EOFError:
            return
        try:
            reply = handle(pickle.loads(payload))
            if len(reply) > wire.MAX_REPLY_BYTES:
                raise wire.WireError(f"the result takes {len(reply)} bytes, more than the "
                                     f"{wire.MAX_REPLY_BYTES} allowed")
        except BaseException as e:  # student code may raise anything, SystemExit included
            reply = _error_reply(e)
        replies.write(reply)
        replies.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
