"""Tests for kwslab.dataset: WAV checks, the split rule, the index and the audio loader.

Small exact cases use WAV files written into tmp_path; the rest run on the real shared
subset (skipped if it is absent).
"""
from __future__ import annotations

import math
import os
import wave
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kwslab import dataset
from kwslab.config import DataConfig, TWELVE_CLASS_WORDS
from kwslab.dataset import (
    DataError,
    Example,
    find_data_dir,
    index_splits,
    load_audio,
    load_background_noise,
    read_wav,
    split_stats,
    which_set,
)


def _write(path: Path, samples, rate=16000, subtype="PCM_16", fmt="WAV") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.asarray(samples), rate, subtype=subtype, format=fmt)
    return path


def _subset_dir() -> Path:
    try:
        return find_data_dir(dataset.DEFAULT_SUBSET)
    except (FileNotFoundError, DataError) as e:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"shared Speech Commands subset not available: {e}")


# ----------------------------------------------------------------------------- read_wav


def test_read_wav_scales_int16_by_32768(tmp_path):
    pcm = np.array([-32768, -1, 0, 1, 16384, 32767], dtype=np.int16)
    path = _write(tmp_path / "a.wav", pcm)
    x = read_wav(path, num_samples=6)
    assert x.dtype == np.float32 and x.shape == (6,)
    # -32768/32768 = -1, 16384/32768 = 0.5, 32767/32768 = 0.999969482421875 (exact in float32)
    assert x.tolist() == [-1.0, -1 / 32768, 0.0, 1 / 32768, 0.5, 32767 / 32768]


def test_read_wav_pads_short_and_trims_long(tmp_path):
    pcm = np.array([100, 200, 300, 400], dtype=np.int16)
    path = _write(tmp_path / "a.wav", pcm)
    assert (read_wav(path, num_samples=6) * 32768).tolist() == [100, 200, 300, 400, 0, 0]
    assert (read_wav(path, num_samples=2) * 32768).tolist() == [100, 200]


def test_read_wav_accepts_a_wav_written_by_the_wave_module(tmp_path):
    path = tmp_path / "w.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.array([7, -7], dtype="<i2").tobytes())
    assert (read_wav(path, num_samples=3) * 32768).tolist() == [7, -7, 0]


def test_read_wav_rejects_other_sample_rate_and_names_it(tmp_path):
    path = _write(tmp_path / "r.wav", np.zeros(80, np.int16), rate=8000)
    with pytest.raises(DataError, match=r"8000 Hz") as info:
        read_wav(path)
    assert str(path) in str(info.value)


def test_read_wav_rejects_stereo(tmp_path):
    path = _write(tmp_path / "s.wav", np.zeros((10, 2), np.int16))
    with pytest.raises(DataError, match=r"2 channels") as info:
        read_wav(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "subtype, found",
    [("PCM_U8", "8-bit PCM"), ("PCM_24", "24-bit PCM"), ("PCM_32", "32-bit PCM"),
     ("FLOAT", "32-bit float"), ("DOUBLE", "64-bit float")],
)
def test_read_wav_rejects_other_sample_formats(tmp_path, subtype, found):
    path = _write(tmp_path / f"{subtype}.wav", np.zeros(10, np.float32), subtype=subtype)
    with pytest.raises(DataError, match=found) as info:
        read_wav(path)
    assert str(path) in str(info.value)


def test_read_wav_rejects_empty_file(tmp_path):
    path = tmp_path / "empty.wav"
    path.write_bytes(b"")
    with pytest.raises(DataError, match="empty file") as info:
        read_wav(path)
    assert str(path) in str(info.value)


def test_read_wav_rejects_wav_with_no_samples(tmp_path):
    path = _write(tmp_path / "zero.wav", np.zeros(0, np.int16))
    with pytest.raises(DataError, match="0 frames"):
        read_wav(path)


@pytest.mark.parametrize("keep_bytes", [8, 30])
def test_read_wav_rejects_truncated_header(tmp_path, keep_bytes):
    # A 16-bit mono WAV has a 44-byte header; keep 8 (inside RIFF) or 30 (inside "fmt ").
    full = _write(tmp_path / "full.wav", np.ones(100, np.int16)).read_bytes()
    path = tmp_path / "cut.wav"
    path.write_bytes(full[:keep_bytes])
    with pytest.raises(DataError) as info:
        read_wav(path)
    assert str(path) in str(info.value)
    assert "truncated header" in str(info.value) or "unreadable WAV" in str(info.value)


