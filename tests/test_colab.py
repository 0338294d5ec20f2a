"""kwslab.colab: the data bootstrap, the hand-in archive, the install check (fast, no Colab)."""
from __future__ import annotations

import io
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest

from kwslab import colab
from kwslab.dataset import DataError
from kwslab.download import DONE_MARKER

REPO = Path(__file__).resolve().parents[1]


def _speaker(keep: bool) -> str:
    """A speaker id that the small subset keeps (or drops)."""
    for i in range(1000):
        s = f"{i:08x}"
        if (zlib.crc32(s.encode()) % 100 < colab.SMALL_SPEAKER_PERCENT) == keep:
            return s
    raise AssertionError("no such speaker")


def _archive(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def served(tmp_path, monkeypatch):
    """An archive in the official layout behind a file:// URL; no digest check."""
    kept, dropped = _speaker(True), _speaker(False)
    members = {"validation_list.txt": b"", "testing_list.txt": b"", "LICENSE": b"CC BY 4.0",
               "_background_noise_/white_noise.wav": b"n",
               f"yes/{kept}_nohash_0.wav": b"a", f"yes/{kept}_nohash_1.wav": b"b",
               f"yes/{dropped}_nohash_0.wav": b"c", f"no/{dropped}_nohash_0.wav": b"d"}
    (tmp_path / "server").mkdir()
    archive = _archive(tmp_path / "server" / "speech.tar.gz", members)
    monkeypatch.setenv("KWSLAB_DATA_URL", archive.as_uri())
    monkeypatch.setenv("KWSLAB_DATA_SHA256", "")
    return {"kept": kept, "dropped": dropped, "archive": archive}


def test_in_small_subset_keeps_whole_speakers_and_everything_outside_word_folders():
    kept, dropped = _speaker(True), _speaker(False)
    assert colab.in_small_subset(f"yes/{kept}_nohash_3.wav")
    assert colab.in_small_subset(f"./left/{kept}_nohash_0.wav")
    assert not colab.in_small_subset(f"yes/{dropped}_nohash_0.wav")
    for name in ("_background_noise_/pink_noise.wav", "testing_list.txt", "README.md", "yes"):
        assert colab.in_small_subset(name), name


def test_in_small_subset_keeps_about_a_tenth_of_speakers():
    # crc32 spreads ids evenly: of 2,000 made-up ids, 10 % +- 2 points are kept
    kept = sum(colab.in_small_subset(f"yes/{i:08x}_nohash_0.wav") for i in range(2000))
    assert 160 <= kept <= 240, kept


def test_prepare_data_small_and_full_unpack_the_same_archive(served, tmp_path):
    kept, dropped = served["kept"], served["dropped"]
    small = colab.prepare_data("small", dest_root=tmp_path / "content",
                               archive_dir=tmp_path / "drive", progress=False)
    assert small.name == "speech_commands_small"
    assert sorted(p.name for p in (small / "yes").iterdir()) == [f"{kept}_nohash_0.wav", f"{kept}_nohash_1.wav"]
    assert not (small / "no").exists() and (small / "_background_noise_" / "white_noise.wav").is_file()
    assert (tmp_path / "drive" / "speech.tar.gz").is_file()  # the archive is kept for later runtimes
    full = colab.prepare_data("full", dest_root=tmp_path / "content", archive_dir=tmp_path / "drive",
                              progress=False)
    assert (full / "no" / f"{dropped}_nohash_0.wav").read_bytes() == b"d"
    assert len(list(full.rglob("*.wav"))) == 5 and (full / DONE_MARKER).is_file()


def test_prepare_data_reuses_an_unpacked_folder_and_the_kept_archive(served, tmp_path):
    kwargs = dict(dest_root=tmp_path / "content", archive_dir=tmp_path / "drive", progress=False)
    first = colab.prepare_data("small", **kwargs)
    (first / "mine.txt").write_text("x")
    served["archive"].unlink()  # no server any more: the archive on "Drive" must be enough
    assert colab.prepare_data("small", **kwargs) == first and (first / "mine.txt").exists()
    # a new runtime (new dest_root) unpacks again from the kept archive, without the server
    again = colab.prepare_data("small", dest_root=tmp_path / "content2",
                               archive_dir=tmp_path / "drive", progress=False)
    assert (again / "yes").is_dir()


def test_prepare_data_names_a_corrupt_archive_and_leaves_no_half_folder(tmp_path, monkeypatch):
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(b"\x1f\x8b\x08\x00garbage" * 10)
    monkeypatch.setenv("KWSLAB_DATA_URL", bad.as_uri())
    monkeypatch.setenv("KWSLAB_DATA_SHA256", "")
    with pytest.raises(DataError, match="bad.tar.gz: corrupt"):
        colab.prepare_data("full", dest_root=tmp_path / "c", archive_dir=tmp_path / "d", progress=False)
    assert not (tmp_path / "c" / "speech_commands").exists()
    assert not (tmp_path / "c" / "speech_commands.partial").exists()


def test_prepare_data_checks_the_digest(served, tmp_path, monkeypatch):
    monkeypatch.setenv("KWSLAB_DATA_SHA256", "0" * 64)
    with pytest.raises(DataError, match="SHA-256"):
        colab.prepare_data("small", dest_root=tmp_path / "c", archive_dir=tmp_path / "d", progress=False)


def test_prepare_data_and_bootstrap_reject_an_unknown_kind():
    with pytest.raises(ValueError, match="kind must be one of"):
        colab.prepare_data("medium")
    with pytest.raises(ValueError, match="data must be one of"):
        colab.bootstrap(data="medium")


def test_data_source_defaults_to_the_official_archive_and_digest(monkeypatch):
    from kwslab.download import SPEECH_COMMANDS_SHA256, SPEECH_COMMANDS_URL

    monkeypatch.delenv("KWSLAB_DATA_URL", raising=False)
    monkeypatch.delenv("KWSLAB_DATA_SHA256", raising=False)
    assert colab.data_source() == (SPEECH_COMMANDS_URL, SPEECH_COMMANDS_SHA256)
    monkeypatch.setenv("KWSLAB_DATA_URL", "http://127.0.0.1:1/x.tar.gz")
    assert colab.data_source() == ("http://127.0.0.1:1/x.tar.gz", None)  # another file: no digest known


def test_on_drive_follows_the_mount_point(tmp_path, monkeypatch):
    monkeypatch.setenv("KWSLAB_COLAB_ROOT", str(tmp_path / "content"))
    (tmp_path / "real_drive" / "MyDrive" / "kwslab").mkdir(parents=True)
    (tmp_path / "content").mkdir()
    (tmp_path / "content" / "drive").symlink_to(tmp_path / "real_drive")
    assert colab.on_drive(tmp_path / "content" / "drive" / "MyDrive" / "kwslab")
    assert colab.on_drive(tmp_path / "real_drive" / "MyDrive" / "kwslab")  # resolved path
    assert not colab.on_drive(tmp_path / "content" / "kwslab")


# ---------------------------------------------------------------- hand-in
def test_graded_files_are_the_files_with_solution_blocks():
    from kwslab import course

    assert sorted(colab.GRADED_FILES) == sorted(course.student_files(REPO))


def test_collect_submission_packs_the_grader_layout(tmp_path):
    archive = colab.collect_submission("Ada Lovelace/1815", repo=REPO, out_dir=tmp_path)
    assert archive == tmp_path / "kwslab_Ada_Lovelace_1815.zip"
    with zipfile.ZipFile(archive) as z:
        names = set(z.namelist())
        assert z.read("Ada_Lovelace_1815/src/kwslab/quantize.py") == (REPO / "src/kwslab/quantize.py").read_bytes()
    expected = {f"Ada_Lovelace_1815/{f}" for f in colab.GRADED_FILES}
    expected |= {f"Ada_Lovelace_1815/notebooks/{p.name}" for p in (REPO / "notebooks").glob("*.ipynb")}
    assert names == expected


@pytest.mark.parametrize("name", ["", "  ", "your_name", "../.."])
def test_collect_submission_wants_a_real_name(name, tmp_path):
    with pytest.raises(ValueError, match="your name or student id"):
        colab.collect_submission(name, repo=REPO, out_dir=tmp_path)


def test_collect_submission_names_a_missing_graded_file(tmp_path):
    (tmp_path / "src" / "kwslab").mkdir(parents=True)
    (tmp_path / "src" / "kwslab" / "prune.py").write_text("")
    with pytest.raises(FileNotFoundError, match="size_estimate.py"):
        colab.collect_submission("ada", repo=tmp_path, out_dir=tmp_path / "out")


# ---------------------------------------------------------------- install
def test_installed_reads_versions_and_markers():
    import numpy

    assert colab._installed(f"numpy=={numpy.__version__}")
    assert not colab._installed("numpy<1")
    assert not colab._installed("surely-not-a-package-kwslab")
    assert colab._installed("surely-not-a-package-kwslab; python_version < '3'")  # not needed here


def test_colab_requirements_pin_the_nightly_tflite_micro():
    pins = [line for line in (REPO / "requirements.txt").read_text().splitlines() if line.startswith("tflite-micro==")]
    deps = colab.colab_requirements(REPO / "pyproject.toml")
    assert pins and pins[0] in deps


# ---------------------------------------------------------------- notebooks 4-6 stand alone
def _tiny_checkpoint(path, cfg):
    import torch

    from kwslab import models, train

    torch.manual_seed(0)
    model = models.build_model(cfg.model.name, cfg.data.num_classes, cfg.frontend.feature_shape,
                               cfg.model.dropout).eval()
    train.save_checkpoint(path, model, cfg, train.History())
    return model


def test_ensure_checkpoint_announces_and_uses_the_pretrained_model(tmp_path, caplog, monkeypatch):
    from kwslab import pipeline
    from kwslab.config import Config

    cfg = Config.for_model(smoke=True)  # smoke caps differ: model, labels and frontend decide
    _tiny_checkpoint(tmp_path / "pretrained.pt", Config.for_model())
    monkeypatch.setattr(pipeline, "run", lambda *a, **k: pytest.fail("trained instead of the pretrained model"))
    with caplog.at_level("WARNING", logger="kwslab.pipeline"):
        model, got, _ = pipeline.ensure_checkpoint(tmp_path / "run", cfg, pretrained=tmp_path / "pretrained.pt")
    assert got.model.name == "tiny_conv" and got.data.labels == cfg.data.labels
    assert "no checkpoint at" in caplog.text and "using the pretrained" in caplog.text


def test_ensure_checkpoint_trains_with_progress_when_the_pretrained_model_does_not_fit(tmp_path, caplog, monkeypatch):
    from kwslab import pipeline
    from kwslab.config import Config

    _tiny_checkpoint(tmp_path / "pretrained.pt", Config.for_model())  # yes/no
    cfg = Config.for_model(words=("up", "down"), smoke=True)         # other labels
    calls = []

    def fake_run(cfg, data_dir, run_dir, **kwargs):
        calls.append(kwargs)
        _tiny_checkpoint(Path(run_dir) / "checkpoint.pt", cfg)

    monkeypatch.setattr(pipeline, "run", fake_run)
    with caplog.at_level("WARNING", logger="kwslab.pipeline"):
        _, got, _ = pipeline.ensure_checkpoint(tmp_path / "run", cfg, progress=False,
                                               pretrained=tmp_path / "pretrained.pt")
    assert calls and calls[0]["progress"] is True and got.data.words == ("up", "down")
    assert "training tiny_conv on up/down" in caplog.text


def test_the_committed_pretrained_checkpoint_is_small_and_loads():
    from kwslab import pipeline, train
    from kwslab.config import Config

    assert pipeline.PRETRAINED.stat().st_size < 120_000
    model, cfg, _ = train.load_checkpoint(pipeline.PRETRAINED)
    want = Config.for_model()
    assert (cfg.model.name, cfg.data.labels, cfg.frontend) == (want.model.name, want.data.labels, want.frontend)
