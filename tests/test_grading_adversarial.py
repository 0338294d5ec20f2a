"""The autograder against hostile submissions (kwslab.course.autograde, sandbox, remote).

One batch grades an honest submission, the unfilled stub, and one submission per attack
class: in-process forgery (pytest hooks, atexit, always-equal values, patched torch.equal /
assert_close, reading the caller's frame), reading the reference (filesystem walk, editable
install paths), symbolic links (file, folder, root-only file), classmates (their files and
processes), resources (memory over forked children, fork bombs, files left in /tmp, /var/tmp,
/dev/shm, replies too large to hold), crashes and hangs in one test, forged feedback, hidden
test inputs leaking into public output, and awkward folder names. Each attacker's real code is
either the stub or the honest code, so it must score exactly that; the honest submission gets
full marks; no file outside the sandbox changes (checksums of the instructor repository, with
the submissions folder inside it, before and after).

As root the batch runs in the strict sandbox. As a non-root user (the instructor without
root; `tests/test_grading_nonroot.py` re-runs this file that way from a root CI run) it runs
in the userns sandbox, on the attack classes that do not need root to defend
(`NONROOT_CASES`): the same expected scores, the same checksums.

The mini package `minilab.mini` has three student functions (add, double, an in-place
zero_first_) and 7 graded tests (2+1+1+1+1 public, 3+1 hidden). Markers are spelled through
kwslab.course's constants so this file passes the release's leak check.
"""
import csv
import hashlib
import json
import os
import shutil
import socket
import stat
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from kwslab import course
from kwslab.course import autograde, sandbox

BS, ES = course.BEGIN_SOLUTION, course.END_SOLUTION
BH, EH = course.BEGIN_HIDDEN, course.END_HIDDEN
ROOT = os.geteuid() == 0 and sys.platform == "linux"
MODE = "strict" if ROOT else "userns"
try:
    sandbox.check_mode(MODE)
    UNAVAILABLE = ""
except sandbox.SandboxUnavailable as e:
    UNAVAILABLE = str(e)
if os.environ.get("CI") and UNAVAILABLE and (ROOT or not sandbox.userns_blocked()):
    raise RuntimeError(f"CI must be able to run these tests in the {MODE} sandbox: "
                       f"{UNAVAILABLE}")
pytestmark = pytest.mark.skipif(bool(UNAVAILABLE), reason=f"no {MODE} sandbox here: "
                                f"{UNAVAILABLE}")

SOLUTION = {"add": "return a + b", "double": "return 2 * x",
            "zero": "with torch.no_grad():\n    model.weight.view(-1)[0] = 0.0"}
STUB = {k: "raise NotImplementedError()" for k in SOLUTION}
POINTS = (2, 1, 1, 1, 1, 3, 1)
FULL, ZERO = POINTS, (0,) * len(POINTS)


def mini_module(prelude: str = "", markers: bool = False, **bodies) -> str:
    """minilab/mini.py with the given function bodies (default: the solution)."""
    b = {**SOLUTION, **bodies}

    def body(key):
        text = textwrap.indent(b[key], "    ")
        return f"    {BS}\n{text}\n    {ES}\n" if markers else text + "\n"
    return (prelude + "\nimport torch\n\n\n"
            "def add(a, b):\n    \"\"\"a + b for ints.\"\"\"\n"
            "    if not isinstance(a, int):\n        raise TypeError('a must be an int')\n"
            + body("add") + "\n\ndef double(x):\n    \"\"\"2 * x for a float tensor.\"\"\"\n"
            + body("double") + "\n\ndef zero_first_(model):\n"
            "    \"\"\"Zero model.weight's first element in place.\"\"\"\n" + body("zero"))