def test_read_wav_rejects_non_riff_files(tmp_path):
    flac = _write(tmp_path / "a.flac", np.zeros(100, np.int16), fmt="FLAC")
    with pytest.raises(DataError, match="not a RIFF/WAVE file") as info:
        read_wav(flac)
    assert str(flac) in str(info.value)
    text = tmp_path / "notes.wav"
    text.write_bytes(b"hello, this is not audio at all")
    with pytest.raises(DataError, match="not a RIFF/WAVE file"):
        read_wav(text)


def test_read_wav_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.wav"):
        read_wav(tmp_path / "nope.wav")


# ----------------------------------------------------------------------------- which_set


def test_which_set_matches_hand_derived_hashes():
    # sha1("0ab3b47d") = 092cb82e...00bafe83; low 27 bits 0x0bafe83 = 12,254,851
    #   -> 12254851 * 100 / (2**27 - 1) = 9.1306 %  < 10 -> validation
    # sha1("5e3dde6b") = 9db68bee...0e10672; low 27 bits 0x0e10672 = 14,747,250
    #   -> 10.9876 %, in [10, 20) -> testing
    # sha1("0a7c2a8d") = 3b5ddddc...fc8c025b; low 27 bits 0x48c025b = 76,284,507
    #   -> 56.8364 %  >= 20 -> training
    assert which_set("yes/0ab3b47d_nohash_0.wav", 10, 10) == "validation"
    assert which_set("5e3dde6b_nohash_4.wav", 10, 10) == "testing"
    assert which_set("/x/no/0a7c2a8d_nohash_1.wav", 10, 10) == "training"
    # the same speaker with other percentages: 56.84 is in [50, 60) -> testing
    assert which_set("0a7c2a8d_nohash_0.wav", 50, 10) == "testing"
    assert which_set("0a7c2a8d_nohash_0.wav", 57, 10) == "validation"


def test_which_set_ignores_everything_after_nohash():
    names = [f"{w}/0ab3b47d_nohash_{n}.wav" for w in ("yes", "cat") for n in range(3)]
    assert {which_set(n, 10, 10) for n in names} == {"validation"}


# ----------------------------------------------------------------------------- find_data_dir


def _tiny_layout(root: Path) -> Path:
    _write(root / "yes" / "aaaa0001_nohash_0.wav", np.ones(10, np.int16))
    return root


def test_find_data_dir_explicit_env_and_errors(tmp_path, monkeypatch):
    good = _tiny_layout(tmp_path / "sc")
    assert find_data_dir(good) == good.resolve()
    with pytest.raises(FileNotFoundError, match="missing_dir"):
        find_data_dir(tmp_path / "missing_dir")
    (tmp_path / "empty" / "yes").mkdir(parents=True)
    with pytest.raises(DataError, match=r"empty.*_nohash_"):
        find_data_dir(tmp_path / "empty")
    monkeypatch.setenv("KWSLAB_DATA", str(good))
    assert find_data_dir() == good.resolve()
    monkeypatch.setenv("KWSLAB_DATA", str(tmp_path / "env_missing"))
    with pytest.raises(FileNotFoundError, match=r"env_missing.*KWSLAB_DATA"):
        find_data_dir()


def test_find_data_dir_falls_back_and_says_how_to_get_data(tmp_path, monkeypatch):
    monkeypatch.delenv("KWSLAB_DATA", raising=False)
    monkeypatch.setattr(dataset, "DEFAULT_DOWNLOAD_DIR", tmp_path / "no_download")
    monkeypatch.setattr(dataset, "DEFAULT_SUBSET", _tiny_layout(tmp_path / "subset"))
    assert find_data_dir() == (tmp_path / "subset").resolve()
    monkeypatch.setattr(dataset, "DEFAULT_DOWNLOAD_DIR", _tiny_layout(tmp_path / "dl"))
    assert find_data_dir() == (tmp_path / "dl").resolve()  # the download wins over the subset
    monkeypatch.setattr(dataset, "DEFAULT_DOWNLOAD_DIR", tmp_path / "no_download")
    monkeypatch.setattr(dataset, "DEFAULT_SUBSET", tmp_path / "no_subset")
    with pytest.raises(FileNotFoundError, match=r"kwslab download.*data/README.md"):
        find_data_dir()


