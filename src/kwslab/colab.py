"""Notebook helpers: the Colab bootstrap and data, a microphone recorder, check cells, hand-in.

* ``bootstrap(data)`` makes a Colab runtime ready; outside Colab it does nothing. The first
  cell of every notebook mounts Google Drive and clones the repository to
  ``/content/drive/MyDrive/kwslab`` (``/content/kwslab`` if Drive is not mounted), since it
  cannot import kwslab before that, then calls it. ``bootstrap``
  1. installs the lab with ``pip install -e`` (the version ranges of ``pyproject.toml``, so
     Colab's own torch and TensorFlow stay; only the missing ``tflite-micro`` and
     ``ai-edge-litert`` are downloaded), once per runtime;
  2. adds ``src/`` to ``sys.path`` (the running kernel does not see an editable install made
     after it started) and makes ``notebooks/`` the working directory;
  3. gets the data (``prepare_data``): the official archive is downloaded once through
     ``kwslab.download`` (progress bar, SHA-256, resume) into ``<repo>/data/downloads/`` and
     unpacked onto the runtime's fast local disk (``/content/speech_commands`` or
     ``/content/speech_commands_small``), and ``$KWSLAB_DATA`` points there.
  With Drive mounted the repository lives on Drive, so everything a later notebook (a new
  runtime) needs is already there: your edits of the graded ``.py`` files, the notebooks,
  ``runs/`` (notebook 3's checkpoint), ``.cache/`` (features) and the archive. Without Drive
  all of it is on the runtime's disk and disappears with the runtime: each notebook then
  downloads the archive again and notebooks 4-6 fall back to a pretrained checkpoint.
* ``prepare_data("small")`` unpacks a fixed tenth of the archive (``SMALL_SPEAKER_PERCENT``
  of the speakers, picked by a CRC-32 of the speaker id, with all their clips of every word,
  plus the background noise and the split lists); ``"full"`` unpacks everything (105,829
  clips). Notebooks 1 and 2 use "small" (they need a few clips); 3 to 6 use "full".
* ``record_audio(seconds)`` records from the microphone and returns 16 kHz mono float audio:
  in Colab through a JavaScript cell (``google.colab.output.eval_js``: ``getUserMedia`` +
  ``MediaRecorder``; the browser decodes and resamples with ``OfflineAudioContext`` and hands
  back a 16-bit WAV, read with soundfile); locally through ``sounddevice`` if it is installed.
  It returns None when neither is available (CI), so callers fall back to a dataset clip.
* ``check(test_name, keyword)`` runs the graded tests of one task in-process with
  ``pytest.main`` (fast: torch is already imported; ``%autoreload`` has already loaded the
  student's edits) with short tracebacks, and raises AssertionError when one fails, so a
  locked check cell fails.
* ``collect_submission(student)`` zips the graded ``.py`` files and the notebooks into
  ``<repo>/hand_in/kwslab_<student>.zip`` in the layout ``kwslab course grade`` reads.

Environment overrides (for mirrors and for the emulated-Colab test): ``KWSLAB_DATA_URL``
and ``KWSLAB_DATA_SHA256`` (an empty digest skips the check) replace the archive's URL and
digest; ``KWSLAB_COLAB_ROOT`` replaces ``/content``.

References:
  1) Colab example notebooks "External data: Local Files, Drive, Sheets, and Cloud Storage"
     (``google.colab.drive.mount``) and "Advanced outputs" (``google.colab.output.eval_js``);
     the MDN pages for ``MediaRecorder``, ``BaseAudioContext.decodeAudioData`` and
     ``OfflineAudioContext``.
  2) Stanford CS231n assignments: the Colab setup cell (work kept on Drive) and
     ``collectSubmission`` (one zip of the student's files).
  3) python-sounddevice documentation (``sounddevice.rec``, ``sounddevice.wait``).
  4) pytest "Calling pytest from Python code" (``pytest.main``, exit codes).
"""
from __future__ import annotations

import base64
import io
import logging
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

