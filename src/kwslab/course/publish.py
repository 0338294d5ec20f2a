"""What the student release says about itself: its repository URL and its README.

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
from collections import defaultdict
from pathlib import Path

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
    from .autograde import collect_graded

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
