"""The grader's side of a call into the sandbox: proxy modules and the worker client.

In the grader's test process, each student module (``kwslab.quantize``, ...) is replaced in
``sys.modules`` by a proxy built from the *released* text of the instructor's module (solution
blocks already stubbed): its classes, constants and docstrings are the spec's own code, and
every top-level function, and every method that holds a solution block, is a stub that sends
the call to a sandboxed worker (``kwslab.course.worker``) and rebuilds the plain-data reply
(``kwslab.course.wire``). The graded tests run unchanged: ``Q.quantize(x, ...)`` returns a
tensor made here from the worker's bytes, and every assert runs here. Student code never runs
in this process, and this process reads nothing from the student but plain data.

Autograd crosses the boundary: a call whose tensor arguments require grad becomes one node of
the grader's graph; its backward asks the worker to recompute the call and return the input
gradients. Arguments the student function changed in place (a model it pruned or trained) are
synced back into the grader's objects.

Each graded test has a deadline; a call that passes it, or a worker that dies (segfault,
``os._exit``, memory limit), fails that test only: the worker is killed and a fresh one starts
for the next test. One worker serves all the tests of a submission (starting one costs a torch
import); the grader runs the public tests first, and a worker that has served a hidden test
never serves a public one (a public test after a hidden one gets a fresh worker), so nothing a
hidden test sent into the sandbox can come back in a public test's output.

Source: PrairieLearn's Python autograder (pl_helpers / code_feedback: student code in a
separate process, checks in the parent); PyTorch custom ``torch.autograd.Function``.
"""
from __future__ import annotations

import ast
import functools
import inspect
import linecache
import os
import select
import signal
import struct
import subprocess
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any

import torch
from torch import nn

from . import wire
from .student_release import BEGIN_SOLUTION, strip_solutions

ALLOWED_EXCEPTIONS = {e.__name__: e for e in (
    ValueError, TypeError, NotImplementedError, RuntimeError, IndexError, KeyError,
    ZeroDivisionError, AttributeError, ArithmeticError, OverflowError, LookupError,
    ImportError, ModuleNotFoundError, AssertionError, NameError, UnboundLocalError,
    RecursionError, MemoryError, StopIteration)}
STARTUP_TIMEOUT_S = 300


class SandboxFailure(RuntimeError):
    """The student's code crashed the worker, broke the protocol, or ran out of time."""


class TestTimeout(SandboxFailure):
    pass