REPO_URL = "https://github.com/kwslab/kwslab"
"""The repository the Colab cells clone (``kwslab course release --repo-url`` rewrites it)."""
REPO_ROOT = Path(__file__).resolve().parents[2]
"""This checkout: src/kwslab/colab.py -> parents[2]."""
GRADED_FILES = ("src/kwslab/size_estimate.py", "src/kwslab/quantize.py", "src/kwslab/prune.py")
"""The files students fill in (repository-relative); what ``collect_submission`` hands in."""
SMALL_SPEAKER_PERCENT = 10
"""``prepare_data("small")`` keeps the speakers with crc32(speaker id) % 100 below this."""
DATA_KINDS = ("small", "full")


def colab_root() -> Path:
    """The runtime's work folder: ``/content`` in Colab (``$KWSLAB_COLAB_ROOT`` overrides)."""
    return Path(os.environ.get("KWSLAB_COLAB_ROOT", "/content"))


def in_colab() -> bool:
    """True when running inside a Google Colab runtime (``google.colab`` is importable)."""
    try:
        import google.colab  # noqa: F401
    except ImportError:
        return False
    return True


def on_drive(path: str | Path = REPO_ROOT) -> bool:
    """True if path is inside the mounted Google Drive (``<colab root>/drive``)."""
    drive = colab_root() / "drive"
    return Path(path).resolve().is_relative_to(drive.resolve())


@dataclass(frozen=True)
class ColabSession:
    """What ``bootstrap`` set up: the checkout, whether it persists, the data folder."""
    repo: Path
    persistent: bool
    data_dir: Path | None

    def __str__(self) -> str:
        keep = ("on Google Drive: your edits, runs/ and the feature cache survive this runtime"
                if self.persistent else
                "NOT on Drive: everything here is lost when the runtime is deleted")
        data = f"; data in {self.data_dir}" if self.data_dir else ""
        return f"kwslab in {self.repo} ({keep}){data}"

    def _repr_pretty_(self, printer, cycle) -> None:  # how IPython shows it
        printer.text(str(self))


def bootstrap(data: str | None = "full", *, progress: bool = True) -> ColabSession | None:
    """Install and import-enable the lab in Colab and get its data; a no-op elsewhere.

    Args:
        data: "small", "full" (see ``prepare_data``) or None for no data.
        progress: show download and unpack progress bars.
    Returns:
        A ColabSession (the working directory is then ``<repo>/notebooks`` and
        ``$KWSLAB_DATA`` the data folder); None outside Colab, where nothing is changed.
    Raises:
        ValueError: for an unknown data kind.
        subprocess.CalledProcessError: if ``pip install`` fails (its output is above).
        kwslab.dataset.DataError, ConnectionError: from the download (run the cell again to
            resume it).
    """
    if data is not None and data not in DATA_KINDS:
        raise ValueError(f"data must be one of {DATA_KINDS} or None, got {data!r}")
    if not in_colab():
        return None
    repo = REPO_ROOT
    marker = colab_root() / ".kwslab_installed"  # on the runtime's disk: once per runtime
    if not marker.exists():
        pip = [sys.executable, "-m", "pip", "install", "-q"]
        if not _installed("kwslab"):  # Colab has setuptools: no isolated build environment
            subprocess.run(pip + ["--no-deps", "--no-build-isolation", "-e", str(repo)], check=True)
        missing = [r for r in colab_requirements(repo / "pyproject.toml") if not _installed(r)]
        if missing:
            subprocess.run(pip + missing, check=True)
        marker.touch()
    src = str(repo / "src")
    if src not in sys.path:
        sys.path.insert(0, src)
    os.chdir(repo / "notebooks")
    persistent = on_drive(repo)
    if not persistent:
        log.warning("Google Drive is not mounted: %s, its runs/ and the data archive are lost "
                    "when this runtime is deleted", repo)
    data_dir = prepare_data(data, progress=progress) if data else None
    if data_dir is not None:
        os.environ["KWSLAB_DATA"] = str(data_dir)
    return ColabSession(repo, persistent, data_dir)


