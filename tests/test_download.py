"""Tests for kwslab.download against a local HTTP server on 127.0.0.1.

The server (a ThreadingHTTPServer in a thread) serves a small .tar.gz in the Speech Commands
layout, honours or ignores Range requests, can cut a response short, and records every
request and how many body bytes it sent.
"""
from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kwslab import dataset
from kwslab.config import DataConfig
from kwslab.dataset import DataError, find_data_dir, index_splits
from kwslab.download import (
    DONE_MARKER,
    SPEECH_COMMANDS_SHA256,
    download_file,
    download_speech_commands,
    extract_archive,
)

TIMEOUT_S = 5


class _Handler(BaseHTTPRequestHandler):
    """GET /<name>: the server's payload, with optional Range support and truncation."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        srv = self.server
        data = srv.payload
        range_header = self.headers.get("Range")
        start, status = 0, 200
        if range_header and srv.honor_range:
            start = int(range_header.removeprefix("bytes=").split("-")[0])
            if start >= len(data):
                srv.log.append({"range": range_header, "status": 416, "sent": 0})
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if srv.cut_after is not None:  # send part of the body, then drop the connection
            body = body[: srv.cut_after]
            srv.cut_after = None
            self.close_connection = True
        # log before writing: the client may check the log as soon as the last byte lands
        srv.log.append({"range": range_header, "status": status, "sent": len(body)})
        self.wfile.write(body)

    def log_message(self, *args):  # keep pytest output clean
        pass


@pytest.fixture()
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.payload, srv.honor_range, srv.cut_after, srv.log = b"", True, None, []
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/speech_commands_test.tar.gz"
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=TIMEOUT_S)


def _clips() -> dict[str, bytes]:
    """~10 real clips from the shared subset (plus list files), or tiny made-up clips."""
    try:
        subset = find_data_dir(dataset.DEFAULT_SUBSET)
    except (FileNotFoundError, DataError):
        subset = None
    files: dict[str, bytes] = {}
    if subset is not None:
        for word in ("yes", "no", "cat"):
            for path in sorted((subset / word).glob("*.wav"))[:3]:
                files[f"{word}/{path.name}"] = path.read_bytes()
        noise = sorted((subset / "_background_noise_").glob("*.wav"))[0]
        files[f"_background_noise_/{noise.name}"] = noise.read_bytes()[:44 + 2 * 20000]
    else:
        for word, speaker in [("yes", "aa"), ("yes", "bb"), ("no", "aa"), ("cat", "cc")]:
            buf = io.BytesIO()
            sf.write(buf, np.arange(100, dtype=np.int16), 16000, format="WAV", subtype="PCM_16")
            files[f"{word}/{speaker}_nohash_0.wav"] = buf.getvalue()
    wavs = sorted(files)
    files["validation_list.txt"] = (wavs[0] + "\n").encode()
    files["testing_list.txt"] = (wavs[1] + "\n").encode()
    return files


def _tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture(scope="module")
def archive() -> tuple[dict[str, bytes], bytes, str]:
    files = _clips()
    payload = _tar_gz(files)
    return files, payload, hashlib.sha256(payload).hexdigest()


def test_official_checksum_is_a_sha256_hex_digest():
    assert len(SPEECH_COMMANDS_SHA256) == 64
    int(SPEECH_COMMANDS_SHA256, 16)


def test_download_speech_commands_downloads_verifies_and_extracts(tmp_path, server, archive):
    files, payload, digest = archive
    server.payload = payload
    dest = tmp_path / "data" / "speech_commands"
    out = download_speech_commands(dest, url=server.url, sha256=digest, progress=False,
                                   timeout_s=TIMEOUT_S)
    assert out == dest
    for name, data in files.items():
        assert (dest / name).read_bytes() == data
    assert (dest / DONE_MARKER).read_text().strip() == server.url
    assert not (tmp_path / "data" / "downloads" / "speech_commands_test.tar.gz").exists()
    assert not (tmp_path / "data" / "speech_commands.partial").exists()
    assert server.log == [{"range": None, "status": 200, "sent": len(payload)}]
    # the result is a data folder the dataset stage reads
    assert find_data_dir(dest) == dest.resolve()
    splits = index_splits(dest, DataConfig(words=("yes", "no")))
    assert sum(len(v) for v in splits.values()) >= 4
    # a second call sees the marker and makes no request
    assert download_speech_commands(dest, url=server.url, sha256=digest, progress=False) == dest
    assert len(server.log) == 1


def test_download_file_resumes_a_partial_file(tmp_path, server, archive):
    _, payload, digest = archive
    server.payload = payload
    dest = tmp_path / "a.tar.gz"
    (tmp_path / "a.tar.gz.part").write_bytes(payload[:1000])
    assert download_file(server.url, dest, digest, progress=False, timeout_s=TIMEOUT_S) == dest
    assert dest.read_bytes() == payload
    assert not (tmp_path / "a.tar.gz.part").exists()
    assert server.log == [{"range": "bytes=1000-", "status": 206, "sent": len(payload) - 1000}]


def test_download_file_interrupted_then_resumed(tmp_path, server, archive):
    _, payload, digest = archive
    server.payload, server.cut_after = payload, 700
    dest = tmp_path / "a.tar.gz"
    with pytest.raises(ConnectionError, match=r"a\.tar\.gz\.part"):
        download_file(server.url, dest, digest, progress=False, chunk_bytes=256,
                      timeout_s=TIMEOUT_S)
    part = tmp_path / "a.tar.gz.part"
    assert part.read_bytes() == payload[:700] and not dest.exists()
    download_file(server.url, dest, digest, progress=False, timeout_s=TIMEOUT_S)
    assert dest.read_bytes() == payload
    assert [r["range"] for r in server.log] == [None, "bytes=700-"]
    assert server.log[1]["sent"] == len(payload) - 700


def test_download_file_restarts_when_server_ignores_range(tmp_path, server, archive):
    _, payload, digest = archive
    server.payload, server.honor_range = payload, False
    dest = tmp_path / "a.tar.gz"
    (tmp_path / "a.tar.gz.part").write_bytes(b"x" * 1000)  # would corrupt an append
    download_file(server.url, dest, digest, progress=False, timeout_s=TIMEOUT_S)
    assert dest.read_bytes() == payload
    assert server.log == [{"range": "bytes=1000-", "status": 200, "sent": len(payload)}]


def test_download_file_complete_part_gets_416_and_is_kept(tmp_path, server, archive):
    _, payload, digest = archive
    server.payload = payload
    dest = tmp_path / "a.tar.gz"
    (tmp_path / "a.tar.gz.part").write_bytes(payload)
    download_file(server.url, dest, digest, progress=False, timeout_s=TIMEOUT_S)
    assert dest.read_bytes() == payload
    assert server.log == [{"range": f"bytes={len(payload)}-", "status": 416, "sent": 0}]


def test_download_file_checksum_mismatch(tmp_path, server, archive):
    _, payload, digest = archive
    server.payload = payload
    dest = tmp_path / "a.tar.gz"
    wrong = "0" * 64
    with pytest.raises(DataError) as info:
        download_file(server.url, dest, wrong, progress=False, timeout_s=TIMEOUT_S)
    message = str(info.value)
    assert str(dest) in message and wrong in message and digest in message
    assert not dest.exists() and not (tmp_path / "a.tar.gz.part").exists()
    # an existing dest is verified without a request
    dest.write_bytes(b"not the archive")
    with pytest.raises(DataError, match=wrong):
        download_file(server.url, dest, wrong, progress=False)
    assert len(server.log) == 1


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_extract_archive_corrupt_names_the_file(tmp_path, archive, damage):
    _, payload, _ = archive
    bad = tmp_path / "bad.tar.gz"
    junk = b"\x1f\x8b junk" * 50  # gzip magic, then nonsense
    bad.write_bytes(payload[: len(payload) // 2] if damage == "truncated" else junk)
    with pytest.raises(DataError, match=r"bad\.tar\.gz"):
        extract_archive(bad, tmp_path / "out")


def test_corrupt_download_leaves_no_half_extracted_folder(tmp_path, server, archive):
    _, payload, _ = archive
    server.payload = payload[: len(payload) // 2]
    dest = tmp_path / "speech_commands"
    with pytest.raises(DataError, match=r"speech_commands_test\.tar\.gz"):
        download_speech_commands(dest, url=server.url, sha256=None, progress=False,
                                 timeout_s=TIMEOUT_S)
    assert not dest.exists() and not (tmp_path / "speech_commands.partial").exists()


def test_extract_archive_refuses_paths_outside_dest(tmp_path):
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(DataError, match=r"evil\.tar"):
        extract_archive(evil, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()


def test_download_refuses_a_foreign_non_empty_folder(tmp_path, server):
    dest = tmp_path / "speech_commands"
    dest.mkdir()
    (dest / "mine.txt").write_text("keep me")
    with pytest.raises(DataError, match=r"speech_commands.*not a completed download"):
        download_speech_commands(dest, url=server.url, sha256=None, progress=False)
    assert server.log == []