GRADED_TEST = textwrap.dedent(f'''\
    import pytest
    import torch
    from torch import nn

    from minilab import mini as M


    @pytest.mark.graded(points=2)
    def test_add_small():
        assert M.add(1, 2) == 3


    @pytest.mark.graded(points=1)
    def test_add_negative():
        assert M.add(-1, -2) == -3


    @pytest.mark.graded(points=1)
    def test_double_equal():
        assert torch.equal(M.double(torch.tensor([1.0, 2.0])), torch.tensor([2.0, 4.0]))


    @pytest.mark.graded(points=1)
    def test_double_close():
        torch.testing.assert_close(M.double(torch.tensor([0.5, -1.0, 3.0])),
                                   torch.tensor([1.0, -2.0, 6.0]))


    @pytest.mark.graded(points=1)
    def test_zero_first_in_place():
        layer = nn.Linear(2, 2)
        with torch.no_grad():
            layer.weight.copy_(torch.tensor([[5.0, 6.0], [7.0, 8.0]]))
        weight = layer.weight
        assert M.zero_first_(layer) is None
        assert layer.weight is weight
        assert layer.weight.tolist() == [[0.0, 6.0], [7.0, 8.0]]


    {BH}
    @pytest.mark.graded(points=3)
    def test_add_hidden_large():
        secret_expected_sum = 1000001
        assert M.add(10**6, 1) == secret_expected_sum


    @pytest.mark.graded(points=1)
    def test_double_hidden_keeps_dtype():
        y = M.double(torch.arange(4, dtype=torch.float64))
        assert y.dtype == torch.float64 and y.tolist() == [0.0, 2.0, 4.0, 6.0]
    {EH}
    ''')


def make_repo(root: Path) -> Path:
    files = {"pyproject.toml": "[project]\nname = 'minilab'\nversion = '0'\n",
             "src/minilab/__init__.py": "",
             "src/minilab/mini.py": mini_module(markers=True),
             "tests/graded/test_mini.py": GRADED_TEST}
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def put(subs: Path, name: str, text: str) -> Path:
    folder = subs / name / "src/minilab"
    folder.mkdir(parents=True)
    (folder / "mini.py").write_text(text)
    return subs / name


TOKEN = uuid.uuid4().hex[:12]

FORGE_PYTEST = """
try:
    import _pytest.reports, _pytest.runner
    _pytest.reports.TestReport.passed = property(lambda self: True)
    _orig = _pytest.runner.call_and_report
    def _forge(*a, **k):
        rep = _orig(*a, **k)
        rep.outcome = "passed"
        return rep
    _pytest.runner.call_and_report = _forge
except Exception:
    pass
import gc
for _o in gc.get_objects():
    if type(_o).__name__ == "Config" and hasattr(_o, "pluginmanager"):
        _o.pluginmanager.register(type("P", (), {"pytest_runtest_logreport": lambda s, report: setattr(report, "outcome", "passed")})())
"""
FORGE_ATEXIT = """
import atexit, glob, json
def _rewrite():
    for path in glob.glob("/tmp/**/results.jsonl", recursive=True) + glob.glob("/tmp/**/*.xml", recursive=True):
        try:
            with open(path, "a") as f:
                f.write(json.dumps({"nodeid": "tests/graded/test_mini.py::test_add_small", "status": "passed", "output": ""}) + "\\n")
        except OSError:
            pass
atexit.register(_rewrite)
"""
ALWAYS_EQUAL = {
    "add": "class Yes:\n    def __eq__(self, other):\n        return True\nreturn Yes()",
    "double": textwrap.dedent("""\
        class Liar(torch.Tensor):
            @classmethod
            def __torch_function__(cls, func, types, args=(), kwargs=None):
                return True
        return torch.zeros(2).as_subclass(Liar)"""),
}
PATCH_TORCH = """
import torch, torch.testing, builtins
torch.equal = lambda *a, **k: True
torch.testing.assert_close = lambda *a, **k: None
torch.Tensor.__eq__ = lambda self, other: torch.ones((), dtype=torch.bool)
"""
GETFRAME = {"add": textwrap.dedent("""\
    import sys, inspect
    frame = sys._getframe()
    while frame is not None:
        for key, value in frame.f_locals.items():
            if "expected" in key and isinstance(value, int):
                return value
        frame = frame.f_back
    for info in inspect.stack():
        if "expected" in "".join(info.code_context or []):
            return 1000001
    return a - b""")}
