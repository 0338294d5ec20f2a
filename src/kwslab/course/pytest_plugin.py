"""pytest plugin loaded into every graded run (and the instructor's collection run).

The grader (`kwslab.course.sandbox`) copies this file into each sandbox as
`kwslab_grader_plugin.py` and loads it with `-p kwslab_grader_plugin`, so it works for any
package under test. It uses the standard library only. It does three things, each switched on
by an environment variable the grader sets:

- `KWSLAB_GRADER_COLLECT=<path>`: after collection, write one JSON record per test (node id,
  the junit `classname`/`name` pytest will report, file, line, `graded(points=N)`) to <path>.
- `KWSLAB_GRADER_TEST_TIMEOUT_S=<s>`: per-phase wall-clock limit with `signal.alarm`, for
  test setup/call/teardown and for importing each test module (a student module that loops
  at import fails that file's collection instead of hanging the run). The grader also kills
  the whole process group at its own hard deadline, since student code can swallow or reset
  the alarm.
- `KWSLAB_GRADER_BLOCK_NETWORK=1`: fallback when no network namespace is available: make
  `socket.socket` refuse to connect. Student code could undo this; it is a weak guard.

Source: pytest "Writing plugins" and hook reference (hookwrapper, pytest_collection_finish);
junit names follow `_pytest.junitxml.mangle_test_address`.
"""
import json
import os
import re
import signal
import socket

import pytest


class GradingTimeout(BaseException):
    """Raised by the alarm; a BaseException so that `except Exception` in student code
    does not swallow it."""


def _timeout_s() -> int:
    return int(os.environ.get("KWSLAB_GRADER_TEST_TIMEOUT_S", "0") or 0)


def _on_alarm(signum, frame):
    raise GradingTimeout(f"test exceeded the {_timeout_s()} s time limit")


def _with_alarm():
    seconds = _timeout_s()
    if seconds <= 0:
        return (yield)
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.alarm(seconds)
    try:
        return (yield)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item):
    return (yield from _with_alarm())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    return (yield from _with_alarm())


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item):
    return (yield from _with_alarm())


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    return (yield from _with_alarm())


def _junit_address(nodeid: str) -> tuple[str, str]:
    """('tests.graded.test_q', 'test_a[1]') for 'tests/graded/test_q.py::test_a[1]'."""
    path, *names = nodeid.split("::")
    dotted = re.sub(r"\.py$", "", path.replace("/", "."))
    return ".".join([dotted, *names[:-1]]), names[-1]


def pytest_collection_finish(session):
    target = os.environ.get("KWSLAB_GRADER_COLLECT")
    if not target:
        return
    records = []
    for item in session.items:
        marker = item.get_closest_marker("graded")
        points, extra_credit = None, False
        if marker is not None:
            points = marker.kwargs.get("points", marker.args[0] if marker.args else 1)
            extra_credit = bool(marker.kwargs.get("extra_credit", False))
        classname, name = _junit_address(item.nodeid)
        path, line, _ = item.location
        records.append({"nodeid": item.nodeid, "classname": classname, "name": name,
                        "path": path, "line": (line or 0) + 1, "points": points,
                        "extra_credit": extra_credit})
    with open(target, "w", encoding="utf-8") as f:
        json.dump(records, f, indent=1)


def pytest_configure(config):
    if os.environ.get("KWSLAB_GRADER_BLOCK_NETWORK") != "1":
        return

    def refuse(self, *args, **kwargs):
        raise OSError("network access is disabled during grading")

    socket.socket.connect = refuse
    socket.socket.connect_ex = refuse
