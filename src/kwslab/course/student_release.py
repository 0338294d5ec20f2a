"""Make the student release of this repository and the nbgrader course.

The flow (see `course/README.md` for the commands):

1. The instructor repository holds the solutions. In any `.py` file and in notebook cells,
   the code between the solution marker lines (nbgrader's delimiters, `BEGIN_SOLUTION` and
   `END_SOLUTION` below) is the solution; the lines between the hidden-test marker lines
   (`BEGIN_HIDDEN`, `END_HIDDEN`) are graded tests the students never see. (This docstring
   does not spell the markers out: the release's leak check scans every released file.)
2. `kwslab course release OUT/` (`kwslab.course.publish.release`, which uses the functions
   here) copies the repository's tracked files (`git ls-files`, or a
   walk that skips runs/, caches and .git outside a checkout) to OUT, leaving out the
   solution-only files (`tests/instructor/`, `course/`, and the patterns listed in
   `course/solution_only.txt`). In `.py` files each solution block becomes
   `# YOUR CODE HERE` + `raise NotImplementedError()` at the block's indentation and each
   hidden-test block is removed; notebooks go through nbgrader's own preprocessors
   (LockCells, ClearSolutions, ClearOutput, ClearHiddenTests, ClearMarkScheme,
   ComputeChecksums, CheckCellMetadata), which keep the nbgrader cell metadata (locked test
   cells, points, answer cells). Then every file in OUT is scanned: a surviving marker or the
   name of a hidden test makes the release fail, naming file and line.
3. For nbgrader, `kwslab course nbgrader-source` copies `notebooks/*.ipynb` and the
   student-editable `.py` files into `course/source/<assignment>/`; `nbgrader
   generate_assignment <assignment>` run in `course/` then strips the notebooks and, through
   the `post_convert_hook` in `course/nbgrader_config.py` (`nbgrader_post_convert_hook`
   below), the `.py` files, failing with SystemExit on a leftover marker (nbgrader only logs
   ordinary exceptions from hooks).
4. `kwslab course grade SUBMISSIONS/ --out grades/` (`kwslab.course.autograde`) grades a
   folder of student trees against this repository's full graded suite.

Student-editable files are the `.py` files (outside `tests/`) that hold a solution block.

Source: nbgrader 0.9 docs, "Creating and grading assignments" and the `GenerateAssignment`
preprocessor list (nbgrader/converters/generate_assignment.py); nbgrader's ClearSolutions and
ClearHiddenTests delimiters.
"""
from __future__ import annotations

import fnmatch
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


# Spelled in two parts so that this file itself passes the release's leak check.
_B, _E = "BEGIN ", "END "
BEGIN_SOLUTION, END_SOLUTION = "### " + _B + "SOLUTION", "### " + _E + "SOLUTION"
BEGIN_HIDDEN, END_HIDDEN = "### " + _B + "HIDDEN TESTS", "### " + _E + "HIDDEN TESTS"
LEAK_PATTERN = re.compile("(" + _B + "|" + _E + ")(SOLUTION|HIDDEN TESTS)")
STUB_LINES = ("# YOUR CODE HERE", "raise NotImplementedError()")

SKIP_DIRS = {".git", "runs", ".cache", "__pycache__", ".pytest_cache", ".ipynb_checkpoints",
             ".venv", "build", "dist", "data"}
SOLUTION_ONLY = ["tests/instructor/*", "course/*"]
SOLUTION_ONLY_LIST = "course/solution_only.txt"


class ReleaseError(RuntimeError):
    """A release that would leak a solution or hidden test, or a malformed marker block."""


@dataclass
class ReleaseReport:
    """What `release` wrote: relative paths, and counts of stubbed and removed blocks."""
    out: Path
    files: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    solution_blocks: int = 0
    hidden_blocks: int = 0


