"""Fetch the full Speech Commands v0.02 archive: resumable download, checksum, safe extract.

``kwslab download [DIR]`` calls ``download_speech_commands``. The archive (about 2.3 GB,
105,829 clips of 35 words, plus ``_background_noise_`` and the two split lists) unpacks with
no top-level folder, straight into DIR (default ``<repo>/data/speech_commands``), which is the
layout ``kwslab.dataset`` reads.

Example::

    from kwslab.download import download_speech_commands
    data_dir = download_speech_commands()          # ~2.3 GB, resumes if interrupted
    # later runs find it: kwslab.dataset.find_data_dir() -> <repo>/data/speech_commands

References:
  1) P. Warden, "Speech Commands: A Dataset for Limited-Vocabulary Speech Recognition",
     arXiv:1804.03209 (2018). Data CC BY 4.0.
  2) TensorFlow ``speech_commands/input_data.py`` ``maybe_download_and_extract_dataset``
     (the URL, extracting straight into the data folder).
  3) The SHA-256 of the archive is the one pytorch/audio pins for this URL in
     ``torchaudio/datasets/speechcommands.py`` (``_CHECKSUMS``).
  4) RFC 9110 sec. 14 (Range requests: 206 Partial Content, 416 Range Not Satisfiable);
     Python ``tarfile`` extraction filters (``filter="data"``, PEP 706).
"""
from __future__ import annotations

import gzip
import hashlib
import http.client
import logging
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path

from tqdm import tqdm

from kwslab.dataset import DEFAULT_DOWNLOAD_DIR, DataError

logger = logging.getLogger(__name__)

SPEECH_COMMANDS_URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
SPEECH_COMMANDS_SHA256 = "af14739ee7dc311471de98f5f9d2c9191b18aedfe957f4a6ff791c709868ff58"
"""SHA-256 of speech_commands_v0.02.tar.gz, as pinned by torchaudio for the same URL."""
DONE_MARKER = ".kwslab_download_complete"
"""Written into the data folder after a full extraction; its text is the archive's URL."""


def _sha256(path: Path, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def _open(url: str, offset: int, timeout_s: float):
    """Open url asking for bytes from offset on; returns (response or None if 416)."""
    request = urllib.request.Request(url, headers={"User-Agent": "kwslab"})
    if offset > 0:
        request.add_header("Range", f"bytes={offset}-")
    try:
        return urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset > 0:
            e.close()
            return None
        raise


def download_file(
    url: str,
    dest: Path,
    sha256: str | None,
    *,
    progress: bool = True,
    chunk_bytes: int = 1 << 20,
    timeout_s: float = 30,
) -> Path:
    """Download url to dest, resuming an interrupted download and checking its SHA-256.

    Bytes stream into ``<dest>.part`` (e.g. ``x.tar.gz.part``). If that file exists, the
    request asks only for the rest (``Range: bytes=<size>-``): a 206 answer is appended, a
    200 answer (server ignores ranges) restarts the file from byte 0, and a 416 answer means
    the part is already complete. When the stream ends the part is hashed; on a match it is
    renamed to dest (atomic on one file system). A dest that already exists is checked and
    returned without any request.

    Args:
        url: http(s) or file URL.
        dest: final path; its folder is created.
        sha256: expected hex digest (case-insensitive), or None to skip the check.
        progress: show a tqdm bar (bytes).
        chunk_bytes: read size.
        timeout_s: socket timeout per connect/read, in seconds.
    Returns:
        dest.
    Raises:
        DataError: if the digest differs (names the file, expected and actual digests). The
            bad ``.part`` is deleted, since resuming it could never succeed; an existing bad
            dest is left in place for you to inspect or delete.
        ConnectionError: if the stream ends early; the ``.part`` is kept, so running again
            resumes.
        urllib.error.URLError: for network errors and HTTP errors other than 416.
    """
    dest = Path(dest)
    expected = sha256.lower() if sha256 else None
    if dest.exists():
        if expected is not None and (actual := _sha256(dest)) != expected:
            raise DataError(
                f"{dest}: SHA-256 {actual} does not match the expected {expected}; "
                f"delete the file to download it again"
            )
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0

    response = _open(url, offset, timeout_s)
    if response is None:
        logger.info("%s: server says the %d bytes already there are complete", part, offset)
    else:
        with response:
            status = getattr(response, "status", None) or response.getcode() or 200
            if offset > 0 and status != 206:
                logger.info("%s: server ignored the range request (%s); restarting", url, status)
                offset = 0
            content_range = response.headers.get("Content-Range", "")
            if status == 206 and not content_range.startswith(f"bytes {offset}-"):
                raise ConnectionError(
                    f"{url}: asked for bytes {offset}- but got Content-Range {content_range!r}"
                )
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length is not None else None
            received = 0
            with open(part, "ab" if offset > 0 else "wb") as f, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
                desc=dest.name, disable=not progress, leave=False,
            ) as bar:
                try:
                    while block := response.read(chunk_bytes):
                        f.write(block)
                        received += len(block)
                        bar.update(len(block))
                except (http.client.IncompleteRead, TimeoutError, ConnectionError) as e:
                    raise ConnectionError(
                        f"download of {url} stopped after {offset + received} bytes ({e}); "
                        f"run again to resume from {part}"
                    ) from e
            if length is not None and received != int(length):
                raise ConnectionError(
                    f"download of {url} ended after {received} of {length} bytes; "
                    f"run again to resume from {part}"
                )

    if expected is not None:
        actual = _sha256(part)
        if actual != expected:
            part.unlink()
            raise DataError(
                f"{dest}: SHA-256 of the download is {actual}, expected {expected}; "
                f"the partial file was deleted, run again to download afresh"
            )
    os.replace(part, dest)
    return dest


