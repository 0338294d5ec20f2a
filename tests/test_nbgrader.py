"""nbgrader end to end, in nbgrader's own layout, with the real commands and database.

A course folder in a temp dir gets `nbgrader_config.py` (kwslab's `configure`) and the
assignment `size` (notebook 2 + the package + the graded tests). Then, as an instructor
would: `nbgrader generate_assignment`, three students' submissions in `submitted/`,
`nbgrader autograde`, the written answer graded by hand (the Gradebook API, as formgrader
does), `nbgrader generate_feedback`, `nbgrader export`. Students: `solution` (the
instructor's size_estimate.py), `stub` (the released file unchanged), `partial` (two
functions done). Each one's notebook is the released one with `quick = True`, the data folder
set, an answer written, and the cells after the last check cell that only cross-check against
TensorFlow removed (a student may delete unlocked cells; CI time).
"""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from kwslab import course
from kwslab.course import nbgrader_course

REPO = Path(__file__).resolve().parents[1]
ASSIGNMENT = "size"
NOTEBOOK = "2_size_estimation"
STUDENT_FILE = "src/kwslab/size_estimate.py"
PARTIAL_DONE = ("count_parameters", "flash_bytes")
CHECK_CELLS = {  # grade_id: points (notebook 2's locked check cells)
    "check_count_parameters": 4, "check_flash_bytes": 3, "check_estimate_flash_bytes": 5,
    "check_activation_sizes": 3, "check_ram_naive_bytes": 2, "check_ram_peak_bytes": 4,
    "check_layer_macs": 5, "check_count_macs": 2, "check_count_flops": 1}
ANSWER = "q_ds_cnn_cost"
EXPECTED_CHECKS = {
    "solution": set(CHECK_CELLS),
    "stub": set(),
    "partial": {f"check_{f}" for f in PARTIAL_DONE},
}
MANUAL = {"solution": 1.0, "stub": 0.0, "partial": 1.0}  # the TA's grade of the answer


def partial_solution(text: str, keep: tuple[str, ...]) -> str:
    """The solution file with every top-level function's solution stubbed except `keep`."""
    parts = re.split(r"(?m)^(?=def )", text)
    out = []
    for part in parts:
        m = re.match(r"def (\w+)\(", part)
        out.append(part if m and m.group(1) in keep else course.strip_solutions(part)[0]
                   if m else part)
    return "".join(out)


def student_notebook(path: Path, data_dir: Path, answer: str) -> None:
    """Edit the released notebook as the test's students do (see module docstring)."""
    nb = nbformat.read(str(path), as_version=4)
    last_check = max(i for i, c in enumerate(nb.cells)
                     if c.metadata.get("nbgrader", {}).get("grade") and c.cell_type == "code")
    cells = []
    for i, c in enumerate(nb.cells):
        meta = c.metadata.get("nbgrader", {})
        if "parameters" in c.metadata.get("tags", []):
            c.source = (c.source.replace("quick = False", "quick = True")
                        .replace("data_dir = None", f"data_dir = {str(data_dir)!r}"))
        if meta.get("grade_id") == ANSWER:
            c.source = answer
        if i > last_check and c.cell_type == "code" and not meta:
            continue
        cells.append(c)
    nb.cells = cells
    nbformat.write(nb, str(path))


def nbgrader(course_dir: Path, env: dict, *args: str, timeout: float = 900):
    run = subprocess.run([str(Path(sys.executable).with_name("nbgrader")), *args],
                         cwd=course_dir, env=env, capture_output=True, text=True,
                         timeout=timeout)
    assert run.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{run.stdout[-3000:]}" \
                                f"\n{run.stderr[-6000:]}"
    return run


@pytest.fixture(scope="module")
def graded_course(tmp_path_factory, data_dir):
    from nbgrader.api import Gradebook

    root = tmp_path_factory.mktemp("nbgrader") / "course"
    root.mkdir()
    (root / "nbgrader_config.py").write_text(
        "from kwslab.course import nbgrader_course\n"
        f"nbgrader_course.configure(get_config(), {str(root)!r}, {str(REPO)!r})\n")
    kernels = root.parent / "jupyter" / "kernels" / "python3"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3", "language": "python"}))
    env = {**os.environ, "JUPYTER_PATH": str(root.parent / "jupyter"), "MPLBACKEND": "Agg",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]),
           "TF_CPP_MIN_LOG_LEVEL": "2"}
    nbgrader_course.write_source(REPO, root, ASSIGNMENT, [NOTEBOOK])
    nbgrader(root, env, "generate_assignment", ASSIGNMENT)
    release = root / "release" / ASSIGNMENT
    solution = (REPO / STUDENT_FILE).read_text()
    files = {"solution": solution, "stub": (release / STUDENT_FILE).read_text(),
             "partial": partial_solution(solution, PARTIAL_DONE)}
    for student, text in files.items():
        folder = root / "submitted" / student / ASSIGNMENT
        shutil.copytree(release, folder)
        (folder / STUDENT_FILE).write_text(text)
        answer = "Four times the activations; weights unchanged." if MANUAL[student] else ""
        student_notebook(folder / f"{NOTEBOOK}.ipynb", data_dir, answer or "YOUR ANSWER HERE")
    nbgrader(root, env, "autograde", ASSIGNMENT)
    with Gradebook(f"sqlite:///{root / 'gradebook.db'}") as gb:  # the TA, as in formgrader
        for student, score in MANUAL.items():
            grade = gb.find_grade(ANSWER, NOTEBOOK, ASSIGNMENT, student)
            grade.manual_score = score
            grade.needs_manual_grade = False
        gb.db.commit()
    nbgrader(root, env, "generate_feedback", ASSIGNMENT)
    nbgrader(root, env, "export", "--to", str(root / "nbgrader_grades.csv"))
    return root


