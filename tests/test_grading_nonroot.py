"""The autograder for an instructor without root, tried from a root run (CI runs as root).

`tests/test_grading_adversarial.py` run by a non-root user grades its attack classes in the
userns sandbox (the strict one needs root) and checks that strict is refused with a message
naming what userns does not protect. Here, as root, that file is re-run as an unprivileged
uid (`setpriv`, no capabilities), the way an instructor without root would run it: the
interpreter, its packages and this repository are visible to that uid (read-only), nothing
else of root's. A folder on the way that only root may enter (``/root`` holding pyenv, mode
0700) is replaced, for that run only, by an empty folder with just those paths bound into
it (bubblewrap, run as root, before dropping privileges).

Skipped, with the reason, when this machine cannot give an unprivileged user a user
namespace (a sysctl forbids it); under CI any other missing piece fails.
"""
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from kwslab.course import sandbox

REPO = Path(__file__).resolve().parents[1]
CI = bool(os.environ.get("CI"))
ROOT = os.geteuid() == 0 and sys.platform == "linux"


def _free_uid() -> int:
    for uid in range(61_000, 61_500):
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
    raise RuntimeError("no unused uid in 61000-61499")


def _needed_paths() -> list[str]:
    """The interpreter, its packages and this repository (outermost folders only)."""
    paths = {sys.prefix, sys.base_prefix, os.path.dirname(os.path.realpath(sys.executable)),
             str(REPO), *(p for p in sys.path if p and os.path.isdir(p))}
    paths = sorted(os.path.realpath(p) for p in paths)
    return [p for p in paths if not any(p != q and p.startswith(q.rstrip("/") + "/")
                                        for q in paths)]


def _closed_folders(paths: list[str]) -> dict[str, list[str]]:
    """{folder others cannot enter: [needed paths under it]} for the paths given."""
    closed: dict[str, list[str]] = {}
    for path in paths:
        parts = Path(path).parts
        for i in range(2, len(parts) + 1):
            folder = str(Path(*parts[:i]))
            if not os.stat(folder).st_mode & stat.S_IXOTH:
                closed.setdefault(folder, []).append(path)
                break
    return closed


def _as_user(uid: int, home: Path, command: list[str], env: dict[str, str]) -> list[str]:
    view = ["bwrap", "--dev-bind", "/", "/", "--die-with-parent"]
    for folder, paths in _closed_folders(_needed_paths()).items():
        view += ["--perms", "0755", "--tmpfs", folder]
        made = {folder}
        for path in paths:
            for parent in list(reversed(Path(path).parents)):
                if str(parent).startswith(folder + "/") and str(parent) not in made:
                    view += ["--perms", "0755", "--dir", str(parent)]
                    made.add(str(parent))
            view += ["--ro-bind", path, path]
    drop = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups",
            "--inh-caps=-all", "--bounding-set=-all", "--"]
    return [*view, "--", *drop, "env", "-i", *(f"{k}={v}" for k, v in env.items()), *command]


@pytest.mark.slow
@pytest.mark.skipif(not ROOT, reason="already not root: tests/test_grading_adversarial.py "
                                     "itself runs as this user, in the userns sandbox")
def test_adversarial_batch_as_an_unprivileged_instructor():
    missing = [t for t in ("bwrap", "setpriv", "prlimit") if shutil.which(t) is None]
    if missing:
        if CI:
            pytest.fail(f"CI needs {missing} (Debian: bubblewrap, util-linux)")
        pytest.skip(f"needs {missing}")
    blocked = sandbox.userns_blocked()
    if blocked:
        pytest.skip(f"this machine gives unprivileged users no user namespace ({blocked}): "
                    "a non-root instructor can only use --sandbox none here")
    uid = _free_uid()
    home = Path(tempfile.mkdtemp(prefix="kwslab-nonroot-"))
    try:
        os.chown(home, uid, uid)
        env = {"HOME": str(home), "TMPDIR": str(home), "USER": "kwslab-nonroot",
               "LOGNAME": "kwslab-nonroot", "PATH": f"{Path(sys.executable).parent}:"
               "/usr/local/bin:/usr/bin:/bin", "MPLBACKEND": "Agg", "OMP_NUM_THREADS": "1",
               "PYTHONDONTWRITEBYTECODE": "1", **({"CI": "1"} if CI else {})}
        probe = subprocess.run(_as_user(uid, home, ["bwrap", "--unshare-user", "--ro-bind",
                                                    "/", "/", "--", "true"], env),
                               capture_output=True, text=True, timeout=60)
        if probe.returncode != 0:
            message = f"an unprivileged uid cannot make a user namespace: {probe.stderr}"
            pytest.fail(message) if CI else pytest.skip(message)
        run = subprocess.run(
            _as_user(uid, home, [sys.executable, "-m", "pytest",
                                 str(REPO / "tests/test_grading_adversarial.py"), "-q",
                                 "-rs", "-p", "no:cacheprovider", "--basetemp",
                                 str(home / "pytest"), "-k",
                                 "not loop_that_ignores and not real_repository"], env),
            cwd=REPO, capture_output=True, text=True, timeout=900)
        tail = (run.stdout + run.stderr)[-4000:]
        assert run.returncode == 0, tail
        passed = int(re.search(r"(\d+) passed", tail).group(1))
        skipped = re.search(r"(\d+) skipped", tail)
        # each NONROOT case + grade files, crash, feedback, nothing changed, refusal, links
        assert passed >= 13 + 6, tail
        # only the two layout tests of the root batch are skipped
        assert skipped is not None and int(skipped.group(1)) == 2, tail
        assert "SKIPPED" in tail and "layout cases" in tail, tail
    finally:
        shutil.rmtree(home, ignore_errors=True)
