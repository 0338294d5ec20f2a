"""The student release: the tree itself, its repository URL and its README.

* ``release(repo, out)`` builds the student tree (``kwslab course release OUT/``): the
  released files with solution blocks stubbed and hidden tests removed
  (``kwslab.course.student_release``), the README and URLs below, then the leak check.
* ``rewrite_repo_url(out, repo_url)`` replaces the placeholder repository
  (``PLACEHOLDER_URL``) in every text file of a release: clone URLs become repo_url, and the
  Colab badges and links (``colab.research.google.com/github/<owner>/<name>/blob/main/...``)
  point at the same GitHub repository. Colab opens notebooks from GitHub only, so repo_url
  must be ``https://github.com/<owner>/<name>`` (``.git`` and a trailing ``/`` are dropped).
* ``write_student_readme(repo, out)`` writes ``course/student_README.md`` as the release's
  ``README.md`` (the instructor's README talks about solutions and instructor files), with
  ``{points}`` replaced by a table of the graded points counted from the instructor's own
  graded suite and the notebooks' written answers.

Source: Colab's "Open in Colab" URL scheme
(``https://colab.research.google.com/github/<owner>/<repo>/blob/<branch>/<path>``, the
Colab "GitHub" example notebook).
"""
from __future__ import annotations

import json
import re
import shutil
from collections import defaultdict
from pathlib import Path

from .autograde import collect_graded
from .student_release import (ReleaseError, ReleaseReport, _is_solution_only, find_leaks,
                              hidden_test_names, release_notebook, repo_files,
                              solution_only_patterns, strip_hidden_tests, strip_solutions)

PLACEHOLDER_URL = "https://github.com/kwslab/kwslab"
"""The repository URL the instructor repository's notebooks, README and colab.py carry."""
STUDENT_README = "course/student_README.md"
_GITHUB = re.compile(r"^https://github\.com/([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?$")


class RepoUrlError(ValueError):
    """A --repo-url Colab cannot open notebooks from."""


def github_parts(repo_url: str) -> tuple[str, str]:
    """(owner, name) of a GitHub repository URL.

    Raises:
        RepoUrlError: if repo_url is not ``https://github.com/<owner>/<name>``.
    """
    m = _GITHUB.match(repo_url.strip())
    if not m:
        raise RepoUrlError(f"--repo-url {repo_url!r} is not https://github.com/<owner>/<name>; "
                           "Colab opens notebooks from GitHub repositories only")
    return m.group(1), m.group(2)


def rewrite_repo_url(out: Path, repo_url: str) -> list[str]:
    """Point every badge and clone URL in the text files under out at repo_url.

    Returns:
        The changed files, relative POSIX paths.
    Raises:
        RepoUrlError: for a URL that is not a GitHub repository.
    """
    owner, name = github_parts(repo_url)
    old_owner, old_name = github_parts(PLACEHOLDER_URL)
    colab_old = f"colab.research.google.com/github/{old_owner}/{old_name}/"
    colab_new = f"colab.research.google.com/github/{owner}/{name}/"
    new_url = f"https://github.com/{owner}/{name}"
    changed = []
    for path in sorted(p for p in Path(out).rglob("*") if p.is_file()):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        new = text.replace(colab_old, colab_new).replace(PLACEHOLDER_URL, new_url)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path.relative_to(out).as_posix())
    return changed


def placeholder_urls(out: Path) -> list[str]:
    """'path:line' of every remaining placeholder repository URL or Colab link under out."""
    owner, name = github_parts(PLACEHOLDER_URL)
    pattern = re.compile(re.escape(f"github.com/{owner}/{name}") + r"(?:\.git)?(?![\w-]|\.\w)")
    found = []
    for path in sorted(p for p in Path(out).rglob("*") if p.is_file()):
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        found += [f"{path.relative_to(out).as_posix()}:{i}" for i, line in
                  enumerate(text.splitlines(), 1) if pattern.search(line)]
    return found


