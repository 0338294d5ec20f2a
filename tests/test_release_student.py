"""The student release as students meet it: their repository's URLs and their README.

Fast tests pin `kwslab.course.publish` on small trees; the slow ones release this repository
with `--repo-url` and run what the student README tells students to run.
"""
from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from kwslab.course import publish

REPO = Path(__file__).resolve().parents[1]
URL = "https://github.com/acme-uni/kwslab-2026"


# ---------------------------------------------------------------- publish (fast)
@pytest.mark.parametrize("url, parts", [
    ("https://github.com/acme-uni/kwslab-2026", ("acme-uni", "kwslab-2026")),
    ("https://github.com/acme-uni/kwslab-2026.git", ("acme-uni", "kwslab-2026")),
    ("https://github.com/a/b/", ("a", "b")),
])
def test_github_parts_accepts_repository_urls(url, parts):
    assert publish.github_parts(url) == parts


@pytest.mark.parametrize("url", ["https://gitlab.com/a/b", "github.com/a/b", "https://github.com/a",
                                 "https://github.com/a/b/tree/main"])
def test_github_parts_rejects_what_colab_cannot_open(url):
    with pytest.raises(publish.RepoUrlError, match="Colab opens notebooks from GitHub"):
        publish.github_parts(url)


def test_rewrite_repo_url_points_badges_and_clones_at_the_new_repository(tmp_path):
    badge = "https://colab.research.google.com/github/kwslab/kwslab/blob/main/notebooks/1.ipynb"
    (tmp_path / "nb").mkdir()
    (tmp_path / "nb" / "1.ipynb").write_text(f'["[badge]({badge})", "git clone https://github.com/kwslab/kwslab x"]')
    (tmp_path / "other.txt").write_text("nothing to change\n")
    (tmp_path / "blob.bin").write_bytes(b"\xff\xfe https://github.com/kwslab/kwslab")  # not text: untouched
    changed = publish.rewrite_repo_url(tmp_path, URL)
    assert changed == ["nb/1.ipynb"]
    text = (tmp_path / "nb" / "1.ipynb").read_text()
    assert "colab.research.google.com/github/acme-uni/kwslab-2026/blob/main/notebooks/1.ipynb" in text
    assert "git clone https://github.com/acme-uni/kwslab-2026 x" in text
    assert publish.placeholder_urls(tmp_path / "nb") == []


def test_placeholder_urls_finds_leftovers_but_not_longer_names(tmp_path):
    (tmp_path / "a.md").write_text("see https://github.com/kwslab/kwslab.\n"
                                   "and https://github.com/kwslab/kwslab-student\n")
    assert publish.placeholder_urls(tmp_path) == ["a.md:1"]


def test_student_readme_template_links_every_notebook_and_says_what_to_run():
    text = (REPO / publish.STUDENT_README).read_text()
    for nb in sorted((REPO / "notebooks").glob("*.ipynb")):
        assert f"colab.research.google.com/github/kwslab/kwslab/blob/main/notebooks/{nb.name}" in text, nb.name
    for needed in ("pytest tests/graded", "collect_submission", "{points}", "Extra-credit", "## Hand in"):
        assert needed in text, needed


# ---------------------------------------------------------------- the real release (slow)
@pytest.fixture(scope="module")
def student_release(tmp_path_factory):
    out = tmp_path_factory.mktemp("release") / "kwslab-2026"
    proc = subprocess.run([sys.executable, "-c", "import sys; from kwslab.cli import main; sys.exit(main())",
                           "course", "--repo", str(REPO), "release", str(out), "--untracked",
                           "--repo-url", URL], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


@pytest.mark.slow
def test_release_has_no_placeholder_url_and_the_student_readme(student_release):
    assert publish.placeholder_urls(student_release) == []
    readme = (student_release / "README.md").read_text()
    assert "{points}" not in readme and "| **total** |" in readme
    assert "pytest tests/graded" in readme and "course/README.md" not in readme
    assert "colab.research.google.com/github/acme-uni/kwslab-2026/blob/main/notebooks/1_preprocessing.ipynb" in readme
    colab = (student_release / "src" / "kwslab" / "colab.py").read_text()
    assert f'REPO_URL = "{URL}"' in colab
    first = (student_release / "notebooks" / "3_training.ipynb").read_text()
    assert f'\\"{URL}\\"' in first  # the bootstrap cell's clone URL (JSON-escaped quotes)


@pytest.mark.slow
def test_pytest_tests_graded_in_the_release_fails_only_on_the_stubs(student_release, tmp_path):
    # As the student README says: pytest tests/graded, with the release's own package first.
    env = {**os.environ, "PYTHONPATH": str(student_release / "src")}
    junit = tmp_path / "junit.xml"
    proc = subprocess.run([sys.executable, "-m", "pytest", "tests/graded", "-q", "-p", "no:cacheprovider",
                           f"--junitxml={junit}"], cwd=student_release, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-2000:]  # 1: tests failed; 2+: broken run
    cases = list(ET.parse(junit).getroot().iter("testcase"))
    assert cases, proc.stdout[-2000:]
    problems = [(c.get("classname"), c.get("name"), p.get("message", "")[:200]) for c in cases
                for p in (c.find("failure"), c.find("error")) if p is not None
                and "NotImplementedError" not in p.get("message", "")]
    assert not problems, f"graded tests failing for another reason than the stubs: {problems}"
    assert all(c.get("classname", "").startswith("tests.graded") for c in cases)
