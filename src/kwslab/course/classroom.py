"""GitHub Classroom autograding workflow for the student release.

`kwslab course release OUT/ --classroom` writes `.github/workflows/classroom.yml` into the
release: one `education/autograding-command-grader` step per *public* graded test (the tests
left in the release's `tests/graded/`), each running that one test with pytest and worth the
test's `@pytest.mark.graded(points=N)`, then `education/autograding-grading-reporter`, which
sums the steps' results into the Classroom grade. Extra-credit tests are left out (Classroom
adds every step's `max-score` to the maximum).

What it can and cannot protect: the workflow runs in the student's own repository on code the
student controls (they can edit the tests, the workflow, or the grading command), and only
the public tests exist there. Its score is feedback and a progress signal; the grade that
counts comes from `kwslab course grade` (or the Gradescope bundle) with the hidden tests.

The test list comes from a pytest collection run over the released tree in a child process,
so it holds exactly what the students get: node ids and points of tests that exist there.

Source: GitHub Classroom autograding actions (education/autograding-command-grader,
education/autograding-grading-reporter, README "Usage"); GitHub Actions workflow syntax
(`jobs.<id>.steps[*].id`, `with`, `env`).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from kwslab import course as _course

WORKFLOW = ".github/workflows/classroom.yml"
COMMAND_GRADER = "education/autograding-command-grader@v1"
REPORTER = "education/autograding-grading-reporter@v1"
TEST_TIMEOUT_MIN = 10
"""Per-test limit, minutes (the command grader's `timeout` input)."""
SETUP = ("python -m pip install --quiet --upgrade pip && "
         "python -m pip install --quiet torch --index-url https://download.pytorch.org/whl/cpu && "
         "python -m pip install --quiet numpy pytest && "
         "python -m pip install --quiet --no-deps -e .")
"""What the graded tests need (torch CPU, numpy, pytest, the package without its heavy
dependencies): installed once, before the graded steps."""

_COLLECT_PLUGIN = '''\
import json, os


def pytest_collection_finish(session):
    rows = []
    for item in session.items:
        m = item.get_closest_marker("graded")
        if m is None:
            continue
        rows.append({"nodeid": item.nodeid,
                     "points": m.kwargs.get("points", m.args[0] if m.args else 1),
                     "extra_credit": bool(m.kwargs.get("extra_credit", False))})
    with open(os.environ["KWSLAB_CLASSROOM_COLLECT"], "w") as f:
        json.dump(rows, f)
'''


class ClassroomError(_course.ReleaseError):
    """The public graded tests of a released tree could not be listed."""


@dataclass(frozen=True)
class PublicTest:
    """One graded test of the released tree."""
    nodeid: str
    points: float
    extra_credit: bool = False


def public_graded_tests(tree: Path, timeout_s: float = 300) -> list[PublicTest]:
    """The graded tests of `tree/tests/graded` with their points, by pytest collection.

    Args:
        tree: a student release (its `tests/graded/` holds the public tests only).
        timeout_s: limit for the collection run.
    Returns:
        tests in collection order.
    Raises:
        ClassroomError: if collection fails or finds no graded test.
    """
    tree = Path(tree).resolve()
    with tempfile.TemporaryDirectory(prefix="kwslab-classroom-") as tmp:
        (Path(tmp) / "kwslab_classroom_collect.py").write_text(_COLLECT_PLUGIN)
        listing = Path(tmp) / "tests.json"
        env = {**os.environ, "KWSLAB_CLASSROOM_COLLECT": str(listing),
               "PYTHONPATH": os.pathsep.join([str(tree / "src"), tmp]),
               "PYTHONDONTWRITEBYTECODE": "1"}
        run = subprocess.run([sys.executable, "-m", "pytest", "tests/graded", "--collect-only",
                              "-q", "-p", "kwslab_classroom_collect", "-p", "no:cacheprovider"],
                             cwd=tree, env=env, capture_output=True, text=True,
                             timeout=timeout_s)
        if run.returncode != 0 or not listing.is_file():
            raise ClassroomError(f"collecting {tree}/tests/graded failed (exit "
                                 f"{run.returncode}):\n{(run.stdout + run.stderr)[-3000:]}")
        rows = json.loads(listing.read_text())
    if not rows:
        raise ClassroomError(f"no test in {tree}/tests/graded is marked "
                             "@pytest.mark.graded(points=N)")
    return [PublicTest(r["nodeid"], float(r["points"]), r["extra_credit"]) for r in rows]


def _step_id(i: int) -> str:
    return f"test{i:03d}"


def workflow(tests: list[PublicTest], python_version: str = "3.11") -> dict:
    """The workflow as a dict (see `workflow_yaml`)."""
    graded = [t for t in tests if not t.extra_credit]
    steps: list[dict] = [
        {"name": "Checkout code", "uses": "actions/checkout@v4"},
        {"name": "Set up Python", "uses": "actions/setup-python@v5",
         "with": {"python-version": python_version}},
        {"name": "Install the graded tests' dependencies", "run": SETUP},
    ]
    ids = []
    for i, t in enumerate(graded, 1):
        step_id = _step_id(i)
        ids.append(step_id)
        steps.append({"name": t.nodeid, "id": step_id, "uses": COMMAND_GRADER, "with": {
            "test-name": t.nodeid, "setup-command": "",
            "command": f'python -m pytest -q -p no:cacheprovider "{t.nodeid}"',
            "timeout": TEST_TIMEOUT_MIN, "max-score": int(t.points) if t.points.is_integer()
            else t.points}})
    steps.append({"name": "Autograding Reporter", "uses": REPORTER,
                  "env": {f"{i.upper()}_RESULTS": f"${{{{steps.{i}.outputs.result}}}}"
                          for i in ids},
                  "with": {"runners": ",".join(ids)}})
    return {"name": "Autograding Tests", "on": ["push", "repository_dispatch"],
            "permissions": {"checks": "write", "actions": "read", "contents": "read"},
            "jobs": {"run-autograding-tests": {
                "runs-on": "ubuntu-latest",
                "if": "github.actor != 'github-classroom[bot]'",
                "steps": steps}}}


def workflow_yaml(tests: list[PublicTest], python_version: str = "3.11") -> str:
    """`.github/workflows/classroom.yml` text: one graded step per public graded test."""
    import yaml

    head = ("# GitHub Classroom autograding: the PUBLIC graded tests only, points per test.\n"
            "# It runs in the student's repository on code the student controls: a progress\n"
            "# signal, not the grade. Generated by `kwslab course release --classroom`.\n")
    return head + yaml.safe_dump(workflow(tests, python_version), sort_keys=False, width=100)


def write_workflow(tree: Path, python_version: str = "3.11") -> Path:
    """Write the Classroom workflow into a released tree; returns its path."""
    tree = Path(tree)
    path = tree / WORKFLOW
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(workflow_yaml(public_graded_tests(tree), python_version))
    return path


def add_to_release(repo: Path, release_dir: Path, python_version: str = "3.11") -> Path:
    """Write the workflow into a release of `repo`, then check it names no hidden test.

    Raises:
        ClassroomError: if collection fails.
        ReleaseError: if the workflow holds a marker or the name of a hidden test.
    """
    path = write_workflow(release_dir, python_version)
    hidden = []
    for test_file in sorted((Path(repo) / "tests" / "graded").glob("*.py")):
        hidden += _course.hidden_test_names(test_file.read_text(), str(test_file))
    text = path.read_text()
    leaks = _course.find_leaks(path.parent, hidden) + [
        f"{WORKFLOW}: hidden test '{name}'" for name in hidden
        if re.search(rf"\b{re.escape(name)}\b", text)]
    if leaks:
        path.unlink()
        raise _course.ReleaseError(f"{path} would leak:\n  " + "\n  ".join(leaks))
    return path