@pytest.mark.slow
def test_release_has_no_solution_and_no_hidden_test(graded_course):
    release = graded_course / "release" / ASSIGNMENT
    hidden = course.hidden_test_names((REPO / "tests/graded/test_size_estimate.py").read_text())
    assert hidden and not course.find_leaks(release, hidden)
    assert "raise NotImplementedError()" in (release / STUDENT_FILE).read_text()
    assert (release / "tests/graded/test_size_estimate.py").is_file()


@pytest.mark.slow
def test_autograde_runs_the_submitted_files_against_public_and_hidden_tests(graded_course):
    from nbgrader.api import Gradebook

    with Gradebook(f"sqlite:///{graded_course / 'gradebook.db'}") as gb:
        for student, passing in EXPECTED_CHECKS.items():
            scores = {g.name: g.score for g in
                      gb.find_submission_notebook(NOTEBOOK, ASSIGNMENT, student).grades}
            assert scores == {**{c: (p if c in passing else 0.0)
                                 for c, p in CHECK_CELLS.items()}, ANSWER: MANUAL[student]}, \
                student
    autograded = graded_course / "autograded" / "solution" / ASSIGNMENT
    # the hidden tests were there for autograde (nbgrader copies the source's test files)
    assert course.hidden_test_names((autograded / "tests/graded/test_size_estimate.py")
                                    .read_text())


@pytest.mark.slow
def test_feedback_shows_scores_but_no_hidden_test(graded_course):
    hidden = course.hidden_test_names((REPO / "tests/graded/test_size_estimate.py").read_text())
    for student in EXPECTED_CHECKS:
        html = (graded_course / "feedback" / student / ASSIGNMENT / f"{NOTEBOOK}.html"
                ).read_text()
        assert "Score:" in html or "score" in html.lower()
        leaked = [name for name in hidden if name in html]
        assert not leaked, f"{student}'s feedback names hidden tests {leaked}"


@pytest.mark.slow
def test_export_counts_written_answers_and_lists_check_cells(graded_course):
    from kwslab.course import autograde

    with open(graded_course / "nbgrader_grades.csv", newline="") as f:
        rows = {r["student_id"]: r for r in csv.DictReader(f)}
    assert set(rows) == set(EXPECTED_CHECKS)
    for student, passing in EXPECTED_CHECKS.items():
        r = rows[student]
        assert (float(r["score"]), float(r["max_score"])) == (MANUAL[student], 1.0), r
        assert float(r["check_score"]) == sum(CHECK_CELLS[c] for c in passing), r
        assert float(r["check_max_score"]) == sum(CHECK_CELLS.values())
        assert r["status"] == "graded" and r["needs_manual_grade"] == "0"
        for cell, points in CHECK_CELLS.items():
            assert float(r[f"{NOTEBOOK}/{cell}"]) == (points if cell in passing else 0)
    # what `kwslab course grade --nbgrader-csv` adds: the written answers only
    scores, maxima = autograde.read_nbgrader_csv(graded_course / "nbgrader_grades.csv")
    assert maxima == {f"nbgrader:{ASSIGNMENT}": 1.0}
    assert scores["solution"] == {f"nbgrader:{ASSIGNMENT}": 1.0}


def test_a_stock_nbgrader_export_is_refused_when_merging(tmp_path):
    # nbgrader's own CSV counts the check cells (the graded functions a second time)
    from kwslab.course import autograde

    stock = tmp_path / "grades.csv"
    stock.write_text("assignment,duedate,timestamp,student_id,last_name,first_name,email,"
                     "raw_score,late_submission_penalty,score,max_score\n"
                     "size,,,alice,,,,30.0,0.0,30.0,30.0\n")
    with pytest.raises(ValueError, match="not kwslab's nbgrader export"):
        autograde.read_nbgrader_csv(stock)
