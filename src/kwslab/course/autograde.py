"""Autograde a folder of student submissions against this repository's graded suite.

`kwslab course grade SUBMISSIONS/ --out grades/`: each subfolder of SUBMISSIONS is one
student's copy of the student tree (at least their student-editable `.py` files). For each:

1. A fresh sandbox folder gets the instructor's pristine package (`src/`), the full graded
   suite (public and hidden `tests/graded/*.py`, plus `tests/conftest.py` files) from THIS
   repository, and the grader's pytest plugin and config. Only the student-editable files
   (the `.py` files holding solution blocks, `kwslab.course.student_files`) are taken from
   the submission, and only as regular files (a symlink or a file over 1 MB is graded as the
   unfilled stub, as is a missing file: a missing file must never fall back to the solution).
   Everything but the plugin's output and temp folders is made read-only.
2. pytest runs there in a child process: one run over all graded files, and if that run
   dies without a report (e.g. `os._exit` at import), one run per file still unreported.
   Limits: `prlimit` (address space `--memory-mb`, file size, no core, process count), a
   per-test `signal.alarm` (`--test-timeout`, from the plugin), and a hard wall-clock limit
   per submission (`--time-limit`) after which the process group is killed.
   Isolation, the first that works here: (a) as root, `unshare --net --pid --fork
   --kill-child` + `setpriv` to uid/gid 65534 (no network, the pid namespace dies with its
   first process, read-only files are really read-only); (b) `unshare --user
   --map-root-user --net --pid`; (c) `bwrap --unshare-net --unshare-pid`; (d) none, with the
   plugin refusing socket connections (weak). The mode used is written to each result.
3. Scores: the test ids and points (`@pytest.mark.graded(points=N)`) come from a collection
   run over the instructor's own repository, never from the submission. The child writes
   pytest's junit XML; a test earns its points only when its junit entry says passed.
   Report entries that are not in the instructor's list are ignored and flagged.
4. Output, written as each submission finishes (a crash in one never loses another):
   `<out>/<student>/results.json` (Gradescope format), `<out>/<student>/feedback.md`, and a
   row of `<out>/grades.csv` (per-test points, total, max, status); `--nbgrader-csv` merges
   an nbgrader gradebook export (`nbgrader export`) for the notebooks' cells into the CSV.

Threat model, honestly: student code runs in the same process as the tests (the tests
import it). It cannot change the tests on disk (read-only, another uid in mode (a)) nor see
them before the graded run (they are copied in only for it), and it has no network. But
while it runs it can read the test files, including hidden tests, and print them (hidden
tests' output is marked `after_published` and left out of feedback.md), and it could tamper
with pytest in-process (monkeypatching, rewriting the junit file at exit). Against the
latter there is no cheap defence in one process; the ids check catches clumsy forgeries, and
an instructor should read the code of any surprising score.

Source: Gradescope autograder specifications (results.json); pytest junitxml; Linux
unshare(1), setpriv(1), prlimit(1).
"""
from __future__ import annotations

import csv
import json
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from . import student_release as course
from .sandbox import MAX_OUTPUT_CHARS, build_sandbox, isolation, remove_tree, run_pytest


@dataclass(frozen=True)
class GradedTest:
    """One graded test of the instructor's suite, as collected from the instructor repo."""
    nodeid: str
    classname: str
    name: str
    path: str
    line: int
    points: float
    hidden: bool
    extra_credit: bool = False
    """graded(points=N, extra_credit=True): adds to the score, not to the maximum."""

    @property
    def max_points(self) -> float:
        return 0.0 if self.extra_credit else self.points


@dataclass
class TestResult:
    test: GradedTest
    status: str  # passed, failed, error, skipped, not run
    output: str = ""

    @property
    def score(self) -> float:
        return self.test.points if self.status == "passed" else 0.0


