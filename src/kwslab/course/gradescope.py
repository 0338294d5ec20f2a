"""Gradescope autograder bundle: the same grader as `kwslab course grade`, one submission.

`kwslab course gradescope OUT.zip` writes a zip to upload as a Gradescope "autograder":

- `setup.sh` (run once as root when Gradescope builds the image): installs the pinned
  dependencies (torch from the CPU wheel index), `bubblewrap` and `util-linux` for the
  sandbox, and makes `/autograder/source` readable by root only. The package is NOT
  pip-installed: an installed (editable) package would put the instructor's code on every
  process's `sys.path`, the sandboxed student's included; the grader gets it through
  `PYTHONPATH` instead.
- `run_autograder` (run as root for every submission): `python -m kwslab.course.gradescope
  run`, which maps the submission's files onto the student-editable files, grades them with
  `kwslab.course.autograde` (the same sandbox, limits and graded suite, hidden tests included) and
  writes `/autograder/results/results.json` in Gradescope's format.
- the instructor repository's `src/`, `tests/graded/`, `tests/conftest.py`,
  `pyproject.toml`, `requirements.txt`: what the grader reads.

Isolation in the container: the grader runs as root; student code runs in the grader's
sandbox as another, unprivileged uid, so `/autograder/source` (mode 0700, root) and
`/autograder/results` (root, 0755) are out of its reach. `run_autograder` writes
`results.json` last, by an atomic rename of a file it wrote itself. Gradescope gives each
submission its own container, so classmates are out of reach anyway.

A submission may be the repository layout (`src/kwslab/quantize.py`) or the bare files
uploaded at the top (`quantize.py`); a file found nowhere, a symbolic link or a file over
1 MB is graded as the unfilled stub (the grader's own rule).

For tests, `KWSLAB_AUTOGRADER_ROOT` replaces `/autograder` and `KWSLAB_PYTHON` the
interpreter.

Source: Gradescope "Autograder Specifications" (setup.sh, run_autograder, /autograder layout,
results.json fields) and "Best practices" (run student code as a non-root user).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import stat
import sys
import tempfile
import time
import zipfile
from pathlib import Path

from kwslab import course as _course

ROOT_ENV = "KWSLAB_AUTOGRADER_ROOT"
PYTHON_ENV = "KWSLAB_PYTHON"
BUNDLE_TOP = ("pyproject.toml", "requirements.txt", "tests/conftest.py",
              "course/solution_only.txt")
BUNDLE_DIRS = ("src/", "tests/graded/")
MAX_STUDENT_FILE_BYTES = 1_000_000

SETUP_SH = """\
#!/usr/bin/env bash
# Gradescope image setup (runs once, as root, in /autograder/source). Base image: Ubuntu
# 24.04 (Python 3.12; the pinned requirements need Python >= 3.11).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq python3 python3-pip python3-venv bubblewrap util-linux >/dev/null
python3 -m venv /opt/kwslab-venv
PIP="/opt/kwslab-venv/bin/pip"
REQ=/autograder/source/requirements.txt
"$PIP" install -q --upgrade pip
# torch from the CPU index (the default index pulls a multi-GB CUDA build), then the rest
"$PIP" install -q "$(grep -E '^torch==' "$REQ")" --index-url https://download.pytorch.org/whl/cpu
grep -v -E '^(-e|#|torch==)' "$REQ" > /tmp/kwslab-requirements.txt
"$PIP" install -q -r /tmp/kwslab-requirements.txt
chmod 755 /opt/kwslab-venv
# the grader's files (solutions, hidden tests) are root's only
chmod -R go-rwx /autograder/source
"""

RUN_AUTOGRADER = """\
#!/usr/bin/env bash
# Gradescope entry point (runs as root for each submission). Env for tests:
# KWSLAB_AUTOGRADER_ROOT (default /autograder), KWSLAB_PYTHON (default the setup.sh venv).
# KWSLAB_SANDBOX: the grader's sandbox mode (strict; see course/README.md for weaker ones).
set -euo pipefail
ROOT="${KWSLAB_AUTOGRADER_ROOT:-/autograder}"
PY="${KWSLAB_PYTHON:-/opt/kwslab-venv/bin/python}"
SOURCE="$ROOT/source"
if [ "$(id -u)" = 0 ]; then chmod -R go-rwx "$SOURCE"; fi
cd "$SOURCE"
export PYTHONPATH="$SOURCE/src" PYTHONDONTWRITEBYTECODE=1
exec "$PY" -m kwslab.course.gradescope run --root "$ROOT" --sandbox "${KWSLAB_SANDBOX:-strict}"
"""


class BundleError(FileNotFoundError):
    """The bundle could not be built (missing repository files)."""


# ---------------------------------------------------------------- building the zip
def bundle_files(repo: Path) -> list[str]:
    """Relative paths of the repository files the autograder needs."""
    names = _course.repo_files(Path(repo), untracked=True)
    picked = [n for n in names if n in BUNDLE_TOP or n.startswith(BUNDLE_DIRS)]
    for need in ("pyproject.toml", "requirements.txt"):
        if need not in picked:
            raise BundleError(f"{Path(repo) / need} is missing: the autograder needs it")
    if not any(n.startswith("tests/graded/") for n in picked):
        raise BundleError(f"no graded tests in {Path(repo) / 'tests/graded'}")
    return sorted(picked)


def build_bundle(repo: Path, out_zip: Path) -> list[str]:
    """Write the Gradescope autograder zip.

    Args:
        repo: the instructor repository (solutions and hidden tests in place).
        out_zip: the zip to write (replaced if it exists).
    Returns:
        the names in the zip.
    Raises:
        BundleError: if the repository lacks what the grader needs.
    """
    repo, out_zip = Path(repo), Path(out_zip)
    files = bundle_files(repo)
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_zip.with_name(out_zip.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER)):
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | 0o755) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, text)
        for name in files:
            z.write(repo / name, name)
    tmp.replace(out_zip)
    return ["setup.sh", "run_autograder", *files]


def unpack_bundle(bundle: Path, dest: Path) -> None:
    """Unzip like Gradescope does, keeping the executable bits."""
    with zipfile.ZipFile(bundle) as z:
        for info in z.infolist():
            path = Path(z.extract(info, dest))
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                path.chmod(mode)


# ---------------------------------------------------------------- one submission
def _regular_file(path: Path) -> bytes | None:
    """The bytes of a regular file (no symlink anywhere below `root`), else None."""
    try:
        st = path.lstat()
    except OSError:
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_STUDENT_FILE_BYTES:
        return None
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        return f.read(MAX_STUDENT_FILE_BYTES + 1)


def _no_link_between(root: Path, path: Path) -> bool:
    here = root
    for part in path.relative_to(root).parts[:-1]:
        here = here / part
        if here.is_symlink() or not here.is_dir():
            return False
    return True


def map_submission(submission: Path, editable: list[str], dest: Path) -> list[str]:
    """Copy the submission's student files into `dest` at their repository paths.

    Each editable file `src/kwslab/x.py` is looked up as `src/kwslab/x.py`, then `x.py` at
    the top, then a single `x.py` anywhere below (symbolic links never followed). Files not
    found are left out (the grader grades them as the stub).

    Returns:
        notes, one per editable file, saying where it came from.
    """
    submission = Path(submission)
    notes = []
    for rel in editable:
        base = Path(rel).name
        candidates = [submission / rel, submission / base]
        found = [p for p in candidates if _no_link_between(submission, p)
                 and _regular_file(p) is not None]
        if not found:
            below = []
            for root, dirs, files in os.walk(submission):  # os.walk does not follow links
                if base in files:
                    below.append(Path(root) / base)
            found = [p for p in below if _regular_file(p) is not None]
            if len(found) > 1:
                notes.append(f"{rel}: {len(found)} files named {base} in the submission; "
                             "none used (graded as the stub)")
                continue
        if not found:
            notes.append(f"{rel}: not in the submission (graded as the stub)")
            continue
        data = _regular_file(found[0])
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        notes.append(f"{rel}: from {found[0].relative_to(submission).as_posix()}")
    return notes


def _write_results(results_dir: Path, payload: dict) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".results-", dir=results_dir)
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=1)
    os.chmod(tmp, 0o644)
    os.replace(tmp, results_dir / "results.json")


def run(root: Path, time_limit_s: float = 600, test_timeout_s: int = 60,
        memory_mb: int = 4096, mode: str = "strict") -> dict:
    """Grade `root/submission` against `root/source`; write `root/results/results.json`.

    Returns:
        the results.json payload.
    """
    from kwslab.course import autograde

    root = Path(root)
    source, results_dir = root / "source", root / "results"
    start = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="kwslab-gradescope-"))
    try:
        os.chmod(work, 0o700)
        editable = _course.student_files(source)
        student = work / "submissions" / "submission"
        student.mkdir(parents=True)
        notes = map_submission(root / "submission", editable, student)
        results = autograde.grade_all(source, work / "submissions", work / "grades", jobs=1,
                                      time_limit_s=time_limit_s, test_timeout_s=test_timeout_s,
                                      memory_mb=memory_mb, progress=False, mode=mode)
        written = sorted((work / "grades").rglob("results.json"))
        if len(written) != 1:
            raise RuntimeError(f"the grader wrote {len(written)} results.json files, not 1")
        payload = json.loads(written[0].read_text())
        payload["output"] = "\n".join(["Files graded:", *notes, "", payload.get("output", "")])
        payload["execution_time"] = round(time.monotonic() - start, 2)
        if results and results[0].status != "graded":
            payload["output"] = results[0].status + "\n" + payload["output"]
    except Exception as e:  # the autograder itself failed: say so, score nothing
        payload = {"score": 0, "execution_time": round(time.monotonic() - start, 2),
                   "output": f"The autograder failed ({type(e).__name__}: {e}); "
                             "contact the course staff.", "tests": []}
        _write_results(results_dir, payload)
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _write_results(results_dir, payload)
    return payload


# ---------------------------------------------------------------- command line
def add_arguments(p: argparse.ArgumentParser) -> None:
    """`kwslab course gradescope OUT.zip`."""
    p.add_argument("out", type=Path, help="the autograder zip to write")


def main(argv: list[str] | None = None) -> int:
    """`python -m kwslab.course.gradescope run [--root DIR]` (inside the container)."""
    parser = argparse.ArgumentParser(prog="python -m kwslab.course.gradescope")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="grade /autograder/submission")
    p.add_argument("--root", type=Path,
                   default=Path(os.environ.get(ROOT_ENV, "/autograder")))
    p.add_argument("--time-limit", type=float, default=600)
    p.add_argument("--test-timeout", type=int, default=60)
    p.add_argument("--memory-mb", type=int, default=4096)
    p.add_argument("--sandbox", default="strict", help="the grader's sandbox mode")
    args = parser.parse_args(argv)
    payload = run(args.root, args.time_limit, args.test_timeout, args.memory_mb, args.sandbox)
    print(f"score {payload['score']:g}; wrote {args.root / 'results' / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
