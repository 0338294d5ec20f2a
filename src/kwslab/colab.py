"""Notebook helpers: the Colab bootstrap, a microphone recorder, and the graded check cells.

* ``bootstrap()`` makes a Colab runtime ready: the repository cloned to ``/content/kwslab``,
  installed with ``pip install -e`` (the version ranges of ``pyproject.toml``, so Colab's own
  torch and TensorFlow stay), ``src/`` added to ``sys.path`` (the running kernel does not see
  an editable install made after it started) and the working directory set to
  ``notebooks/``, so relative paths mean the same in Colab, Jupyter and CI. Outside Colab it
  does nothing. The first cell of every notebook clones the repository itself (it cannot
  import kwslab before that) and then calls it.
* ``record_audio(seconds)`` records from the microphone and returns 16 kHz mono float audio:
  in Colab through a JavaScript cell (``google.colab.output.eval_js``: ``getUserMedia`` +
  ``MediaRecorder``; the browser decodes and resamples with ``OfflineAudioContext`` and hands
  back a 16-bit WAV, read with soundfile); locally through ``sounddevice`` if it is installed.
  It returns None when neither is available (CI), so callers fall back to a dataset clip.
* ``check(test_name, keyword)`` runs the graded tests of one task in-process with
  ``pytest.main`` (fast: torch is already imported; ``%autoreload`` has already loaded the
  student's edits) and raises AssertionError when one fails, so a locked check cell fails.

References:
  1) Colab example notebook "Advanced outputs" (``google.colab.output.eval_js``) and the
     MDN pages for ``MediaRecorder``, ``BaseAudioContext.decodeAudioData`` and
     ``OfflineAudioContext``.
  2) python-sounddevice documentation (``sounddevice.rec``, ``sounddevice.wait``).
  3) pytest "Calling pytest from Python code" (``pytest.main``, exit codes).
"""
from __future__ import annotations

import base64
import io
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

REPO_URL = "https://github.com/kwslab/kwslab"
"""The repository the Colab cells clone (change the organisation in a fork)."""
COLAB_DIR = Path("/content/kwslab")
"""Where the Colab bootstrap clones the repository."""


def in_colab() -> bool:
    """True when running inside a Google Colab runtime (``google.colab`` is importable)."""
    try:
        import google.colab  # noqa: F401
    except ImportError:
        return False
    return True


def bootstrap(repo_dir: str | Path = COLAB_DIR, repo_url: str = REPO_URL) -> Path | None:
    """Clone (if needed), install and import-enable the lab in Colab; a no-op elsewhere.

    Args:
        repo_dir: the checkout in Colab.
        repo_url: what to clone when repo_dir does not exist.
    Returns:
        The repository folder in Colab (the working directory is then its ``notebooks/``);
        None outside Colab, where nothing is changed.
    Raises:
        subprocess.CalledProcessError: if ``git clone`` or ``pip install`` fails (the output
            is shown above the error).
    """
    if not in_colab():
        return None
    repo_dir = Path(repo_dir)
    if not (repo_dir / "pyproject.toml").exists():
        subprocess.run(["git", "clone", "--depth", "1", repo_url, str(repo_dir)], check=True)
    marker = repo_dir / ".colab_installed"
    if not marker.exists():
        pip = [sys.executable, "-m", "pip", "install", "-q"]
        subprocess.run(pip + ["--no-deps", "-e", str(repo_dir)], check=True)
        subprocess.run(pip + colab_requirements(repo_dir / "pyproject.toml"), check=True)
        marker.touch()
    src = str(repo_dir / "src")
    if src not in sys.path:
        sys.path.insert(0, src)
    os.chdir(repo_dir / "notebooks")
    return repo_dir


def colab_requirements(pyproject: str | Path) -> list[str]:
    """The project's dependencies minus ``tensorflow-cpu`` when TensorFlow is importable.

    Colab ships the ``tensorflow`` distribution (GPU build); installing ``tensorflow-cpu``
    beside it would overwrite the same ``tensorflow`` package. Everything else is passed to pip,
    which leaves already-satisfied ranges (torch, numpy, librosa ...) alone.
    """
    import importlib.util
    import re
    import tomllib

    deps = tomllib.loads(Path(pyproject).read_text())["project"]["dependencies"]
    has_tf = importlib.util.find_spec("tensorflow") is not None
    return [d for d in deps
            if not (has_tf and re.match(r"tensorflow(-cpu)?\b", d.split(";")[0].strip()))]


