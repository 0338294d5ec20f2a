"""The sandbox a student worker runs in: its files, its namespaces, its uid and its limits.

Modes (``kwslab course grade --sandbox MODE``); the grader refuses to start in a mode that
this host cannot provide, and uses a weaker one only when it is asked for by name:

- ``strict`` (default; needs root, bubblewrap, setpriv and the memory + pids cgroup
  controllers, v2 or v1): bubblewrap gives the worker new mount, pid, network, ipc and uts
  namespaces. Its filesystem holds only the interpreter and its packages (read-only; an
  installed copy of the package under test is hidden), ``/usr`` (read-only), the
  submission's own code folder (read-only), a private ``/proc``, a minimal ``/dev``, and
  private size-limited tmpfs at ``/tmp``, ``/var/tmp`` and ``/dev/shm``. It never sees the
  instructor's repository, other submissions or the grader's output. Inside, ``setpriv``
  drops to a uid no other sandbox uses (no capabilities, no new privileges). A cgroup per
  submission caps memory (swap included where the kernel counts it) and process count for
  the worker and all its children; ``prlimit`` adds address space, file size, open files,
  no core dumps.
- ``userns`` (for a non-root instructor): the same bubblewrap filesystem and namespaces in
  a user namespace, as the instructor's own uid. The process limit (``prlimit --nproc``,
  set inside the new user namespace) counts the sandbox's own processes only, children
  included (Linux >= 5.14 counts it per user namespace). Not protected: no per-sandbox uid
  (a kernel or bubblewrap escape has the instructor's rights) and no cgroup, so memory is
  limited per process (``prlimit --as``), not for all of a submission's processes together.
  Needs unprivileged user namespaces (``user.max_user_namespaces`` > 0, and Debian's
  ``kernel.unprivileged_userns_clone`` or Ubuntu's AppArmor restriction not blocking them).
- ``none``: a plain child process with ``prlimit`` limits. Not protected: the student code
  can read and write everything the grader's user can (the instructor's repository, hidden
  tests, solutions, other submissions, the output) and use the network, and it has no
  process limit. Scores are still decided outside the student's process, but a submission
  can read the answers. Only for debugging the grader with trusted code.

Source: bubblewrap(1) (Debian ``bubblewrap``), setpriv(1), prlimit(1); Linux cgroup v2
``memory.max``/``pids.max`` and cgroup v1 ``memory.limit_in_bytes``/``pids.max``;
Gradescope's advice to run student code as a separate non-root user.
"""
from __future__ import annotations

import itertools
import logging
import os
import shutil
import site
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .student_release import strip_solutions

log = logging.getLogger(__name__)

MODES = ("strict", "userns", "none")
NOT_PROTECTED = {
    "strict": "",
    "userns": "no per-sandbox uid (the worker runs as your own uid in its namespaces: a "
              "kernel or bubblewrap escape has your rights) and no cgroup: memory is "
              "limited per process (address space), not for all of a submission's processes "
              "together",
    "none": "no isolation at all: student code can read and change everything your user "
            "can (this repository with solutions and hidden tests, other submissions, the "
            "grade files), reach the network, and start processes without limit",
}
SANDBOX_CODE = "/sandbox/src"
MAX_STUDENT_FILE_BYTES = 1_000_000
UID_BASE = 1_000_000
CGROUP_ROOT = Path("/sys/fs/cgroup")
_uids = itertools.count()
_uid_lock = threading.Lock()


class SandboxUnavailable(RuntimeError):
    """The requested sandbox mode cannot run on this host (the message says why)."""


@dataclass(frozen=True)
class Limits:
    """Per-submission limits."""
    memory_mb: int = 4096
    """memory of the worker and its children (cgroup); also the address-space limit."""
    processes: int = 64
    tmp_mb: int = 256
    """size of each private tmpfs (/tmp, /var/tmp, /dev/shm)."""
    file_mb: int = 64


# ---------------------------------------------------------------- what the sandbox mounts
def python_dirs() -> list[str]:
    """Interpreter prefixes and package folders the worker needs (mounted read-only)."""
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
            os.path.dirname(os.path.realpath(sys.executable))}
    for d in [*site.getsitepackages(), *sys.path]:
        if d and os.path.basename(d) in ("site-packages", "dist-packages") and os.path.isdir(d):
            dirs.add(d)
    dirs = sorted(os.path.realpath(d) for d in dirs if os.path.isdir(d))
    return [d for d in dirs if not d.startswith("/usr/") and d != "/usr"
            and not any(d != p and d.startswith(p.rstrip("/") + "/") for p in dirs)]


