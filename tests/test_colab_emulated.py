"""The student's path in an emulated Colab: notebooks 1 -> 6, each in a new runtime.

No Colab here, so this test builds what a student's sessions have in common and nothing else:

* **"GitHub"**: a git repository made from this working tree (tracked and untracked,
  not ignored files); ``git`` rewrites the notebooks' clone URL to it (``url.<local>.insteadOf``
  in a private ``GIT_CONFIG_GLOBAL``), so the notebooks run unchanged.
* **The data server**: a 127.0.0.1 HTTP server serving ``speech_commands_v0.02.tar.gz`` built
  from the shared subset in the official layout (no top-level folder), found through
  ``$KWSLAB_DATA_URL``/``$KWSLAB_DATA_SHA256``; ``$KWSLAB_DATA`` is unset and the clone has no
  ``../shared`` beside it, so the data arrives only through the bootstrap's download.
* **The Colab image**: Colab preinstalls torch, TensorFlow, numpy, librosa, matplotlib, pytest,
  ipykernel ... but not ``tflite-micro`` or ``ai-edge-litert``. The image is a folder of
  symbolic links to this environment's site-packages minus those two (and minus kwslab), put
  on the path of a fresh virtual environment by a ``.pth`` file. The bootstrap then installs
  kwslab (``pip install -e``) and the two missing packages from ``pyproject.toml``'s ranges
  exactly as in Colab; pip sees torch and TensorFlow as installed, so nothing heavy (and no
  CUDA torch) is downloaded. Installing the image itself from scratch would take ~2 minutes
  of this test's budget and test pip, not the lab.
* **Runtimes**: each notebook runs in a new kernel process whose ``/content`` is a new empty
  folder (``$KWSLAB_COLAB_ROOT``); the only thing runtimes share is the emulated Drive (a
  stand-in ``google.colab`` in ``tests/colab_standin`` mounts it by a symbolic link) and the
  virtual environment (after the first runtime installed the two packages, later runtimes
  find them, where Colab would download them again, ~10 s each).

Then: every notebook runs top to bottom in its quick setting (check cells included, on the
solution), notebook 3's checkpoint reaches notebooks 4-6 through Drive, notebook 6's hand-in
archive grades to full marks with ``kwslab course grade``, and no executed notebook shows a
TensorFlow C++ log line or converter warning. Wall times are printed (``pytest -s``).
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import threading
import time
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))
STANDIN = REPO / "tests" / "colab_standin"
CLONE_URL = "https://github.com/kwslab/kwslab"
STUDENT = "ada_lovelace"
NOT_IN_COLAB_IMAGE = ("tflite_micro", "ai_edge_litert", "kwslab", "__editable__")

# What TensorFlow and its converter print when nobody silences them.
TF_NOISE = re.compile(
    r"^[IWEF]\d{4} [\d:. ]+\d+ \S+\.(cc|h):\d+\]"   # C++ log line: I0000 00:00:17.. 123 file.cc:12]
    r"|absl::InitializeLog|oneDNN custom operations|cpu_feature_guard"
    r"|Reading SavedModel|Assets written to|fully_quantize: \d"
    r"|Statistics for quantized inputs|MLIR V1 optimization", re.M)


def tf_noise(text: str) -> list[str]:
    """The lines of text that are TensorFlow / converter chatter."""
    return [line for line in text.splitlines() if TF_NOISE.search(line)]


def test_tf_noise_pattern_catches_the_known_lines():
    # lines copied from an unsilenced conversion (TF_CPP_MIN_LOG_LEVEL=0)
    noisy = ("I0000 00:00:1796050981.716286   15551 reader.cc:83] Reading SavedModel from: /tmp/x\n"
             "fully_quantize: 0, inference_type: 6, input_inference_type: INT8\n"
             "convert.py:846: UserWarning: Statistics for quantized inputs were expected\n"
             "W0000 00:00:1796050982.001847   15551 flatbuffer_export.cc:3851] Skipping runtime\n")
    assert len(tf_noise(noisy)) == 4
    assert tf_noise("epoch 3: val 0.81\nint8 test (TFLM) 0.842") == []


# ---------------------------------------------------------------- the emulated world
def _git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def _github(tmp: Path) -> Path:
    """A git repository holding this working tree's files (what the clone URL gives)."""
    origin = tmp / "github" / "kwslab"
    out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", "--cached", "--others",
                          "--exclude-standard"], check=True, capture_output=True).stdout.decode()
    for name in filter(None, out.split("\0")):
        src = REPO / name
        if src.is_file() and not src.is_symlink():
            (origin / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, origin / name)
    _git("init", "-q", "-b", "main", cwd=origin)
    _git("add", "-A", cwd=origin)
    _git("-c", "user.name=emulation", "-c", "user.email=emulation@localhost", "commit", "-q",
         "-m", "snapshot", cwd=origin)
    return origin


