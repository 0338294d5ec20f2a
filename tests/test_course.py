"""Tests of the student release and nbgrader tooling (kwslab.course) on a mini repo.

The mini repo has one package `minilab` with one student function `add`, a graded test
file with two public tests (2 + 1 points) and one hidden test (3 points), an instructor-only
test, a solution-only note listed in course/solution_only.txt, and an nbgrader notebook.
Markers are spelled through kwslab.course's constants so that this file passes the
release's own leak check when the real repository is released.
"""
import os
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