def hidden_installs(packages: list[str]) -> list[str]:
    """Installed copies of the package under test (e.g. a non-editable install holding the
    solutions): the sandbox covers each with an empty tmpfs."""
    found = []
    for d in [*site.getsitepackages(), *sys.path]:
        if d and os.path.basename(d) in ("site-packages", "dist-packages"):
            for p in packages:
                path = os.path.join(d, p)
                if os.path.isdir(path) and not os.path.islink(path):
                    found.append(os.path.realpath(path))
    return sorted(set(found))


def _parents(path: str) -> list[str]:
    parts = Path(path).parts[1:-1]
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def bwrap_args(code_dir: Path, packages: list[str], limits: Limits) -> list[str]:
    args = ["bwrap", "--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts",
            "--unshare-cgroup-try", "--die-with-parent", "--new-session",
            "--ro-bind", "/usr", "/usr"]
    for link in ("bin", "lib", "lib32", "lib64", "libx32", "sbin"):
        target = os.path.join("/", link)
        if os.path.islink(target):
            args += ["--symlink", os.readlink(target), target]
        elif os.path.isdir(target):
            args += ["--ro-bind", target, target]
    args += ["--ro-bind-try", "/etc/ld.so.cache", "/etc/ld.so.cache"]
    made = {"/usr"}
    for d in [*python_dirs(), SANDBOX_CODE]:
        for parent in _parents(d + "/x"):
            if parent not in made and not parent.startswith("/usr/") and parent != "/usr":
                args += ["--perms", "0755", "--dir", parent]
                made.add(parent)
    for d in python_dirs():
        args += ["--ro-bind", d, d]
    for d in hidden_installs(packages):
        args += ["--tmpfs", d]
    args += ["--ro-bind", str(code_dir), SANDBOX_CODE, "--proc", "/proc", "--dev", "/dev"]
    size = str(limits.tmp_mb * 2**20)
    for tmp in ("/tmp", "/var/tmp", "/dev/shm"):
        args += ["--perms", "1777", "--size", size, "--tmpfs", tmp]
    return args + ["--chdir", "/tmp"]


# ---------------------------------------------------------------- cgroups
class Cgroup:
    """A memory + pids cgroup (v2, else v1) for one submission's workers.

    Args:
        name: unique name (the grader's pid first: see remove_stale).
        limits: memory_mb and processes are written to the cgroup.
        root: the cgroup filesystem (tests pass a fake folder).
    Attributes:
        kind: what is enforced, e.g. "cgroup v1 (memory + swap, pids)".
    Raises:
        SandboxUnavailable: if the cgroup cannot be made (no controller, not root).
    """

    def __init__(self, name: str, limits: Limits, root: Path = CGROUP_ROOT):
        self.dirs: list[Path] = []
        self.procs: list[Path] = []
        memory = limits.memory_mb * 2**20
        root = Path(root)
        try:
            v2 = root / "cgroup.controllers"
            if v2.is_file() and {"memory", "pids"} <= set(v2.read_text().split()):
                base = root / "kwslab-grader"
                base.mkdir(exist_ok=True)
                for ctl in (root / "cgroup.subtree_control", base / "cgroup.subtree_control"):
                    ctl.write_text("+memory +pids")
                d = base / name
                d.mkdir()
                self.dirs.append(d)
                (d / "memory.max").write_text(str(memory))
                swap = (d / "memory.swap.max").exists()
                if swap:
                    (d / "memory.swap.max").write_text("0")
                (d / "pids.max").write_text(str(limits.processes))
                self.procs.append(d / "cgroup.procs")
                self.kind = f"cgroup v2 (memory{'' if swap else ', swap not counted'}, pids)"
            else:
                swap = False
                for ctl, values in (("memory", {"memory.limit_in_bytes": memory,
                                                "memory.memsw.limit_in_bytes": memory}),
                                    ("pids", {"pids.max": limits.processes})):
                    ctl_root = root / ctl
                    if not (ctl_root / "cgroup.procs").is_file():
                        raise OSError(f"no {ctl} cgroup controller at {ctl_root}")
                    d = ctl_root / f"kwslab-grader-{name}"
                    d.mkdir()
                    self.dirs.append(d)
                    for key, value in values.items():
                        if key == "memory.memsw.limit_in_bytes":
                            if not (d / key).exists():
                                continue  # no swap accounting in this kernel
                            swap = True
                        (d / key).write_text(str(value))
                    self.procs.append(d / "cgroup.procs")
                self.kind = ("cgroup v1 (memory + swap, pids)" if swap else
                             "cgroup v1 (memory, swap not counted, pids)")
        except OSError as e:
            self.remove()
            raise SandboxUnavailable(f"cannot make a memory + pids cgroup: {e}") from None

    def remove(self) -> None:
        """Kill what is left in the cgroup and remove it; logs, never raises."""
        for d in reversed(self.dirs):
            for attempt in range(50):
                try:
                    for pid in (d / "cgroup.procs").read_text().split():
                        try:
                            os.kill(int(pid), 9)
                        except ProcessLookupError:
                            pass
                    d.rmdir()
                    break
                except OSError as e:
                    if attempt == 49:
                        log.warning("could not remove cgroup %s: %s", d, e)
                    else:
                        threading.Event().wait(0.1)
        self.dirs = []