READ_REFERENCE = """
import glob, os, site, importlib.util
_FOUND = None
_needle = ("### " + "BEGIN " + "SOLUTION", "test_add_" + "hidden_large")
for _d in [*site.getsitepackages(), "/"]:
    for _pth in glob.glob(os.path.join(_d, "*.pth")) + glob.glob(os.path.join(_d, "__editable__*")):
        try:
            if "minilab" in open(_pth).read():
                _FOUND = _pth
        except OSError:
            pass
_seen = 0
for _root, _dirs, _files in os.walk("/"):
    _dirs[:] = [d for d in _dirs if d not in ("proc", "sys", "usr", "dev", "lib", "bin")]
    for _f in _files:
        _seen += 1
        if _seen > 5000:
            break
        try:
            with open(os.path.join(_root, _f), errors="ignore") as fh:
                text = fh.read(200000)
        except OSError:
            continue
        if any(n in text for n in _needle):
            _FOUND = os.path.join(_root, _f)
"""
READ_REFERENCE_BODY = {"add": "if _FOUND:\n    return a + b\nraise NotImplementedError()"}
CLASSMATE = """
import os, signal
_target = {target!r}
try:
    with open(_target, "w") as f:
        f.write("def add(a, b):\\n    return 0\\n")
except OSError:
    pass
for _pid in os.listdir("/proc"):
    if _pid.isdigit() and int(_pid) != os.getpid():
        try:
            with open("/proc/" + _pid + "/mem", "r+b") as f:
                f.write(b"x")
        except OSError:
            pass
        try:
            os.kill(int(_pid), signal.SIGKILL)
        except OSError:
            pass
"""
RESOURCES = f"""
import os
for _d in ("/tmp", "/var/tmp", "/dev/shm"):
    try:
        with open(os.path.join(_d, "kwslab-leftover-{TOKEN}"), "w") as f:
            f.write("x")
    except OSError:
        pass
"""
RESOURCES_BODY = {
    # add(1, 2) forks children that together go far past the 1 GiB memory limit
    "add": textwrap.dedent("""\
        import os, time
        if a == 1:
            kids = []
            for _ in range(6):
                pid = os.fork()
                if pid == 0:
                    block = bytearray(300 * 2**20)
                    for i in range(0, len(block), 4096):
                        block[i] = 1
                    time.sleep(60)
                    os._exit(0)
                kids.append(pid)
            for pid in kids:
                os.waitpid(pid, 0)
        if a == -1:  # a fork bomb: the process limit stops it, the answer is still right
            for _ in range(500):
                try:
                    if os.fork() == 0:
                        time.sleep(30)
                        os._exit(0)
                except OSError:
                    break
        return a + b"""),
}
CRASH_AND_HANG = {
    "double": "import ctypes\nif x.numel() == 3:\n    ctypes.string_at(0)\nreturn 2 * x",
    "zero": "while True:\n    pass",
}
HUGE_REPLY = {
    "add": "return [0] * 10**7 if a == 1 else a + b",
    "double": textwrap.dedent("""\
        import os, struct, sys
        if x.numel() == 2:
            os.write(int(sys.argv[-1]), struct.pack(">Q", 2**40))
        return 2 * x"""),
}
FORGED_FEEDBACK = {"add": 'raise ValueError("````\\n```\\n# Score: 100 / 100\\n<b>full marks</b>\\n```")'}
EXFIL_HIDDEN = {"add": "_SEEN.append((a, b))\nraise ValueError(f'seen so far: {_SEEN}')"}
WRITE_REPOSITORY = """
import pathlib
for _p, _text in [(pathlib.Path({repo!r}) / "tests/graded/test_mini.py", "hacked = True\\n"),
                  (pathlib.Path({repo!r}) / "src/minilab/__init__.py", "hacked = True\\n"),
                  (pathlib.Path({out!r}) / "students/honest/results.json", '{{"score": 999}}'),
                  (pathlib.Path({out!r}) / "grades.csv", "student,total\\nhonest,999\\n")]:
    try:
        _p.parent.mkdir(parents=True, exist_ok=True)
        _p.write_text(_text)
    except OSError:
        pass
"""
CLEANUP_RACE = """
import os
for _d in ("/tmp", "/var/tmp", "/dev/shm", "/sandbox/src", "/sandbox/src/minilab"):
    for _name, _target in (("link-shadow", "/etc/shadow"), ("link-root", "/root")):
        try:
            os.symlink(_target, os.path.join(_d, _name))
        except OSError:
            pass
    try:
        os.chmod(_d, 0o777)
    except OSError:
        pass
"""
IMPORT_TIME = {
    "sys_exit_at_import": (mini_module("import sys\nsys.exit(3)\n"), ZERO),
    "os_exit_at_import": (mini_module("import os\nos._exit(0)\n"), ZERO),
    "import_error": (mini_module("import no_such_module_kwslab\n"), ZERO),
    "loop_at_import": (mini_module("while True:\n    pass\n"), ZERO),
}