# ---------------------------------------------------------------- recording
_RECORDER_JS = """
async function kwslabRecord(seconds, rate) {
  const stream = await navigator.mediaDevices.getUserMedia({audio: true});
  const recorder = new MediaRecorder(stream);
  const chunks = [];
  recorder.ondataavailable = e => chunks.push(e.data);
  const note = document.createElement("p");
  note.textContent = "Recording " + seconds + " s: speak now";
  document.body.appendChild(note);
  const stopped = new Promise(resolve => recorder.onstop = resolve);
  recorder.start();
  await new Promise(resolve => setTimeout(resolve, seconds * 1000));
  recorder.stop();
  await stopped;
  stream.getTracks().forEach(t => t.stop());
  note.textContent = "Recorded " + seconds + " s";
  const encoded = await new Blob(chunks).arrayBuffer();
  const decoded = await new AudioContext().decodeAudioData(encoded);
  const n = Math.max(1, Math.round(decoded.duration * rate));
  const offline = new OfflineAudioContext(1, n, rate);   // mono, resampled to rate
  const source = offline.createBufferSource();
  source.buffer = decoded;
  source.connect(offline.destination);
  source.start();
  const x = (await offline.startRendering()).getChannelData(0);
  const wav = new DataView(new ArrayBuffer(44 + 2 * x.length));
  const text = (o, s) => { for (let i = 0; i < s.length; i++) wav.setUint8(o + i, s.charCodeAt(i)); };
  text(0, "RIFF"); wav.setUint32(4, 36 + 2 * x.length, true); text(8, "WAVE");
  text(12, "fmt "); wav.setUint32(16, 16, true); wav.setUint16(20, 1, true);
  wav.setUint16(22, 1, true); wav.setUint32(24, rate, true); wav.setUint32(28, 2 * rate, true);
  wav.setUint16(32, 2, true); wav.setUint16(34, 16, true);
  text(36, "data"); wav.setUint32(40, 2 * x.length, true);
  for (let i = 0; i < x.length; i++) {
    wav.setInt16(44 + 2 * i, Math.max(-32768, Math.min(32767, Math.round(x[i] * 32767))), true);
  }
  let binary = "";
  const bytes = new Uint8Array(wav.buffer);
  for (let i = 0; i < bytes.length; i++) binary += String.fromCharCode(bytes[i]);
  return btoa(binary);
}
"""


def decode_wav_bytes(data: bytes, sample_rate_hz: int = 16000) -> np.ndarray:
    """Any WAV/FLAC/OGG file's bytes -> mono float32 audio at sample_rate_hz.

    Channels are averaged; another sample rate is resampled with librosa.

    Returns:
        float32 array of shape (S,), values in [-1, 1].
    Raises:
        ValueError: if soundfile cannot read the bytes (the message gives their length).
    """
    import soundfile as sf

    try:
        audio, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except (RuntimeError, sf.SoundFileError) as e:
        raise ValueError(f"cannot decode {len(data)} bytes of audio: {e}") from e
    audio = audio.mean(axis=1)
    if rate != sample_rate_hz:
        import librosa

        audio = librosa.resample(audio, orig_sr=rate, target_sr=sample_rate_hz)
    return audio.astype(np.float32)


def fit_clip(audio: np.ndarray, num_samples: int = 16000) -> np.ndarray:
    """The loudest num_samples-long window of a recording (zero-padded if shorter).

    A recording starts with the reaction time before the word; the window with the most
    energy (a cumulative sum of squares) keeps the word.
    """
    audio = np.asarray(audio, np.float32)
    if len(audio) <= num_samples:
        return np.pad(audio, (0, num_samples - len(audio)))
    energy = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    start = int(np.argmax(energy[num_samples:] - energy[:-num_samples]))
    return audio[start:start + num_samples]


