"""nbgrader configuration of the kwslab course (instructor-only, never released).

`kwslab course nbgrader-source --assignment kwslab` fills `course/source/kwslab/`; then, in
`course/`: `nbgrader generate_assignment kwslab`, `nbgrader autograde kwslab`,
`nbgrader generate_feedback kwslab`, `nbgrader export`. What `configure` sets (the release
hook for `.py` files, the student files autograde keeps, the kernel's path, the cell timeout,
the written-answers exporter) is explained in `kwslab.course.nbgrader_course`.
"""
from pathlib import Path

from kwslab.course import nbgrader_course

ROOT = Path(__file__).resolve().parent

nbgrader_course.configure(get_config(), ROOT, ROOT.parent)  # noqa: F821 (nbgrader's)
