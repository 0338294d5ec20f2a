"""The notebooks: committed clean, and every one runs top to bottom in smoke mode.

Smoke mode is the papermill parameter ``quick = True`` on the real data subset; each notebook
should take well under 90 s on 2 cores. Notebooks are picked up by glob, so a new
``notebooks/*.ipynb`` is tested without editing this file. Notebook 3 saves the checkpoint the
later notebooks load; all notebooks of a session share one ``run_dir`` (a temporary folder),
and a later notebook run on its own first runs notebook 3.

The kernel is this interpreter: a ``python3`` kernelspec pointing at ``sys.executable`` is
written to a temporary folder put first on ``JUPYTER_PATH``, so a fresh virtualenv needs
nothing installed by hand (only ``ipykernel``) and a user-level ``python3`` kernel of another
Python cannot be picked up by mistake.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest

NOTEBOOK_DIR = Path(__file__).resolve().parents[1] / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
TRAINING = "3_training.ipynb"
BADGE = "https://colab.research.google.com/github/kwslab/kwslab/blob/main/notebooks/{}"


def _ids(paths):
    return [p.stem for p in paths]


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(str(path), as_version=4)


# ---------------------------------------------------------------- committed form (fast)
def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 3, f"expected notebooks in {NOTEBOOK_DIR}, found {NOTEBOOKS}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_is_committed_without_outputs(path):
    nb = _read(path)
    nbformat.validate(nb)
    dirty = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"
             and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"{path.name}: code cells {dirty} have outputs or an execution_count; strip them"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_opens_with_goal_badge_and_colab_bootstrap(path):
    nb = _read(path)
    first = nb.cells[0]
    assert first.cell_type == "markdown" and first.source.startswith("# "), \
        f"{path.name}: the first cell must be a markdown title and goal"
    assert BADGE.format(path.name) in first.source, \
        f"{path.name}: the first cell lacks the open-in-Colab badge for {path.name}"
    boot = nb.cells[1]
    assert boot.cell_type == "code" and "google.colab" in boot.source \
        and "bootstrap()" in boot.source, f"{path.name}: the second cell must be the Colab bootstrap"
    assert any("%autoreload 2" in c.source for c in nb.cells[:4]), f"{path.name}: no %autoreload 2"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_has_one_parameters_cell_with_smoke_knobs(path):
    nb = _read(path)
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters', expected 1"
    names = {line.split("=")[0].strip() for line in tagged[0].source.splitlines()
             if "=" in line and not line.lstrip().startswith("#")}
    missing = {"data_dir", "seed", "quick"} - names
    assert not missing, f"{path.name}: parameters cell lacks {sorted(missing)}"
    assert "quick = False" in tagged[0].source, f"{path.name}: quick must default to False"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_nbgrader_cells_are_well_formed(path):
    nb = _read(path)
    grade_ids = []
    for c in nb.cells:
        meta = c.metadata.get("nbgrader")
        if meta is None:
            continue
        grade_ids.append(meta["grade_id"])
        if c.cell_type == "markdown":  # an answer cell
            assert meta["solution"] and meta["grade"] and meta["points"] > 0, (path.name, meta)
        elif meta["grade"]:            # a locked check cell
            assert meta["locked"] and not meta["solution"] and meta["points"] > 0, (path.name, meta)
    assert len(grade_ids) == len(set(grade_ids)), f"{path.name}: duplicate grade_id in {grade_ids}"


def test_size_notebook_checks_every_student_function():
    # every function with a solution block in size_estimate.py has a locked check cell
    import re

    src = (NOTEBOOK_DIR.parent / "src/kwslab/size_estimate.py").read_text()
    # The instructor's solution marker, or the stub the student release puts in its place.
    marker = "(?:### BEGIN " + "SOLUTION|# YOUR CODE HERE)"
    funcs = re.findall(r"^def (\w+)\((?:(?!^def ).)*?" + marker, src, flags=re.S | re.M)
    assert funcs, "no solution blocks found in size_estimate.py"
    nb = _read(NOTEBOOK_DIR / "2_size_estimation.ipynb")
    checks = " ".join(c.source for c in nb.cells if c.metadata.get("nbgrader", {}).get("locked"))
    missing = [f for f in funcs if f'"test_{f}"' not in checks]
    assert not missing, f"2_size_estimation.ipynb has no check cell for {missing}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_student_release_of_notebook_blanks_answers(path, tmp_path):
    from kwslab import course

    course.release_notebook(path, tmp_path / path.name)
    nb = _read(tmp_path / path.name)
    for c in nb.cells:
        meta = c.metadata.get("nbgrader", {})
        if c.cell_type == "markdown" and meta.get("solution"):
            assert c.source.strip() == "YOUR ANSWER HERE", f"{path.name}: answer {meta['grade_id']} leaked"


# ---------------------------------------------------------------- execution (slow)
@pytest.fixture(scope="session")
def kernel_env(tmp_path_factory):
    """A python3 kernelspec for sys.executable first on JUPYTER_PATH; headless matplotlib."""
    pytest.importorskip("papermill")
    pytest.importorskip("ipykernel")
    root = tmp_path_factory.mktemp("jupyter")
    spec = root / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (kwslab tests)", "language": "python"}))
    saved = {k: os.environ.get(k) for k in ("JUPYTER_PATH", "MPLBACKEND", "TF_CPP_MIN_LOG_LEVEL")}
    os.environ["JUPYTER_PATH"] = os.pathsep.join([str(root)] + ([saved["JUPYTER_PATH"]]
                                                                if saved["JUPYTER_PATH"] else []))
    # the inline backend is Agg without a GUI and still renders every figure to PNG
    os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    yield root
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def smoke_runner(kernel_env, data_dir, tmp_path_factory):
    """execute(name) runs one notebook in smoke mode once per session; returns (nb, seconds)."""
    import time

    import papermill

    work = tmp_path_factory.mktemp("notebooks")
    params = {"quick": True, "data_dir": str(data_dir), "run_dir": str(work / "run"),
              "cache_dir": str(work / "cache")}
    done: dict[str, tuple[nbformat.NotebookNode, float]] = {}

    def execute(name: str):
        if name not in done:
            if name > TRAINING and (NOTEBOOK_DIR / TRAINING).exists():
                execute(TRAINING)  # later notebooks load its checkpoint
            t0 = time.perf_counter()
            out = papermill.execute_notebook(
                str(NOTEBOOK_DIR / name), str(work / name), parameters=params,
                kernel_name="python3", cwd=str(NOTEBOOK_DIR), progress_bar=False,
                execution_timeout=600)
            done[name] = (out, time.perf_counter() - t0)
        return done[name]

    return execute


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs_in_smoke_mode(path, smoke_runner):
    nb, seconds = smoke_runner(path.name)  # papermill raises PapermillExecutionError on a failing cell
    print(f"{path.name}: {seconds:.1f} s")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.output_type == "error"]
    assert not errors, f"{path.name}: {errors[0]['ename']}: {errors[0]['evalue']}"
    images = sum("image/png" in o.get("data", {}) for c in nb.cells if c.cell_type == "code"
                 for o in c.get("outputs", []))
    assert images >= 1, f"{path.name}: no figure was rendered"
    heading = [c for c in nb.cells if c.cell_type == "markdown" and "what you measured" in c.source.lower()]
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    assert heading and last.get("outputs"), \
        f"{path.name}: must end with a 'What you measured' section whose last cell shows a table"
    if path.name == TRAINING:
        assert (Path(nb.metadata.papermill.parameters["run_dir"]) / "checkpoint.pt").is_file()


# ---------------------------------------------------------------- kwslab.colab helpers (fast)
def test_fit_clip_keeps_the_loudest_second_and_pads_short_clips():
    import numpy as np

    from kwslab import colab

    x = np.zeros(30_000, np.float32)
    x[20_000:21_000] = 0.5  # the word: energy 1000 * 0.25 = 250, only here
    y = colab.fit_clip(x, 16_000)
    assert len(y) == 16_000 and float((y ** 2).sum()) == pytest.approx(250.0)
    short = colab.fit_clip(np.ones(100, np.float32), 16_000)
    assert len(short) == 16_000 and short[:100].sum() == 100 and not short[100:].any()


def test_decode_wav_bytes_mixes_to_mono_and_resamples(tmp_path):
    import io

    import numpy as np
    import soundfile as sf

    from kwslab import colab

    stereo = np.stack([np.full(8_000, 0.25), np.full(8_000, 0.75)], axis=1)  # 1 s at 8 kHz
    buf = io.BytesIO()
    sf.write(buf, stereo, 8_000, format="WAV", subtype="PCM_16")
    y = colab.decode_wav_bytes(buf.getvalue(), 16_000)
    assert y.dtype == np.float32 and len(y) == 16_000  # 8,000 samples at 8 kHz -> 16,000
    assert float(np.median(y)) == pytest.approx(0.5, abs=1e-3)  # (0.25 + 0.75) / 2
    with pytest.raises(ValueError, match="cannot decode 7 bytes"):
        colab.decode_wav_bytes(b"garbage")


def test_bootstrap_and_recorder_do_nothing_outside_colab():
    from kwslab import colab

    if colab.in_colab():
        pytest.skip("running inside Colab")
    cwd = os.getcwd()
    assert colab.bootstrap() is None and os.getcwd() == cwd
    with pytest.raises(ValueError, match="seconds must be > 0"):
        colab.record_audio(0)


def test_colab_requirements_keep_colabs_tensorflow():
    import importlib.util

    from kwslab import colab

    if importlib.util.find_spec("tensorflow") is None:
        pytest.skip("TensorFlow is not installed here")

    deps = colab.colab_requirements(NOTEBOOK_DIR.parent / "pyproject.toml")
    assert not [d for d in deps if d.startswith("tensorflow")], deps
    assert any(d.startswith("torch") for d in deps) and any(d.startswith("tflite-micro") for d in deps)


def test_check_counts_passes_and_fails_on_a_failing_or_missing_test(tmp_path, monkeypatch,
                                                                   capsys):
    from kwslab import colab

    (tmp_path / "tests/graded").mkdir(parents=True)
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")  # found as ../tests/graded/test_tiny.py
    f = tmp_path / "tests/graded/test_tiny.py"
    f.write_text("def test_one():\n    assert 1 + 1 == 2\n\n"
                 "def test_two():\n    assert 2 * 2 == 4\n\n"
                 "def test_wrong():\n    assert 2 + 2 == 5\n")
    assert colab.check(f, "test_one or test_two") is None  # no number: nbgrader partial credit
    assert "2 graded tests passed" in capsys.readouterr().out
    with pytest.raises(AssertionError, match="failed"):
        colab.check(f, "test_wrong")
    with pytest.raises(AssertionError, match="no test"):
        colab.check(f, "test_absent")
    with pytest.raises(FileNotFoundError, match="no tests/graded/missing.py"):
        colab.check("missing.py")
    colab.check("test_tiny.py", "test_one")  # by name, as the check cells do
    assert "1 graded test passed" in capsys.readouterr().out


def test_check_refuses_a_kwslab_that_is_not_the_trees_own(tmp_path, monkeypatch):
    # an nbgrader assignment folder: notebooks, src/kwslab, tests/graded side by side; the
    # kernel imports another kwslab (the installed one): the check must not grade that one
    from kwslab import colab

    (tmp_path / "src/kwslab").mkdir(parents=True)
    (tmp_path / "src/kwslab/__init__.py").write_text("")
    (tmp_path / "tests/graded").mkdir(parents=True)
    (tmp_path / "tests/graded/test_tiny.py").write_text("def test_one():\n    pass\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AssertionError, match="imports kwslab from"):
        colab.check("test_tiny.py")
