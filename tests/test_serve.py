"""kwslab serve: the live page in a real browser, and the server under bad input.

The browser is Debian's Chromium (``/usr/bin/chromium``) driven by Playwright, nothing
downloaded; its fake microphone plays a padded test-split clip (written to a temp folder).
Chromium's fake capture loops the file, so the page's stream is the file over and over,
captured through the browser's audio path (fake device -> Web Audio at 16 kHz -> int16): not
bit-identical to the file. Two comparisons follow from that:
  * exact: the page's detections equal ``detect_stream`` on the very samples the page sent
    (the server runs the device twin, nothing else);
  * first pass: the page's detections during the file's first pass equal ``kwslab detect`` on
    the file, same labels, times within 2 frames (40 ms) after aligning the stream to the file.
The test prints the latency from the end of the spoken word to the detection on the page and
the page's memory and main-thread CPU while streaming (Chrome DevTools Performance metrics).
"""
import json
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from kwslab import cli, dataset, frontend, serve
from kwslab.config import Config
from kwslab.streaming import StreamingDetector

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
RATE = 16_000
# The padded file: 2 s + clip (1 s) + 2 s = 5 s. The lead is longer than RecognizeCommands'
# 1 s average, so the decision does not depend on how much of the lead the stream missed
# (the fake device starts before the page listens).
PAD_BEFORE, PAD_AFTER = 2 * RATE, 2 * RATE

def _browser_or_skip():
    """Playwright's sync API, or skip (fail under CI) when it or Debian's chromium is missing."""
    problem = None
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as e:
        problem = f"playwright is not installed ({e})"
    if problem is None and not CHROMIUM.exists():
        problem = f"no {CHROMIUM}: apt-get install chromium"
    if problem:
        if os.environ.get("CI"):
            pytest.fail(f"browser test prerequisite missing under CI: {problem}")
        pytest.skip(problem)
    return sync_playwright


def _flags(wav: Path) -> list[str]:
    return ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """The committed deploy model (arduino/) with its config, as a run folder."""
    from kwslab.firmware import parse_c_array

    out = tmp_path_factory.mktemp("model")
    cc = (REPO / "arduino" / "kws_nano33ble" / "model_data.cpp").read_text()
    (out / "model.tflite").write_bytes(parse_c_array(cc))
    (out / "config.json").write_text(json.dumps(Config().to_dict()))
    return out


@pytest.fixture(scope="module")
def server(model_dir):
    s = serve.start(model_dir / "model.tflite")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def clip(data_dir, model_dir, tmp_path_factory):
    """A padded test-split "yes" clip that the host twin hears as one "yes", written as WAV.

    The first such clip (in the split's order) that is heard at any frame phase: the
    browser's stream starts at an arbitrary sample of the looping file, so the page's 20 ms
    frames fall anywhere on the word. (RecognizeCommands fires on the first window whose
    1 s average passes 200, so the scores it reports are always just above 200.)
    """
    cfg = Config()
    model = (model_dir / "model.tflite").read_bytes()
    tests = dataset.index_splits(data_dir, cfg.data)["testing"]
    for ex in tests:
        if ex.path is None or cfg.data.labels[ex.label] != "yes":
            continue
        pcm = frontend.audio_to_int16(dataset.read_wav(ex.path))
        audio = np.concatenate([np.zeros(PAD_BEFORE, np.int16), pcm, np.zeros(PAD_AFTER, np.int16)])
        heard = []
        for phase in (0, 107, 213):  # samples of extra lead, of the 320-sample stride
            det = StreamingDetector(model, cfg)
            dets = det.push(np.concatenate([np.zeros(phase, np.int16), audio])).detections
            det.close()  # (StreamingDetector == detect_stream: tests/test_streaming.py)
            heard.append([d.label for d in dets] == ["yes"])
        if all(heard):
            wav = tmp_path_factory.mktemp("clip") / f"yes_{ex.path.stem}.wav"
            sf.write(wav, audio, RATE, subtype="PCM_16")
            return wav, audio, pcm
    pytest.fail("no test-split yes clip is detected by the committed model")