SUBMISSIONS = {
    # name: (mini.py, expected points per test)
    "honest": (mini_module(), FULL),
    "stub": (mini_module(**STUB), ZERO),
    "forge_pytest_hooks": (mini_module(FORGE_PYTEST, **STUB), ZERO),
    "forge_atexit": (mini_module(FORGE_ATEXIT, **STUB), ZERO),
    "forge_always_equal": (mini_module(**{**STUB, **ALWAYS_EQUAL}), ZERO),
    "forge_patch_torch": (mini_module(PATCH_TORCH, add="return a - b", double="return x",
                                      zero="pass"), ZERO),
    "forge_getframe": (mini_module(**{**STUB, **GETFRAME}), ZERO),
    "read_reference": (mini_module(READ_REFERENCE, **{**STUB, **READ_REFERENCE_BODY}), ZERO),
    "classmate": (mini_module(CLASSMATE), FULL),
    "resources": (mini_module(RESOURCES, **RESOURCES_BODY), (0, 1, 1, 1, 1, 3, 1)),
    "crash_and_hang": (mini_module(**CRASH_AND_HANG), (2, 1, 1, 0, 0, 3, 1)),
    "huge_reply": (mini_module(**HUGE_REPLY), (0, 1, 0, 1, 1, 3, 1)),
    "forged_feedback": (mini_module(**{**STUB, **FORGED_FEEDBACK}), ZERO),
    "exfil_hidden": (mini_module("_SEEN = []\n", **{**STUB, **EXFIL_HIDDEN}), ZERO),
    "cleanup_race": (mini_module(CLEANUP_RACE), FULL),
    "write_repository": (mini_module(WRITE_REPOSITORY, **STUB), ZERO),
    "network": (mini_module(add=textwrap.dedent("""\
        import socket
        try:
            socket.create_connection(("127.0.0.1", {port}), timeout=2).close()
            return a + b
        except OSError:
            return a + b + 1""")), (0, 0, 1, 1, 1, 0, 1)),
    **IMPORT_TIME,
    # awkward names, each with the honest code
    "-leading dash ünïcödé": (mini_module(), FULL),
    ".dotted": (mini_module(), FULL),
    "grades.csv": (mini_module(), FULL),
}


NONROOT_CASES = ["honest", "stub", "forge_pytest_hooks", "forge_always_equal",
                 "read_reference", "classmate", "resources", "crash_and_hang",
                 "forged_feedback", "exfil_hidden", "network", "write_repository",
                 "grades.csv"]
"""What the userns sandbox must defend as well (no uid or cgroup of its own needed)."""
CASES = {k: v for k, v in SUBMISSIONS.items() if ROOT or k in NONROOT_CASES}
root_only = pytest.mark.skipif(not ROOT, reason="layout cases: graded in the root batch")