# ---------------------------------------------------------------- one worker process
class Worker:
    """A sandboxed ``python -m kwslab.course.worker`` process and its two pipes."""

    def __init__(self, command: list[str], env: dict[str, str], output_chars: int = 20_000):
        r_req, self._w_req = os.pipe()
        self._r_rep, w_rep = os.pipe()
        self.proc = subprocess.Popen(
            [*command, str(r_req), str(w_rep)], pass_fds=(r_req, w_rep), env=env,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True)
        os.close(r_req)
        os.close(w_rep)
        self.imported: set[str] = set()
        self.ready = False
        self.output = ""
        self._output_chars = output_chars
        self._drain = threading.Thread(target=self._read_output, daemon=True)
        self._drain.start()

    def _read_output(self) -> None:
        for chunk in iter(lambda: self.proc.stdout.read1(65536), b""):
            self.output = (self.output + chunk.decode("utf-8", "replace"))[
                -self._output_chars:]

    def send(self, payload: bytes) -> None:
        data = struct.pack(">Q", len(payload)) + payload
        view = memoryview(data)
        while view:
            n = os.write(self._w_req, view[:1 << 20])
            view = view[n:]

    def receive(self, deadline: float) -> tuple[dict, list[bytes]]:
        """One reply, or SandboxFailure / TestTimeout (the worker is then unusable)."""
        head = self._read(8, deadline)
        (n,) = struct.unpack(">Q", head)
        if n > wire.MAX_REPLY_BYTES:
            raise SandboxFailure(f"the student code sent {n} bytes, more than the "
                                 f"{wire.MAX_REPLY_BYTES} allowed")
        return wire.unpack_reply(self._read(n, deadline))

    def _read(self, n: int, deadline: float) -> bytes:
        chunks, left = [], n
        while left:
            wait = deadline - time.monotonic()
            if wait <= 0:
                raise TestTimeout("timeout")
            ready, _, _ = select.select([self._r_rep], [], [], min(wait, 1.0))
            if not ready:
                continue
            chunk = os.read(self._r_rep, min(left, 1 << 20))
            if not chunk:
                raise SandboxFailure(self.death())
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def death(self) -> str:
        try:
            code = self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "the student code closed the grader's channel"
        signum = -code if code < 0 else code - 128 if 128 < code < 128 + 65 else 0
        if signum:  # bubblewrap reports its child's death by signal N as exit 128 + N
            name = signal.Signals(signum).name if signum in signal.Signals._value2member_map_ \
                else str(signum)
            why = " (memory limit?)" if signum == signal.SIGKILL else ""
            return f"the student code crashed: killed by {name}{why}"
        return f"the student code ended the worker process (exit code {code})"

    def kill(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        for fd in (self._w_req, self._r_rep):
            try:
                os.close(fd)
            except OSError:
                pass
        self._drain.join(timeout=5)


# ---------------------------------------------------------------- the client
class Client:
    """Sends calls to one sandboxed worker at a time, restarting it after a crash or hang.

    ``pool`` ("public" or "hidden") is the kind of the running test: a worker that has served
    a hidden test is replaced before it serves a public one.

    Args:
        command: the sandboxed worker command (without its two fd arguments).
        env: the worker's environment.
    """

    def __init__(self, command: list[str], env: dict[str, str]):
        self.command, self.env = command, env
        self.worker: Worker | None = None
        self.tainted = False
        """the current worker has seen a hidden test's inputs."""
        self.pool = "public"
        self.deadline: float | None = None
        self.timeout_s: float = 60
        self.broken: dict[tuple[str, str], str] = {}
        self.modules: dict[str, types.ModuleType] = {}
        self.started = 0
        """workers started so far (a crash or a public test after a hidden one adds one)."""

    # -- workers
    def start(self) -> None:
        """Start a worker now without waiting for it (its interpreter and torch import
        overlap the grader's own start-up)."""
        if self.worker is None:
            self.worker = Worker(self.command, self.env)
            self.started += 1

    def _worker(self) -> Worker:
        __tracebackhide__ = True
        if self.pool != "hidden" and self.tainted:
            self._drop()
        if self.worker is not None and self.worker.proc.poll() is not None and \
                self.worker.ready:
            self._drop()
        self.start()
        w = self.worker
        if not w.ready:
            started = time.monotonic()
            try:
                header, _ = w.receive(time.monotonic() + STARTUP_TIMEOUT_S)
                if not header.get("ready"):
                    raise SandboxFailure("the worker did not start")
            except (SandboxFailure, wire.WireError) as e:
                out = w.output[-2000:]
                self._drop()
                raise SandboxFailure(f"the sandbox did not start: {e}\n{out}") from None
            w.ready = True
            if self.deadline is not None:  # starting the sandbox is not the test's time
                self.deadline += time.monotonic() - started
        if self.pool == "hidden":
            self.tainted = True
        return w

    def _drop(self) -> None:
        w, self.worker, self.tainted = self.worker, None, False
        if w is not None:
            w.kill()

    def close(self) -> None:
        self._drop()

    def _deadline(self) -> float:
        return self.deadline if self.deadline is not None else \
            time.monotonic() + self.timeout_s

    def roundtrip(self, request: dict) -> tuple[dict, list[bytes]]:
        """Send one request and read its reply; any failure kills the worker and raises."""
        __tracebackhide__ = True
        module = request.get("module", "")
        if (self.pool, module) in self.broken:
            raise SandboxFailure(self.broken[(self.pool, module)])
        payload = wire.dumps_request(request)
        w = self._worker()
        if module and module not in w.imported:
            self._exchange(w, wire.dumps_request({"op": "import", "module": module}),
                           importing=module)
            w.imported.add(module)
        return self._exchange(w, payload)

    def _exchange(self, w: Worker, payload: bytes, importing: str = ""):
        __tracebackhide__ = True
        try:
            w.send(payload)
            header, blobs = w.receive(self._deadline())
        except TestTimeout:
            self._drop()
            message = f"test exceeded the {self.timeout_s:g} s time limit"
            if importing:
                self.broken[(self.pool, importing)] = f"importing {importing} did not " \
                                                       "finish in time"
            raise TestTimeout(message) from None
        except (SandboxFailure, wire.WireError, OSError) as e:
            output = w.output[-1500:]
            self._drop()
            message = str(e) if isinstance(e, SandboxFailure) else \
                f"broken reply from the student code: {e}"
            if importing:
                self.broken[(self.pool, importing)] = f"importing {importing}: {message}"
            raise SandboxFailure(message + (f"\nlast output:\n{output}" if output else "")) \
                from None
        except BaseException:  # e.g. the test's alarm: the reply is lost, so is the worker
            self._drop()
            raise
        if not header.get("ok"):
            if isinstance(header.get("values"), dict) and "args" in header["values"]:
                return header, blobs  # the caller syncs the arguments, then raises
            raise _student_exception(header)
        return header, blobs

    # -- calls
    def call(self, module: str, name: str, args: tuple, kwargs: dict) -> Any:
        __tracebackhide__ = True
        grad_inputs = [t for t in wire.walk_inputs((args, kwargs))
                       if isinstance(t, torch.Tensor) and t.requires_grad] \
            if torch.is_grad_enabled() else []
        if grad_inputs:
            holder: dict = {}
            outs = _RemoteFunction.apply(self, module, name, args, kwargs, holder,
                                         *grad_inputs)
            return _replace_outputs(holder["result"], outs)
        return self._call(module, name, args, kwargs, grad=False)

    def _call(self, module: str, name: str, args: tuple, kwargs: dict, grad: bool) -> Any:
        __tracebackhide__ = True
        inputs = wire.walk_inputs((args, kwargs))
        header, blobs = self.roundtrip({"op": "call", "module": module, "name": name,
                                        "args": args, "kwargs": kwargs, "grad": grad})
        values = header.get("values")
        failed = not header.get("ok")
        if not isinstance(values, dict) or "args" not in values or \
                ("result" not in values and not failed):
            raise SandboxFailure("broken reply from the student code: no result")
        try:
            dec = wire.Decoder(blobs, [], self.resolve)
            arg_nodes, kwarg_nodes = values["args"]["t"]
            new_args = [dec.decode(v) for v in arg_nodes["l"]]
            new_kwargs = {k: dec.decode(v) for k, v in kwarg_nodes["d"]}
            for old, new in zip(args, new_args):
                wire.sync_into(old, new)
            for key, old in kwargs.items():
                if key in new_kwargs:
                    wire.sync_into(old, new_kwargs[key])
            if not failed:
                return wire.Decoder(blobs, inputs, self.resolve).decode(values["result"])
        except Exception as e:  # noqa: BLE001 - any reply that does not fit fails the test
            raise SandboxFailure(f"the student code returned something the grader cannot "
                                 f"use: {type(e).__name__}: {e}") from None
        raise _student_exception(header)

    def backward(self, module, name, args, kwargs, grad_outputs) -> list:
        header, blobs = self.roundtrip({"op": "backward", "module": module, "name": name,
                                        "args": args, "kwargs": kwargs,
                                        "grad_outputs": grad_outputs})
        try:
            grads = wire.Decoder(blobs, [], self.resolve).decode(header["values"]["grads"])
        except (wire.WireError, KeyError, TypeError) as e:
            raise SandboxFailure(f"broken gradient reply: {e}") from None
        return grads

    def resolve(self, path: str) -> type:
        """The grader's class for "module:qualname" in a reply; WireError if not allowed."""
        module, _, qualname = path.partition(":")
        if not qualname or "<" in qualname:
            raise wire.WireError(f"class {path} cannot be rebuilt")
        if module in self.modules:
            owner = self.modules[module]
        elif module == "torch.nn" or module.startswith("torch.nn.modules.") or \
                module == "torch.nn.utils.prune" or module in ALLOWED_CLASS_MODULES:
            owner = sys.modules.get(module)
        else:
            owner = None
        cls = owner
        for part in qualname.split("."):
            cls = getattr(cls, part, None)
        if owner is None or not isinstance(cls, type) or cls.__module__ != module:
            raise wire.WireError(f"the grader does not rebuild objects of class {path}")
        from dataclasses import is_dataclass
        from torch.nn.utils import prune
        if not (issubclass(cls, nn.Module) or issubclass(cls, prune.BasePruningMethod)
                or is_dataclass(cls)):
            raise wire.WireError(f"class {path} is not a module, pruning method or dataclass")
        return cls


ALLOWED_CLASS_MODULES: set[str] = set()
"""Trusted modules (besides torch.nn and the proxies) whose classes replies may name; the
plugin fills it with the package's non-student modules (e.g. ``kwslab.models``)."""


def _student_exception(header: dict) -> BaseException:
    name = str(header.get("exc", "Exception"))
    message = str(header.get("message", ""))
    cls = ALLOWED_EXCEPTIONS.get(name)
    e = cls(message) if cls is not None and cls is not KeyError else \
        KeyError(message) if cls is KeyError else RuntimeError(f"{name}: {message}")
    tb = str(header.get("traceback", ""))
    if tb:
        e.add_note("raised in the student code:\n" + tb[-3000:])
    return e


def _replace_outputs(result, outs):
    it = iter(outs)

    def rebuild(o):
        if isinstance(o, torch.Tensor):
            return next(it) if (o.is_floating_point() or o.is_complex()) else o
        if isinstance(o, tuple) and not hasattr(o, "_fields"):
            return tuple(rebuild(v) for v in o)
        if type(o) is list:
            return [rebuild(v) for v in o]
        if type(o) is dict:
            return {k: rebuild(v) for k, v in o.items()}
        return o
    return rebuild(result)


class _RemoteFunction(torch.autograd.Function):
    """One student call as a node of the grader's autograd graph."""

    @staticmethod
    def forward(ctx, client, module, name, args, kwargs, holder, *grad_inputs):
        __tracebackhide__ = True
        from .worker import flat_tensors
        result = client._call(module, name, args, kwargs, grad=True)
        floats = [t for t in flat_tensors(result) if t.is_floating_point() or t.is_complex()]
        outs = []
        for t in floats:
            out = t.detach().clone()
            outs.append(out)
        ctx.call = (client, module, name, args, kwargs)
        ctx.n_inputs = len(grad_inputs)
        non_diff = [o for o, t in zip(outs, floats) if not t.requires_grad]
        if non_diff:
            ctx.mark_non_differentiable(*non_diff)
        holder["result"] = result
        return tuple(outs) if outs else (torch.zeros(()),)

    @staticmethod
    def backward(ctx, *grad_outputs):
        client, module, name, args, kwargs = ctx.call
        grads = client.backward(module, name, args, kwargs, list(grad_outputs))
        if not isinstance(grads, list) or len(grads) != ctx.n_inputs:
            raise SandboxFailure("the student code returned the wrong number of gradients")
        return (None, None, None, None, None, None, *grads)


# ---------------------------------------------------------------- proxy modules
def _classes_with_solutions(source: str) -> dict[str, set[str]]:
    """{class name: names of its methods holding a solution block} (top-level classes)."""
    lines = source.splitlines()
    marks = {i + 1 for i, line in enumerate(lines) if line.strip() == BEGIN_SOLUTION}
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.ClassDef) and any(node.lineno <= m <= node.end_lineno
                                                  for m in marks):
            found[node.name] = {f.name for f in node.body
                                if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                                and any(f.lineno <= m <= f.end_lineno for m in marks)}
    return found