# ----------------------------------------------------------------------------- index_splits (tiny)


def _make_folder(root: Path, with_lists: bool) -> Path:
    """yes: 10 clips of speakers y0..y9; no: 6 of n0..n5; cat: 8, dog: 4 (unknown)."""
    counts = {"yes": 10, "no": 6, "cat": 8, "dog": 4}
    for word, n in counts.items():
        for i in range(n):
            _write(root / word / f"{word[0]}{i}_nohash_0.wav", np.full(20, i + 1, np.int16))
    _write(root / "_background_noise_" / "noise.wav", np.full(40000, 1000, np.int16))
    if with_lists:
        (root / "validation_list.txt").write_text(
            "yes/y0_nohash_0.wav\nyes/y1_nohash_0.wav\nno/n0_nohash_0.wav\ncat/c0_nohash_0.wav\n"
        )
        (root / "testing_list.txt").write_text(
            "./yes/y2_nohash_0.wav\ncat/c1_nohash_0.wav\ncat/c2_nohash_0.wav\n"  # ./ is normalized
        )
    return root


def test_index_splits_uses_list_files_and_exact_counts(tmp_path):
    root = _make_folder(tmp_path, with_lists=True)
    cfg = DataConfig(words=("yes", "no"), silence_percentage=25, unknown_percentage=50)
    splits = index_splits(root, cfg, seed=1)
    stats = split_stats(splits, cfg.labels)
    # training: yes 10-3 = 7, no 6-1 = 5 -> 12 wanted; silence ceil(12*0.25) = 3;
    #   unknown ceil(12*0.5) = 6 drawn from cat 8-3 = 5 + dog 4 = 9 training clips
    assert stats["training"] == {"_silence_": 3, "_unknown_": 6, "yes": 7, "no": 5, "speakers": 18}
    # validation: yes 2, no 1 -> 3 wanted; silence ceil(0.75) = 1; unknown ceil(1.5) = 2 but
    #   only 1 (cat/c0) exists
    assert stats["validation"] == {"_silence_": 1, "_unknown_": 1, "yes": 2, "no": 1, "speakers": 4}
    # testing: yes 1 -> silence ceil(0.25) = 1, unknown ceil(0.5) = 1 of cat/c1, cat/c2
    assert stats["testing"]["yes"] == 1 and stats["testing"]["_unknown_"] == 1
    val = splits["validation"]
    assert [(e.path.relative_to(root).as_posix() if e.path else None, e.label) for e in val] == [
        ("yes/y0_nohash_0.wav", 2), ("yes/y1_nohash_0.wav", 2), ("no/n0_nohash_0.wav", 3),
        ("cat/c0_nohash_0.wav", 1), (None, 0),
    ]
    assert val[0].speaker == "y0" and val[-1].speaker is None


def test_index_splits_falls_back_to_which_set(tmp_path):
    root = _make_folder(tmp_path, with_lists=False)
    cfg = DataConfig(words=("yes",), validation_percentage=30, testing_percentage=30)
    splits = index_splits(root, cfg)
    for split, examples in splits.items():
        for e in examples:
            if e.path is not None:
                assert which_set(e.path.name, 30, 30) == split
    assert sum(e.label == 2 for s in splits.values() for e in s) == 10


def test_index_splits_is_deterministic_and_seeded(tmp_path):
    root = _make_folder(tmp_path, with_lists=True)
    cfg = DataConfig(words=("yes", "no"), unknown_percentage=50)
    a, b = index_splits(root, cfg, seed=3), index_splits(root, cfg, seed=3)
    assert a == b
    orders = {tuple(e.path for e in index_splits(root, cfg, seed=s)["training"]) for s in range(6)}
    assert len(orders) > 1  # the seed changes the training order / unknown draw


def test_index_splits_errors_name_word_and_folder(tmp_path):
    root = _make_folder(tmp_path, with_lists=True)
    with pytest.raises(DataError, match=r"'left'.*left"):
        index_splits(root, DataConfig(words=("yes", "left")))
    (root / "up").mkdir()
    with pytest.raises(DataError, match=r"no \.wav files under .*up"):
        index_splits(root, DataConfig(words=("up",)))
    (root / "testing_list.txt").unlink()
    with pytest.raises(DataError, match="testing_list.txt"):
        index_splits(root, DataConfig(words=("yes",)))


