"""The sandbox one submission is graded in: its folder, the isolation prefix, the limits.

`build_sandbox` fills a fresh folder with the instructor's package and graded tests and the
submission's student-editable files; `run_pytest` runs pytest there in a child process under
`prlimit` limits, inside the strongest isolation this host offers (`isolation`), with a
hard wall-clock limit; `remove_tree` deletes the folder afterwards. See
`kwslab.course.autograde` for the whole flow and the threat model.

Source: Linux unshare(1), setpriv(1), prlimit(1); pytest junitxml.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .student_release import strip_solutions

NOBODY = 65534
MAX_STUDENT_FILE_BYTES = 1_000_000
MAX_OUTPUT_CHARS = 4000
PLUGIN = "kwslab_grader_plugin"
PYTEST_INI = """[pytest]
markers =
    graded: a graded student test
    slow: slow test
    tflm: runs the TFLite Micro interpreter
"""


def _child_env(sandbox: Path, extra: dict[str, str]) -> dict[str, str]:
    tmp = sandbox / "tmp"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp),
           "TMPDIR": str(tmp), "MPLCONFIGDIR": str(tmp), "LANG": "C.UTF-8",
           "PYTHONPATH": f"{sandbox / 'src'}{os.pathsep}{sandbox / '_grader'}",
           "PYTHONDONTWRITEBYTECODE": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # needed on some CPUs here
        if key in os.environ:
            env[key] = os.environ[key]
    env.update(extra)
    return env


@lru_cache(maxsize=None)
def isolation() -> tuple[tuple[str, ...], str]:
    """(command prefix, description) of the strongest isolation that works on this host."""
    candidates = []
    if os.geteuid() == 0 and shutil.which("unshare") and shutil.which("setpriv"):
        candidates.append((("unshare", "--net", "--pid", "--fork", "--kill-child", "setpriv",
                            f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--"),
                           f"unshare net+pid namespaces, uid {NOBODY}"))
    if shutil.which("unshare"):
        candidates.append((("unshare", "--user", "--map-root-user", "--net", "--pid", "--fork",
                            "--kill-child", "--"), "unshare user+net+pid namespaces"))
    if shutil.which("bwrap"):
        candidates.append((("bwrap", "--dev-bind", "/", "/", "--unshare-net", "--unshare-pid",
                            "--die-with-parent", "--"), "bwrap net+pid namespaces"))
    for prefix, what in candidates:
        probe = subprocess.run([*prefix, sys.executable, "-c", "import socket, sys; "
                                "s = socket.socket(); s.settimeout(1); "
                                "sys.exit(0 if s.connect_ex(('127.0.0.1', 9)) else 1)"],
                               capture_output=True, timeout=60)
        if probe.returncode == 0:
            return prefix, what
    return (), "no namespace available: sockets blocked by the pytest plugin (weak)"


def _as_sandbox_user(path: Path) -> None:
    if os.geteuid() == 0 and isolation()[1].endswith(f"uid {NOBODY}"):
        os.chown(path, NOBODY, NOBODY)


def _copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, symlinks=False, ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc", "*.egg-info", ".pytest_cache"))


def _read_only(root: Path) -> None:
    for path in [root, *root.rglob("*")]:
        path.chmod(0o555 if path.is_dir() else 0o444)


def build_sandbox(repo: Path, submission: Path, sandbox: Path, editable: list[str]
                  ) -> list[str]:
    """Fill sandbox from the instructor repo and the submission's editable files.

    Returns:
        notes on the submission's files (missing, symlink, too large).
    """
    notes = []
    sandbox.chmod(0o755)
    _copy_tree(repo / "src", sandbox / "src")
    graded_dir = sandbox / "tests" / "graded"
    graded_dir.mkdir(parents=True)
    if (repo / "tests" / "conftest.py").is_file():  # shared fixtures (instructor's copy)
        shutil.copy(repo / "tests" / "conftest.py", sandbox / "tests" / "conftest.py")
    for path in sorted((repo / "tests" / "graded").glob("*.py")):
        shutil.copy(path, graded_dir / path.name)
    for rel in editable:
        target, given = sandbox / rel, submission / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        problem = None
        if given.is_symlink():
            problem = "is a symbolic link"
        elif not given.is_file():
            problem = "is missing"
        elif given.stat().st_size > MAX_STUDENT_FILE_BYTES:
            problem = f"is larger than {MAX_STUDENT_FILE_BYTES} bytes"
        if problem:
            notes.append(f"{rel} {problem}: graded as the unfilled stub")
            stub, _ = strip_solutions((repo / rel).read_text(encoding="utf-8"), rel)
            target.write_text(stub, encoding="utf-8")
        else:
            target.write_bytes(given.read_bytes())
    grader = sandbox / "_grader"
    grader.mkdir()
    shutil.copy(Path(__file__).with_name("pytest_plugin.py"), grader / f"{PLUGIN}.py")
    (grader / "pytest.ini").write_text(PYTEST_INI)
    for part in ("src", "tests", "_grader"):
        _read_only(sandbox / part)
    for part in ("out", "tmp"):
        (sandbox / part).mkdir()
        _as_sandbox_user(sandbox / part)
    (sandbox / "log").mkdir(mode=0o700)
    return notes


def remove_tree(path: Path) -> None:
    def make_writable(func, p, exc):
        os.chmod(os.path.dirname(p), 0o755)
        os.chmod(p, 0o755)
        func(p)
    shutil.rmtree(path, onerror=make_writable)


# ---------------------------------------------------------------- running pytest
@dataclass
class Run:
    junit: Path
    returncode: int | None
    timed_out: bool
    log_tail: str


def run_pytest(sandbox: Path, files: list[str], tag: str, timeout_s: float,
               test_timeout_s: int, memory_mb: int, extra_env: dict | None = None,
               collect: Path | None = None) -> Run:
    """Run pytest on files inside sandbox under the limits; never raises on student code."""
    prefix, mode = isolation()
    junit = sandbox / "out" / f"junit-{tag}.xml"
    env = _child_env(sandbox, {"KWSLAB_GRADER_TEST_TIMEOUT_S": str(test_timeout_s),
                               **(extra_env or {})})
    if not prefix:
        env["KWSLAB_GRADER_BLOCK_NETWORK"] = "1"
    limits = ["prlimit", f"--as={memory_mb * 2**20}", f"--fsize={256 * 2**20}", "--core=0",
              "--nproc=2000", "--"] if shutil.which("prlimit") else []
    cmd = [*limits, *prefix, sys.executable, "-m", "pytest", *files,
           "-c", str(sandbox / "_grader" / "pytest.ini"), "--rootdir", str(sandbox),
           "-p", PLUGIN, "-p", "no:cacheprovider", "--junitxml", str(junit),
           "-o", "junit_family=xunit2", "--basetemp", str(sandbox / "tmp" / "pytest"),
           "-q", "--tb=short", "--color=no", "-W", "ignore::DeprecationWarning"]
    if collect is not None:
        cmd += ["--collect-only"]
        env["KWSLAB_GRADER_COLLECT"] = str(collect)
    log_path = sandbox / "log" / f"{tag}.txt"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=sandbox, env=env, stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        timed_out = False
        try:
            proc.wait(timeout=max(timeout_s, 1))
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # also any stray children
            except ProcessLookupError:
                pass
            proc.wait()
    with open(log_path, "rb") as log:
        log.seek(max(0, log_path.stat().st_size - MAX_OUTPUT_CHARS))
        tail = log.read().decode("utf-8", errors="replace")
    return Run(junit, None if timed_out else proc.returncode, timed_out, tail)


