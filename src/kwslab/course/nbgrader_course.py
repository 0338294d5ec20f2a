"""The kwslab course in nbgrader's own layout: assignment source, configuration, export.

An nbgrader course folder (`course/` in the instructor repository, or any folder) holds
`nbgrader_config.py`, `source/<assignment>/`, and the folders nbgrader makes (`release/`,
`submitted/`, `autograded/`, `feedback/`, `gradebook.db`). Each assignment folder here is a
small copy of the repository, so that the notebooks run the same way in it as in the
repository:

```
source/<assignment>/2_size_estimation.ipynb ...   the notebooks (nbgrader: top level only)
source/<assignment>/src/**.py                     the whole package (student files + the rest)
source/<assignment>/tests/graded/test_*.py        public AND hidden graded tests
source/<assignment>/pyproject.toml                pytest settings (markers, import mode)
```

How each nbgrader step treats it (`configure` sets all of this):

- `generate_assignment`: nbgrader strips the notebooks; the post-convert hook strips the
  solution blocks of every `.py` and the hidden-test blocks of `tests/graded/` (nbgrader copies
  plain files unchanged) and stops on any leftover marker.
- `autograde`: nbgrader copies every non-notebook source file over the submission except the
  student-editable files (`Autograde.exclude_overwriting`): the package's other modules and
  the graded tests (hidden ones included) are the instructor's, the student files are the
  student's. The kernel starts with `<assignment>/src` first on `sys.path`
  (`Execute.extra_arguments`, an IPython `exec_lines`), so the notebooks and their check
  cells import the SUBMITTED files, never an installed kwslab; `kwslab.colab.check` refuses
  to run when the package in use is not the one beside the tests. Cells may run for
  `Execute.timeout` seconds (training, QAT and pruning cells take minutes at full size).
- `export`: `WrittenAnswersExport` (the default exporter here) writes one row per student
  and assignment whose `score`/`max_score` count the WRITTEN ANSWERS only (the manually
  graded answer cells); the notebooks' check cells are listed per cell for information and
  never counted, because the pytest grader (`kwslab course grade`) is the authority for the
  student functions. `kwslab course grade ... --nbgrader-csv` merges this file.

Threat model: nbgrader runs student notebooks in a kernel with the instructor's own rights
and no sandbox; run `nbgrader autograde` in a container or as an unprivileged user. Its
scores for written answers come from a human; its check-cell scores are feedback only.

Source: nbgrader 0.9 docs ("Philosophy of the nbgrader course directory", "Customizing how
the student version of an assignment looks", "Exporting grades", "Configuration options":
`Autograde.exclude_overwriting`, `Execute.timeout`, `Execute.extra_arguments`,
`ExportApp.plugin_class`); nbgrader's `plugins/export.py`; IPython `InteractiveShellApp.
exec_lines`.
"""
from __future__ import annotations

import csv
import shutil
from pathlib import Path

from kwslab import course as _course

COURSE_ID = "kwslab"
CELL_TIMEOUT_S = 3600
"""Per-cell execution limit for autograde: the full-size training, QAT and pruning cells."""
KERNEL_STARTUP = ("__import__('sys').path.insert(0, "
                  "__import__('os').path.abspath('src'))")
"""Run by the kernel before the first cell (cwd = the notebook's folder): the assignment's
own package comes first on sys.path."""
EXPORT_FIELDS = ["assignment", "student_id", "status", "score", "max_score",
                 "needs_manual_grade", "check_score", "check_max_score"]


# ---------------------------------------------------------------- assignment source
def assignment_files(repo: Path) -> list[str]:
    """Repository files that go into every assignment, besides the notebooks."""
    names = _course.repo_files(Path(repo), untracked=True)
    return [n for n in names
            if (n.startswith("src/") and n.endswith(".py"))
            or (n.startswith("tests/graded/") and n.endswith(".py"))
            or n == "pyproject.toml"]


def write_source(repo: Path, course_dir: Path, assignment: str,
                 notebooks: list[str] | None = None, force: bool = False) -> Path:
    """Fill `course_dir/source/<assignment>/` from the instructor repository.

    Args:
        repo: the instructor repository.
        course_dir: the nbgrader course folder.
        assignment: the assignment name.
        notebooks: notebook names (with or without `.ipynb`); None takes all of
            `notebooks/*.ipynb`.
        force: replace a non-empty source folder.
    Returns:
        the assignment's source folder.
    Raises:
        FileExistsError: if the folder is not empty and not force.
        FileNotFoundError: if a named notebook does not exist.
    """
    repo = Path(repo)
    dest = Path(course_dir) / "source" / assignment
    if dest.exists() and any(dest.iterdir()):
        if not force:
            raise FileExistsError(f"{dest} is not empty; pass --force to regenerate it")
        shutil.rmtree(dest)
    dest.mkdir(parents=True, exist_ok=True)
    if notebooks is None:
        paths = sorted((repo / "notebooks").glob("*.ipynb"))
    else:
        paths = [repo / "notebooks" / (n if n.endswith(".ipynb") else n + ".ipynb")
                 for n in notebooks]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"no notebook {', '.join(missing)}")
    for nb in paths:
        shutil.copy2(nb, dest / nb.name)
    for name in assignment_files(repo):
        (dest / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo / name, dest / name)
    return dest


