"""Autograde a folder of student submissions against this repository's graded suite.

`kwslab course grade SUBMISSIONS/ --out grades/`: each subfolder of SUBMISSIONS is one
student's copy of the student tree (at least their student-editable `.py` files, the
`src/` files holding solution blocks, `kwslab.course.student_files`). For each:

1. A fresh code folder gets the instructor's package files (solution-only files left out)
   with the student-editable files taken from the submission, read without following any
   symbolic link, as regular files of at most 1 MB (anything else, or a missing file, is
   graded as the unfilled stub: a missing file never falls back to the solution).
2. The graded tests (public and hidden, this repository's own files) run in a pytest process
   of the grader that never imports student code: each student module is replaced by a
   proxy (`kwslab.course.remote`) whose functions run in a sandboxed worker
   (`kwslab.course.worker`, `kwslab.course.sandbox`) on the inputs the tests give, and
   return plain data (`kwslab.course.wire`). Every assert, every comparison and every
   verdict is made in the grader's process, from files the sandbox cannot see.
3. A crash, hang or memory kill in the worker fails the test that caused it; the next test
   gets a fresh worker. Public tests run first; a worker that has served a hidden test is
   replaced before any public test. A hard wall-clock limit per
   submission (`--time-limit`) ends the run; tests without a verdict are "not run".
4. Scores: test ids and points (`@pytest.mark.graded(points=N)`) come from a collection run
   over the instructor's own repository, never from the submission.
5. Output, written as each submission finishes (a problem with one never loses another):
   `<out>/students/<student>/results.json` (Gradescope format, plain-text output),
   `<out>/students/<student>/feedback.md` (student text in fences longer than any backtick
   run in it; hidden tests as a count, never their names, source or output), and a row of
   `<out>/grades.csv` for every entry of SUBMISSIONS (per-test points, total, max, status);
   `--nbgrader-csv` merges an `nbgrader export` for the notebooks' cells.

Threat model: see course/README.md ("Threat model").

Source: Gradescope autograder specifications (results.json); PrairieLearn's Python
autograder (student code in a separate process, checks in the parent); bubblewrap(1).
"""
from __future__ import annotations

import csv
import fnmatch
import json
import logging
import os
import re
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from . import runner, sandbox
from . import student_release as course

log = logging.getLogger(__name__)

MAX_OUTPUT_CHARS = 4000
MAX_RESULTS_BYTES = 16 * 2**20
PYTEST_INI = """[pytest]
markers =
    graded: a graded student test
    slow: slow test
    tflm: runs the TFLite Micro interpreter
"""
GRADER_FILES = ["kwslab/__init__.py", "kwslab/course/__init__.py",
                "kwslab/course/student_release.py", "kwslab/course/wire.py",
                "kwslab/course/worker.py"]
"""The grader's own files a worker needs, added to a package that is not kwslab."""


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



# ---------------------------------------------------------------- the instructor's side
def _grader_src() -> Path:
    return Path(__file__).resolve().parents[2]