# ---------------------------------------------------------------- marker blocks in text
def _blocks(lines: list[str], begin: str, end: str, path: str) -> list[tuple[int, int]]:
    """(first, last) 0-based line indices of each begin..end block; errors name path:line."""
    blocks, start = [], None
    for i, line in enumerate(lines):
        s = line.strip()
        if s == begin:
            if start is not None:
                raise ReleaseError(f"{path}:{i + 1}: '{begin}' inside the block opened at "
                                   f"line {start + 1}")
            start = i
        elif s == end:
            if start is None:
                raise ReleaseError(f"{path}:{i + 1}: '{end}' without a '{begin}' before it")
            blocks.append((start, i))
            start = None
    if start is not None:
        raise ReleaseError(f"{path}:{start + 1}: '{begin}' is never closed by '{end}'")
    return blocks


def strip_solutions(text: str, path: str = "<text>") -> tuple[str, int]:
    """Replace each solution block by the stub at the block's indentation.

    Returns:
        (new text, number of blocks replaced).
    Raises:
        ReleaseError: on a nested, unopened or unclosed block, naming path and line.
    """
    lines = text.splitlines(keepends=True)
    blocks = _blocks(lines, BEGIN_SOLUTION, END_SOLUTION, path)
    for first, last in reversed(blocks):
        indent = lines[first][: len(lines[first]) - len(lines[first].lstrip())]
        lines[first:last + 1] = [indent + s + "\n" for s in STUB_LINES]
    return "".join(lines), len(blocks)


def strip_hidden_tests(text: str, path: str = "<text>") -> tuple[str, int]:
    """Remove each hidden-test block, markers included. Returns (new text, blocks removed)."""
    lines = text.splitlines(keepends=True)
    blocks = _blocks(lines, BEGIN_HIDDEN, END_HIDDEN, path)
    for first, last in reversed(blocks):
        del lines[first:last + 1]
    return "".join(lines), len(blocks)


def hidden_test_names(text: str, path: str = "<text>") -> list[str]:
    """Names of the `def test_*` functions defined inside hidden-test blocks."""
    lines = text.splitlines()
    names = []
    for first, last in _blocks(lines, BEGIN_HIDDEN, END_HIDDEN, path):
        for line in lines[first:last + 1]:
            m = re.match(r"\s*(?:async\s+)?def\s+(test\w*)\s*\(", line)
            if m:
                names.append(m.group(1))
    return names


def hidden_line_ranges(text: str, path: str = "<text>") -> list[tuple[int, int]]:
    """1-based inclusive line ranges of the hidden-test blocks."""
    return [(a + 1, b + 1) for a, b in
            _blocks(text.splitlines(), BEGIN_HIDDEN, END_HIDDEN, path)]


# ---------------------------------------------------------------- repository files
def repo_files(repo: Path, untracked: bool = False) -> list[str]:
    """Relative POSIX paths of the repository's files.

    In a git checkout: `git ls-files` (plus untracked, not ignored files if `untracked`),
    keeping only files that exist. Elsewhere: a walk that skips .git, runs/, data/, caches.
    """
    repo = Path(repo)
    if (repo / ".git").exists():
        cmd = ["git", "-C", str(repo), "ls-files", "-z", "--cached"]
        if untracked:
            cmd += ["--others", "--exclude-standard"]
        out = subprocess.run(cmd, check=True, capture_output=True).stdout.decode()
        names = sorted({n for n in out.split("\0") if n})
        return [n for n in names if (repo / n).is_file() and not (repo / n).is_symlink()]
    names = []
    for root, dirs, files in os.walk(repo):
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info"))
        for f in sorted(files):
            if not f.endswith(".pyc") and not os.path.islink(os.path.join(root, f)):
                names.append(Path(root, f).relative_to(repo).as_posix())
    return names


def solution_only_patterns(repo: Path) -> list[str]:
    """Glob patterns (relative paths) of files never released."""
    patterns = list(SOLUTION_ONLY)
    listing = Path(repo) / SOLUTION_ONLY_LIST
    if listing.is_file():
        for line in listing.read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                patterns.append(line.rstrip("/") + "/*" if line.endswith("/") else line)
    return patterns


def _is_solution_only(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(name, p) or name == p for p in patterns)