def tree_digest(root: Path) -> dict[str, str]:
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in sorted(files + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]):
            p = Path(dirpath, name)
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest() + oct(p.stat().st_mode)
        out[Path(dirpath).relative_to(root).as_posix() + "/"] = oct(os.stat(dirpath).st_mode)
    return out


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    """Grade every submission (submissions folder inside the instructor repo) in one batch."""
    root = tmp_path_factory.mktemp("adversarial")
    repo = make_repo(root / "repo")
    subs = repo / "submissions"  # inside the repository, untracked
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    target = subs / "honest" / "src/minilab/mini.py"
    out = root / "out"
    for name, (text, _) in CASES.items():
        for key, value in (("{port}", str(port)), ("{target!r}", repr(str(target))),
                           ("{repo!r}", repr(str(repo))), ("{out!r}", repr(str(out)))):
            text = text.replace(key, value)
        put(subs, name, text)
    # symbolic links: a file to the solution, a folder to the instructor's package,
    # a file to a root-only file
    (subs / "link_file" / "src/minilab").mkdir(parents=True)
    (subs / "link_file" / "src/minilab/mini.py").symlink_to(repo / "src/minilab/mini.py")
    (subs / "link_dir" / "src").mkdir(parents=True)
    (subs / "link_dir" / "src/minilab").symlink_to(repo / "src/minilab")
    (subs / "link_root_only" / "src/minilab").mkdir(parents=True)
    (subs / "link_root_only" / "src/minilab/mini.py").symlink_to("/etc/shadow")
    (subs / "empty").mkdir()
    (subs / "linked_folder").symlink_to(subs / "honest")
    (subs / "notes.txt").write_text("not a submission\n")
    # a stray, unclosed marker in an untracked .py under the submissions folder
    (subs / "stray" / "src/minilab").mkdir(parents=True)
    (subs / "stray" / "src/minilab/mini.py").write_text(mini_module())
    (subs / "stray" / "src/minilab/helper.py").write_text(f"{BS}\nx = 1\n")
    if not ROOT:  # the root batch's layout cases are not about privileges
        for name in ("link_file", "link_root_only", "empty", "linked_folder", "notes.txt",
                     "stray"):
            path = subs / name
            path.unlink() if path.is_symlink() or path.is_file() else \
                shutil.rmtree(path)
    before = tree_digest(repo)
    shadow = os.stat("/etc/shadow") if os.path.exists("/etc/shadow") else None
    nb_csv = root / "nbgrader.csv"
    nb_csv.write_text("assignment,student_id,status,score,max_score,needs_manual_grade,"
                      "check_score,check_max_score\n"  # kwslab's nbgrader exporter
                      "lab1,honest,graded,2,2,0,5,5\nlab1,stub,graded,1,2,0,0,5\n")
    results = autograde.grade_all(repo, subs, out, jobs=2, time_limit_s=240,
                                  test_timeout_s=10, memory_mb=1024, progress=False,
                                  nbgrader_csv=nb_csv, mode=MODE)
    try:
        listener.accept()
        accepted = True
    except BlockingIOError:
        accepted = False
    listener.close()
    after = tree_digest(repo)
    return {"results": {r.student: r for r in results}, "out": out, "before": before,
            "after": after, "accepted": accepted, "repo": repo, "shadow": shadow,
            "grades": (out / "grades.csv").read_text(encoding="utf-8")}


def points(result) -> tuple:
    return tuple(int(t.score) for t in result.tests)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_each_submission_gets_what_its_real_code_deserves(batch, name):
    r = batch["results"][name]
    assert points(r) == SUBMISSIONS[name][1], [(t.test.name, t.status, t.output[-300:])
                                               for t in r.tests]
    assert r.status == "graded"
    assert r.sandbox.startswith(MODE)


@pytest.mark.slow
def test_the_grade_files_are_the_graders_own(batch):
    """write_repository tried to put 999 into grades.csv and honest's results.json."""
    rows = {r["student"]: r for r in csv.DictReader(batch["grades"].splitlines())}
    assert rows["honest"]["total"] == "12" and rows["write_repository"]["total"] == "0"
    honest = json.loads((batch["out"] / "students/honest/results.json").read_text())
    assert honest["score"] == 10