def _trusted_env(repo: Path, extra: dict[str, str], tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KWSLAB_GRADER_")}
    paths = [str(repo / "src"), str(_grader_src())]
    env.update({"PYTHONPATH": os.pathsep.join(dict.fromkeys(paths)),
                "PYTHONDONTWRITEBYTECODE": "1", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1",
                "MPLCONFIGDIR": str(tmp), "OMP_NUM_THREADS": "1"}, **extra)
    return env


def _run_trusted_pytest(repo: Path, files: list[str], work: Path, env: dict[str, str],
                        timeout_s: float, extra_args: list[str] = (),
                        server: runner.PytestServer | None = None) -> tuple[int | None, str]:
    """(exit code or None on timeout, log tail) of the grader's own pytest over files
    (forked from server when one is given, else a fresh process)."""
    ini = work / "pytest.ini"
    ini.write_text(PYTEST_INI)
    args = [*files, "-c", str(ini), "--rootdir", str(repo),
            "-p", "kwslab.course.pytest_plugin", "-p", "no:cacheprovider", "-q",
            "--tb=short", "--color=no", "-W", "ignore::DeprecationWarning",
            "--basetemp", str(work / "pytest"), *extra_args]
    log_path = work / "pytest.log"
    code = runner.run_pytest(args, repo, env, log_path, timeout_s, server)
    with open(log_path, "rb") as log:
        log.seek(max(0, log_path.stat().st_size - MAX_OUTPUT_CHARS))
        tail = log.read().decode("utf-8", errors="replace")
    return code, tail


def graded_files(repo: Path) -> list[str]:
    return sorted(p.relative_to(repo).as_posix()
                  for p in (repo / "tests/graded").glob("test_*.py"))


def collect_graded(repo: Path, timeout_s: float = 300,
                   server: runner.PytestServer | None = None) -> list[GradedTest]:
    """The graded tests of repo's `tests/graded/`, with points, from the instructor's code.

    Raises:
        RuntimeError: if collection fails or finds no graded test.
    """
    repo = Path(repo).resolve()
    files = graded_files(repo)
    if not files:
        raise RuntimeError(f"no graded test files: {repo}/tests/graded/test_*.py")
    with tempfile.TemporaryDirectory(prefix="kwslab-collect-") as tmp:
        work = Path(tmp)
        listing = work / "collected.json"
        env = _trusted_env(repo, {"KWSLAB_GRADER_COLLECT": str(listing)}, work)
        code, tail = _run_trusted_pytest(repo, files, work, env, timeout_s,
                                         ["--collect-only"], server)
        if code != 0 or not listing.is_file():
            raise RuntimeError(f"collecting {repo}/tests/graded failed (exit {code}):\n{tail}")
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


def editable_files(repo: Path, exclude: list[Path] = ()) -> list[str]:
    """The student-editable files under src/ (course.student_files), leaving out anything
    under the folders in exclude (a submissions or output folder inside the repository)."""
    repo = Path(repo).resolve()
    skip = []
    for folder in exclude:
        try:
            skip.append(Path(folder).resolve().relative_to(repo).as_posix() + "/")
        except ValueError:
            pass
    return [f for f in course.student_files(repo)
            if f.startswith("src/") and not any(f.startswith(s) for s in skip)]


def package_files(repo: Path, editable: list[str]) -> list[str]:
    """Files of repo/src the worker gets from the instructor (relative to src/): the
    released ones that are not student-editable, plus the grader's own worker files when
    the package under test is not kwslab."""
    repo = Path(repo).resolve()
    patterns = course.solution_only_patterns(repo)
    names = [n for n in course.repo_files(repo, untracked=True) if n.startswith("src/")
             and n not in editable and not any(fnmatch.fnmatch(n, p) for p in patterns)]
    files = [n[len("src/"):] for n in names if not n.endswith((".pyc", ".pth"))]
    if not any(f.startswith("kwslab/") for f in files):
        files += [f"@grader/{f}" for f in GRADER_FILES]
    return files


def _module_name(rel: str) -> str:
    return re.sub(r"(/__init__)?\.py$", "", Path(rel).relative_to("src").as_posix()) \
        .replace("/", ".")


# ---------------------------------------------------------------- one submission
_cgroup_ids = iter(range(10**9))


def grade_submission(repo: Path, submission: Path, tests: list[GradedTest],
                     editable: list[str], time_limit_s: float = 300,
                     test_timeout_s: int = 60, memory_mb: int = 4096,
                     workdir: Path | None = None, mode: str = "strict",
                     files: list[str] | None = None,
                     server: runner.PytestServer | None = None) -> StudentResult:
    """Grade one student folder; problems with the submission become results, not errors.
    With server (`runner.PytestServer` of this repository), the grader's pytest run is
    forked from it instead of starting fresh."""
    start = time.monotonic()
    repo = Path(repo).resolve()
    result = StudentResult(student=submission.name, sandbox=sandbox.check_mode(mode))
    work = Path(tempfile.mkdtemp(prefix="kwslab-grade-", dir=workdir))
    cgroups: list[sandbox.Cgroup] = []
    try:
        limits = sandbox.Limits(memory_mb=memory_mb)
        code_dir = work / "code"
        code_dir.mkdir()
        files = files if files is not None else package_files(repo, editable)
        own = [f for f in files if not f.startswith("@grader/")]
        result.notes += sandbox.build_code(repo, submission, code_dir, editable, own)
        for f in files:
            if f.startswith("@grader/"):
                rel = f[len("@grader/"):]
                (code_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                (code_dir / rel).write_bytes((_grader_src() / rel).read_bytes())
                (code_dir / rel).chmod(0o644)
                (code_dir / rel).parent.chmod(0o755)
        (work / "tmp").mkdir()
        packages = sorted({Path(rel).parts[1] for rel in editable})
        uid = cgroup = None
        if mode == "strict":  # a uid and a cgroup of its own for this submission's workers
            cgroup = sandbox.Cgroup(f"{os.getpid()}-{next(_cgroup_ids)}", limits)
            cgroups.append(cgroup)
            uid = sandbox.allocate_uid()
        results_path = work / "results.jsonl"
        config = {"modules": {_module_name(rel): str(repo / rel) for rel in editable},
                  "command": sandbox.worker_command(mode, code_dir, packages, limits, uid,
                                                    cgroup),
                  "env": sandbox.worker_env(mode, code_dir),
                  "hidden": [t.nodeid for t in tests if t.hidden],
                  "results": str(results_path), "test_timeout_s": test_timeout_s,
                  "trusted_modules": [m for m in (_module_name("src/" + f) for f in own
                                                  if f.endswith(".py"))
                                      if m not in {_module_name(r) for r in editable}]}
        config_path = work / "config.json"
        config_path.write_text(json.dumps(config))
        env = _trusted_env(repo, {"KWSLAB_GRADER_CONFIG": str(config_path),
                                  "KWSLAB_GRADER_TEST_TIMEOUT_S": str(test_timeout_s)},
                           work / "tmp")
        code, tail = _run_trusted_pytest(repo, sorted({t.path for t in tests}), work, env,
                                         time_limit_s - (time.monotonic() - start),
                                         server=server)
        outcomes = read_results(results_path)
        if code is None:
            result.notes.append(f"time limit of {time_limit_s:.0f} s reached; stopped")
            why = "not run: submission time limit reached"
        else:
            why = f"not run: the grader's test run ended (exit {code}) before this test"
        for t in tests:
            status, output = outcomes.get(t.nodeid, ("not run", why if code is None else
                                                     f"{why}\n{tail[-1500:]}"))
            result.tests.append(TestResult(t, status, output))
    except Exception as e:  # noqa: BLE001 - grader trouble with this submission: record, go on
        result.status = f"error: {type(e).__name__}: {e}"
        result.tests = [TestResult(t, "not run", result.status) for t in tests]
    finally:
        for cgroup in cgroups:
            cgroup.remove()
        sandbox.remove_tree(work)
        result.seconds = time.monotonic() - start
    return result


def read_results(path: Path) -> dict[str, tuple[str, str]]:
    """{nodeid: (status, output)} from the grader's results file (written by the grader's
    own pytest process; capped and checked all the same)."""
    if not path.is_file():
        return {}
    with open(path, "rb") as f:
        data = f.read(MAX_RESULTS_BYTES)
    results = {}
    for line in data.decode("utf-8", "replace").splitlines():
        try:
            r = json.loads(line)
            results[str(r["nodeid"])] = (str(r["status"]), str(r["output"]))
        except (ValueError, KeyError, TypeError):
            continue
    return results


# ---------------------------------------------------------------- outputs
def fence(text: str) -> str:
    """text in a Markdown code fence longer than any backtick run inside it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}text\n{text}\n{ticks}"


def scrub_hidden(text: str, hidden_lines: set[str]) -> str:
    """Drop every line of text that repeats a line of a hidden test's source."""
    if not hidden_lines:
        return text
    return "\n".join("[line removed]" if line.strip() in hidden_lines else line
                     for line in text.splitlines())


def hidden_source_lines(repo: Path, tests: list[GradedTest]) -> set[str]:
    """Stripped, non-trivial lines of the hidden-test blocks of the graded files."""
    lines = set()
    for path in sorted({t.path for t in tests}):
        text = (Path(repo) / path).read_text(encoding="utf-8").splitlines()
        for a, b in course.hidden_line_ranges("\n".join(text), path):
            lines.update(s for s in (line.strip() for line in text[a - 1:b]) if len(s) > 3)
    return lines


def write_student(result: StudentResult, folder: Path, hidden_lines: set[str] = frozenset()
                  ) -> None:
    """results.json (Gradescope) and feedback.md for one student."""
    folder.mkdir(parents=True, exist_ok=True)
    header = [f"Graded in a sandbox ({result.sandbox}).", *result.notes]
    if result.status != "graded":
        header.insert(0, result.status)
    public = [t for t in result.tests if not t.test.hidden]
    hidden = [t for t in result.tests if t.test.hidden]

    def shown(t: TestResult) -> str:
        text = t.output if t.status != "passed" else ""
        return scrub_hidden(text[-1500:], hidden_lines)
    entries = [{"name": t.test.nodeid, "score": t.score, "max_score": t.test.max_points,
                "status": "passed" if t.status == "passed" else "failed",
                "output": shown(t), "output_format": "text", "visibility": "visible"}
               for t in public]
    entries += [{"name": f"hidden test {i} ({Path(t.test.path).stem})", "score": t.score,
                 "max_score": t.test.max_points,
                 "status": "passed" if t.status == "passed" else "failed",
                 "output": "", "output_format": "text", "visibility": "after_published"}
                for i, t in enumerate(hidden, 1)]
    gradescope = {"score": result.score, "execution_time": round(result.seconds, 2),
                  "output": scrub_hidden("\n".join(header), hidden_lines),
                  "output_format": "text", "tests": entries}
    (folder / "results.json").write_text(json.dumps(gradescope, indent=1))
    name = re.sub(r"([\\`*_{}\[\]()#+!<>|~-])", r"\\\1", result.student)
    lines = [f"# Feedback for {name}", "",
             f"Score: **{result.score:g} / {result.max_score:g}**", "",
             fence(scrub_hidden("\n".join(header), hidden_lines)), "",
             "| test | points | result |", "|---|---|---|"]
    lines += [f"| {t.test.name} | {t.score:g} / {t.test.points:g} | {t.status} |"
              for t in public]
    if hidden:
        lines += [f"| hidden tests ({sum(t.status == 'passed' for t in hidden)} of "
                  f"{len(hidden)} passed) | {sum(t.score for t in hidden):g} / "
                  f"{sum(t.test.points for t in hidden):g} | |"]
    for t in public:
        if t.status != "passed" and t.output:
            lines += ["", f"## {t.test.name}: {t.status}", "", fence(shown(t))]
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
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as f:
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
              nbgrader_csv: Path | None = None, progress: bool = True,
              mode: str = "strict") -> list[StudentResult]:
    """Grade every entry of submissions; write each result as soon as it is done.

    Every entry gets a row: a folder is graded, anything else (a symbolic link, a file) is
    recorded as not graded. Per-student files go to `<out>/students/<name>/`.

    Raises:
        FileNotFoundError: if submissions has no entries.
        sandbox.SandboxUnavailable: if `mode` cannot run here (the message says why and what
            a weaker mode does not protect).
    """
    repo, submissions, out = Path(repo).resolve(), Path(submissions), Path(out)
    description = sandbox.check_mode(mode)
    entries = sorted(os.scandir(submissions), key=lambda e: e.name)
    if not entries:
        raise FileNotFoundError(f"no submission folders in {submissions}")
    s, o = submissions.resolve(), out.resolve()
    if o == s or s in o.parents or o in s.parents:
        raise ValueError(f"the output folder {out} and the submissions folder {submissions} "
                         "must not contain each other")
    nbgrader = read_nbgrader_csv(nbgrader_csv) if nbgrader_csv else None
    editable = editable_files(repo, [submissions, out])
    files = package_files(repo, editable)
    with tempfile.TemporaryDirectory(prefix="kwslab-server-") as tmp:
        server = None
        try:  # torch and pytest imported once for the batch, each run forked from there
            server = runner.PytestServer(_trusted_env(repo, {}, Path(tmp)), Path(tmp),
                                         [_module_name(rel) for rel in editable])
        except runner.ServerDied as e:
            log.warning("%s; each submission starts pytest afresh", e)
        try:
            return _grade_entries(repo, entries, out, editable, files, jobs, time_limit_s,
                                  test_timeout_s, memory_mb, nbgrader, progress, mode,
                                  description, server)
        finally:
            if server is not None:
                server.close()


def _grade_entries(repo, entries, out, editable, files, jobs, time_limit_s, test_timeout_s,
                   memory_mb, nbgrader, progress, mode, description, server):
    from tqdm import tqdm
    tests = collect_graded(repo, server=server)
    hidden_lines = hidden_source_lines(repo, tests)
    (out / "students").mkdir(parents=True, exist_ok=True)
    done: list[StudentResult] = []
    lock = threading.Lock()

    def one(entry: os.DirEntry) -> StudentResult:
        if entry.is_dir(follow_symlinks=False):
            r = grade_submission(repo, Path(entry.path), tests, editable, time_limit_s,
                                 test_timeout_s, memory_mb, mode=mode, files=files,
                                 server=server)
        else:
            kind = "a symbolic link" if entry.is_symlink() else "not a folder"
            r = StudentResult(entry.name, [TestResult(t, "not run", f"not graded: {kind}")
                                           for t in tests],
                              status=f"error: submission is {kind}", sandbox=description)
        with lock:
            try:
                write_student(r, out / "students" / entry.name, hidden_lines)
            except OSError as e:
                r.notes.append(f"could not write feedback files: {e}")
            done.append(r)
            write_csv(out / "grades.csv", done, tests, nbgrader)
        return r

    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(one, e) for e in entries]
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
