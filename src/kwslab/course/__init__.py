"""Instructor tooling: the student release, the nbgrader course, the autograder.

- `kwslab.course.student_release`: solution / hidden-test markers, stripping, the leak check,
  the nbgrader source folder and post-convert hook.
- `kwslab.course.publish`: `release` (the student tree, its README and repository URL).
- `kwslab.course.autograde`: `grade_all` grades a folder of submissions (collection of the
  instructor's graded suite, one sandboxed run per submission, CSV / results.json /
  feedback.md).
- `kwslab.course.sandbox`: the sandbox folder, the isolation prefix and the limits.
- `kwslab.course.pytest_plugin`: the pytest plugin loaded into every graded run.

`kwslab course ...` (in `kwslab.cli`) calls these; see `course/README.md`.
"""
from .student_release import (BEGIN_HIDDEN, BEGIN_SOLUTION, END_HIDDEN, END_SOLUTION,
                              LEAK_PATTERN, STUB_LINES, ReleaseError, ReleaseReport,
                              find_leaks, find_repo, hidden_line_ranges, hidden_test_names,
                              nbgrader_post_convert_hook, nbgrader_source,
                              release_notebook, repo_files, solution_only_patterns,
                              strip_hidden_tests, strip_python_tree, strip_solutions,
                              student_files)

__all__ = ["BEGIN_HIDDEN", "BEGIN_SOLUTION", "END_HIDDEN", "END_SOLUTION", "LEAK_PATTERN",
           "STUB_LINES", "ReleaseError", "ReleaseReport", "find_leaks", "find_repo",
           "hidden_line_ranges", "hidden_test_names", "nbgrader_post_convert_hook",
           "nbgrader_source", "release", "release_notebook", "repo_files",
           "solution_only_patterns", "strip_hidden_tests", "strip_python_tree",
           "strip_solutions", "student_files"]


def __getattr__(name: str):
    # `release` lives in kwslab.course.publish, which imports the grader; the sandboxed
    # worker imports this package with only student_release, wire and worker beside it.
    if name == "release":
        from .publish import release
        return release
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
