"""Speech Commands: find the folder, index a stable split, read clips, augment them.

The folder has the layout of the ``speech_commands_v0.02`` archive::

    <data_dir>/<word>/<speaker>_nohash_<n>.wav   1 s, 16 kHz, mono, 16-bit PCM
    <data_dir>/_background_noise_/*.wav           long noise recordings (silence, mixing)
    <data_dir>/validation_list.txt                optional: "<word>/<file>.wav" per line
    <data_dir>/testing_list.txt                   optional

Labels are ``_silence_`` (0), ``_unknown_`` (1), then the wanted words. Every clip of a word
folder that is not wanted becomes ``_unknown_``; silence clips have no file and are cut from
the background noise when the audio is loaded. Each split gets ``ceil(n * silence_percentage
/ 100)`` silence clips and ``ceil(n * unknown_percentage / 100)`` unknown clips, n being its
wanted-word clips, as in TensorFlow's ``prepare_data_index``.

Example, 12 classes on the shared subset::

    cfg = DataConfig(words=TWELVE_CLASS_WORDS)
    splits = index_splits(find_data_dir(), cfg)          # {"training": [Example, ...], ...}
    noise = load_background_noise(find_data_dir())
    x = load_audio(splits["validation"], noise, cfg, augment=False,
                   rng=np.random.default_rng(0))          # (N, 16000) float32 in [-1, 1)

References:
  1) P. Warden, "Speech Commands: A Dataset for Limited-Vocabulary Speech Recognition",
     arXiv:1804.03209 (2018); the data set is CC BY 4.0.
  2) TensorFlow ``tensorflow/examples/speech_commands/input_data.py``: ``which_set`` (SHA-1 of
     the file name before ``_nohash_``, MAX_NUM_WAVS_PER_CLASS = 2**27 - 1),
     ``prepare_data_index`` (silence/unknown counts), ``get_data`` (time shift, background
     mixing, silence made from noise).
  3) torchaudio ``datasets/speechcommands.py``: the split from ``validation_list.txt`` and
     ``testing_list.txt``, every other clip being training.
"""
from __future__ import annotations

import hashlib
import logging
import math
import os
import posixpath
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf

from kwslab.config import BACKGROUND_NOISE_DIR, REPO_ROOT, DataConfig

logger = logging.getLogger(__name__)

DEFAULT_DOWNLOAD_DIR = REPO_ROOT / "data" / "speech_commands"
"""Where ``kwslab download`` puts the full data set."""
DEFAULT_SUBSET = REPO_ROOT.parent / "shared" / "speech_commands_subset"
"""The small real subset used by CI and quick runs (lives beside the repository)."""
DATA_ENV_VAR = "KWSLAB_DATA"
VALIDATION_LIST = "validation_list.txt"
TESTING_LIST = "testing_list.txt"
SPLITS = ("training", "validation", "testing")
MAX_NUM_WAVS_PER_CLASS = 2**27 - 1  # ~134M, TensorFlow's input_data.py constant
HASH_DIVIDER = "_nohash_"
LAYOUT_HINT = "expected <data_dir>/<word>/<speaker>_nohash_<n>.wav (Speech Commands layout)"

_SUBTYPE_NAMES = {
    "PCM_S8": "8-bit PCM",
    "PCM_U8": "8-bit PCM",
    "PCM_24": "24-bit PCM",
    "PCM_32": "32-bit PCM",
    "FLOAT": "32-bit float",
    "DOUBLE": "64-bit float",
}


class DataError(ValueError):
    """A data file or folder that is not what the lab expects; the message names it."""


# ----------------------------------------------------------------------------- folders


def _has_clips(folder: Path) -> bool:
    """True if some <folder>/<word>/*_nohash_*.wav exists (stops at the first one)."""
    for sub in folder.iterdir():
        if sub.is_dir() and not sub.name.startswith(("_", ".")):
            if next(sub.glob(f"*{HASH_DIVIDER}*.wav"), None) is not None:
                return True
    return False