@dataclass
class StudentResult:
    student: str
    tests: list[TestResult] = field(default_factory=list)
    status: str = "graded"
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    sandbox: str = ""

    @property
    def score(self) -> float:
        return sum(t.score for t in self.tests)

    @property
    def max_score(self) -> float:
        return sum(t.test.max_points for t in self.tests)


def parse_junit(path: Path) -> dict[tuple[str, str], tuple[str, str]]:
    """{(classname, name): (status, output)} from a junit XML file; {} if absent/broken."""
    if not path.is_file() or path.stat().st_size > 50 * 2**20:
        return {}
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        return {}
    results = {}
    for case in root.iter("testcase"):
        status, output = "passed", ""
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                status = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
                output = (child.get("message") or "") + "\n" + (child.text or "")
                break
        key = (case.get("classname", ""), case.get("name", ""))
        if key in results and results[key][0] != "passed":
            continue  # keep the first failure (e.g. a passed call with an erroring teardown)
        results[key] = (status, output.strip()[-MAX_OUTPUT_CHARS:])
    return results


# ---------------------------------------------------------------- collection (instructor)
def collect_graded(repo: Path, timeout_s: float = 300) -> list[GradedTest]:
    """The graded tests of repo's `tests/graded/`, with points, from the instructor's code.

    Raises:
        RuntimeError: if collection fails or finds no graded test.
    """
    repo = Path(repo).resolve()
    files = sorted(p.relative_to(repo).as_posix() for p in (repo / "tests/graded").glob(
        "test_*.py"))
    if not files:
        raise RuntimeError(f"no graded test files: {repo}/tests/graded/test_*.py")
    with tempfile.TemporaryDirectory(prefix="kwslab-collect-") as tmp:
        sandbox = Path(tmp)
        editable = course.student_files(repo)
        build_sandbox(repo, repo, sandbox, editable)  # the instructor's own solution
        listing = sandbox / "out" / "collected.json"
        run = run_pytest(sandbox, files, "collect", timeout_s, 0, 8192, collect=listing)
        if run.returncode != 0 or not listing.is_file():
            raise RuntimeError(f"collecting {repo}/tests/graded failed (exit "
                               f"{run.returncode}):\n{run.log_tail}")
        records = json.loads(listing.read_text())
    hidden_lines = {f: course.hidden_line_ranges((repo / f).read_text(), f) for f in files}
    tests = [GradedTest(r["nodeid"], r["classname"], r["name"], r["path"], r["line"],
                        float(r["points"]),
                        any(a <= r["line"] <= b for a, b in hidden_lines.get(r["path"], [])),
                        bool(r.get("extra_credit", False)))
             for r in records if r["points"] is not None]
    if not tests:
        raise RuntimeError(f"no test in {repo}/tests/graded is marked "
                           "@pytest.mark.graded(points=N)")
    return tests


