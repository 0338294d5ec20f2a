"""The GitHub Classroom workflow of a release: public graded tests only, points per test.

A small instructor repository (package `minilab`: two public graded tests worth 2 and 1
points, one public extra-credit test, one hidden test worth 3) is released with
`kwslab course release --classroom`; the workflow must parse as YAML, run every public graded
test in its own `education/autograding-command-grader` step with that test's points, feed
all of them to the reporter, and name no hidden test.
"""
import textwrap
from pathlib import Path

import pytest
import yaml

from kwslab import cli, course
from kwslab.course import classroom

PUBLIC = {"tests/graded/test_mini.py::test_add_small": 2,
          "tests/graded/test_mini.py::test_add_negative": 1}
HIDDEN = "test_add_hidden_large"


def make_repo(root: Path) -> Path:
    graded = textwrap.dedent(f'''\
        import pytest

        from minilab import mini


        @pytest.mark.graded(points=2)
        def test_add_small():
            assert mini.add(1, 2) == 3


        @pytest.mark.graded(points=1)
        def test_add_negative():
            assert mini.add(-1, -2) == -3


        @pytest.mark.graded(points=5, extra_credit=True)
        def test_add_bonus():
            assert mini.add(0, 0) == 0


        {course.BEGIN_HIDDEN}
        @pytest.mark.graded(points=3)
        def {HIDDEN}():
            assert mini.add(10**6, 1) == 1000001
        {course.END_HIDDEN}
        ''')
    files = {
        "pyproject.toml": "[project]\nname = 'minilab'\nversion = '0'\n\n"
                          "[tool.pytest.ini_options]\nmarkers = ['graded: graded']\n",
        "src/minilab/__init__.py": "",
        "src/minilab/mini.py": f"def add(a, b):\n    {course.BEGIN_SOLUTION}\n"
                               f"    return a + b\n    {course.END_SOLUTION}\n",
        "tests/graded/test_mini.py": graded,
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


@pytest.fixture(scope="module")
def workflow(tmp_path_factory) -> dict:
    repo = make_repo(tmp_path_factory.mktemp("instructor"))
    out = tmp_path_factory.mktemp("release") / "student"
    assert cli.main(["course", "--repo", str(repo), "release", str(out), "--classroom"]) == 0
    text = (out / classroom.WORKFLOW).read_text()
    assert HIDDEN not in text
    return yaml.safe_load(text)


def test_workflow_runs_each_public_graded_test_with_its_points(workflow):
    assert set(workflow["on"]) == {"push", "repository_dispatch"}
    steps = workflow["jobs"]["run-autograding-tests"]["steps"]
    graders = [s for s in steps if s.get("uses") == classroom.COMMAND_GRADER]
    assert {s["with"]["test-name"]: s["with"]["max-score"] for s in graders} == PUBLIC
    for s in graders:  # the step runs exactly its own test
        assert s["with"]["command"].endswith(f'"{s["with"]["test-name"]}"')
        assert "pytest" in s["with"]["command"] and s["with"]["timeout"] > 0
    reporter = [s for s in steps if s.get("uses") == classroom.REPORTER]
    assert len(reporter) == 1
    ids = [s["id"] for s in graders]
    assert reporter[0]["with"]["runners"].split(",") == ids
    assert set(reporter[0]["env"]) == {f"{i.upper()}_RESULTS" for i in ids}
    assert all(f"steps.{i}.outputs.result" in reporter[0]["env"][f"{i.upper()}_RESULTS"]
               for i in ids)


def test_workflow_installs_before_grading_and_leaves_out_extra_credit(workflow):
    steps = workflow["jobs"]["run-autograding-tests"]["steps"]
    first_grader = next(i for i, s in enumerate(steps)
                        if s.get("uses") == classroom.COMMAND_GRADER)
    assert any("pip install" in s.get("run", "") for s in steps[:first_grader])
    names = {s["with"]["test-name"] for s in steps if s.get("uses") == classroom.COMMAND_GRADER}
    assert not any("test_add_bonus" in n for n in names)


def test_a_hidden_test_name_in_the_workflow_fails_the_release(tmp_path, monkeypatch):
    repo = make_repo(tmp_path / "repo")
    out = tmp_path / "out"
    course.release(repo, out)
    monkeypatch.setattr(classroom, "public_graded_tests", lambda tree: [
        classroom.PublicTest(f"tests/graded/test_mini.py::{HIDDEN}", 3.0)])
    with pytest.raises(course.ReleaseError, match=HIDDEN):
        classroom.add_to_release(repo, out)
    assert not (out / classroom.WORKFLOW).exists()