def _archive(data_dir: Path, folder: Path) -> tuple[Path, str]:
    """speech_commands_v0.02.tar.gz of data_dir (official layout: no top folder); SHA-256."""
    path = folder / "speech_commands_v0.02.tar.gz"
    with tarfile.open(path, "w:gz", compresslevel=1) as tar:
        for f in sorted(data_dir.rglob("*")):
            if f.is_file() and not f.name.startswith("."):
                tar.add(f, arcname=f.relative_to(data_dir).as_posix())
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _colab_image(tmp: Path) -> Path:
    """A virtualenv seeing this environment's packages minus those Colab lacks."""
    image = tmp / "colab_image"
    image.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        if not entry.name.startswith(NOT_IN_COLAB_IMAGE) and entry.suffix != ".pth" \
                and entry.name != "__pycache__":
            (image / entry.name).symlink_to(entry)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    venv_site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip()
    Path(venv_site, "colab_image.pth").write_text(str(image) + "\n")
    return python


@pytest.fixture(scope="module")
def emulated_run(tmp_path_factory, data_dir, monkeypatch_module):
    """Run notebooks 1..6, each in its own runtime; returns {name: (notebook or error, s)}."""
    pytest.importorskip("papermill")
    import papermill

    tmp = tmp_path_factory.mktemp("colab")
    t0 = time.perf_counter()
    origin = _github(tmp)
    gitconfig = tmp / "gitconfig"
    gitconfig.write_text(f'[url "file://{origin}"]\n\tinsteadOf = {CLONE_URL}\n')
    serve = tmp / "server"
    serve.mkdir()
    archive, sha = _archive(Path(data_dir), serve)
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(serve)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    python = _colab_image(tmp)
    drive = tmp / "drive"
    (drive / "MyDrive").mkdir(parents=True)
    setup_s = time.perf_counter() - t0

    for var in ("KWSLAB_DATA", "TF_CPP_MIN_LOG_LEVEL", "PYTHONPATH"):
        monkeypatch_module.delenv(var, raising=False)
    kernels = tmp / "jupyter"
    results: dict[str, tuple[object, float]] = {}
    try:
        for i, nb in enumerate(NOTEBOOKS, 1):
            runtime = tmp / f"runtime{i}"  # this runtime's /content
            runtime.mkdir()
            spec = kernels / "kernels" / f"colab{i}"
            spec.mkdir(parents=True)
            (spec / "kernel.json").write_text(json.dumps({
                "argv": [str(python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": f"emulated Colab runtime {i}", "language": "python",
                "env": {"PYTHONPATH": str(STANDIN), "KWSLAB_COLAB_ROOT": str(runtime),
                        "KWSLAB_EMULATED_DRIVE": str(drive),
                        "KWSLAB_EMULATED_DOWNLOADS": str(tmp / "browser_downloads.txt"),
                        "KWSLAB_DATA_URL": f"http://127.0.0.1:{server.server_port}/{archive.name}",
                        "KWSLAB_DATA_SHA256": sha, "GIT_CONFIG_GLOBAL": str(gitconfig),
                        "MPLBACKEND": "module://matplotlib_inline.backend_inline"}}))
            monkeypatch_module.setenv("JUPYTER_PATH", str(kernels))
            params = {"quick": True}
            if nb.name.startswith("6"):
                params["student_name"] = STUDENT
            t = time.perf_counter()
            try:
                out = papermill.execute_notebook(str(nb), str(tmp / nb.name), parameters=params,
                                                 kernel_name=f"colab{i}", cwd=str(runtime),
                                                 progress_bar=False, execution_timeout=600)
            except Exception as e:  # papermill.PapermillExecutionError: the failing cell
                out = e
            results[nb.name] = (out, time.perf_counter() - t)
            print(f"\nemulated Colab: {nb.name} {results[nb.name][1]:.1f} s")
    finally:
        server.shutdown()
    print(f"emulated Colab: setup {setup_s:.1f} s")
    return {"results": results, "drive": drive, "tmp": tmp, "sha": sha}


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    yield mp
    mp.undo()


# ---------------------------------------------------------------- the checks
@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_its_own_emulated_colab_runtime(path, emulated_run):
    nb, seconds = emulated_run["results"][path.name]
    assert not isinstance(nb, Exception), f"{path.name} failed in emulated Colab:\n{nb}"
    checks = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("locked")]
    failed = [c.metadata.nbgrader.grade_id for c in checks
              if any(o.output_type == "error" for o in c.get("outputs", []))]
    assert not failed, f"{path.name}: check cells failed: {failed}"
    boot = "".join(o.get("data", {}).get("text/plain", "") for o in nb.cells[1].outputs
                   if o.output_type == "execute_result")
    assert "on Google Drive" in boot and "data in" in boot, f"{path.name}: bootstrap said {boot!r}"


@pytest.mark.slow
def test_data_came_only_through_the_bootstrap_and_work_is_on_drive(emulated_run):
    my_drive = emulated_run["drive"] / "MyDrive"
    repo = my_drive / "kwslab"
    archive = repo / "data" / "downloads" / "speech_commands_v0.02.tar.gz"
    assert archive.is_file(), "the data archive was not kept on Drive"
    assert hashlib.sha256(archive.read_bytes()).hexdigest() == emulated_run["sha"]
    assert (repo / "runs" / "notebook" / "checkpoint.pt").is_file(), "notebook 3's checkpoint is not on Drive"
    assert any((repo / ".cache" / "features").iterdir()), "no feature cache on Drive"
    tmp = emulated_run["tmp"]
    # notebooks 1-2 unpacked the small set, 3-6 the full one, each on its own runtime's disk
    assert (tmp / "runtime1" / "speech_commands_small" / "yes").is_dir()
    assert (tmp / "runtime3" / "speech_commands" / "yes").is_dir()
    small = sum(1 for _ in (tmp / "runtime1" / "speech_commands_small").rglob("*.wav"))
    full = sum(1 for _ in (tmp / "runtime3" / "speech_commands").rglob("*.wav"))
    assert 0 < small < full / 4, (small, full)


@pytest.mark.slow
def test_executed_notebooks_show_no_tensorflow_log(emulated_run):
    noise = {}
    for name, (nb, _) in emulated_run["results"].items():
        if isinstance(nb, Exception):
            continue
        text = "\n".join(o.get("text", "") if o.output_type == "stream"
                         else "\n".join(o.get("traceback", []))
                         for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
        if lines := tf_noise(text):
            noise[name] = lines[:5]
    assert not noise, f"TensorFlow chatter in executed notebooks: {noise}"


@pytest.mark.slow
def test_hand_in_archive_from_notebook_6_grades_to_full_marks(emulated_run, tmp_path):
    archive = emulated_run["drive"] / "MyDrive" / "kwslab" / "hand_in" / f"kwslab_{STUDENT}.zip"
    assert archive.is_file(), f"no hand-in archive at {archive}"
    downloads = (emulated_run["tmp"] / "browser_downloads.txt").read_text().split()
    assert str(archive.resolve()) in downloads, "the browser was not asked to download it"
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
        z.extractall(tmp_path / "submissions")
    for f in ("size_estimate.py", "quantize.py", "prune.py"):
        assert f"{STUDENT}/src/kwslab/{f}" in names
    assert sum(n.endswith(".ipynb") for n in names) == len(NOTEBOOKS)
    grades = tmp_path / "grades"
    proc = subprocess.run([sys.executable, "-c", "import sys; from kwslab.cli import main; sys.exit(main())",
                           "course", "--repo", str(REPO), "grade", str(tmp_path / "submissions"),
                           "--out", str(grades)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(grades / "grades.csv") as f:
        row = next(r for r in csv.DictReader(f) if r["student"] == STUDENT)
    # full marks: every graded test passed (extra credit puts the total above the maximum)
    results = json.loads(next(grades.rglob(f"{STUDENT}/results.json")).read_text())
    failed = [t["name"] for t in results["tests"] if t["status"] != "passed"]
    assert not failed, f"the hand-in lost points on {failed}"
    assert row["status"] == "graded" and float(row["total"]) >= float(row["max"]) > 0, row


@pytest.mark.slow
def test_kwslab_run_output_has_no_tensorflow_log(data_dir, tmp_path):
    # a smoke run with TensorFlow's own default log level: kwslab must silence it itself
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "-c", "import sys; from kwslab.cli import main; sys.exit(main())",
                           "run", "--data", str(data_dir), "--max-clips", "5", "--epochs", "1",
                           "--augmented-copies", "1", "--runs", str(tmp_path), "--name", "quiet",
                           "--cache", ""], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "run quiet:" in proc.stdout
    noise = tf_noise(proc.stdout + proc.stderr)
    assert not noise, f"kwslab run printed TensorFlow chatter: {noise[:5]}"
