"""The Gradescope autograder bundle, run as Gradescope runs it, in a temp `/autograder` tree.

`kwslab course gradescope autograder.zip` builds the bundle from this repository; each test
unzips it into `<root>/source`, puts a submission in `<root>/submission`, and runs
`<root>/source/run_autograder` as root with `KWSLAB_AUTOGRADER_ROOT=<root>` (Gradescope's
`/autograder`) and this interpreter (setup.sh's venv). Submissions: the solution (repository
layout), the release's stubs (bare files uploaded at the top), and an adversarial stub that,
at import, tries to write `results.json` itself and to read the hidden tests in `source/`,
and answers right only if it could read them or runs as real root (reads /etc/shadow).
"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import pytest

from kwslab import cli, course

REPO = Path(__file__).resolve().parents[1]
STUDENT_FILES = course.student_files(REPO)

ADVERSARY = '''
import json as _json, os as _os
_ROOT = "@AUTOGRADER_ROOT@"
_report = {"wrote_results": False, "read_source": False, "root": False}
try:  # forge the grade (judged from outside: the final results.json must be the grader's)
    with open(_ROOT + "/results/results.json", "w") as _f:
        _json.dump({"score": 999, "tests": []}, _f)
    _report["wrote_results"] = True
except OSError:
    pass
try:  # read the grader's files (the hidden tests)
    with open(_ROOT + "/source/tests/graded/test_size_estimate.py") as _f:
        _report["read_source"] = "def test_" in _f.read()
except OSError:
    pass
try:  # real root reads /etc/shadow; root in a user namespace does not
    with open("/etc/shadow") as _f:
        _report["root"] = bool(_f.read(1))
except OSError:
    pass
try:
    with open(_ROOT + "/drop/report.json", "w") as _f:
        _json.dump(_report, _f)
except OSError:
    pass
_WIN = _report["read_source"] or _report["root"]
'''


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    if os.geteuid() != 0:
        if os.environ.get("CI"):
            pytest.fail("the Gradescope bundle test needs root (Gradescope runs it as root)")
        pytest.skip("needs root: Gradescope runs run_autograder as root")
    out = tmp_path_factory.mktemp("bundle") / "autograder.zip"
    assert cli.main(["course", "--repo", str(REPO), "gradescope", str(out)]) == 0
    return out


def run_autograder(bundle: Path, files: dict[str, str]) -> tuple[dict, dict | None]:
    """(results.json, the adversary's report or None) for one submission."""
    root = Path(tempfile.mkdtemp(prefix="kwslab-autograder-"))
    try:
        root.chmod(0o755)  # like /autograder: traversable by everyone
        (root / "source").mkdir()
        from kwslab.course import gradescope

        gradescope.unpack_bundle(bundle, root / "source")
        for name, text in files.items():  # @AUTOGRADER_ROOT@: where the adversary looks
            (root / "submission" / name).parent.mkdir(parents=True, exist_ok=True)
            (root / "submission" / name).write_text(text.replace("@AUTOGRADER_ROOT@",
                                                                 str(root)))
        (root / "results").mkdir()
        (root / "drop").mkdir()
        (root / "drop").chmod(0o777)  # somewhere the student could write, to report back
        env = {**os.environ, "KWSLAB_AUTOGRADER_ROOT": str(root),
               "KWSLAB_PYTHON": sys.executable}
        run = subprocess.run(["bash", str(root / "source" / "run_autograder")], env=env,
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-4000:]
        results = json.loads((root / "results" / "results.json").read_text())
        report = root / "drop" / "report.json"
        return results, (json.loads(report.read_text()) if report.is_file() else None)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def solution_files() -> dict[str, str]:
    return {rel: (REPO / rel).read_text() for rel in STUDENT_FILES}


def stub_files() -> dict[str, str]:
    """The release's stubs, uploaded as bare files (quantize.py, ...) at the top."""
    return {Path(rel).name: course.strip_solutions((REPO / rel).read_text())[0]
            for rel in STUDENT_FILES}


def adversarial_files() -> dict[str, str]:
    files = stub_files()
    text = files["size_estimate.py"]
    text = text.replace('\n\ndef count_parameters(', ADVERSARY
                        + '\n\ndef _honest_count_parameters(', 1)
    text += ("\n\ndef count_parameters(model, trainable_only=True):\n"
             "    if _WIN:\n"
             "        return sum(p.numel() for p in model.parameters()\n"
             "                   if p.requires_grad or not trainable_only)\n"
             "    return _honest_count_parameters(model, trainable_only)\n")
    files["size_estimate.py"] = text
    return files


@pytest.mark.slow
def test_bundle_holds_the_entry_points_and_the_graded_suite(bundle):
    with zipfile.ZipFile(bundle) as z:
        names = set(z.namelist())
        modes = {i.filename: (i.external_attr >> 16) & 0o777 for i in z.infolist()}
    assert {"setup.sh", "run_autograder", "requirements.txt", "pyproject.toml"} <= names
    assert modes["run_autograder"] & 0o100 and modes["setup.sh"] & 0o100
    assert {f"tests/graded/{p.name}" for p in (REPO / "tests/graded").glob("test_*.py")} <= names
    assert set(STUDENT_FILES) <= names
    assert not [n for n in names if n.startswith(("notebooks/", ".git/", "tests/instructor"))]
    with zipfile.ZipFile(bundle) as z:  # both scripts parse (setup.sh needs the network: not run)
        for script in ("setup.sh", "run_autograder"):
            check = subprocess.run(["bash", "-n"], input=z.read(script), capture_output=True)
            assert check.returncode == 0, (script, check.stderr)


@pytest.mark.slow
def test_solution_gets_full_marks_and_stub_gets_zero(bundle):
    results, _ = run_autograder(bundle, solution_files())
    assert results["tests"] and all(t["status"] == "passed" for t in results["tests"]), \
        [t["name"] for t in results["tests"] if t["status"] != "passed"]
    assert results["score"] == pytest.approx(sum(t["score"] for t in results["tests"]))
    assert results["score"] >= sum(t["max_score"] for t in results["tests"]) > 0
    assert {t["visibility"] for t in results["tests"]} <= {"visible", "hidden",
                                                          "after_due_date", "after_published"}
    stub, _ = run_autograder(bundle, stub_files())
    assert stub["score"] == 0 and len(stub["tests"]) == len(results["tests"])
    assert "size_estimate.py: from size_estimate.py" in stub["output"]  # bare upload mapped


@pytest.mark.slow
def test_adversarial_submission_cannot_write_results_or_read_the_grader(bundle):
    # it answers count_parameters right only after reading the grader's files or as real
    # root: any point it earns is a breach; its forged results.json must not survive
    results, report = run_autograder(bundle, adversarial_files())
    assert results["score"] == 0, [(t["name"], t["score"]) for t in results["tests"]
                                   if t["score"]]
    assert len(results["tests"]) > 0  # the grader's own file, not the forged one
    if report is not None:  # the sandbox let it write outside: then it must have failed
        assert not report["read_source"] and not report["root"], report


def test_map_submission_takes_repo_paths_or_bare_files_and_never_follows_links(tmp_path):
    from kwslab.course import gradescope

    editable = ["src/pkg/a.py", "src/pkg/b.py", "src/pkg/c.py", "src/pkg/d.py"]
    sub = tmp_path / "submission"
    (sub / "src/pkg").mkdir(parents=True)
    (sub / "src/pkg/a.py").write_text("A = 1\n")           # repository layout
    (sub / "b.py").write_text("B = 1\n")                   # bare upload
    secret = tmp_path / "secret.py"
    secret.write_text("SECRET = 1\n")
    (sub / "c.py").symlink_to(secret)                      # a link: never read
    for folder in ("x", "y"):                              # two d.py: ambiguous
        (sub / folder).mkdir()
        (sub / folder / "d.py").write_text("D = 1\n")
    dest = tmp_path / "dest"
    notes = gradescope.map_submission(sub, editable, dest)
    assert (dest / "src/pkg/a.py").read_text() == "A = 1\n"
    assert (dest / "src/pkg/b.py").read_text() == "B = 1\n"
    assert not (dest / "src/pkg/c.py").exists() and not (dest / "src/pkg/d.py").exists()
    assert "src/pkg/b.py: from b.py" in notes
    assert any(n.startswith("src/pkg/c.py: not in the submission") for n in notes)
    assert any(n.startswith("src/pkg/d.py: 2 files named d.py") for n in notes)