def find_data_dir(data_dir: str | Path | None = None) -> Path:
    """Find the Speech Commands folder.

    Order: ``data_dir`` if given, else ``$KWSLAB_DATA``, else ``<repo>/data/speech_commands``
    (where ``kwslab download`` puts it) if it exists, else ``<repo>/../shared/
    speech_commands_subset`` (the CI subset).

    Args:
        data_dir: a folder, or None to search.
    Returns:
        The folder, resolved to an absolute path.
    Raises:
        FileNotFoundError: if the given or ``$KWSLAB_DATA`` folder does not exist, or if no
            folder is found (the message says how to get the data).
        DataError: if the folder holds no ``<word>/*_nohash_*.wav`` clip.
    """
    if data_dir is not None:
        folder, source = Path(data_dir).expanduser(), "data_dir"
    elif os.environ.get(DATA_ENV_VAR):
        folder, source = Path(os.environ[DATA_ENV_VAR]).expanduser(), f"${DATA_ENV_VAR}"
    elif DEFAULT_DOWNLOAD_DIR.is_dir():
        folder, source = DEFAULT_DOWNLOAD_DIR, "the download folder"
    elif DEFAULT_SUBSET.is_dir():
        folder, source = DEFAULT_SUBSET, "the shared subset"
    else:
        raise FileNotFoundError(
            f"no Speech Commands folder found: looked at ${DATA_ENV_VAR} (unset), "
            f"{DEFAULT_DOWNLOAD_DIR} and {DEFAULT_SUBSET}. Run `kwslab download` (about "
            f"2.3 GB), or pass --data / set {DATA_ENV_VAR} to a folder you have; see "
            f"data/README.md"
        )
    if not folder.is_dir():
        raise FileNotFoundError(f"Speech Commands folder {folder} (from {source}) does not exist")
    if not _has_clips(folder):
        raise DataError(f"{folder} (from {source}) holds no word clips; {LAYOUT_HINT}")
    return folder.resolve()


# ----------------------------------------------------------------------------- splits


def which_set(filename: str, validation_percentage: float, testing_percentage: float) -> str:
    """Assign a clip to a split by a hash of its speaker, so a speaker stays in one split.

    The file name is cut at ``_nohash_`` ("yes/0a7c2a8d_nohash_0.wav" -> "0a7c2a8d"), hashed
    with SHA-1, and the 160-bit digest taken modulo 2**27 and scaled to a percentage in
    [0, 100]: below ``validation_percentage`` is validation, below the sum of both is testing,
    the rest training. Adding clips later never moves an existing one.

    Args:
        filename: a clip path or name; only the base name is used.
        validation_percentage: in [0, 100].
        testing_percentage: in [0, 100].
    Returns:
        "validation", "testing" or "training".
    Source: TensorFlow ``speech_commands/input_data.py`` ``which_set``.
    """
    base_name = os.path.basename(filename)
    hash_name = re.sub(r"_nohash_.*$", "", base_name)
    digest = hashlib.sha1(hash_name.encode("utf-8")).hexdigest()
    percentage_hash = (int(digest, 16) % (MAX_NUM_WAVS_PER_CLASS + 1)) * (
        100.0 / MAX_NUM_WAVS_PER_CLASS
    )
    if percentage_hash < validation_percentage:
        return "validation"
    if percentage_hash < validation_percentage + testing_percentage:
        return "testing"
    return "training"


@dataclass(frozen=True)
class Example:
    """One clip of a split."""

    path: Path | None
    """The WAV file; None for a silence clip (cut from background noise when loaded)."""
    label: int
    """Index into ``DataConfig.labels``: 0 silence, 1 unknown, 2.. the wanted words."""
    speaker: str | None
    """The file-name part before ``_nohash_``; None for silence."""


def _speaker(path: Path) -> str:
    name = path.name
    return name.split(HASH_DIVIDER)[0] if HASH_DIVIDER in name else path.stem


def _read_list(data_dir: Path, name: str) -> set[str]:
    text = (data_dir / name).read_text()
    lines = (line.strip().replace("\\", "/") for line in text.splitlines())
    return {posixpath.normpath(line) for line in lines if line}


