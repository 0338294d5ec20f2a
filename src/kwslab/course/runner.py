"""How the grader's own pytest runs: a fresh process, or forked from a preloaded server.

Every submission is graded by one pytest process of the grader (trusted: it never imports
student code, see ``kwslab.course.autograde``). Started fresh, each spends about 3 s of CPU
importing torch, pytest and the lazy parts of ``torch.testing`` before the first test. A
``PytestServer`` does those imports once per batch and forks one pytest run per
submission from that state (the idea of a "zygote" or of ``multiprocessing``'s forkserver
with preloaded modules). Only third-party modules and the grader's own
``kwslab.course`` code are preloaded: never a student module nor a graded test file, so each
run still installs its proxies before the test files import them.

Each forked run gets its own session (process group), working folder, environment, log
file and arguments, exactly as ``subprocess`` would start it; the server reaps it, kills
what is left of its process group, and reports the exit code. A run that passes its time
limit is killed by the server (which alone knows whether the pid is still that run's).

``run_pytest`` is the one entry point: it uses the server when one is given and alive, and
otherwise (or if the server dies) starts ``python -m pytest`` as before.

Source: Python ``os.fork``, ``os.waitid(WNOWAIT)``; ``multiprocessing`` forkserver
``set_forkserver_preload``; pytest ``pytest.main``.
"""
from __future__ import annotations

import json
import logging
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

PRELOAD = ("numpy", "torch", "torch.nn.functional", "torch.nn.utils.prune", "torch.testing",
           "pytest", "_pytest.python", "_pytest.terminal", "_pytest.junitxml",
           "kwslab.course.remote")
"""Modules the server imports once: third-party and the grader's own, never student code."""


class ServerDied(RuntimeError):
    """The pytest server is gone; the caller runs pytest as a fresh process instead."""


# ---------------------------------------------------------------- the server process
def _preload(refuse: list[str]) -> None:
    import importlib
    for name in PRELOAD:
        importlib.import_module(name)
    import torch
    # assert_close imports torch.distributed.tensor on first use (1-2 s): do it once here
    torch.testing.assert_close(torch.zeros(1), torch.zeros(1))
    loaded = sorted(set(refuse) & set(sys.modules))
    if loaded:
        raise RuntimeError(f"student modules were imported while preloading: {loaded}")


def _child(request: dict, fds: list[int]) -> None:
    """In the forked child: become the pytest run the request describes; never returns."""
    code = 70
    try:
        os.setsid()
        for sig in (signal.SIGCHLD, signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        for fd in fds:
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        for fd in {null, out} - {0, 1, 2}:
            os.close(fd)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = ["pytest", *request["args"]]
        import pytest
        code = int(pytest.main(request["args"]))
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except BaseException:  # noqa: BLE001 - report and leave with a code of our own
        import traceback
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve(refuse: list[str]) -> None:
    """The server's loop: JSON lines in on stdin ({"id", "args", "cwd", "env", "log"} to
    start a run, {"kill": id} to kill one), JSON lines out ({"ready"}, {"id", "pid"},
    {"id", "exit"}). Ends when stdin closes, killing the runs still going."""
    reply_fd = os.dup(1)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)  # nothing the preloaded libraries print can corrupt the replies
    os.close(null)
    _preload(refuse)
    runs: dict[int, int] = {}  # pid -> id

    def send(msg: dict) -> None:
        data = (json.dumps(msg) + "\n").encode()
        while data:
            data = data[os.write(reply_fd, data):]

    send({"ready": True, "threads": threading.active_count()})
    buf = b""
    open_ = True
    while open_ or runs:
        ready, _, _ = select.select([0] if open_ else [], [], [], 0.05)
        if ready:
            chunk = os.read(0, 65536)
            if not chunk:
                open_ = False
                for pid in runs:
                    _killpg(pid)
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                msg = json.loads(line)
                if "kill" in msg:
                    for pid, rid in runs.items():
                        if rid == msg["kill"]:
                            _killpg(pid)
                    continue
                sys.stdout.flush()
                sys.stderr.flush()
                pid = os.fork()
                if pid == 0:
                    _child(msg, [0, reply_fd])
                runs[pid] = msg["id"]
                send({"id": msg["id"], "pid": pid})
        while runs:  # peek at an ended run, kill what is left of its group, then reap it
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                break
            if info is None or info.si_pid == 0:
                break
            _killpg(info.si_pid)
            _, status = os.waitpid(info.si_pid, 0)
            rid = runs.pop(info.si_pid, None)
            if rid is not None:
                send({"id": rid, "exit": os.waitstatus_to_exitcode(status)})