def colab_requirements(pyproject: str | Path) -> list[str]:
    """The project's dependencies for pip in Colab.

    ``tensorflow-cpu`` is dropped when TensorFlow is importable: Colab ships the
    ``tensorflow`` distribution (GPU build), and ``tensorflow-cpu`` beside it would overwrite
    the same package. A requirement that names no version (``tflite-micro``, nightly builds
    only) takes the exact pin of ``requirements.txt`` beside pyproject.toml when there is one.
    Everything else is passed to pip as is, which leaves already-satisfied ranges (torch,
    numpy, librosa ...) alone.
    """
    import importlib.util
    import tomllib

    pyproject = Path(pyproject)
    deps = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    pins = {}
    req = pyproject.with_name("requirements.txt")
    if req.is_file():
        for line in req.read_text().splitlines():
            m = re.match(r"\s*([A-Za-z0-9_.-]+)==(\S+)", line)
            if m:
                pins[m.group(1).lower()] = line.strip()
    has_tf = importlib.util.find_spec("tensorflow") is not None
    out = []
    for d in deps:
        name = d.split(";")[0].strip()
        if has_tf and re.match(r"tensorflow(-cpu)?\b", name):
            continue
        if re.fullmatch(r"[A-Za-z0-9_.-]+", name) and name.lower() in pins and ";" not in d:
            d = pins[name.lower()]
        out.append(d)
    return out


def _installed(requirement: str) -> bool:
    """True if an installed distribution satisfies requirement (False when unsure)."""
    from importlib import metadata

    try:
        from packaging.requirements import Requirement
    except ImportError:
        return False
    req = Requirement(requirement)
    if req.marker is not None and not req.marker.evaluate():
        return True  # not needed on this platform
    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        return False
    return req.specifier.contains(version, prereleases=True)


# ---------------------------------------------------------------- data
def data_source() -> tuple[str, str | None]:
    """(archive URL, expected SHA-256 or None): the official ones unless overridden by
    ``$KWSLAB_DATA_URL`` / ``$KWSLAB_DATA_SHA256`` (an empty digest skips the check)."""
    from .download import SPEECH_COMMANDS_SHA256, SPEECH_COMMANDS_URL

    url = os.environ.get("KWSLAB_DATA_URL") or SPEECH_COMMANDS_URL
    sha = os.environ.get("KWSLAB_DATA_SHA256",
                         SPEECH_COMMANDS_SHA256 if url == SPEECH_COMMANDS_URL else "")
    return url, (sha or None)


def in_small_subset(member: str) -> bool:
    """True if an archive member belongs to the "small" data set.

    Kept: everything outside word folders (``_background_noise_/``, the split lists, the
    README and LICENSE) and ``<word>/<speaker>_nohash_<n>.wav`` when
    ``zlib.crc32(speaker) % 100 < SMALL_SPEAKER_PERCENT``. Whole speakers are kept, so the
    validation/test lists still split by speaker.
    Example: ``yes/0a7c2a8d_nohash_0.wav`` is kept iff crc32(b"0a7c2a8d") % 100 < 10.
    """
    parts = member.lstrip("./").split("/")
    if len(parts) != 2 or parts[0].startswith("_") or "_nohash_" not in parts[1]:
        return True
    speaker = parts[1].split("_nohash_")[0]
    return zlib.crc32(speaker.encode()) % 100 < SMALL_SPEAKER_PERCENT