def index_splits(
    data_dir: str | Path, data_cfg: DataConfig, seed: int = 59185
) -> dict[str, list[Example]]:
    """Index the clips of each split: wanted words, sampled unknown words, silence.

    The split comes from ``validation_list.txt`` and ``testing_list.txt`` when both exist
    (every other clip is training), else from ``which_set`` with the config's percentages.
    Per split, with n wanted-word clips (after ``max_clips_per_label``), silence gets
    ceil(n * silence_percentage / 100) entries and unknown ceil(n * unknown_percentage / 100)
    clips drawn without replacement from the split's other words (all of them if fewer).
    Example: 663 wanted clips at 10 % -> ceil(66.3) = 67 silence and 67 unknown.

    Args:
        data_dir: the Speech Commands folder.
        data_cfg: words, percentages and ``max_clips_per_label``.
        seed: seeds the caps, the unknown draw and the training order (NumPy PCG64).
    Returns:
        {"training": [...], "validation": [...], "testing": [...]}. Validation and testing
        are sorted (wanted words by label and path, then unknown, then silence); training is
        the same shuffled. The same inputs always give the same lists.
    Raises:
        DataError: if a wanted word has no folder or no clips, or only one list file exists.
    Source: TensorFlow ``speech_commands/input_data.py`` ``prepare_data_index``.
    """
    data_dir = Path(data_dir)
    labels = data_cfg.labels
    word_label = {word: labels.index(word) for word in data_cfg.words}
    for word in data_cfg.words:
        if not (data_dir / word).is_dir():
            raise DataError(f"wanted word {word!r} has no folder {data_dir / word}; {LAYOUT_HINT}")

    has_val, has_test = (data_dir / VALIDATION_LIST).is_file(), (data_dir / TESTING_LIST).is_file()
    if has_val != has_test:
        missing = TESTING_LIST if has_val else VALIDATION_LIST
        raise DataError(f"{data_dir / missing} is missing while its partner list exists")
    if has_val:
        val_set = _read_list(data_dir, VALIDATION_LIST)
        test_set = _read_list(data_dir, TESTING_LIST)

        def split_of(rel: str) -> str:
            return "validation" if rel in val_set else "testing" if rel in test_set else "training"
    else:

        def split_of(rel: str) -> str:
            return which_set(
                rel, data_cfg.validation_percentage, data_cfg.testing_percentage
            )

    wanted: dict[str, dict[int, list[Path]]] = {s: {} for s in SPLITS}
    unknown: dict[str, list[Path]] = {s: [] for s in SPLITS}
    word_dirs = sorted(
        d for d in data_dir.iterdir() if d.is_dir() and not d.name.startswith(("_", "."))
    )
    for word_dir in word_dirs:
        label = word_label.get(word_dir.name)
        paths = sorted(word_dir.glob("*.wav"))
        if label is not None and not paths:
            raise DataError(f"no .wav files under {word_dir}; {LAYOUT_HINT}")
        for path in paths:
            split = split_of(f"{word_dir.name}/{path.name}")
            if label is None:
                unknown[split].append(path)
            else:
                wanted[split].setdefault(label, []).append(path)

    splits: dict[str, list[Example]] = {}
    for k, split in enumerate(SPLITS):
        rng = np.random.default_rng([seed, k])
        examples: list[Example] = []
        for label in sorted(wanted[split]):
            paths = wanted[split][label]
            cap = data_cfg.max_clips_per_label
            if cap is not None and len(paths) > cap:
                keep = rng.permutation(len(paths))[:cap]
                paths = [paths[i] for i in sorted(keep)]
            examples += [Example(p, label, _speaker(p)) for p in paths]
        n_wanted = len(examples)
        n_silence = math.ceil(n_wanted * data_cfg.silence_percentage / 100)
        n_unknown = math.ceil(n_wanted * data_cfg.unknown_percentage / 100)
        pool = unknown[split]
        if n_unknown > len(pool):
            logger.warning("%s: wanted %d unknown clips, only %d exist",
                           split, n_unknown, len(pool))
        picked = sorted(rng.permutation(len(pool))[: min(n_unknown, len(pool))])
        examples += [Example(pool[i], 1, _speaker(pool[i])) for i in picked]
        examples += [Example(None, 0, None)] * n_silence
        if split == "training":
            examples = [examples[i] for i in rng.permutation(len(examples))]
        splits[split] = examples
    return splits