# ---------------------------------------------------------------- one submission
def grade_submission(repo: Path, submission: Path, tests: list[GradedTest],
                     editable: list[str], time_limit_s: float = 300,
                     test_timeout_s: int = 60, memory_mb: int = 4096,
                     workdir: Path | None = None) -> StudentResult:
    """Grade one student folder; problems with the submission become results, not errors."""
    start = time.monotonic()
    result = StudentResult(student=submission.name, sandbox=isolation()[1])
    sandbox = Path(tempfile.mkdtemp(prefix="kwslab-grade-", dir=workdir))
    try:
        result.notes += build_sandbox(repo, submission, sandbox, editable)
        files = sorted({t.path for t in tests})
        outcomes: dict[tuple[str, str], tuple[str, str]] = {}
        file_notes: dict[str, str] = {}

        def remaining() -> float:
            return time_limit_s - (time.monotonic() - start)

        run = run_pytest(sandbox, files, "all", remaining(), test_timeout_s, memory_mb)
        outcomes.update(parse_junit(run.junit))
        def reported(f: str) -> bool:  # a test result, or a collection error of f
            return ("", f[:-3].replace("/", ".")) in outcomes or any(
                (t.classname, t.name) in outcomes for t in tests if t.path == f)

        todo = [f for f in files if not reported(f)]
        if run.timed_out:
            result.notes.append(f"time limit of {time_limit_s:.0f} s reached; stopped")
            file_notes.update({f: "not run: submission time limit reached" for f in todo})
        elif todo:
            result.notes.append(f"pytest exited with code {run.returncode} without a full "
                                f"report; files rerun one by one: {', '.join(todo)}")
            for i, f in enumerate(todo):
                if remaining() <= 0:
                    file_notes[f] = "not run: submission time limit reached"
                    continue
                one = run_pytest(sandbox, [f], f"file{i}", remaining(), test_timeout_s,
                                 memory_mb)
                outcomes.update(parse_junit(one.junit))
                why = ("time limit reached" if one.timed_out else
                       f"pytest exited with code {one.returncode} before reporting")
                file_notes[f] = f"not run: {why}; last output:\n{one.log_tail[-1500:]}"
        expected = {(t.classname, t.name) for t in tests}
        for t in tests:
            status, output = outcomes.get((t.classname, t.name), (None, ""))
            if status is None:
                collect_error = outcomes.get(("", t.path[:-3].replace("/", ".")))
                status, output = ("error", "collection failed: " + collect_error[1]) \
                    if collect_error else ("not run", file_notes.get(t.path, "not reported"))
            result.tests.append(TestResult(t, status, output))
        unexpected = [f"{c}::{n}" for c, n in outcomes
                      if (c, n) not in expected and c and (c, n) != ("pytest", "internal")]
        if unexpected:
            result.notes.append("report entries not in the instructor's suite (ignored): "
                                + ", ".join(sorted(unexpected)[:10]))
    except Exception as e:  # grader trouble with this submission: record, go on
        result.status = f"error: {type(e).__name__}: {e}"
        result.tests = [TestResult(t, "not run", result.status) for t in tests]
    finally:
        remove_tree(sandbox)
        result.seconds = time.monotonic() - start
    return result


# ---------------------------------------------------------------- outputs
def write_student(result: StudentResult, folder: Path) -> None:
    """results.json (Gradescope) and feedback.md for one student."""
    folder.mkdir(parents=True, exist_ok=True)
    header = [f"Graded in a sandbox ({result.sandbox}).", *result.notes]
    if result.status != "graded":
        header.insert(0, result.status)
    gradescope = {
        "score": result.score, "execution_time": round(result.seconds, 2),
        "output": "\n".join(header),
        "tests": [{"name": t.test.nodeid, "score": t.score, "max_score": t.test.max_points,
                   "status": "passed" if t.status == "passed" else "failed",
                   "output": t.output if t.status != "passed" else "",
                   "visibility": "after_published" if t.test.hidden else "visible"}
                  for t in result.tests]}
    (folder / "results.json").write_text(json.dumps(gradescope, indent=1))
    lines = [f"# Feedback for {result.student}", "",
             f"Score: **{result.score:g} / {result.max_score:g}**", ""]
    lines += [f"- {h}" for h in header] + ["", "| test | points | result |",
                                           "|---|---|---|"]
    public = [t for t in result.tests if not t.test.hidden]
    hidden = [t for t in result.tests if t.test.hidden]
    lines += [f"| `{t.test.name}` | {t.score:g} / {t.test.points:g} | {t.status} |"
              for t in public]
    if hidden:
        lines += [f"| hidden tests ({sum(t.status == 'passed' for t in hidden)} of "
                  f"{len(hidden)} passed) | {sum(t.score for t in hidden):g} / "
                  f"{sum(t.test.points for t in hidden):g} | |"]
    for t in public:
        if t.status != "passed" and t.output:
            lines += ["", f"## `{t.test.name}`: {t.status}", "", "```",
                      t.output[-1500:], "```"]
    (folder / "feedback.md").write_text("\n".join(lines) + "\n")