def remove_stale_cgroups(root: Path = CGROUP_ROOT, min_age_s: float = 3600) -> list[Path]:
    """Remove the empty cgroups a grader left behind when it was killed: their names start
    with its pid, no such process is running, and they are older than min_age_s (a grader
    in another pid namespace may share the cgroup tree). Returns the folders removed; never
    raises."""
    removed = []
    root = Path(root)
    for folder in (root / "kwslab-grader", root / "memory", root / "pids"):
        try:
            entries = list(folder.iterdir())
        except OSError:
            continue
        for d in entries:
            name = d.name.removeprefix("kwslab-grader-")
            pid = name.split("-")[0]
            if not d.is_dir() or not pid.isdigit() or \
                    (folder.name != "kwslab-grader" and name == d.name):
                continue
            try:
                if time.time() - d.stat().st_mtime < min_age_s:
                    continue
                os.kill(int(pid), 0)
                continue  # that grader is still running
            except ProcessLookupError:
                pass
            except OSError:
                continue
            try:
                d.rmdir()
                removed.append(d)
            except OSError:
                pass
    return removed


_JOIN = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 97; shift; ' \
        'n=$((n-1)); done; exec "$@"'


def allocate_uid() -> int:
    """A uid no other sandbox of this or another concurrent grading run is using."""
    with _uid_lock:
        n = next(_uids)
    return UID_BASE + (os.getpid() % 40_000) * 100 + n % 100


def worker_command(mode: str, code_dir: Path, packages: list[str], limits: Limits,
                   uid: int | None = None, cgroup: Cgroup | None = None) -> list[str]:
    """The command that starts ``python -m kwslab.course.worker`` in the sandbox."""
    python = [sys.executable, "-s", "-B", "-m", "kwslab.course.worker"]
    rlimits = ["prlimit", f"--as={max(limits.memory_mb, 1024) * 2**20}",
               f"--fsize={limits.file_mb * 2**20}", "--core=0", "--nofile=256", "--"]
    nproc = ["prlimit", f"--nproc={limits.processes}", "--"]
    if mode == "none":  # RLIMIT_NPROC here would count all of the user's processes
        return [*rlimits, *python]
    cmd = bwrap_args(code_dir, packages, limits)
    if mode == "userns":  # set inside the new user namespace, it counts the sandbox only
        return [*rlimits, *cmd[:1], "--unshare-user", *cmd[1:], "--", *nproc, *python]
    rlimits[-1:-1] = nproc[1:2]  # strict: the uid is the sandbox's own
    drop = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    join = ["sh", "-c", _JOIN, "sh", str(len(cgroup.procs)), *map(str, cgroup.procs)]
    return [*join, *rlimits, *cmd, "--", *drop, *python]


