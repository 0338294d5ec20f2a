"""nbgrader configuration of the kwslab course (instructor-only, never released).

Flow: `kwslab course nbgrader-source --assignment kwslab` fills `course/source/kwslab/` with
the notebooks and the student-editable `.py` files; `cd course && nbgrader generate_assignment
kwslab` writes `course/release/kwslab/`: nbgrader strips the notebooks, and the
post-convert hook below strips the `.py` files (nbgrader copies them unchanged) and raises
SystemExit on any leftover marker, since nbgrader only logs ordinary exceptions from hooks.
`nbgrader autograde kwslab` must not overwrite the students' `.py` files with the source
copies, hence `Autograde.exclude_overwriting`.
"""
from pathlib import Path

from kwslab import course

ROOT = Path(__file__).resolve().parent
ASSIGNMENT = "kwslab"

c = get_config()  # noqa: F821 (provided by nbgrader when it loads this file)
c.CourseDirectory.root = str(ROOT)
c.CourseDirectory.course_id = "kwslab"
c.Autograde.exclude_overwriting = {ASSIGNMENT: course.student_files(ROOT.parent)}
c.GenerateAssignment.post_convert_hook = course.nbgrader_post_convert_hook(ROOT / "release")
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\nraise NotImplementedError()"}