def student_files(repo: Path) -> list[str]:
    """The student-editable `.py` files: those outside tests/ holding a solution block."""
    repo = Path(repo)
    found = []
    for name in repo_files(repo, untracked=True):
        if name.endswith(".py") and not name.startswith("tests/"):
            if BEGIN_SOLUTION in (repo / name).read_text(errors="replace"):
                found.append(name)
    return found


# ---------------------------------------------------------------- notebooks
def release_notebook(src: Path, dst: Path) -> None:
    """Write the student version of notebook src to dst with nbgrader's preprocessors."""
    import nbformat
    from nbgrader.preprocessors import (CheckCellMetadata, ClearHiddenTests, ClearMarkScheme,
                                        ClearOutput, ClearSolutions, ComputeChecksums,
                                        LockCells)
    nb = nbformat.read(str(src), as_version=4)
    resources = {}
    steps = [LockCells(), ClearSolutions(), ClearOutput(), ClearHiddenTests(),
             ClearMarkScheme(), ComputeChecksums(), CheckCellMetadata()]
    try:
        for step in steps:
            nb, resources = step.preprocess(nb, resources)
    except Exception as e:
        raise ReleaseError(f"{src}: nbgrader {type(step).__name__} failed: {e}") from e
    nbformat.write(nb, str(dst))


# ---------------------------------------------------------------- release
def find_leaks(out: Path, hidden_names: list[str] = ()) -> list[str]:
    """'path:line: problem' for every marker or hidden test name found in any file of out."""
    out = Path(out)
    defs = re.compile(r"\bdef\s+(" + "|".join(map(re.escape, hidden_names)) + r")\s*\(") \
        if hidden_names else None
    leaks = []
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue  # binary files cannot hold a marker line
        for i, line in enumerate(text.splitlines(), 1):
            m = LEAK_PATTERN.search(line)
            if m:
                leaks.append(f"{path.relative_to(out)}:{i}: marker '{m.group(0)}' survived")
            if defs is not None and (d := defs.search(line)):
                leaks.append(f"{path.relative_to(out)}:{i}: hidden test '{d.group(1)}' "
                             "survived")
    return leaks


# ---------------------------------------------------------------- nbgrader course layout
def nbgrader_source(repo: Path, assignment: str = "kwslab", force: bool = False) -> Path:
    """Fill `course/source/<assignment>/` (see `kwslab.course.nbgrader_course.write_source`).

    Returns:
        the assignment's source folder.
    """
    from kwslab.course import nbgrader_course

    return nbgrader_course.write_source(Path(repo), Path(repo) / "course", assignment,
                                        force=force)


def strip_python_tree(folder: Path) -> list[str]:
    """Strip solution and hidden blocks from every `.py` under folder, in place, then
    return the leaks (markers anywhere in folder); empty when clean."""
    folder = Path(folder)
    for path in folder.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        text, _ = strip_hidden_tests(text, str(path))
        text, _ = strip_solutions(text, str(path))
        path.write_text(text, encoding="utf-8")
    return find_leaks(folder)


def nbgrader_post_convert_hook(release_root: Path):
    """A `GenerateAssignment.post_convert_hook` stripping `.py` files in the release.

    nbgrader calls the hook with `assignment=`, `student=`, `notebooks=` and logs (does not
    propagate) ordinary exceptions, so a leak raises SystemExit.
    """
    def hook(assignment, student=None, notebooks=(), **kwargs):
        try:
            leaks = strip_python_tree(Path(release_root) / assignment)
        except ReleaseError as e:
            raise SystemExit(f"release of {assignment} failed: {e}") from e
        if leaks:
            raise SystemExit(f"release of {assignment} leaks:\n  " + "\n  ".join(leaks))
    return hook


# ---------------------------------------------------------------- repository root
def find_repo(start: Path | None = None) -> Path:
    """The instructor repository: the nearest folder above start holding pyproject.toml and
    tests/."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "tests").is_dir():
            return folder
    raise FileNotFoundError(f"no repository (pyproject.toml + tests/) at or above {here}; "
                            "pass --repo")