def test_load_audio_tiny_silence_and_errors(tmp_path):
    root = _make_folder(tmp_path, with_lists=True)
    noise = load_background_noise(root)
    assert len(noise) == 1 and noise[0].shape == (40000,)
    assert noise[0][0] == pytest.approx(1000 / 32768)
    cfg = DataConfig(silence_volume=0.5)
    sil = load_audio([Example(None, 0, None)] * 50, noise, cfg, augment=False,
                     rng=np.random.default_rng(0))
    # constant noise 1000/32768 = 0.0305 times U(0, 0.5): each row constant in [0, 0.0153)
    assert np.all(sil == sil[:, :1])
    assert 0 <= sil.min() and sil.max() < 0.5 * 1000 / 32768
    assert len(np.unique(sil[:, 0])) == 50
    with pytest.raises(DataError, match="background noise"):
        load_audio([Example(None, 0, None)], [], cfg, augment=False, rng=np.random.default_rng(0))
    with pytest.raises(DataError, match="samples"):
        load_background_noise(root, min_samples=50000)


# ----------------------------------------------------------------------------- real subset


@pytest.fixture(scope="module")
def subset():
    return _subset_dir()


@pytest.fixture(scope="module")
def twelve(subset):
    cfg = DataConfig(words=TWELVE_CLASS_WORDS)
    return cfg, index_splits(subset, cfg)


def test_subset_split_sizes_follow_list_files(subset, twelve):
    cfg, splits = twelve
    lists = {
        "validation": (subset / "validation_list.txt").read_text().split(),
        "testing": (subset / "testing_list.txt").read_text().split(),
    }
    for i, word in enumerate(cfg.words):
        on_disk = len(list((subset / word).glob("*.wav")))
        listed = {s: sum(p.startswith(word + "/") for p in lists[s]) for s in lists}
        got = {s: sum(e.label == i + 2 for e in splits[s]) for s in splits}
        assert got["validation"] == listed["validation"]
        assert got["testing"] == listed["testing"]
        assert got["training"] == on_disk - listed["validation"] - listed["testing"]
    for split in ("validation", "testing"):
        listed = set(lists[split])
        assert all(e.path.relative_to(subset).as_posix() in listed
                   for e in splits[split] if e.path is not None)


def test_subset_labels_speakers_and_counts(twelve):
    cfg, splits = twelve
    speakers = {s: {e.speaker for e in ex if e.speaker} for s, ex in splits.items()}
    assert not speakers["training"] & speakers["validation"]
    assert not speakers["training"] & speakers["testing"]
    assert not speakers["validation"] & speakers["testing"]
    for split, examples in splits.items():
        n_wanted = sum(e.label >= 2 for e in examples)
        assert sum(e.label == 0 for e in examples) == math.ceil(n_wanted * 0.10)
        for e in examples:
            if e.label >= 2:
                assert e.path.parent.name == cfg.labels[e.label]
            elif e.label == 1:
                assert e.path.parent.name not in cfg.words
                assert not e.path.parent.name.startswith("_")
            else:
                assert e.path is None and e.speaker is None
        n_unknown = sum(e.label == 1 for e in examples)
        assert n_unknown == min(math.ceil(n_wanted * 0.10), _unknown_pool(splits, split, cfg))
    assert sum(e.label == 1 for e in splits["training"]) == 272  # ceil(2716 * 0.10)


def _unknown_pool(splits, split, cfg) -> int:
    # all unknown-word clips of the split (counted via an index with unknown_percentage=100+)
    big = DataConfig(words=cfg.words, unknown_percentage=10_000)
    return sum(e.label == 1 for e in index_splits(_subset_dir(), big)[split])


def test_subset_caps(subset, twelve):
    cfg, full = twelve
    capped_cfg = DataConfig(words=TWELVE_CLASS_WORDS, max_clips_per_label=5,
                            silence_percentage=25, unknown_percentage=30)
    capped = index_splits(subset, capped_cfg)
    stats = split_stats(capped, capped_cfg.labels)
    for split in capped:
        assert all(stats[split][w] == 5 for w in capped_cfg.words)  # every split has > 5 per word
        assert stats[split]["_silence_"] == 13  # ceil(50 * 0.25) = ceil(12.5)
        assert stats[split]["_unknown_"] == 15  # ceil(50 * 0.30)
        full_paths = {e.path for e in full[split]}
        assert all(e.path in full_paths for e in capped[split] if e.label >= 2)
    assert index_splits(subset, capped_cfg) == capped


