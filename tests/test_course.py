"""Tests of the instructor tooling (kwslab.course) on a synthetic mini repo.

The mini repo has one package `minilab` with one student function `add`, a graded test
file with two public tests (2 + 1 points) and one hidden test (3 points), an instructor-only
test, a solution-only note listed in course/solution_only.txt, and an nbgrader notebook.
Markers are spelled through kwslab.course's constants so that this file passes the
release's own leak check when the real repository is released.
"""
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import nbformat
import pytest

from kwslab import cli, course
from kwslab.course import autograde as grading

BS, ES = course.BEGIN_SOLUTION, course.END_SOLUTION
BH, EH = course.BEGIN_HIDDEN, course.END_HIDDEN
PY = sys.executable

SOLUTION_BODY = "    total = a + b\n    return total\n"


def mini_module(body: str = SOLUTION_BODY, prelude: str = "") -> str:
    """minilab/mini.py with `body` as the body of add (the solution inside markers when
    body is the solution)."""
    return prelude + textwrap.dedent('''\
        """Tiny student module."""


        def add(a, b):
            """Return a + b for ints."""
            if not isinstance(a, int):
                raise TypeError(f"a must be an int, got {type(a).__name__}")
        ''') + body


GRADED_TEST = textwrap.dedent(f'''\
    import pytest

    from minilab import mini as M


    @pytest.mark.graded(points=2)
    def test_add_small():
        assert M.add(1, 2) == 3


    @pytest.mark.graded(points=1)
    def test_add_negative():
        assert M.add(-1, -2) == -3


    {BH}
    @pytest.mark.graded(points=3)
    def test_add_hidden_large():
        assert M.add(10**6, 1) == 1000001
    {EH}
    ''')


def notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python",
                                 "display_name": "Python 3"}
    answer = nbformat.v4.new_code_cell(f"def double(x):\n    {BS}\n    return 2 * x\n"
                                       f"    {ES}")
    answer.metadata["nbgrader"] = {"grade": False, "solution": True, "locked": False,
                                   "task": False, "schema_version": 3,
                                   "grade_id": "double"}
    check = nbformat.v4.new_code_cell(f"assert double(2) == 4\n{BH}\n"
                                      f"assert double(-3) == -6\n{EH}")
    check.metadata["nbgrader"] = {"grade": True, "solution": False, "locked": True,
                                  "task": False, "points": 2, "schema_version": 3,
                                  "grade_id": "double_test"}
    check.outputs = [nbformat.v4.new_output("stream", name="stdout", text="old output\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("# Lab"), answer, check]
    return nb


def make_repo(root: Path) -> Path:
    files = {
        "pyproject.toml": "[project]\nname = 'minilab'\nversion = '0'\n",
        "README.md": "mini lab\n",
        "src/minilab/__init__.py": "",
        "src/minilab/mini.py": mini_module(f"    {BS}\n{SOLUTION_BODY}    {ES}\n"),
        "tests/graded/test_mini.py": GRADED_TEST,
        "tests/instructor/test_mini_mutants.py": "def test_secret():\n    pass\n",
        "tests/test_plain.py": "def test_plain():\n    assert 1 + 1 == 2\n",
        "course/solution_only.txt": "# instructor notes\nnotes/answers.md\n",
        "notes/answers.md": "the answer is a + b\n",
        "notes/public.md": "hints\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (root / "notebooks").mkdir()
    nbformat.write(notebook(), str(root / "notebooks" / "01_lab.ipynb"))
    return root


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    return make_repo(tmp_path_factory.mktemp("instructor"))


@pytest.fixture(scope="module")
def released(repo, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("release") / "student"
    course.release(repo, out)
    return out


# ---------------------------------------------------------------- release
def test_strip_solutions_keeps_indentation_and_counts_blocks():
    text = f"def f():\n    x = 1\n    {BS}\n    return x\n    {ES}\n"
    new, n = course.strip_solutions(text, "f.py")
    assert n == 1
    assert new == ("def f():\n    x = 1\n    # YOUR CODE HERE\n"
                   "    raise NotImplementedError()\n")


def test_unclosed_block_names_file_and_line():
    with pytest.raises(course.ReleaseError, match=r"f\.py:2: .*never closed"):
        course.strip_solutions(f"x = 1\n{BS}\ny = 2\n", "f.py")


def test_release_has_no_solution_no_hidden_test_and_no_solution_only_file(released):
    assert not course.find_leaks(released, ["test_add_hidden_large"])
    mini = (released / "src/minilab/mini.py").read_text()
    assert "total = a + b" not in mini and "raise NotImplementedError()" in mini
    assert "raise TypeError" in mini  # validation outside the block stays
    graded = (released / "tests/graded/test_mini.py").read_text()
    assert "test_add_small" in graded and "test_add_hidden_large" not in graded
    assert not (released / "tests/instructor").exists()
    assert not (released / "course").exists()
    assert not (released / "notes/answers.md").exists()  # listed in solution_only.txt
    assert (released / "notes/public.md").read_text() == "hints\n"


def test_released_notebook_keeps_nbgrader_metadata_and_drops_solution(released):
    nb = nbformat.read(str(released / "notebooks/01_lab.ipynb"), as_version=4)
    answer, check = nb.cells[1], nb.cells[2]
    assert "return 2 * x" not in answer.source
    assert "raise NotImplementedError()" in answer.source
    assert "double(-3)" not in check.source and "double(2) == 4" in check.source
    assert check.metadata.nbgrader["points"] == 2
    assert check.metadata.nbgrader["locked"] is True
    assert answer.metadata.nbgrader["solution"] is True
    assert check.outputs == []


def test_released_package_imports_and_graded_tests_fail(released):
    env = {**os.environ, "PYTHONPATH": str(released / "src")}
    probe = subprocess.run([PY, "-c", "from minilab import mini; print(mini.add.__doc__)"],
                           env=env, capture_output=True, text=True, cwd=released)
    assert probe.stdout.strip() == "Return a + b for ints."
    run = subprocess.run([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "tests/graded"], env=env, capture_output=True, text=True,
                         cwd=released)
    assert "2 failed" in run.stdout and "passed" not in run.stdout, run.stdout


def test_release_fails_on_leaked_marker_naming_file(repo, tmp_path):
    (repo / "docs").mkdir(exist_ok=True)
    (repo / "docs/notes.txt").write_text(f"line one\nleft over: {BS}\n")
    try:
        with pytest.raises(course.ReleaseError, match=r"docs/notes\.txt:2: marker"):
            course.release(repo, tmp_path / "out")
    finally:
        (repo / "docs/notes.txt").unlink()


def test_release_refuses_non_empty_out_without_force(repo, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out/keep.txt").write_text("x")
    assert cli.main(["course", "--repo", str(repo), "release", str(tmp_path / "out")]) == 1
    assert (tmp_path / "out/keep.txt").exists()
    assert cli.main(["course", "--repo", str(repo), "release", str(tmp_path / "out"),
                        "--force"]) == 0
    assert not (tmp_path / "out/keep.txt").exists()
    assert (tmp_path / "out/src/minilab/mini.py").is_file()


def test_release_in_git_checkout_uses_tracked_files(tmp_path):
    repo = make_repo(tmp_path / "repo")
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    (repo / "scratch.txt").write_text("untracked\n")
    report = course.release(repo, tmp_path / "out")
    assert "scratch.txt" not in report.files and "src/minilab/mini.py" in report.files
    assert not (tmp_path / "out/.git").exists()


def test_student_files_are_the_files_with_solution_blocks(repo):
    assert course.student_files(repo) == ["src/minilab/mini.py"]


def test_nbgrader_hook_strips_py_and_exits_on_leftover_marker(tmp_path):
    release_dir = tmp_path / "release" / "lab1"
    release_dir.mkdir(parents=True)
    (release_dir / "mod.py").write_text(f"def f():\n    {BS}\n    return 1\n    {ES}\n")
    hook = course.nbgrader_post_convert_hook(tmp_path / "release")
    hook(assignment="lab1", student=".", notebooks=[])
    assert "return 1" not in (release_dir / "mod.py").read_text()
    (release_dir / "data.txt").write_text(f"{EH}\n")
    with pytest.raises(SystemExit, match=r"data\.txt:1"):
        hook(assignment="lab1", student=".", notebooks=[])


def test_nbgrader_source_copies_notebooks_and_student_files(repo):
    dest = course.nbgrader_source(repo, "lab1", force=True)
    # nbgrader's assignment folder is a small copy of the repository: notebooks at the top,
    # the whole package, the graded tests (hidden ones included: generate_assignment strips)
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) \
        == ["01_lab.ipynb", "pyproject.toml", "src/minilab/__init__.py", "src/minilab/mini.py",
            "tests/graded/test_mini.py"]


# ---------------------------------------------------------------- grading
def submission(root: Path, name: str, mini_py: str) -> None:
    (root / name / "src/minilab").mkdir(parents=True)
    (root / name / "src/minilab/mini.py").write_text(mini_py)


WRONG = "    return a - b\n"
ADVERSARIAL = {
    # name: (mini.py, expected points per test: small(2), negative(1), hidden(3))
    "infinite_loop": (mini_module("    while True:\n        pass\n"), (0, 0, 0)),
    "sys_exit_at_import": (mini_module(SOLUTION_BODY, "import sys\nsys.exit(3)\n"),
                           (0, 0, 0)),
    "os_exit_at_import": (mini_module(SOLUTION_BODY, "import os\nos._exit(0)\n"), (0, 0, 0)),
    "huge_stdout": (mini_module("    print('x' * 20_000_000)\n" + SOLUTION_BODY), (2, 1, 3)),
    "import_error": (mini_module(SOLUTION_BODY, "import no_such_module_kwslab\n"), (0, 0, 0)),
    # rewrites the graded tests into trivially passing ones, then answers wrongly
    "overwrite_tests": (mini_module(WRONG, textwrap.dedent("""\
        import os, pathlib
        _t = pathlib.Path(__file__).resolve().parents[2] / "tests" / "graded"
        for _f in _t.glob("*.py"):
            try:
                os.chmod(_f, 0o666)
            except OSError:
                pass
            try:
                _f.write_text("def test_add_small():\\n    pass\\n")
            except OSError:
                pass
        """)), (0, 0, 0)),
    # copies the test file (with the hidden tests) out to the submission folder
    "read_hidden_tests": (mini_module(SOLUTION_BODY, textwrap.dedent("""\
        import os, pathlib
        _t = pathlib.Path(__file__).resolve().parents[2] / "tests/graded/test_mini.py"
        try:
            pathlib.Path(os.environ["STOLEN"]).write_text(_t.read_text())
        except (OSError, KeyError):
            pass
        """).replace('os.environ["STOLEN"]', "{stolen!r}")), (2, 1, 3)),
    # a right answer only when it reaches the network: isolation must make it fail
    "network": (mini_module(textwrap.indent(textwrap.dedent("""\
        import socket
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=2).close()
            return a + b
        except OSError:
            return a + b + 1
        """), "    ")), (0, 0, 0)),
    # only add(1, 2) allocates 64 GiB: that test fails, the others still pass
    "memory_hog": (mini_module("    if a == 1:\n        bytearray(64 * 2**30)\n"
                               + SOLUTION_BODY), (0, 1, 3)),
    "wrong": (mini_module(WRONG), (0, 0, 0)),
}


@pytest.fixture(scope="module")
def graded_batch(repo, released, tmp_path_factory):
    """Grade the solution, the release and every adversarial submission in one batch."""
    root = tmp_path_factory.mktemp("grading")
    subs = root / "submissions"
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    stolen = subs / "read_hidden_tests" / "stolen.txt"
    submission(subs, "solution", (repo / "src/minilab/mini.py").read_text())
    submission(subs, "release", (released / "src/minilab/mini.py").read_text())
    for name, (text, _) in ADVERSARIAL.items():
        submission(subs, name, text.replace("{port}", str(port))
                   .replace("{stolen!r}", repr(str(stolen))))
    (subs / "empty").mkdir()  # submitted nothing: must get the stub, never the solution
    (subs / "symlink" / "src/minilab").mkdir(parents=True)
    (subs / "symlink" / "src/minilab/mini.py").symlink_to(repo / "src/minilab/mini.py")
    nb_csv = root / "nbgrader.csv"
    nb_csv.write_text("assignment,student_id,status,score,max_score,needs_manual_grade,"
                      "check_score,check_max_score\n"  # kwslab's nbgrader exporter
                      "lab1,solution,graded,2,2,0,5,5\n"
                      "lab1,wrong,graded,1,2,0,0,5\n")
    before = (repo / "tests/graded/test_mini.py").read_text()
    results = grading.grade_all(repo, subs, root / "grades", jobs=2, time_limit_s=60,
                                test_timeout_s=3, memory_mb=1024, nbgrader_csv=nb_csv,
                                progress=False)
    try:
        listener.accept()
        accepted = True
    except BlockingIOError:
        accepted = False
    listener.close()
    assert (repo / "tests/graded/test_mini.py").read_text() == before
    return {r.student: r for r in results}, root / "grades", accepted, stolen


def points(result) -> tuple:
    return tuple(int(t.score) for t in result.tests)


def test_solution_gets_full_marks_and_release_gets_zero(graded_batch):
    results, _, _, _ = graded_batch
    assert points(results["solution"]) == (2, 1, 3)
    assert points(results["release"]) == (0, 0, 0)
    assert {t.status for t in results["release"].tests} == {"failed"}


def test_missing_or_symlinked_student_file_is_graded_as_the_stub(graded_batch):
    results, _, _, _ = graded_batch
    for name in ("empty", "symlink"):
        assert points(results[name]) == (0, 0, 0), name
        assert any("graded as the unfilled stub" in n for n in results[name].notes)


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_submission_is_graded_correctly(graded_batch, name):
    results, _, _, _ = graded_batch
    assert points(results[name]) == ADVERSARIAL[name][1]
    assert results[name].status == "graded"


def test_infinite_loop_is_stopped_by_the_per_test_timeout(graded_batch):
    results, _, _, _ = graded_batch
    r = results["infinite_loop"]
    assert all("3 s time limit" in t.output for t in r.tests), [t.output for t in r.tests]
    assert r.seconds < 30


def test_os_exit_is_recorded_with_reason(graded_batch):
    results, _, _, _ = graded_batch
    r = results["os_exit_at_import"]
    assert any("without a full report" in n for n in r.notes)
    assert all(t.status == "not run" and "exited with code 0" in t.output for t in r.tests)


def test_isolation_blocked_network_and_exfiltration(graded_batch):
    _, _, accepted, stolen = graded_batch
    assert not accepted, "a submission connected to 127.0.0.1"
    if grading.isolation()[1].endswith("uid 65534"):
        assert not stolen.exists(), "a submission wrote into its submission folder"


def test_outputs_csv_results_json_and_feedback(graded_batch):
    results, out, _, _ = graded_batch
    import csv
    rows = {r["student"]: r for r in csv.DictReader(open(out / "grades.csv"))}
    assert set(rows) == set(results)
    # solution: 6 test points + 2 nbgrader points of max 6 + 2
    assert (rows["solution"]["total"], rows["solution"]["max"]) == ("8", "8")
    assert rows["solution"]["nbgrader:lab1"] == "2"
    assert rows["wrong"]["total"] == "1" and rows["release"]["nbgrader:lab1"] == "0"
    assert rows["memory_hog"]["tests/graded/test_mini.py::test_add_hidden_large"] == "3"
    gs = json.loads((out / "release/results.json").read_text())
    assert gs["score"] == 0 and gs["execution_time"] > 0
    assert [(t["name"].split("::")[1], t["max_score"], t["visibility"]) for t in gs["tests"]] \
        == [("test_add_small", 2, "visible"), ("test_add_negative", 1, "visible"),
            ("test_add_hidden_large", 3, "after_published")]
    assert {t["status"] for t in gs["tests"]} == {"failed"}
    feedback = (out / "huge_stdout/feedback.md").read_text()
    assert "Score: **6 / 6**" in feedback and len(feedback) < 5000
    assert "test_add_hidden_large" not in (out / "release/feedback.md").read_text()


# ---------------------------------------------------------------- nbgrader, real repository
@pytest.mark.slow
def test_nbgrader_generate_assignment_strips_py_and_notebook(tmp_path):
    repo = make_repo(tmp_path / "repo")
    real_config = Path(__file__).resolve().parents[1] / "course" / "nbgrader_config.py"
    (repo / "course" / "nbgrader_config.py").write_text(real_config.read_text())
    course.nbgrader_source(repo, "kwslab")
    env = {**os.environ, "PATH": f"{Path(PY).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [str(Path(PY).parent / "nbgrader"), "generate_assignment", "kwslab", "--force"]
    run = subprocess.run(cmd, cwd=repo / "course", env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-2000:]
    rel = repo / "course/release/kwslab"
    assert "raise NotImplementedError()" in (rel / "src/minilab/mini.py").read_text()
    assert not course.find_leaks(rel, ["test_add_hidden_large"])
    (repo / "course/source/kwslab/leak.txt").write_text(f"{BH}\n")
    run = subprocess.run(cmd, cwd=repo / "course", env=env, capture_output=True, text=True)
    assert run.returncode != 0 and "leak.txt:1" in run.stderr


REAL_REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.skipif(not list((REAL_REPO / "tests/graded").glob("test_*.py")),
                    reason="no graded tests in this repository")
def test_real_release_has_no_leak_and_its_graded_tests_all_fail(tmp_path):
    out = tmp_path / "student"
    report = course.release(REAL_REPO, out, untracked=True)
    assert report.solution_blocks > 0 and report.hidden_blocks > 0
    assert not (out / "tests/instructor").exists()
    env = {**os.environ, "PYTHONPATH": str(out / "src")}
    run = subprocess.run([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--tb=no",
                          "-o", "addopts=", "tests/graded"], cwd=out, env=env,
                         capture_output=True, text=True)
    summary = run.stdout.strip().splitlines()[-1]
    assert " failed" in summary and " passed" not in summary, summary


def test_loop_that_swallows_the_alarm_is_killed_at_the_hard_time_limit(repo, tmp_path):
    body = ("    import time\n    while True:\n        try:\n            time.sleep(0.2)\n"
            "        except BaseException:\n            pass\n")
    submission(tmp_path, "stubborn", mini_module(body))
    tests = grading.collect_graded(repo)
    result = grading.grade_submission(repo, tmp_path / "stubborn", tests,
                                      course.student_files(repo), time_limit_s=4,
                                      test_timeout_s=1, memory_mb=1024)
    assert points(result) == (0, 0, 0)
    assert any("time limit of 4 s reached" in n for n in result.notes)
    assert 4 <= result.seconds < 15
    assert {t.status for t in result.tests} == {"not run"}


@pytest.mark.slow
def test_extra_credit_adds_to_the_score_but_not_to_the_maximum():
    repo = Path(__file__).resolve().parents[1]
    tests = grading.collect_graded(repo)
    extra = [t for t in tests if t.extra_credit]
    assert extra and all("minifloat" in t.name for t in extra)
    everything = grading.StudentResult("all", [grading.TestResult(t, "passed") for t in tests])
    assert everything.score == sum(t.points for t in tests)
    assert everything.max_score == sum(t.points for t in tests) - sum(t.points for t in extra)
    assert everything.score > everything.max_score  # full marks plus the bonus