def worker_env(mode: str, code_dir: Path) -> dict[str, str]:
    tmp = "/tmp" if mode != "none" else str(code_dir.parent / "tmp")
    env = {"PATH": "/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp, "MPLCONFIGDIR": tmp,
           "LANG": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
           "PYTHONPATH": SANDBOX_CODE if mode != "none" else str(code_dir),
           "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    for key in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):  # needed on some CPUs
        if key in os.environ:
            env[key] = os.environ[key]
    return env


def _probe(cmd: list[str]) -> str:
    """'' if cmd runs, else its error output."""
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return str(e)
    return "" if proc.returncode == 0 else \
        (proc.stderr or proc.stdout).decode("utf-8", "replace").strip()[-500:] or \
        f"exit code {proc.returncode}"


def userns_blocked() -> str:
    """Why this host refuses unprivileged user namespaces ('' when they may work)."""
    for path, bad in (("/proc/sys/user/max_user_namespaces", "0"),
                      ("/proc/sys/kernel/unprivileged_userns_clone", "0"),
                      ("/proc/sys/kernel/apparmor_restrict_unprivileged_userns", "1")):
        try:
            if Path(path).read_text().strip() == bad:
                return f"{path} is {bad}"
        except OSError:
            pass
    return ""


@lru_cache(maxsize=None)
def check_mode(mode: str) -> str:
    """A one-line description of `mode` on this host; SandboxUnavailable if it cannot run."""
    if mode not in MODES:
        raise SandboxUnavailable(f"unknown sandbox mode {mode!r}; choose from {MODES}")
    missing = [tool for tool in ("prlimit", *(("bwrap",) if mode != "none" else ()),
                                 *(("setpriv",) if mode == "strict" else ()))
               if shutil.which(tool) is None]
    if missing:
        raise SandboxUnavailable(f"sandbox mode {mode!r} needs {', '.join(missing)} "
                                 "(Debian: apt-get install bubblewrap util-linux)")
    kind = ""
    if mode == "strict":
        if os.geteuid() != 0:
            raise SandboxUnavailable(
                "sandbox mode 'strict' needs root (a uid per sandbox and a cgroup per "
                "submission); as a non-root user pass --sandbox userns, which does not "
                f"protect against this: {NOT_PROTECTED['userns']}")
        error = _probe(["bwrap", "--unshare-pid", "--unshare-net", "--ro-bind", "/", "/",
                        "--proc", "/proc", "--", "true"])
        if error:
            raise SandboxUnavailable(f"bubblewrap cannot make namespaces here: {error}")
        remove_stale_cgroups()
        probe = Cgroup(f"{os.getpid()}-probe", Limits())
        kind = probe.kind
        probe.remove()
    elif mode == "userns":
        error = _probe(["bwrap", "--unshare-user", "--unshare-pid", "--unshare-net",
                        "--ro-bind", "/", "/", "--proc", "/proc", "--", "true"])
        if error:
            why = userns_blocked()
            raise SandboxUnavailable(
                f"sandbox mode 'userns' cannot make a user namespace here ({why or error}); "
                "allow unprivileged user namespaces, grade as root (strict), or pass "
                f"--sandbox none, which does not protect against this: {NOT_PROTECTED['none']}")
    return {"strict": f"strict: bubblewrap namespaces, uid per sandbox, {kind} limits per "
                      "submission",
            "userns": "userns: bubblewrap namespaces as your own uid, process limit per "
                      f"sandbox, memory per process (not protected: {NOT_PROTECTED['userns']})",
            "none": f"none (not protected: {NOT_PROTECTED['none']})"}[mode]


# ---------------------------------------------------------------- the submission's code
def read_submission_file(submission: Path, rel: str) -> tuple[bytes | None, str]:
    """(bytes, "") of submission/rel, or (None, problem). Never follows a symbolic link at
    any level, refuses hard links and files over MAX_STUDENT_FILE_BYTES."""
    parts = Path(rel).parts
    fds = []
    try:
        try:
            fds.append(os.open(submission, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW))
        except OSError as e:
            return None, f"submission folder cannot be opened ({e.strerror})"
        for part in parts[:-1]:
            try:
                fds.append(os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW,
                                   dir_fd=fds[-1]))
            except OSError as e:
                return None, ("is inside a symbolic link or missing folder"
                              if e.errno in (20, 40, 2) else f"cannot be read ({e.strerror})")
        try:
            fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK,
                         dir_fd=fds[-1])
        except OSError as e:
            return None, {2: "is missing", 40: "is a symbolic link"}.get(
                e.errno, f"cannot be read ({e.strerror})")
        fds.append(fd)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None, "is not a regular file"
        if st.st_nlink > 1:
            return None, "is a hard link"
        if st.st_size > MAX_STUDENT_FILE_BYTES:
            return None, f"is larger than {MAX_STUDENT_FILE_BYTES} bytes"
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(MAX_STUDENT_FILE_BYTES + 1)
        if len(data) > MAX_STUDENT_FILE_BYTES:
            return None, f"is larger than {MAX_STUDENT_FILE_BYTES} bytes"
        return data, ""
    finally:
        for fd in fds:
            os.close(fd)


def build_code(repo: Path, submission: Path, dest: Path, editable: list[str],
               package_files: list[str]) -> list[str]:
    """Fill dest with the package as the student has it: the instructor's released package
    files (package_files, relative to repo/src) and the submission's editable files (regular
    files only; any problem -> the unfilled stub). Returns notes on the submission's files."""
    notes = []
    for rel in package_files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(repo / "src" / rel, target)
    for rel in editable:
        target = dest / Path(rel).relative_to("src")
        target.parent.mkdir(parents=True, exist_ok=True)
        data, problem = read_submission_file(submission, rel)
        if data is None:
            notes.append(f"{rel} {problem}: graded as the unfilled stub")
            stub, _ = strip_solutions((repo / rel).read_text(encoding="utf-8"), rel)
            data = stub.encode("utf-8")
        target.write_bytes(data)
    for path in [dest, *dest.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    return notes


def remove_tree(path: Path) -> None:
    """Delete path without following links; logs and goes on on any error, never raises."""
    def report(func, p, exc):
        log.warning("cleanup: could not remove %s: %s", p, exc)
    try:
        shutil.rmtree(path, onexc=report) if sys.version_info >= (3, 12) else \
            shutil.rmtree(path, onerror=lambda f, p, e: report(f, p, e[1]))
    except Exception as e:  # noqa: BLE001 - cleanup must never stop the batch
        log.warning("cleanup of %s failed: %s", path, e)