def test_subset_unaugmented_audio_is_bit_exact_and_deterministic(subset, twelve):
    cfg, splits = twelve
    noise = load_background_noise(subset)
    assert len(noise) == 6 and all(n.dtype == np.float32 and len(n) >= 960_000 for n in noise)
    val = splits["validation"]
    x1 = load_audio(val, noise, cfg, augment=False, rng=np.random.default_rng(7))
    x2 = load_audio(val, noise, cfg, augment=False, rng=np.random.default_rng(7))
    assert x1.shape == (len(val), 16000) and x1.dtype == np.float32
    np.testing.assert_array_equal(x1, x2)
    x3 = load_audio(val, noise, cfg, augment=False, rng=np.random.default_rng(8))
    silence = np.array([e.path is None for e in val])
    assert not np.array_equal(x1[silence], x3[silence])  # silence is drawn from the rng
    np.testing.assert_array_equal(x1[~silence], x3[~silence])  # words are not
    for row, e in list(zip(x1, val))[:40]:
        if e.path is None:
            continue
        pcm, rate = sf.read(e.path, dtype="int16")
        assert rate == 16000
        expected = np.zeros(16000, np.int16)
        expected[: min(len(pcm), 16000)] = pcm[:16000]
        np.testing.assert_array_equal(np.round(row * 32768).astype(np.int16), expected)


def test_subset_augmentation_shifts_with_zero_fill(subset, twelve):
    _, splits = twelve
    words = [e for e in splits["training"] if e.path is not None][:30]
    cfg = DataConfig(time_shift_ms=100, background_frequency=0.0)
    plain = load_audio(words, [], cfg, augment=False, rng=np.random.default_rng(0))
    aug = load_audio(words, [], cfg, augment=True, rng=np.random.default_rng(0))
    shifts = []
    for p, a in zip(plain, aug):
        # s > 0: a[s:] == p[:-s] and a[:s] == 0; s < 0: a[:s] == p[-s:] and a[s:] == 0
        found = []
        for s in range(-1600, 1601):
            lo, hi = max(s, 0), 16000 + min(s, 0)
            if (np.array_equal(np.roll(p, s)[lo:hi], a[lo:hi])
                    and not a[:lo].any() and not a[hi:].any()):
                found.append(s)
        assert found, "augmented clip is not a zero-filled shift of the original"
        shifts.append(found[0])
    assert len(set(shifts)) > 10 and max(map(abs, shifts)) <= 1600
    no_shift = DataConfig(time_shift_ms=0, background_frequency=0.0)
    np.testing.assert_array_equal(
        load_audio(words, [], no_shift, augment=True, rng=np.random.default_rng(0)), plain)


def test_subset_augmentation_mixes_background(subset, twelve):
    _, splits = twelve
    words = [e for e in splits["training"] if e.path is not None][:30]
    flat_noise = [np.full(20000, 0.5, np.float32)]
    cfg = DataConfig(time_shift_ms=0, background_frequency=1.0, background_volume=0.1)
    plain = load_audio(words, flat_noise, cfg, augment=False, rng=np.random.default_rng(0))
    aug = load_audio(words, flat_noise, cfg, augment=True, rng=np.random.default_rng(0))
    added = aug - plain
    unclipped = np.abs(plain) < 0.9
    # flat noise 0.5 times U(0, 0.1): one constant offset per clip, in [0, 0.05); float32
    # sums of values below 1 are exact to 2**-24 = 6e-8 each, so allow 1e-6 spread
    for d, m in zip(added, unclipped):
        assert d[m].max() - d[m].min() < 1e-6
        assert 0 <= d[m].mean() < 0.05
    offsets = np.array([d[m].mean() for d, m in zip(added, unclipped)])
    assert np.all(np.abs(np.diff(np.sort(offsets))) > 1e-6)  # a fresh volume for each clip
    assert aug.max() <= 1.0 and aug.min() >= -1.0
    half = DataConfig(time_shift_ms=0, background_frequency=0.5)
    aug_half = load_audio(words, flat_noise, half, augment=True, rng=np.random.default_rng(1))
    mixed = (aug_half != plain).any(axis=1).sum()
    assert 5 <= mixed <= 25  # Binomial(30, 0.5): P(outside 5..25) < 1e-4; seed fixed anyway