def _stub(client: Client, module: str, name: str, original):
    @functools.wraps(original)
    def remote(*args, **kwargs):
        __tracebackhide__ = True
        return client.call(module, name, args, kwargs)
    return remote


def _method_stub(client: Client, module: str, name: str, original):
    @functools.wraps(original)
    def remote(self, *args, **kwargs):
        __tracebackhide__ = True
        return client.call(module, name, (self, *args), kwargs)
    return remote


def install_proxy(client: Client, name: str, source_path: Path) -> types.ModuleType:
    """Put the proxy of student module `name` (instructor source at source_path) into
    sys.modules and onto its parent package."""
    source = Path(source_path).read_text(encoding="utf-8")
    released, _ = strip_solutions(source, str(source_path))
    filename = f"<released {name.replace('.', '/')}.py>"
    linecache.cache[filename] = (len(released), None, released.splitlines(True), filename)
    module = types.ModuleType(name)
    module.__file__ = filename
    module.__package__ = name.rpartition(".")[0]
    sys.modules[name] = module
    parent = sys.modules.get(module.__package__)
    if parent is not None:
        setattr(parent, name.rpartition(".")[2], module)
    exec(compile(released, filename, "exec"), module.__dict__)
    client.modules[name] = module
    for attr, value in list(vars(module).items()):
        if inspect.isfunction(value) and value.__module__ == name:
            setattr(module, attr, _stub(client, name, value.__qualname__, value))
    for cls_name, methods in _classes_with_solutions(source).items():
        cls = getattr(module, cls_name)
        if issubclass(cls, torch.autograd.Function):
            cls.apply = staticmethod(_stub(client, name, f"{cls_name}.apply", cls.apply))
            continue
        for method in methods:
            raw = cls.__dict__[method]
            if isinstance(raw, staticmethod):
                setattr(cls, method, staticmethod(_stub(client, name, f"{cls_name}.{method}",
                                                        raw.__func__)))
            elif isinstance(raw, classmethod):
                raise NotImplementedError(f"{name}.{cls_name}.{method}: a classmethod with a "
                                          "solution block cannot be graded remotely")
            else:
                setattr(cls, method, _method_stub(client, name, f"{cls_name}.{method}", raw))
    return module