def _killpg(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


# ---------------------------------------------------------------- the grader's handle
class PytestServer:
    """A preloaded pytest server for one grading batch (a context manager).

    Args:
        env: the environment the server starts with (the trusted grader environment: its
            PYTHONPATH decides which kwslab the runs import).
        cwd: the server's working folder.
        refuse: module names that must not be loaded in the server (the student modules).
    Raises:
        ServerDied: if the server does not start (the caller then runs pytest fresh).
    """

    def __init__(self, env: dict[str, str], cwd: Path, refuse: list[str] = (),
                 start_timeout_s: float = 120):
        self._log = Path(cwd) / "pytest-server.log"
        with open(self._log, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", "import sys, json; from kwslab.course.runner import "
                 "serve; serve(json.loads(sys.argv[1]))", json.dumps(list(refuse))],
                cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=err, start_new_session=True)
        self._lock = threading.Lock()
        self._events: dict[int, threading.Event] = {}
        self._exits: dict[int, int | None] = {}
        self._pids: dict[int, int] = {}
        self._ids = iter(range(1, 1 << 62))
        self._ready = threading.Event()
        self.alive = True
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(start_timeout_s) or not self.alive:
            self.close()
            err = self._log.read_bytes()[-2000:].decode("utf-8", "replace") or "no answer"
            raise ServerDied(f"the pytest server did not start: {err}")

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                if msg.get("ready"):
                    self.threads = int(msg.get("threads", 0))
                    self._ready.set()
                elif "pid" in msg:
                    self._pids[msg["id"]] = msg["pid"]
                elif "exit" in msg:
                    self._exits[msg["id"]] = msg["exit"]
                    if msg["id"] in self._events:
                        self._events[msg["id"]].set()
        with self._lock:  # the server is gone: every waiting run learns it
            self.alive = False
            self._ready.set()
            for rid, event in self._events.items():
                self._exits.setdefault(rid, None)
                event.set()

    def _send(self, msg: dict) -> None:
        with self._lock:
            if not self.alive:
                raise ServerDied("the pytest server is gone")
            try:
                self.proc.stdin.write((json.dumps(msg) + "\n").encode())
                self.proc.stdin.flush()
            except OSError as e:
                raise ServerDied(f"the pytest server is gone: {e}") from None

    def run(self, args: list[str], cwd: Path, env: dict[str, str], log_path: Path,
            timeout_s: float) -> int | None:
        """Exit code of one pytest run (None: killed at timeout_s).

        Raises:
            ServerDied: if the server is gone before the run ended (the run's leftovers are
                killed; the caller reruns it fresh).
        """
        rid = next(self._ids)
        event = threading.Event()
        with self._lock:
            self._events[rid] = event
        try:
            self._send({"id": rid, "args": [str(a) for a in args], "cwd": str(cwd),
                        "env": env, "log": str(log_path)})
            finished = event.wait(max(timeout_s, 1))
            if not finished:
                try:
                    self._send({"kill": rid})
                except ServerDied:
                    pass
                event.wait(60)
            with self._lock:
                code = self._exits.pop(rid, None)
                pid = self._pids.pop(rid, None)
                alive = self.alive
            if code is None and not alive and finished:
                if pid is not None:  # orphaned when the server died: kill its group
                    _killpg(pid)
                raise ServerDied("the pytest server died during a run")
            return code if finished else None
        finally:
            with self._lock:
                self._events.pop(rid, None)

    def close(self) -> None:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            _killpg(self.proc.pid)
            self.proc.wait()
        self._reader.join(timeout=5)

    def __enter__(self) -> "PytestServer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def run_pytest(args: list[str], cwd: Path, env: dict[str, str], log_path: Path,
               timeout_s: float, server: PytestServer | None = None) -> int | None:
    """Exit code of ``python -m pytest *args`` (None: killed at timeout_s), forked from
    server when it is alive, else a fresh process in its own session."""
    if server is not None and server.alive:
        start = time.monotonic()
        try:
            return server.run(args, cwd, env, log_path, timeout_s)
        except ServerDied as e:
            log.warning("%s; running pytest as a fresh process", e)
            timeout_s -= time.monotonic() - start
    with open(log_path, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "pytest", *args], cwd=cwd, env=env,
                                stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
        try:
            code = proc.wait(timeout=max(timeout_s, 1))
        except subprocess.TimeoutExpired:
            code = None
        finally:
            _killpg(proc.pid)
            proc.wait()
    return code