@pytest.mark.slow
def test_nothing_outside_the_sandbox_changed(batch):
    changed = {k for k in batch["before"].keys() | batch["after"].keys()
               if batch["before"].get(k) != batch["after"].get(k)}
    assert not changed, sorted(changed)[:20]
    if batch["shadow"] is not None:
        now = os.stat("/etc/shadow")
        assert (now.st_mode, now.st_uid, now.st_mtime) == \
            (batch["shadow"].st_mode, batch["shadow"].st_uid, batch["shadow"].st_mtime)
    for d in ("/tmp", "/var/tmp", "/dev/shm"):
        assert not os.path.exists(os.path.join(d, f"kwslab-leftover-{TOKEN}"))
    assert not batch["accepted"], "a submission reached the host network"


@pytest.mark.slow
@root_only
def test_symbolic_links_are_never_followed(batch):
    for name in ("link_file", "link_dir", "link_root_only", "empty"):
        r = batch["results"][name]
        assert points(r) == ZERO, name
        assert any("graded as the unfilled stub" in n for n in r.notes), (name, r.notes)
    linked = batch["results"]["linked_folder"]
    assert linked.status.startswith("error") and points(linked) == ZERO


@pytest.mark.slow
@root_only
def test_every_entry_gets_a_row_and_grader_files_are_the_graders(batch):
    out = batch["out"]
    with open(out / "grades.csv", newline="", encoding="utf-8") as f:
        rows = {r["student"]: r for r in csv.DictReader(f)}
    entries = {p.name for p in (batch["repo"] / "submissions").iterdir()}
    assert set(rows) == entries
    assert rows["grades.csv"]["total"] == "10" and rows["stray"]["total"] == "10"
    # nbgrader columns merged by student id: honest 10 + 2 of 10 + 2, stub 0 + 1
    assert (rows["honest"]["total"], rows["honest"]["max"]) == ("12", "12")
    assert rows["honest"]["nbgrader:lab1"] == "2" and rows["stub"]["total"] == "1"
    gs = json.loads((out / "students/stub/results.json").read_text())
    assert gs["score"] == 0 and gs["execution_time"] > 0 and gs["output_format"] == "text"
    assert [(t["max_score"], t["visibility"]) for t in gs["tests"]] == \
        [(2, "visible"), (1, "visible"), (1, "visible"), (1, "visible"), (1, "visible"),
         (3, "after_published"), (1, "after_published")]
    assert all(t["output"] == "" for t in gs["tests"] if t["visibility"] != "visible")
    assert rows["notes.txt"]["status"].startswith("error")
    for name in ("-leading dash ünïcödé", ".dotted", "grades.csv"):
        gs = json.loads((out / "students" / name / "results.json").read_text())
        assert gs["score"] == 10, name


@pytest.mark.slow
def test_a_crash_or_hang_costs_only_its_own_test(batch):
    r = batch["results"]["crash_and_hang"]
    by_name = {t.test.name: t for t in r.tests}
    assert "SIGSEGV" in by_name["test_double_close"].output
    assert "10 s time limit" in by_name["test_zero_first_in_place"].output
    if "loop_at_import" in batch["results"]:
        loop = batch["results"]["loop_at_import"]
        assert all("time" in t.output for t in loop.tests if not t.test.hidden)


@pytest.mark.slow
def test_feedback_cannot_be_forged_and_hides_hidden_tests(batch):
    out = batch["out"]
    text = (out / "students/forged_feedback/feedback.md").read_text()
    inside, opened = [], None
    for line in text.splitlines():  # lines outside any fence
        if opened is None and line.startswith("```"):
            opened = line.split("text")[0]
        elif opened is not None and line == opened:
            opened = None
        elif opened is None:
            inside.append(line)
    assert not any("100 / 100" in line or "<b>" in line for line in inside)
    assert "Score: **0 / 10**" in text
    hidden_source = [line.strip() for line in GRADED_TEST.split(BH)[1].split(EH)[0]
                     .splitlines() if len(line.strip()) > 3]
    for student in batch["results"]:
        for name in ("feedback.md", "results.json"):
            path = out / "students" / student / name
            if path.exists():
                shown = path.read_text()
                assert "test_add_hidden_large" not in shown and "secret_expected" not in shown
                assert not any(line in shown for line in hidden_source), (student, name)
    exfil = (out / "students/exfil_hidden/feedback.md").read_text()
    assert "1000000" not in exfil and "seen so far" in exfil