def read_nbgrader_csv(path: Path) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """({student_id: {assignment: score}}, {assignment: max_score}) from `nbgrader export`.

    Only kwslab's exporter (`kwslab.course.nbgrader_course.WrittenAnswersExport`, the default
    in `course/nbgrader_config.py`) is accepted: its `score` counts the written answers only.

    Raises:
        ValueError: for another export (e.g. nbgrader's stock CSV, whose score also counts
            the check cells: the student functions a second time).
    """
    scores: dict[str, dict[str, float]] = {}
    maxima: dict[str, float] = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        if "check_score" not in (reader.fieldnames or []):
            raise ValueError(f"{path} is not kwslab's nbgrader export (no check_score "
                             "column): its score would count the check cells again; run "
                             "`nbgrader export` with course/nbgrader_config.py")
        for row in reader:
            a = f"nbgrader:{row['assignment']}"
            scores.setdefault(row["student_id"], {})[a] = float(row["score"] or 0)
            maxima[a] = max(maxima.get(a, 0.0), float(row["max_score"] or 0))
    return scores, maxima


def write_csv(path: Path, results: list[StudentResult], tests: list[GradedTest],
              nbgrader: tuple[dict, dict] | None = None) -> None:
    """grades.csv: student, per-test points, [nbgrader columns], total, max, status."""
    scores, maxima = nbgrader or ({}, {})
    extra = sorted(maxima)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["student", *[t.nodeid for t in tests], *extra, "total", "max", "status"])
        for r in sorted(results, key=lambda r: r.student):
            by_id = {x.test.nodeid: x.score for x in r.tests}
            nb = [scores.get(r.student, {}).get(a, 0.0) for a in extra]
            w.writerow([r.student, *[f"{by_id.get(t.nodeid, 0):g}" for t in tests],
                        *[f"{s:g}" for s in nb], f"{r.score + sum(nb):g}",
                        f"{r.max_score + sum(maxima.values()):g}", r.status])
    tmp.replace(path)


def grade_all(repo: Path, submissions: Path, out: Path, jobs: int = 1,
              time_limit_s: float = 300, test_timeout_s: int = 60, memory_mb: int = 4096,
              nbgrader_csv: Path | None = None, progress: bool = True
              ) -> list[StudentResult]:
    """Grade every subfolder of submissions; write each result as soon as it is done."""
    from tqdm import tqdm
    repo, submissions, out = Path(repo).resolve(), Path(submissions), Path(out)
    students = sorted(p for p in submissions.iterdir()
                      if p.is_dir() and not p.name.startswith("."))
    if not students:
        raise FileNotFoundError(f"no submission folders in {submissions}")
    tests = collect_graded(repo)
    editable = course.student_files(repo)
    nbgrader = read_nbgrader_csv(nbgrader_csv) if nbgrader_csv else None
    out.mkdir(parents=True, exist_ok=True)
    done: list[StudentResult] = []
    lock = threading.Lock()

    def one(sub: Path) -> StudentResult:
        r = grade_submission(repo, sub, tests, editable, time_limit_s, test_timeout_s,
                             memory_mb)
        with lock:
            write_student(r, out / r.student)
            done.append(r)
            write_csv(out / "grades.csv", done, tests, nbgrader)
        return r

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(one, s) for s in students]
        for fut in tqdm(as_completed(futures), total=len(futures), desc="grade",
                        disable=not progress):
            fut.result()
    return sorted(done, key=lambda r: r.student)


def summary_table(results: list[StudentResult]) -> str:
    width = max(len("student"), *(len(r.student) for r in results))
    rows = [f"{'student':<{width}}  {'score':>12}  {'seconds':>7}  status",
            "-" * (width + 32)]
    rows += [f"{r.student:<{width}}  {r.score:>5g} / {r.max_score:<4g}  {r.seconds:>7.1f}  "
             f"{r.status}{' (' + r.notes[0][:60] + ')' if r.notes else ''}" for r in results]
    return "\n".join(rows)