def points_table(repo: Path) -> str:
    """A markdown table of points: autograded (public, hidden, extra credit) per graded file,
    then the notebooks' written answers (nbgrader answer cells)."""
    rows: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for t in collect_graded(Path(repo)):
        kind = "extra" if t.extra_credit else "hidden" if t.hidden else "public"
        rows[Path(t.path).name][kind] += t.points
    lines = ["| part | public tests | hidden tests | extra credit |", "|---|---|---|---|"]
    total = defaultdict(float)
    for file, r in sorted(rows.items()):
        lines.append(f"| autograded: `tests/graded/{file}` | {r['public']:g} | {r['hidden']:g} | "
                     f"{r['extra']:g} |")
        for k, v in r.items():
            total[k] += v
    written = 0.0
    for nb in sorted((Path(repo) / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb.read_text())["cells"]
        pts = sum(c["metadata"]["nbgrader"].get("points", 0) for c in cells
                  if c["cell_type"] == "markdown" and c["metadata"].get("nbgrader", {}).get("solution"))
        if pts:
            lines.append(f"| written answers: `notebooks/{nb.name}` | {pts:g} | | |")
            written += pts
    lines.append(f"| **total** | **{total['public'] + written:g}** | **{total['hidden']:g}** | "
                 f"**{total['extra']:g}** |")
    maximum = total["public"] + total["hidden"] + written
    return "\n".join(lines) + (f"\n\nMaximum: {maximum:g} points (autograded "
                               f"{total['public'] + total['hidden']:g}, written {written:g}); "
                               f"extra credit up to {total['extra']:g} more.")


def write_student_readme(repo: Path, out: Path) -> Path:
    """Write ``<repo>/course/student_README.md`` as ``<out>/README.md`` with the points filled.

    Raises:
        FileNotFoundError: if the template is missing.
    """
    template = Path(repo) / STUDENT_README
    if not template.is_file():
        raise FileNotFoundError(f"no student README template at {template}")
    text = template.read_text(encoding="utf-8").replace("{points}", points_table(repo))
    dest = Path(out) / "README.md"
    dest.write_text(text, encoding="utf-8")
    return dest


def release(repo: Path, out: Path, force: bool = False, untracked: bool = False,
            repo_url: str | None = None) -> ReleaseReport:
    """Build the student tree of `repo` in `out`.

    Args:
        repo: the instructor repository (solutions and hidden tests in place).
        out: destination folder; must be empty or absent unless `force`.
        force: write into a non-empty `out` (its content is removed first).
        untracked: in a git checkout, also release untracked files that are not ignored.
        repo_url: the students' GitHub repository (https://github.com/<owner>/<name>): every
            clone URL and Colab badge is pointed at it (`rewrite_repo_url`). The
            release's README.md is always the student README (`course/student_README.md`).
    Returns:
        a ReleaseReport.
    Raises:
        FileExistsError: if out is not empty and not force.
        ReleaseError: on a malformed block or any marker / hidden test left in out.
    """
    repo, out = Path(repo).resolve(), Path(out).resolve()
    if out == repo or repo in out.parents:
        raise ReleaseError(f"release folder {out} is inside the repository {repo}; "
                           "choose a folder outside it")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise FileExistsError(f"release folder {out} is not empty; pass --force to "
                                  "replace its content")
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    report = ReleaseReport(out=out)
    patterns = solution_only_patterns(repo)
    hidden = []
    for name in repo_files(repo, untracked=untracked):
        if _is_solution_only(name, patterns):
            report.left_out.append(name)
            continue
        src, dst = repo / name, out / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith(".py"):
            text = src.read_text(encoding="utf-8")
            hidden += hidden_test_names(text, name)
            text, n_hidden = strip_hidden_tests(text, name)
            text, n_solutions = strip_solutions(text, name)
            report.hidden_blocks += n_hidden
            report.solution_blocks += n_solutions
            dst.write_text(text, encoding="utf-8")
            shutil.copymode(src, dst)
        elif name.endswith(".ipynb"):
            release_notebook(src, dst)
        else:
            shutil.copy2(src, dst)
        report.files.append(name)
    if (repo / STUDENT_README).is_file():
        write_student_readme(repo, out)
    if repo_url is not None:
        try:
            rewrite_repo_url(out, repo_url)
        except RepoUrlError as e:
            raise ReleaseError(str(e)) from e
        left = placeholder_urls(out)
        if left and github_parts(repo_url) != github_parts(PLACEHOLDER_URL):
            raise ReleaseError(f"release {out} still names the placeholder repository:\n  "
                               + "\n  ".join(left[:50]))
    leaks = find_leaks(out, hidden)
    if leaks:
        raise ReleaseError(f"release {out} leaks {len(leaks)} solution/hidden line(s):\n  "
                           + "\n  ".join(leaks[:50]))
    return report