def _word_end_sample(pcm: np.ndarray) -> int:
    """End of the spoken word in a clip: the end of the last 10 ms frame whose RMS is within
    20 dB of the loudest frame's."""
    frames = pcm[: len(pcm) // 160 * 160].astype(np.float64).reshape(-1, 160)
    rms = np.sqrt((frames ** 2).mean(axis=1)) + 1e-9
    loud = np.nonzero(rms >= rms.max() * 10 ** (-20 / 20))[0]
    return int(loud[-1] + 1) * 160


def _kwslab_detect(wav: Path, model_dir: Path, capsys) -> list[tuple[str, int, int]]:
    capsys.readouterr()
    assert cli.main(["detect", str(wav), "--model", str(model_dir / "model.tflite"),
                     "--config", str(model_dir / "config.json")]) == 0
    out = capsys.readouterr().out
    return [(lab, int(t), int(s)) for lab, t, s in (ln.split("\t") for ln in out.splitlines())]


def _metrics(cdp) -> dict:
    return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}


@pytest.mark.slow
@pytest.mark.tflm
@pytest.mark.parametrize("query", ["", "?resample=worklet"], ids=["webaudio16k", "worklet"])
def test_live_page_detects_the_clip_like_kwslab_detect(server, clip, model_dir, tmp_path, capsys,
                                                        query):
    # "": an AudioContext at 16 kHz (the browser resamples); "?resample=worklet": a context at
    # the device's own rate and the page's low-pass resampler in the AudioWorklet.
    from scipy import signal

    sync_playwright = _browser_or_skip()
    wav, file_audio, pcm = clip
    want = _kwslab_detect(wav, model_dir, capsys)
    assert [w[0] for w in want] == ["yes"]
    shot = tmp_path / "serve_page.png"

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=_flags(wav))
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        cdp = page.context.new_cdp_session(page)
        cdp.send("Performance.enable")
        page.goto(server.url + query)
        page.wait_for_function("window.kws && window.kws.ready", timeout=20_000)
        m0 = _metrics(cdp)
        page.click("#start")
        # the first pass (5 s) and half a second more, then stop
        page.wait_for_function(f"kws.sentSamples >= {len(file_audio) + RATE // 2}", timeout=30_000)
        m1 = _metrics(cdp)
        page.screenshot(path=str(shot), full_page=True)  # still live, after the metrics
        page.click("#stop")
        state = page.evaluate("({dets: kws.detections, chunks: kws.chunks, errors: kws.errors,"
                              " rate: kws.contextRate, sent: kws.sent.map(c => Array.from(c)),"
                              " rows: document.querySelectorAll('#detections tbody tr').length})")
        browser.close()

    assert (state["rate"] == RATE) == (query == "")
    sent = np.concatenate([np.asarray(c, np.int16) for c in state["sent"]])
    dets = [(d["label"], d["time_ms"], d["score"]) for d in state["dets"]]
    print(f"\npage{query}: {len(sent) / RATE:.2f} s sent at context rate {state['rate']} Hz, "
          f"detections {dets}; kwslab detect on the file: {want}; screenshot {shot}")
    assert not state["errors"] and state["rows"] == len(dets)

    # Exact: the server ran the device twin on exactly what the page sent.
    det = StreamingDetector((model_dir / "model.tflite").read_bytes(), Config())
    assert dets == [(d.label, d.time_ms, d.score) for d in det.push(sent).detections]

    # First pass: align the stream with the file by the clip's position (normalized
    # cross-correlation > 0.9), then compare with `kwslab detect` on the file.
    c = signal.correlate(sent.astype(float), pcm.astype(float), mode="valid", method="fft")
    energy = signal.correlate(sent.astype(float) ** 2, np.ones(len(pcm)), mode="valid", method="fft")
    ncc = c / (np.sqrt(np.maximum(energy, 1e-9)) * np.linalg.norm(pcm.astype(float)))
    clip_at = int(np.argmax(ncc))
    assert ncc[clip_at] > 0.9, f"the clip is not in the captured audio (best match {ncc[clip_at]:.2f})"
    offset_ms = (clip_at - PAD_BEFORE) * 1000 // RATE  # stream time of the file's sample 0
    first_pass = [d for d in dets if d[1] < offset_ms + len(file_audio) * 1000 // RATE]
    assert [d[0] for d in first_pass] == [w[0] for w in want]
    for (_, t_page, _), (_, t_file, _) in zip(first_pass, want):
        assert abs(t_page - offset_ms - t_file) <= 40

    # Latency: end of the spoken word (stream samples) -> the detection row on the page.
    # It splits into audio time (RecognizeCommands fires when the 1 s average passes 200,
    # which can be before the word's end: negative) and the system's share (from the moment
    # the window's last sample was captured to the row on the page: chunking, socket,
    # frontend + TFLM + RecognizeCommands on the server, drawing).
    def captured_at(sample: int) -> float:
        ch = next(c for c in state["chunks"] if c["start"] <= sample < c["start"] + c["n"])
        return ch["capturedAt"] - (ch["start"] + ch["n"] - sample) * 1000 / RATE

    word_end = clip_at + _word_end_sample(pcm)
    shown_at = state["dets"][0]["shownAt"]
    latency_ms = shown_at - captured_at(word_end)
    system_ms = shown_at - captured_at(first_pass[0][1] * RATE // 1000 - 1)
    elapsed_s = m1["Timestamp"] - m0["Timestamp"]
    cpu = (m1["TaskDuration"] - m0["TaskDuration"]) / elapsed_s
    print(f"latency word end -> detection on the page: {latency_ms:.0f} ms = "
          f"{latency_ms - system_ms:.0f} ms audio time (RecognizeCommands) + {system_ms:.0f} ms "
          "system (chunking, socket, server, drawing)")
    print(f"page while streaming {elapsed_s:.1f} s: JS heap {m1['JSHeapUsedSize'] / 2**20:.1f} MiB "
          f"used of {m1['JSHeapTotalSize'] / 2**20:.1f} MiB, main-thread CPU {100 * cpu:.1f} % "
          f"(script {m1['ScriptDuration'] - m0['ScriptDuration']:.2f} s), "
          f"{int(m1['Nodes'])} DOM nodes")
    # a sanity bound, not a timing target: capture and paint clocks jitter by a chunk (100 ms)
    assert -100 < system_ms < 3000 and abs(latency_ms) < 3000
    assert shot.stat().st_size > 10_000


@pytest.mark.slow
@pytest.mark.tflm
def test_uploaded_wav_shows_exactly_kwslab_detect(server, clip, model_dir, tmp_path, capsys):
    # An upload skips the browser's audio path: the page's timeline is bit for bit the twin's.
    sync_playwright = _browser_or_skip()
    wav, file_audio, _ = clip
    want = _kwslab_detect(wav, model_dir, capsys)
    bad = tmp_path / "notes.wav"
    bad.write_text("not audio")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=_flags(wav))
        page = browser.new_page()
        page.goto(server.url)
        page.wait_for_function("window.kws && window.kws.ready", timeout=20_000)
        page.set_input_files("#upload", str(wav))
        page.wait_for_function("kws.mode === 'file' && kws.updates === 1", timeout=30_000)
        got = page.evaluate("kws.detections.map(d => [d.label, d.time_ms, d.score])")
        frames = page.evaluate("kws.frames.length")
        page.set_input_files("#upload", str(bad))
        page.wait_for_function("kws.errors.length === 1", timeout=30_000)
        status = page.text_content("#status")
        browser.close()
    assert [tuple(g) for g in got] == want
    assert frames == 1 + (len(file_audio) - 480) // 320  # 249 frames of the 5 s file
    assert "notes.wav: not a readable WAV file" in status


# ---- bad input against the running server (plain HTTP and WebSocket clients) -------------
def _post(server, data: bytes, name: str):
    import urllib.error
    import urllib.request

    req = urllib.request.Request(f"{server.url}api/detect?name={name}", data=data, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _ws(server):
    from websockets.sync.client import connect

    return connect(server.url.replace("http://", "ws://") + "ws", open_timeout=20)


def _start(ws, rate=RATE) -> dict:
    ws.send(json.dumps({"type": "start", "sample_rate_hz": rate}))
    return json.loads(ws.recv(timeout=30))


def _closed_with(ws) -> tuple[dict, int]:
    from websockets.exceptions import ConnectionClosed

    msg = json.loads(ws.recv(timeout=30))
    with pytest.raises(ConnectionClosed) as e:
        ws.recv(timeout=30)
    return msg, e.value.rcvd.code


def _alive(server) -> bool:
    import urllib.request

    with urllib.request.urlopen(f"{server.url}api/info", timeout=30) as r:
        return r.status == 200 and json.loads(r.read())["sample_rate_hz"] == RATE


@pytest.mark.slow
@pytest.mark.tflm
def test_bad_uploads_get_a_clear_message(server, tmp_path):
    status, body = _post(server, b"GIF89a not a wav", "cat.gif")
    assert status == 400 and body["error"].startswith("cat.gif: not a readable WAV file")
    buf = tmp_path / "fast.wav"
    sf.write(buf, np.zeros(44_100, np.int16), 44_100, subtype="PCM_16")
    status, body = _post(server, buf.read_bytes(), "fast.wav")
    assert status == 400 and "fast.wav: 44100 Hz" in body["error"] and "16000 Hz" in body["error"]
    sf.write(buf, np.zeros(8000, np.int16), RATE, subtype="PCM_16")
    status, body = _post(server, buf.read_bytes(), "short.wav")
    assert status == 400 and "500 ms long" in body["error"]
    assert _alive(server)


@pytest.mark.slow
@pytest.mark.tflm
def test_wrong_rate_and_malformed_audio_close_the_session_with_a_reason(server):
    with _ws(server) as ws:
        ws.send(json.dumps({"type": "start", "sample_rate_hz": 44_100}))
        msg, code = _closed_with(ws)
    assert msg["type"] == "error" and "sample_rate_hz=44100" in msg["message"] and code == 1003
    with _ws(server) as ws:
        ws.send(np.zeros(1600, np.int16).tobytes())
        msg, code = _closed_with(ws)
    assert "audio before the start message" in msg["message"] and code == 1003
    with _ws(server) as ws:
        assert _start(ws)["type"] == "ready"
        ws.send(b"\x00" * 1601)
        msg, code = _closed_with(ws)
    assert "1601 bytes" in msg["message"] and code == 1003
    assert _alive(server)


@pytest.mark.slow
@pytest.mark.tflm
def test_socket_closed_mid_stream_frees_the_session(server):
    with _ws(server) as ws:
        assert _start(ws)["type"] == "ready"
        ws.send(np.zeros(1600, np.int16).tobytes())
        assert json.loads(ws.recv(timeout=30))["type"] == "update"
        ws.send(np.zeros(800, np.int16).tobytes())
        ws.socket.shutdown(socket.SHUT_RDWR)  # the client vanishes: no close frame
    deadline = time.monotonic() + 20
    while server.app.state.live and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not server.app.state.live
    with _ws(server) as again:  # the next client gets a session
        assert _start(again)["type"] == "ready"
    assert _alive(server)


@pytest.mark.slow
@pytest.mark.tflm
def test_second_client_is_refused_while_one_streams(server):
    with _ws(server) as first:
        assert _start(first)["type"] == "ready"
        with _ws(server) as second:
            msg, code = _closed_with(second)
        assert msg["type"] == "error" and "one live session at a time" in msg["message"]
        assert code == 1013
        first.send(np.zeros(1600, np.int16).tobytes())  # the first session goes on
        update = json.loads(first.recv(timeout=30))
        assert update["type"] == "update" and len(update["features"]) == 4  # (1600-480)//320+1
    assert _alive(server)


# ---- Colab and the page's files ----------------------------------------------------------
def test_colab_url_asks_colabs_port_proxy(monkeypatch):
    import sys
    import types

    calls = []
    output = types.ModuleType("google.colab.output")
    output.eval_js = lambda js: calls.append(js) or "https://8123-proxy.example/"
    colab = types.ModuleType("google.colab")
    colab.output = output
    google = types.ModuleType("google")
    google.colab = colab
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", colab)
    monkeypatch.setitem(sys.modules, "google.colab.output", output)
    assert serve.colab_url(8123) == "https://8123-proxy.example/"
    assert calls == ["google.colab.kernel.proxyPort(8123)"]


def test_colab_url_outside_colab_says_so(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "google.colab.output", None)
    with pytest.raises(RuntimeError, match="needs Google Colab"):
        serve.colab_url(8000)


def test_page_loads_nothing_from_outside_and_uses_relative_paths():
    # No CDN, and relative URLs so the page also works behind a proxy's path prefix (Colab).
    for f in serve.WEB_DIR.iterdir():
        text = f.read_text()
        assert "http://" not in text and "https://" not in text, f
        assert 'src="/' not in text and 'href="/' not in text and 'fetch("/' not in text, f


def test_missing_model_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["serve", "--model", str(tmp_path / "none.tflite")]) == 2
    assert "no model at" in capsys.readouterr().err


def test_show_in_colab_displays_a_link_through_the_proxy(monkeypatch):
    import sys
    import types

    import IPython.display

    output = types.ModuleType("google.colab.output")
    output.eval_js = lambda js: "https://8000-proxy.example/" if js.endswith("(8000)") else None
    monkeypatch.setitem(sys.modules, "google.colab.output", output)
    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    url = serve.show_in_colab(types.SimpleNamespace(port=8000))
    assert url == "https://8000-proxy.example/"
    assert 'href="https://8000-proxy.example/"' in shown[0].data and 'target="_blank"' in shown[0].data
