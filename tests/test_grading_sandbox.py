"""The sandbox's limits (kwslab.course.sandbox) and the grader's pytest server (runner).

The cgroup tests run the v2 and v1 code paths against a fake cgroup folder (a host with
one of them, or none, checks both: the files written and the values in them); a real
cgroup of the host is made, filled and removed by every strict grading run
(tests/test_grading_adversarial.py). The runner tests fork real pytest runs from a server.
"""
import os
import sys
import textwrap
import time
from pathlib import Path

import pytest

from kwslab.course import runner, sandbox


def _fake_v2(root: Path) -> Path:
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids\n")
    (root / "cgroup.subtree_control").write_text("")
    return root


def test_cgroup_v2_writes_memory_and_pids_limits(tmp_path):
    root = _fake_v2(tmp_path / "cg")
    cgroup = sandbox.Cgroup("4242-0", sandbox.Limits(memory_mb=100, processes=7), root)
    d = root / "kwslab-grader" / "4242-0"
    assert (d / "memory.max").read_text() == str(100 * 2**20)  # 104857600 bytes
    assert (d / "pids.max").read_text() == "7"
    assert (root / "cgroup.subtree_control").read_text() == "+memory +pids"
    assert (root / "kwslab-grader/cgroup.subtree_control").read_text() == "+memory +pids"
    assert cgroup.procs == [d / "cgroup.procs"]
    assert cgroup.kind == "cgroup v2 (memory, swap not counted, pids)"


def test_cgroup_v1_writes_one_folder_per_controller(tmp_path):
    root = tmp_path / "cg"
    for ctl in ("memory", "pids"):
        (root / ctl).mkdir(parents=True)
        (root / ctl / "cgroup.procs").write_text("")
    cgroup = sandbox.Cgroup("4242-1", sandbox.Limits(memory_mb=64, processes=9), root)
    mem, pids = root / "memory/kwslab-grader-4242-1", root / "pids/kwslab-grader-4242-1"
    assert (mem / "memory.limit_in_bytes").read_text() == str(64 * 2**20)
    assert not (mem / "memory.memsw.limit_in_bytes").exists()  # no swap accounting here
    assert (pids / "pids.max").read_text() == "9"
    assert cgroup.procs == [mem / "cgroup.procs", pids / "cgroup.procs"]
    assert cgroup.kind == "cgroup v1 (memory, swap not counted, pids)"


def test_cgroup_without_memory_and_pids_controllers_is_refused(tmp_path):
    root = tmp_path / "cg"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpu io\n")
    with pytest.raises(sandbox.SandboxUnavailable, match="no memory cgroup controller"):
        sandbox.Cgroup("4242-2", sandbox.Limits(), root)


def test_stale_cgroups_of_a_dead_grader_are_removed(tmp_path):
    root = tmp_path / "cg"
    dead_pid = 2**22 + 12345  # above the kernel's pid_max: no such process
    old = time.time() - 7200
    stale = root / "memory" / f"kwslab-grader-{dead_pid}-0"
    live = root / "memory" / f"kwslab-grader-{os.getpid()}-0"
    recent = root / "pids" / f"kwslab-grader-{dead_pid}-1"
    other = root / "memory" / "some-other-cgroup-1"
    for d in (stale, live, recent, other):
        d.mkdir(parents=True)
    for d in (stale, live, other):
        os.utime(d, (old, old))
    assert sandbox.remove_stale_cgroups(root) == [stale]
    assert live.exists() and recent.exists() and other.exists()


def test_process_limit_is_set_where_it_counts_only_the_sandbox(tmp_path):
    limits = sandbox.Limits(processes=11)
    userns = sandbox.worker_command("userns", tmp_path, ["kwslab"], limits)
    # inside the new user namespace (after bubblewrap's "--"), not before bubblewrap
    assert userns.index("--nproc=11") > userns.index("--unshare-user")
    assert userns[userns.index("--nproc=11") - 1] == "prlimit"
    assert "--nproc=11" not in sandbox.worker_command("none", tmp_path, ["kwslab"], limits)
    if sys.platform == "linux":
        cgroup = type("C", (), {"procs": [tmp_path / "cgroup.procs"]})()
        strict = sandbox.worker_command("strict", tmp_path, ["kwslab"], limits, 1_000_001,
                                        cgroup)
        assert strict.index("--nproc=11") < strict.index("bwrap")  # the uid is its own


# ---------------------------------------------------------------- the pytest server
TESTS = textwrap.dedent("""\
    import os, time

    def test_passes():
        assert os.environ["RUNNER_TEST"] == "yes"

    def test_fails():
        assert 1 + 1 == 3

    def test_sleeps():
        if os.environ.get("RUNNER_SLEEP"):
            time.sleep(120)
    """)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("server")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    with runner.PytestServer(env, tmp, refuse=["kwslab.quantize"]) as s:
        yield s


def _args(folder: Path) -> list[str]:
    return [str(folder / "test_runner_case.py"), "-q", "-p", "no:cacheprovider",
            "--rootdir", str(folder)]


@pytest.mark.slow
def test_forked_run_gets_its_own_environment_and_exit_code(server, tmp_path):
    (tmp_path / "test_runner_case.py").write_text(TESTS)
    env = {**os.environ, "RUNNER_TEST": "yes"}
    code = runner.run_pytest([*_args(tmp_path), "-k", "passes"], tmp_path, env,
                             tmp_path / "a.log", 60, server)
    assert code == 0, (tmp_path / "a.log").read_text()
    code = runner.run_pytest(_args(tmp_path), tmp_path, env, tmp_path / "b.log", 60, server)
    assert code == 1 and "1 failed, 2 passed" in (tmp_path / "b.log").read_text()
    assert server.alive and server.threads == 1  # forking a one-thread process


@pytest.mark.slow
def test_forked_run_past_its_time_limit_is_killed(server, tmp_path):
    (tmp_path / "test_runner_case.py").write_text(TESTS)
    env = {**os.environ, "RUNNER_TEST": "yes", "RUNNER_SLEEP": "1"}
    start = time.monotonic()
    code = runner.run_pytest([*_args(tmp_path), "-k", "sleeps"], tmp_path, env,
                             tmp_path / "c.log", 2, server)
    assert code is None and time.monotonic() - start < 30
    assert server.alive


@pytest.mark.slow
def test_a_server_that_would_hold_a_student_module_does_not_start(tmp_path):
    with pytest.raises(runner.ServerDied, match="student modules.*torch"):
        runner.PytestServer(dict(os.environ), tmp_path, refuse=["torch"])


@pytest.mark.slow
def test_a_dead_server_falls_back_to_a_fresh_process(tmp_path):
    (tmp_path / "test_runner_case.py").write_text(TESTS)
    s = runner.PytestServer(dict(os.environ), tmp_path)
    os.killpg(s.proc.pid, 9)
    s.proc.wait()
    s._reader.join(5)
    assert not s.alive
    code = runner.run_pytest([*_args(tmp_path), "-k", "passes"], tmp_path,
                             {**os.environ, "RUNNER_TEST": "yes"}, tmp_path / "d.log", 60, s)
    assert code == 0
    s.close()