def split_stats(
    splits: dict[str, list[Example]], labels: Sequence[str]
) -> dict[str, dict[str, int]]:
    """Count clips per split and label, and distinct speakers per split.

    Returns:
        {split: {label: count for each label, "speakers": distinct speakers (silence has
        none)}}, e.g. {"validation": {"_silence_": 8, "_unknown_": 8, "yes": 40, "no": 36,
        "speakers": 21}}.
    """
    stats: dict[str, dict[str, int]] = {}
    for split, examples in splits.items():
        counts = np.bincount([e.label for e in examples], minlength=len(labels))
        row = {label: int(counts[i]) for i, label in enumerate(labels)}
        row["speakers"] = len({e.speaker for e in examples if e.speaker is not None})
        stats[split] = row
    return stats


# ----------------------------------------------------------------------------- audio


def _read_pcm16(path: Path, num_samples: int | None, sample_rate_hz: int) -> np.ndarray:
    """int16 samples of a 16-bit mono PCM WAV, at most num_samples of them (None: all)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such WAV file")
    with open(path, "rb") as f:
        head = f.read(12)
    if len(head) == 0:
        raise DataError(f"{path}: empty file (0 bytes)")
    if len(head) < 12:
        raise DataError(f"{path}: truncated header ({len(head)} bytes, a WAV header needs 44)")
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise DataError(f"{path}: not a RIFF/WAVE file (starts with {head[:12]!r})")
    try:
        with sf.SoundFile(path) as f:
            if f.format not in ("WAV", "WAVEX"):
                raise DataError(f"{path}: not a WAV file (format {f.format})")
            if f.samplerate != sample_rate_hz:
                raise DataError(
                    f"{path}: sample rate is {f.samplerate} Hz, expected {sample_rate_hz} Hz"
                )
            if f.channels != 1:
                raise DataError(f"{path}: has {f.channels} channels, expected 1 (mono)")
            if f.subtype != "PCM_16":
                found = _SUBTYPE_NAMES.get(f.subtype, f.subtype)
                raise DataError(f"{path}: sample format is {found}, expected 16-bit PCM")
            if f.frames == 0:
                raise DataError(f"{path}: WAV header holds no samples (0 frames)")
            frames = -1 if num_samples is None else num_samples
            return f.read(frames=frames, dtype="int16")
    except (RuntimeError, sf.SoundFileError) as e:  # libsndfile: bad or truncated header
        raise DataError(f"{path}: unreadable WAV ({e})") from e


def read_wav(path: str | Path, num_samples: int = 16000, sample_rate_hz: int = 16000) -> np.ndarray:
    """Read one clip as float32 samples.

    Only WAV, ``sample_rate_hz``, mono, 16-bit PCM is accepted; nothing is resampled or
    mixed down. Samples are int16 / 32768, so int16 -32768..32767 maps to -1.0..0.99997 and
    ``round(x * 32768)`` gives the file's integers back exactly.

    Args:
        path: a WAV file.
        num_samples: output length; shorter clips are zero-padded at the end, longer trimmed.
        sample_rate_hz: the required sample rate.
    Returns:
        float32 array of shape (num_samples,), values in [-1, 1).
    Raises:
        FileNotFoundError: if the file does not exist.
        DataError: for an empty file or one with 0 frames, a truncated header, a non-RIFF
            file, another sample rate (the message gives the rate found), more than one
            channel, or a sample format other than 16-bit PCM (8/24/32-bit PCM, float).
    """
    pcm = _read_pcm16(Path(path), num_samples, sample_rate_hz)
    out = np.zeros(num_samples, dtype=np.float32)
    out[: len(pcm)] = pcm.astype(np.float32) / 32768.0
    return out


def load_background_noise(
    data_dir: str | Path, min_samples: int = 16000, sample_rate_hz: int = 16000
) -> list[np.ndarray]:
    """Read the long noise recordings in ``<data_dir>/_background_noise_/*.wav``.

    Args:
        data_dir: the Speech Commands folder.
        min_samples: each recording must be at least this long (one clip).
        sample_rate_hz: the required sample rate.
    Returns:
        One float32 array per file (sorted by name), full length (about 60 s = 960,000
        samples each in Speech Commands), values in [-1, 1). An empty list if the folder
        does not exist.
    Raises:
        DataError: if a file is not 16-bit mono PCM at ``sample_rate_hz`` or is shorter than
            ``min_samples``.
    """
    folder = Path(data_dir) / BACKGROUND_NOISE_DIR
    if not folder.is_dir():
        logger.warning("no background noise folder %s", folder)
        return []
    clips = []
    for path in sorted(folder.glob("*.wav")):
        pcm = _read_pcm16(path, None, sample_rate_hz)
        if len(pcm) < min_samples:
            raise DataError(f"{path}: {len(pcm)} samples, background noise needs >= {min_samples}")
        clips.append(pcm.astype(np.float32) / 32768.0)
    return clips


def _noise_window(background: list[np.ndarray], rng: np.random.Generator, n: int) -> np.ndarray:
    clip = background[rng.integers(len(background))]
    start = rng.integers(0, len(clip) - n, endpoint=True)
    return clip[start : start + n]


def load_audio(
    examples: Sequence[Example],
    background: list[np.ndarray],
    data_cfg: DataConfig,
    *,
    augment: bool,
    rng: np.random.Generator,
    num_samples: int = 16000,
    sample_rate_hz: int = 16000,
) -> np.ndarray:
    """Read (and optionally augment) the audio of a list of examples.

    Silence (path None): a random ``num_samples`` window of a random background recording,
    times U(0, silence_volume), in every split. Word clips: ``read_wav``; with ``augment``,
    shifted by an integer s ~ U{-S..S} samples (S = time_shift_ms * rate / 1000 = 1600 for
    100 ms; s > 0 delays, zero fill), then with probability ``background_frequency`` a random
    noise window times U(0, background_volume) is added, and the sum clipped to [-1, 1].
    Without ``augment`` word clips are returned exactly as read. All randomness comes from
    ``rng``, so a fixed-seed rng gives the same validation/test audio every time.

    Args:
        examples: from ``index_splits``.
        background: from ``load_background_noise``.
        data_cfg: silence/background volumes, background frequency, time shift.
        augment: True for training batches.
        rng: the only source of randomness.
        num_samples: samples per clip.
        sample_rate_hz: the clips' sample rate.
    Returns:
        float32 array of shape (N, num_samples), values in [-1, 1].
    Raises:
        DataError: if noise is needed (silence examples, or augment with
            background_frequency > 0) and ``background`` is empty; or from ``read_wav``.
    Source: TensorFlow ``speech_commands/input_data.py`` ``get_data``.
    """
    needs_noise = any(e.path is None for e in examples) or (
        augment and data_cfg.background_frequency > 0
    )
    if needs_noise and not background:
        raise DataError(
            f"silence clips and noise mixing need background noise "
            f"(<data_dir>/{BACKGROUND_NOISE_DIR}/*.wav); none was given"
        )
    if any(len(b) < num_samples for b in background):
        raise DataError(f"a background recording is shorter than {num_samples} samples")
    max_shift = int(data_cfg.time_shift_ms * sample_rate_hz / 1000)
    out = np.zeros((len(examples), num_samples), dtype=np.float32)
    for i, example in enumerate(examples):
        if example.path is None:
            volume = rng.uniform(0, data_cfg.silence_volume)
            out[i] = _noise_window(background, rng, num_samples) * volume
            continue
        clip = read_wav(example.path, num_samples, sample_rate_hz)
        if not augment:
            out[i] = clip
            continue
        shift = int(rng.integers(-max_shift, max_shift, endpoint=True)) if max_shift > 0 else 0
        if shift > 0:
            out[i, shift:] = clip[:-shift]
        elif shift < 0:
            out[i, :shift] = clip[-shift:]
        else:
            out[i] = clip
        if rng.random() < data_cfg.background_frequency:
            volume = rng.uniform(0, data_cfg.background_volume)
            out[i] += _noise_window(background, rng, num_samples) * volume
        np.clip(out[i], -1.0, 1.0, out=out[i])
    return out