# ---------------------------------------------------------------- nbgrader configuration
def configure(c, course_dir: Path, repo: Path) -> None:
    """Set an nbgrader config object `c` (from `get_config()`) for this course.

    Args:
        c: the traitlets config nbgrader passes to `nbgrader_config.py`.
        course_dir: the nbgrader course folder (holds source/, release/, ...).
        repo: the instructor repository (to list the student-editable files).
    """
    course_dir = Path(course_dir).resolve()
    editable = _course.student_files(Path(repo))
    assignments = sorted(p.name for p in (course_dir / "source").glob("*") if p.is_dir())
    c.CourseDirectory.root = str(course_dir)
    c.CourseDirectory.course_id = COURSE_ID
    c.Autograde.exclude_overwriting = {a: list(editable) for a in assignments}
    c.GenerateAssignment.post_convert_hook = _course.nbgrader_post_convert_hook(
        course_dir / "release")
    c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
    c.Execute.timeout = CELL_TIMEOUT_S
    c.Execute.extra_arguments = ["--HistoryManager.hist_file=:memory:",
                                 f"--IPKernelApp.exec_lines={KERNEL_STARTUP}"]
    c.ExportApp.plugin_class = f"{__name__}.WrittenAnswersExport"


# ---------------------------------------------------------------- export
def gradebook_rows(gradebook, students: list[str] = (), assignments: list[str] = ()
                   ) -> tuple[list[dict], list[str]]:
    """One row per (assignment, student) from an open nbgrader `Gradebook`.

    Written answers are the grade cells that are also solution cells (nbgrader's "manually
    graded answer"), and manually graded task cells; every other grade cell is a check cell.
    Per-cell columns are named `<notebook>/<grade_id>` (the cell's score).

    Args:
        gradebook: an open `nbgrader.api.Gradebook`.
        students, assignments: only these (all when empty), like `nbgrader export`.
    Returns:
        (rows, per-cell column names in notebook order).
    """
    from nbgrader.api import MissingEntry

    rows, cell_columns = [], []
    for assignment in gradebook.assignments:
        if assignments and assignment.name not in assignments:
            continue
        kinds = {}
        for nb in assignment.notebooks:
            answers = {c.name for c in nb.solution_cells} | {c.name for c in nb.task_cells}
            for cell in nb.grade_cells:
                kinds[(nb.name, cell.name)] = ("answer" if cell.name in answers else "check",
                                               float(cell.max_score))
            for cell in nb.task_cells:
                kinds[(nb.name, cell.name)] = ("answer", float(cell.max_score))
        for key in kinds:
            col = f"{key[0]}/{key[1]}"
            if col not in cell_columns:
                cell_columns.append(col)
        answer_max = sum(m for k, m in kinds.values() if k == "answer")
        check_max = sum(m for k, m in kinds.values() if k == "check")
        for student in gradebook.students:
            if students and student.id not in students:
                continue
            row = {"assignment": assignment.name, "student_id": student.id,
                   "max_score": f"{answer_max:g}", "check_max_score": f"{check_max:g}"}
            try:
                submission = gradebook.find_submission(assignment.name, student.id)
            except MissingEntry:
                row.update(status="missing", score="0", needs_manual_grade="0",
                           check_score="0")
                rows.append(row)
                continue
            answer = check = 0.0
            pending = 0
            for snb in submission.notebooks:
                for grade in snb.grades:
                    kind, _ = kinds.get((snb.name, grade.name), ("check", 0.0))
                    score = float(grade.score or 0.0)
                    row[f"{snb.name}/{grade.name}"] = f"{score:g}"
                    if kind == "answer":
                        answer += score
                        pending += bool(grade.needs_manual_grade)
                    else:
                        check += score
            row.update(status="needs manual grading" if pending else "graded",
                       score=f"{answer:g}", needs_manual_grade=str(pending),
                       check_score=f"{check:g}")
            rows.append(row)
    return rows, cell_columns


def write_export(gradebook, dest: Path, students: list[str] = (),
                 assignments: list[str] = ()) -> list[dict]:
    """Write the written-answers CSV (see `WrittenAnswersExport`); returns its rows."""
    rows, cells = gradebook_rows(gradebook, students, assignments)
    dest = Path(dest)
    tmp = dest.with_name(dest.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=EXPORT_FIELDS + cells, restval="")
        w.writeheader()
        w.writerows(rows)
    tmp.replace(dest)
    return rows


def _export_plugin_base():
    try:
        from nbgrader.plugins import ExportPlugin
    except ImportError:  # nbgrader is an instructor-only dependency
        return object
    return ExportPlugin


class WrittenAnswersExport(_export_plugin_base()):
    """`nbgrader export` plugin: written answers count, check cells are listed only.

    Columns: assignment, student_id, status (graded / needs manual grading / missing),
    score and max_score (written answers only: what `kwslab course grade --nbgrader-csv`
    adds), needs_manual_grade (answers not graded yet), check_score and check_max_score
    (the check cells: feedback, never added), then one column per grade cell,
    `<notebook>/<grade_id>`. `--to FILE` (default `nbgrader_grades.csv`).
    """

    def export(self, gradebook) -> None:
        dest = Path(self.to or "nbgrader_grades.csv")
        rows = write_export(gradebook, dest, [str(s) for s in self.student],
                            [str(a) for a in self.assignment])
        self.log.info("Exported %d rows (written answers counted, check cells listed) "
                      "to %s", len(rows), dest)