def extract_archive(archive: Path, dest_dir: Path) -> Path:
    """Extract a .tar/.tar.gz into dest_dir with the ``"data"`` safety filter.

    The filter refuses absolute paths, ``..``, links leaving dest_dir and device files, and
    drops unsafe permission bits (PEP 706).

    Args:
        archive: a tar file, compressed or not.
        dest_dir: created if missing.
    Returns:
        dest_dir.
    Raises:
        DataError: if the archive is corrupt or truncated, or holds an unsafe member (the
            message names the archive).
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            tar.extractall(dest_dir, filter="data")
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise DataError(f"{archive}: corrupt, truncated or unsafe archive ({e})") from e
    return dest_dir


def download_speech_commands(
    dest_dir: Path = DEFAULT_DOWNLOAD_DIR,
    url: str = SPEECH_COMMANDS_URL,
    sha256: str | None = SPEECH_COMMANDS_SHA256,
    progress: bool = True,
    *,
    keep_archive: bool = False,
    timeout_s: float = 30,
) -> Path:
    """Download, verify and extract Speech Commands into dest_dir (skipped if already done).

    The archive goes to ``<dest_dir's parent>/downloads/<archive name>`` (resumable), is
    extracted into ``<dest_dir>.partial`` and that folder renamed to dest_dir, so dest_dir
    never holds half an archive; a ``.kwslab_download_complete`` marker file inside marks
    success and makes later calls return at once.

    Args:
        dest_dir: the data folder to create, default ``<repo>/data/speech_commands``.
        url: archive URL.
        sha256: expected SHA-256 of the archive, None to skip the check.
        progress: show download progress.
        keep_archive: keep the .tar.gz (2.3 GB) after extracting it.
        timeout_s: socket timeout in seconds.
    Returns:
        dest_dir.
    Raises:
        DataError: if dest_dir exists, is not empty and has no marker (not ours to
            overwrite), on a checksum mismatch, or for a corrupt archive.
        ConnectionError, urllib.error.URLError: network failures (run again to resume).
    """
    dest_dir = Path(dest_dir)
    if (dest_dir / DONE_MARKER).is_file():
        logger.info("%s already holds the extracted data set", dest_dir)
        return dest_dir
    if dest_dir.exists() and any(dest_dir.iterdir()):
        raise DataError(
            f"{dest_dir} exists and is not a completed download (no {DONE_MARKER}); "
            f"remove it or choose another folder"
        )
    name = url.rstrip("/").rsplit("/", 1)[-1] or "archive.tar.gz"
    archive = download_file(
        url, dest_dir.parent / "downloads" / name, sha256, progress=progress, timeout_s=timeout_s
    )
    staging = dest_dir.with_name(dest_dir.name + ".partial")
    if staging.exists():
        shutil.rmtree(staging)
    try:
        extract_archive(archive, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    (staging / DONE_MARKER).write_text(url + "\n")
    if dest_dir.exists():
        dest_dir.rmdir()  # empty (checked above)
    os.replace(staging, dest_dir)
    if not keep_archive:
        archive.unlink()
    return dest_dir