def prepare_data(kind: str = "full", *, dest_root: str | Path | None = None,
                 archive_dir: str | Path | None = None, progress: bool = True) -> Path:
    """Download the archive once (kept with the repository) and unpack it onto local disk.

    Args:
        kind: "full" (every clip) or "small" (``in_small_subset``).
        dest_root: where the data folder is made, default the Colab root (``/content``):
            ``<dest_root>/speech_commands`` or ``<dest_root>/speech_commands_small``.
        archive_dir: where the archive is kept, default ``<repo>/data/downloads`` (on Drive
            when the repository is).
        progress: tqdm bars for the download (bytes) and the unpacking (members).
    Returns:
        The data folder (already unpacked folders are reused: a marker file records the
        archive URL and kind).
    Raises:
        ValueError: for an unknown kind.
        kwslab.dataset.DataError: on a checksum mismatch or a corrupt archive.
        ConnectionError, urllib.error.URLError: network failures (run again to resume).
    """
    from tqdm import tqdm

    from .dataset import DataError
    from .download import DONE_MARKER, download_file

    if kind not in DATA_KINDS:
        raise ValueError(f"kind must be one of {DATA_KINDS}, got {kind!r}")
    url, sha = data_source()
    dest_root = Path(dest_root) if dest_root is not None else colab_root()
    dest = dest_root / ("speech_commands" if kind == "full" else "speech_commands_small")
    stamp = f"{url}\n{kind}\n"
    if (dest / DONE_MARKER).is_file() and (dest / DONE_MARKER).read_text() == stamp:
        return dest
    archive_dir = Path(archive_dir) if archive_dir is not None else REPO_ROOT / "data" / "downloads"
    name = url.rstrip("/").rsplit("/", 1)[-1] or "archive.tar.gz"
    archive = download_file(url, archive_dir / name, sha, progress=progress)
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    if dest.exists():
        shutil.rmtree(dest)
    try:
        with tarfile.open(archive, "r:*") as tar, tqdm(desc=f"unpack {kind}", unit=" files",
                                                       disable=not progress, leave=False) as bar:
            for member in tar:  # streaming: one pass through the .tar.gz
                if kind == "full" or in_small_subset(member.name):
                    tar.extract(member, staging, filter="data")
                    bar.update(1)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        shutil.rmtree(staging, ignore_errors=True)
        raise DataError(f"{archive}: corrupt, truncated or unsafe archive ({e}); delete it "
                        "and run again") from e
    (staging / DONE_MARKER).write_text(stamp)
    os.replace(staging, dest)
    return dest


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
    else:
        args += ["--tb=short"]                # not the whole stub docstring again
    args += ["-q"] if quiet else []
    args += ["-k", keyword] if keyword else []
    code = pytest.main(args, plugins=[counter])
    if code == pytest.ExitCode.NO_TESTS_COLLECTED:
        raise AssertionError(f"no test in {path} matches -k {keyword!r}")
    if code != pytest.ExitCode.OK:
        raise AssertionError(f"tests in {path} (-k {keyword!r}) failed (pytest exit code "
                             f"{int(code)}); read the report above")
    print(f"{counter.passed} graded test{'s' * (counter.passed != 1)} passed")


# ---------------------------------------------------------------- hand-in
def collect_submission(student: str, repo: str | Path = REPO_ROOT,
                       out_dir: str | Path | None = None) -> Path:
    """Zip the graded ``.py`` files and the notebooks for hand-in.

    The archive ``kwslab_<student>.zip`` holds ``<student>/src/kwslab/{size_estimate,
    quantize,prune}.py`` and ``<student>/notebooks/*.ipynb``: unzipped into a submissions
    folder it is the layout ``kwslab course grade SUBMISSIONS/`` reads. In Colab the browser
    is also asked to download a copy (``google.colab.files.download``).

    Args:
        student: your name or student id; characters other than letters, digits, ``.``,
            ``_`` and ``-`` become ``_``.
        repo: the checkout to pack (default this one).
        out_dir: where the zip goes, default ``<repo>/hand_in`` (on Drive in Colab).
    Returns:
        The zip's path.
    Raises:
        ValueError: if student is empty or still the placeholder "your_name".
        FileNotFoundError: if a graded file is missing (the message names it).
    """
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", (student or "").strip()).strip("._")
    if not name or name.lower() in ("your_name", "yourname"):
        raise ValueError(f"student must be your name or student id, got {student!r}")
    repo = Path(repo)
    files = [repo / f for f in GRADED_FILES]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"graded file(s) missing: {', '.join(missing)}")
    notebooks = sorted((repo / "notebooks").glob("*.ipynb"))
    out_dir = Path(out_dir) if out_dir is not None else repo / "hand_in"
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = out_dir / f"kwslab_{name}.zip"
    tmp = archive.with_name(archive.name + ".partial")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for f in files + notebooks:
            z.write(f, f"{name}/{f.relative_to(repo).as_posix()}")
    os.replace(tmp, archive)
    log.info("hand-in archive %s: %d graded files, %d notebooks", archive, len(files),
             len(notebooks))
    if in_colab():
        try:
            from google.colab import files as colab_files

            colab_files.download(str(archive))
        except Exception as e:  # no browser attached (a background execution)
            log.warning("browser download of %s failed (%s); take it from the file browser",
                        archive, e)
    return archive
