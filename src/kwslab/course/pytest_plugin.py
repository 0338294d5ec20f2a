"""pytest plugin of the grader's test process (and of the instructor's collection run).

Loaded with ``-p kwslab.course.pytest_plugin``. It runs in the grader's process, never in
the sandbox, and does four things, each switched on by an environment variable the grader
sets:

- ``KWSLAB_GRADER_CONFIG=<json file>``: replace each student module by its proxy
  (``kwslab.course.remote``), whose functions run in a sandboxed worker, before the graded
  test files are imported, and start that worker; run the public tests before the hidden
  ones (a worker that has served a hidden test never serves a public one); give each test a
  deadline for its calls into the sandbox; append one JSON line per finished test (node id,
  status, failure text) to the results file named in the config. The statuses are decided
  here, from the tests' own asserts on plain data.
- ``KWSLAB_GRADER_COLLECT=<path>``: after collection, write one JSON record per test (node
  id, file, line, ``graded(points=N)``, ``extra_credit``) to <path>.
- ``KWSLAB_GRADER_TEST_TIMEOUT_S=<s>``: per-phase wall-clock limit with ``signal.alarm`` as a
  backstop for the grader's own code; calls into the sandbox have their own deadline.

Source: pytest "Writing plugins" and hook reference (hookwrapper, pytest_runtest_logreport,
pytest_collection_finish).
"""
import json
import os
import re
import signal
import time
from pathlib import Path

import pytest


class GradingTimeout(BaseException):
    """Raised by the alarm; a BaseException so that `except Exception` in student code
    does not swallow it."""


def _timeout_s() -> int:
    return int(os.environ.get("KWSLAB_GRADER_TEST_TIMEOUT_S", "0") or 0)


def _on_alarm(signum, frame):
    raise GradingTimeout(f"test exceeded the {_timeout_s()} s time limit")


def _with_alarm():
    seconds = _timeout_s() + (10 if _timeout_s() > 0 and "client" in _STATE else 0)
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
    if "client" in _STATE:  # the test files' own helpers travel to the worker by value
        from kwslab.course import wire
        from kwslab.course import remote
        for module in {item.module for item in session.items if hasattr(item, "module")}:
            wire.send_by_value(module)
            remote.ALLOWED_CLASS_MODULES.add(module.__name__)
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



_STATE: dict = {}


def _share_ast_cache() -> None:
    """Parse each source file once per run for failure reports: pytest parses the whole
    file again for every failing test (its cache lives one report), which is most of the
    time of a submission whose tests all fail. The files do not change during a run."""
    try:
        from _pytest._code import code
        cls = code.FormattedExcinfo
        if "astcache" not in {f.name for f in __import__("dataclasses").fields(cls)}:
            return
    except (ImportError, AttributeError, TypeError):
        return
    shared: dict = {}
    init = cls.__init__

    def __init__(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.astcache = shared
    cls.__init__ = __init__


def pytest_configure(config):
    path = os.environ.get("KWSLAB_GRADER_CONFIG")
    if not path:
        return
    _share_ast_cache()
    from kwslab.course import remote
    cfg = json.loads(Path(path).read_text(encoding="utf-8"))
    client = remote.Client(cfg["command"], cfg["env"])
    client.timeout_s = float(cfg["test_timeout_s"])
    remote.ALLOWED_CLASS_MODULES.update(cfg.get("trusted_modules", []))
    for name, source in cfg["modules"].items():
        remote.install_proxy(client, name, Path(source))
    _STATE.update(client=client, hidden=set(cfg.get("hidden", [])), results=cfg["results"],
                  reports={})
    client.start()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    if "client" in _STATE:  # public tests first, each group in its collected order
        hidden = _STATE["hidden"]
        items[:] = [i for i in items if i.nodeid not in hidden] + \
            [i for i in items if i.nodeid in hidden]


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_protocol(item, nextitem):
    client = _STATE.get("client")
    if client is not None:
        client.pool = "hidden" if item.nodeid in _STATE["hidden"] else "public"
        client.deadline = time.monotonic() + client.timeout_s
    try:
        return (yield)
    finally:
        if client is not None:
            client.deadline = None


def pytest_runtest_logreport(report):
    if "client" not in _STATE:
        return
    reports = _STATE["reports"].setdefault(report.nodeid, [])
    reports.append((report.when, report.outcome, report.longreprtext if report.failed else ""))
    if report.when != "teardown":
        return
    status, output = "passed", ""
    for when, outcome, text in reports:
        if outcome == "failed":
            status, output = ("failed" if when == "call" else "error"), text
            break
        if outcome == "skipped":
            status = "skipped"
    with open(_STATE["results"], "a", encoding="utf-8") as f:
        f.write(json.dumps({"nodeid": report.nodeid, "status": status,
                            "output": output[-6000:]}) + "\n")
    del _STATE["reports"][report.nodeid]


def pytest_sessionfinish(session):
    client = _STATE.get("client")
    if client is not None:
        client.close()