def record_audio(seconds: float = 1.5, sample_rate_hz: int = 16000) -> np.ndarray | None:
    """Record from the microphone: Colab (browser) or local (sounddevice); else None.

    Args:
        seconds: recording length, > 0.
        sample_rate_hz: output sample rate.
    Returns:
        float32 mono audio of shape (round(seconds * sample_rate_hz),) or thereabouts (the
        browser decides the exact length), or None when no recorder is available or the
        recording failed (the reason is logged).
    Raises:
        ValueError: if seconds <= 0.
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be > 0, got {seconds}")
    if in_colab():
        from google.colab import output

        try:
            b64 = output.eval_js(_RECORDER_JS + f"kwslabRecord({seconds}, {sample_rate_hz})")
            return decode_wav_bytes(base64.b64decode(b64), sample_rate_hz)
        except Exception as e:  # no microphone permission, no device, browser error
            log.warning("browser recording failed: %s", e)
            return None
    try:
        import sounddevice as sd
    except (ImportError, OSError):  # not installed, or no PortAudio library
        return None
    try:
        audio = sd.rec(int(round(seconds * sample_rate_hz)), samplerate=sample_rate_hz,
                       channels=1, dtype="float32")
        sd.wait()
    except Exception as e:  # sounddevice.PortAudioError and friends: no input device
        log.warning("sounddevice recording failed: %s", e)
        return None
    return audio[:, 0]


# ---------------------------------------------------------------- check cells
def graded_test_file(name: str | Path, start: str | Path | None = None) -> Path:
    """The graded test file `tests/graded/<name>` of the tree the notebook runs in.

    Looked up in the working directory (``start``) and then in each parent, so it works in
    the repository (notebooks/ beside tests/), in Colab, and in an nbgrader assignment
    folder (tests/ beside the notebooks). Only the file name of ``name`` is used.

    Raises:
        FileNotFoundError: if no ``tests/graded/<name>`` exists there or above.
    """
    here = Path(start or Path.cwd()).resolve()
    base = Path(name).name
    for folder in (here, *here.parents):
        candidate = folder / "tests" / "graded" / base
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"no tests/graded/{base} in {here} or any folder above it; run "
                            "the notebook from the repository's notebooks/ folder or from "
                            "its nbgrader assignment folder")


def _check_package_origin(tree: Path) -> None:
    """Fail unless kwslab is imported from tree/src (the code the tests must grade)."""
    import kwslab

    own = tree / "src" / "kwslab"
    if not own.is_dir():
        return
    used = Path(kwslab.__file__).resolve().parent
    if used != own.resolve():
        raise AssertionError(
            f"this kernel imports kwslab from {used}, not from {own}: the check would "
            "grade other code than this tree's. Install this tree (pip install -e .) and "
            "restart the kernel; with nbgrader, use course/nbgrader_config.py (it puts the "
            "assignment's src/ first on the kernel's path)")


def check(test_file: str | Path, keyword: str | None = None, quiet: bool = True) -> None:
    """Run the tests of one graded file (those matching keyword) in this process.

    Args:
        test_file: the graded test file's name, e.g. "test_size_estimate.py" (a path is
            accepted; only its file name is used, see ``graded_test_file``).
        keyword: a pytest ``-k`` expression, e.g. "count_parameters"; None runs the file.
        quiet: ``-q`` output.
    Prints how many tests passed and returns None: nbgrader would read a number shown as
    the cell's result as partial credit. Under nbgrader (``NBGRADER_EXECUTION`` set, when
    hidden tests are present and the output goes into the student's feedback) failures are
    reported without tracebacks, so no test source is shown.

    Raises:
        FileNotFoundError: if no ``tests/graded/<name>`` is found.
        AssertionError: if a test failed or none matched keyword (pytest's report is above),
            or if the kwslab package in use is not the one of the tree holding the tests.
    """
    import pytest

    path = graded_test_file(test_file)
    _check_package_origin(path.parents[2])

    class _Count:
        passed = 0

        def pytest_runtest_logreport(self, report):
            if report.when == "call" and report.passed:
                self.passed += 1

    counter = _Count()
    args = [str(path), "-p", "no:cacheprovider", "--no-header", "-rN"]
    if os.environ.get("NBGRADER_EXECUTION"):  # nbgrader autograde/validate: hidden tests are
        args += ["--tb=no"]                   # there, and outputs go into the feedback
    args += ["-q"] if quiet else []
    args += ["-k", keyword] if keyword else []
    code = pytest.main(args, plugins=[counter])
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        raise AssertionError(f"no test in {path} matches -k {keyword!r}")
    if code != pytest.ExitCode.OK:
        raise AssertionError(f"tests in {path} (-k {keyword!r}) failed (pytest exit code "
                             f"{int(code)}); read the report above")
    print(f"{counter.passed} graded test{'s' * (counter.passed != 1)} passed")