def test_scrub_and_fence_helpers():
    assert autograde.scrub_hidden("a\n    x = secret()\nb", {"x = secret()"}) == \
        "a\n[line removed]\nb"
    fenced = autograde.fence("x ```` y")
    assert fenced.startswith("`````text\n") and fenced.endswith("\n`````")


def test_strict_mode_is_refused_without_root_and_weaker_modes_say_what_they_miss(
        monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    with pytest.raises(sandbox.SandboxUnavailable, match="needs root.*--sandbox userns"):
        sandbox.check_mode.__wrapped__("strict")
    assert "not protected" in sandbox.check_mode.__wrapped__("none")
    assert "read and change everything" in sandbox.NOT_PROTECTED["none"]


def test_reading_a_submission_file_refuses_links(tmp_path):
    (tmp_path / "sub/src").mkdir(parents=True)
    (tmp_path / "real.py").write_text("x = 1\n")
    (tmp_path / "sub/src/a.py").symlink_to(tmp_path / "real.py")
    os.link(tmp_path / "real.py", tmp_path / "sub/src/b.py")
    (tmp_path / "sub/src/c.py").write_text("y = 2\n")
    assert sandbox.read_submission_file(tmp_path / "sub", "src/a.py")[1] == "is a symbolic link"
    assert sandbox.read_submission_file(tmp_path / "sub", "src/b.py")[1] == "is a hard link"
    assert sandbox.read_submission_file(tmp_path / "sub", "src/c.py") == (b"y = 2\n", "")


@pytest.mark.skipif(ROOT, reason="as root the strict sandbox runs")
def test_as_non_root_strict_is_refused_and_userns_names_what_it_misses(tmp_path, capsys):
    from kwslab.cli import main
    with pytest.raises(sandbox.SandboxUnavailable, match="needs root.*--sandbox userns"):
        sandbox.check_mode.__wrapped__("strict")
    assert "no per-sandbox uid" in sandbox.check_mode("userns")
    repo = make_repo(tmp_path / "repo")
    put(tmp_path / "subs", "honest", mini_module())
    code = main(["course", "--repo", str(repo), "grade", str(tmp_path / "subs"),
                 "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and "--sandbox userns" in err and "no per-sandbox uid" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_a_loop_that_ignores_signals_ends_at_the_hard_time_limit(tmp_path):
    repo = make_repo(tmp_path / "repo")
    body = ("import signal, time\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\n"
            "while True:\n    try:\n        time.sleep(0.2)\n    except BaseException:\n"
            "        pass")
    put(tmp_path, "stubborn", mini_module(add=body, double=body, zero=body))
    tests = autograde.collect_graded(repo)
    result = autograde.grade_submission(repo, tmp_path / "stubborn", tests,
                                        autograde.editable_files(repo), time_limit_s=8,
                                        test_timeout_s=2, memory_mb=1024, mode=MODE)
    assert points(result) == ZERO
    assert result.seconds < 30
    assert stat.S_ISDIR(os.stat(tmp_path).st_mode)


REAL_REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_real_repository_solution_gets_full_marks_and_release_zero(tmp_path):
    """The graded suite of this repository, through the sandbox: every graded test of the
    solution passes (extra credit included) and none of the release stub's does."""
    subs = tmp_path / "subs"
    for name in ("solution", "release"):
        for rel in autograde.editable_files(REAL_REPO):
            text = (REAL_REPO / rel).read_text()
            if name == "release":
                text, _ = course.strip_solutions(text, rel)
            (subs / name / rel).parent.mkdir(parents=True, exist_ok=True)
            (subs / name / rel).write_text(text)
    results = {r.student: r for r in autograde.grade_all(
        REAL_REPO, subs, tmp_path / "out", jobs=2, progress=False, mode=MODE)}
    failed = [(t.test.nodeid, t.output[-600:]) for t in results["solution"].tests
              if t.status != "passed"]
    assert not failed, failed
    assert results["solution"].score == sum(t.test.points for t in results["solution"].tests)
    assert results["release"].score == 0
