"""`kwslab serve`: try the model live in a browser, on the device's own path.

A local web app (FastAPI on uvicorn) serves one page (``kwslab/web/``: plain HTML and
JavaScript, no build step, nothing from a CDN). The page asks for the microphone, resamples
to 16 kHz in the browser (Web Audio API: an ``AudioContext`` at 16 kHz, else its own
low-pass resampler in an ``AudioWorklet``), converts to int16 and streams 100 ms chunks
over a WebSocket. The server runs each session through
:class:`kwslab.streaming.StreamingDetector`, the host twin of the firmware (micro frontend
state, int8 features, TFLite Micro, RecognizeCommands; equal to ``kwslab detect``), and
sends back the new int8 feature frames, each window's scores and RecognizeCommands' new
commands, which the page draws as a scrolling timeline. An uploaded WAV goes through the
same detector and comes back as one timeline.

Protocol (``/ws``): the client sends ``{"type": "start", "sample_rate_hz": 16000}``, the
server answers ``{"type": "ready", ...}``, then each binary message is little-endian int16
mono PCM and each answer ``{"type": "update", "features", "times_ms", "scores",
"detections", "audio_ms"}``. Errors are ``{"type": "error", "message"}`` followed by a close;
one live session runs at a time (the device has one microphone and this machine's cores are
few); the server keeps running whatever a client sends.

Colab: :func:`start` runs the server in a background thread of the notebook's kernel and
:func:`colab_url` asks Colab's port proxy for its address
(``google.colab.kernel.proxyPort(port)`` through ``google.colab.output.eval_js``); open
it in a new tab, where the page is served over https and may use the microphone.

References:
  1) FastAPI WebSockets (``fastapi.WebSocket``) and uvicorn ``Server.run(sockets=...)``.
  2) W3C Web Audio API: ``AudioContext({sampleRate})``, ``AudioWorkletProcessor``.
  3) Colab ``google.colab.output.eval_js`` / ``google.colab.kernel.proxyPort``
     (the documented way to reach a server a notebook started).
"""

import argparse
import dataclasses
import io
import json
import logging
import socket
import threading
import time
from pathlib import Path

import numpy as np

from .config import Config

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).with_name("web")
"""The page: index.html, app.js, capture-worklet.js, style.css."""
DEFAULT_MODEL = Path("runs/default/model.tflite")
MAX_CHUNK_SAMPLES = 16_000
"""Largest live message: 1 s of audio (the page sends 1600-sample chunks)."""
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
"""Largest WAV upload: about 10 minutes of 16 kHz int16 audio."""
BUSY_CLOSE_CODE = 1013  # "try again later"
BAD_DATA_CLOSE_CODE = 1003  # "unsupported data"


def load_model(model_path: str | Path, config_path: str | Path | None = None) -> tuple[bytes, Config]:
    """Read an int8 .tflite and its config (``config.json`` beside it unless given).

    Raises:
        FileNotFoundError: if the model or the given config file is missing.
        ValueError: if the model's input is not the config's int8 T x F features or its
            output size is not the number of labels.
    """
    from . import frontend
    from .detect import stream_scores

    model_path = Path(model_path)
    if not model_path.is_file():
        raise FileNotFoundError(f"no model at {model_path}; train one with `kwslab run` or pass "
                                "--model PATH/model.tflite")
    if config_path is None and model_path.with_name("config.json").is_file():
        config_path = model_path.with_name("config.json")
    cfg = Config()
    if config_path is not None:
        config_path = Path(config_path)
        if not config_path.is_file():
            raise FileNotFoundError(f"no config at {config_path}")
        cfg = Config.from_dict(json.loads(config_path.read_text()))
    else:
        log.warning("no config.json beside %s: using the default config (labels %s)",
                    model_path, list(cfg.data.labels))
    tflite = model_path.read_bytes()
    t, f = cfg.frontend.feature_shape
    try:
        _, scores = stream_scores(frontend.to_int8(np.zeros((t, f), np.uint16)), tflite, cfg.frontend)
    except ValueError as e:
        raise ValueError(f"{model_path}: {e}") from e
    except RuntimeError as e:  # TFLM: not a flatbuffer, unsupported op
        raise ValueError(f"{model_path}: not a model TFLite Micro can run ({e})") from e
    if scores.shape[1] != cfg.data.num_classes:
        raise ValueError(f"{model_path}: {scores.shape[1]} outputs, but the config has "
                         f"{cfg.data.num_classes} labels {list(cfg.data.labels)}")
    return tflite, cfg


def _update_json(update) -> dict:
    return {"type": "update", "features": update.features.tolist(),
            "times_ms": update.times_ms.tolist(), "scores": update.scores.tolist(),
            "detections": [{"label": d.label, "time_ms": d.time_ms, "score": d.score}
                           for d in update.detections],
            "audio_ms": update.audio_ms}


def read_upload(data: bytes, name: str, cfg: Config) -> np.ndarray:
    """The int16 samples of an uploaded WAV, checked like the device's input.

    Raises:
        ValueError: naming the file, if it is not a WAV, not mono 16-bit PCM at the
            model's rate, or shorter than one clip.
    """
    import soundfile as sf

    rate = cfg.frontend.sample_rate_hz
    hint = f"convert it first, e.g. `sox IN -r {rate} -c 1 -b 16 OUT.wav`"
    try:
        info = sf.info(io.BytesIO(data))
    except (RuntimeError, sf.SoundFileError, TypeError) as e:
        reason = str(e).rsplit(": ", 1)[-1]  # drop libsndfile's "Error opening <BytesIO ...>"
        raise ValueError(f"{name}: not a readable WAV file ({reason})") from e
    if info.format != "WAV":
        raise ValueError(f"{name}: a {info.format} file, expected WAV; {hint}")
    if info.samplerate != rate or info.channels != 1 or info.subtype != "PCM_16":
        raise ValueError(f"{name}: {info.samplerate} Hz, {info.channels} channel(s), "
                         f"{info.subtype}; the model needs {rate} Hz mono PCM_16: {hint}")
    audio, _ = sf.read(io.BytesIO(data), dtype="int16", always_2d=False)
    if len(audio) < cfg.frontend.clip_samples:
        raise ValueError(f"{name}: {len(audio) * 1000 // rate} ms long, shorter than one "
                         f"{cfg.frontend.clip_duration_ms} ms window")
    return audio


def _require_web() -> None:
    """Raises ModuleNotFoundError with the install line if FastAPI/uvicorn are missing."""
    import importlib.util

    missing = [m for m in ("fastapi", "uvicorn", "websockets") if importlib.util.find_spec(m) is None]
    if missing:
        raise ModuleNotFoundError(f"kwslab serve needs {', '.join(missing)}: "
                                  "pip install 'kwslab[serve]' (or pip install -r requirements.txt)")


def create_app(tflite_bytes: bytes, cfg: Config = Config(), *, model_name: str = "model.tflite",
               arena_bytes: int | None = None):
    """The FastAPI app: the page, ``/api/info``, ``/api/detect`` (WAV upload), ``/ws`` (live).

    Args:
        tflite_bytes: the int8 model.
        cfg: its config (frontend, labels).
        model_name: shown on the page.
        arena_bytes: TFLM arena bytes (None: ``detect.stream_scores``' default).
    Returns:
        a ``fastapi.FastAPI`` application; ``app.state.sessions`` counts live sessions
        served, ``app.state.live`` is True while one runs.
    """
    _require_web()
    from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
    from fastapi.responses import FileResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles
    from starlette.concurrency import run_in_threadpool

    from .streaming import StreamingDetector

    app = FastAPI(title="kwslab live", docs_url=None, redoc_url=None)
    app.state.live = False
    app.state.sessions = 0
    fcfg = cfg.frontend
    info = {"model": model_name, "model_bytes": len(tflite_bytes), "labels": list(cfg.data.labels),
            "sample_rate_hz": fcfg.sample_rate_hz, "feature_shape": list(fcfg.feature_shape),
            "window_samples": fcfg.window_samples, "stride_samples": fcfg.stride_samples,
            "detection_threshold": cfg.recognize.detection_threshold,
            "recognize": dataclasses.asdict(cfg.recognize), "max_chunk_samples": MAX_CHUNK_SAMPLES}

    def detector() -> StreamingDetector:
        return StreamingDetector(tflite_bytes, cfg, arena_bytes=arena_bytes)

    detector().close()  # loads the frontend library (and TensorFlow) now, not in a session

    @app.get("/")
    def index():
        return FileResponse(WEB_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=WEB_DIR), name="static")

    @app.get("/api/info")
    def api_info():
        return info

    @app.post("/api/detect")
    async def api_detect(request: Request, name: str = "upload.wav"):
        data = await request.body()
        if len(data) > MAX_UPLOAD_BYTES:
            return JSONResponse({"error": f"{name}: {len(data):,} bytes is over the "
                                          f"{MAX_UPLOAD_BYTES:,}-byte upload limit"}, 413)
        try:
            audio = read_upload(data, name, cfg)
        except ValueError as e:
            return JSONResponse({"error": str(e)}, 400)

        def run():
            det = detector()
            try:
                return det.push(audio)
            finally:
                det.close()

        out = _update_json(await run_in_threadpool(run))
        out.update(type="timeline", name=name, duration_ms=len(audio) * 1000 // fcfg.sample_rate_hz)
        return out

    @app.websocket("/ws")
    async def live(ws: WebSocket):
        await ws.accept()

        async def refuse(message: str, code: int = BAD_DATA_CLOSE_CODE):
            log.info("live session refused: %s", message)
            await ws.send_json({"type": "error", "message": message})
            await ws.close(code)

        if app.state.live:  # checked and set with no await between: one event loop
            await refuse("another client is streaming: one live session at a time; "
                         "stop it (or close its tab) and try again", BUSY_CLOSE_CODE)
            return
        app.state.live = True
        app.state.sessions += 1
        det = None
        try:
            while True:
                msg = await ws.receive()
                if msg["type"] == "websocket.disconnect":
                    break
                if msg.get("text") is not None:
                    try:
                        m = json.loads(msg["text"])
                    except json.JSONDecodeError:
                        m = None
                    if not isinstance(m, dict) or m.get("type") != "start":
                        await refuse(f"unknown message {msg['text'][:80]!r}; expected "
                                     '{"type": "start", "sample_rate_hz": 16000}')
                        break
                    rate = m.get("sample_rate_hz")
                    if rate != fcfg.sample_rate_hz:
                        await refuse(f"sample_rate_hz={rate!r}: the model's frontend needs "
                                     f"{fcfg.sample_rate_hz} Hz int16 mono; resample before "
                                     "sending (the page does it in the browser)")
                        break
                    det = await run_in_threadpool(detector)
                    await ws.send_json({"type": "ready", **info})
                    continue
                data = msg.get("bytes") or b""
                if det is None:
                    await refuse('audio before the start message; send {"type": "start", '
                                 f'"sample_rate_hz": {fcfg.sample_rate_hz}}} first')
                    break
                if len(data) % 2 or len(data) > 2 * MAX_CHUNK_SAMPLES:
                    await refuse(f"a binary message of {len(data)} bytes: expected int16 "
                                 f"samples (an even count of bytes, at most "
                                 f"{2 * MAX_CHUNK_SAMPLES})")
                    break
                audio = np.frombuffer(data, "<i2").astype(np.int16)
                update = await run_in_threadpool(det.push, audio)
                await ws.send_json(_update_json(update))
        except WebSocketDisconnect:
            log.info("live session: client went away")
        except RuntimeError as e:  # sending on a socket the client already closed
            log.info("live session ended: %s", e)
        finally:
            app.state.live = False
            if det is not None:
                log.info("live session ended after %d ms of audio, %d frames",
                         det.num_samples * 1000 // fcfg.sample_rate_hz, det.num_frames)
                det.close()

    return app


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise ValueError(f"cannot listen on {host}:{port} ({e.strerror}); pick another --port "
                         "(0 picks a free one)") from e
    sock.listen(64)
    sock.setblocking(False)
    return sock


class Server:
    """A running server: ``url``, ``port``, ``app``; ``stop()`` ends it.

    Made by :func:`start` (a background thread, for notebooks and tests) or
    :func:`main_serve` (the foreground, for ``kwslab serve``).
    """

    def __init__(self, app, host: str = "127.0.0.1", port: int = 8000):
        import uvicorn

        self.app = app
        self._sock = _bind(host, port)
        self.host, self.port = host, self._sock.getsockname()[1]
        shown = "localhost" if host in ("0.0.0.0", "::", "127.0.0.1") else host
        self.url = f"http://{shown}:{self.port}/"
        self._server = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws="websockets-sansio"))
        self._thread: threading.Thread | None = None

    def run(self) -> None:
        """Serve in this thread until Ctrl+C."""
        self._server.run(sockets=[self._sock])

    def start(self, timeout_s: float = 30.0) -> "Server":
        """Serve in a daemon thread; return once it accepts connections.

        Raises:
            RuntimeError: if it has not started after timeout_s.
        """
        self._thread = threading.Thread(target=self.run, name="kwslab-serve", daemon=True)
        self._thread.start()
        t0 = time.monotonic()
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() - t0 > timeout_s:
                raise RuntimeError(f"the server on port {self.port} did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)


def start(model: str | Path = DEFAULT_MODEL, config: str | Path | None = None, *,
          host: str = "127.0.0.1", port: int = 0) -> Server:
    """Load a model and serve the page from a background thread (notebooks, tests).

    Args:
        model: int8 .tflite (its folder's config.json is used unless config is given).
        config: config JSON, optional.
        host, port: where to listen; port 0 picks a free port.
    Returns:
        the running :class:`Server` (``.url``, ``.stop()``).
    """
    tflite, cfg = load_model(model, config)
    return Server(create_app(tflite, cfg, model_name=Path(model).name), host, port).start()


def colab_url(port: int) -> str:
    """The https address of a local port through Colab's port proxy.

    Runs ``google.colab.kernel.proxyPort(port)`` in the notebook's browser tab through
    ``google.colab.output.eval_js``. Open the address in a new tab: the page there is
    https, so the browser lets it ask for the microphone.

    Raises:
        RuntimeError: outside Colab (no ``google.colab``).
    """
    try:
        from google.colab.output import eval_js
    except ImportError as e:
        raise RuntimeError("colab_url needs Google Colab (google.colab is not importable); "
                           "outside Colab open the server's own URL") from e
    return str(eval_js(f"google.colab.kernel.proxyPort({int(port)})"))


def show_in_colab(server: Server) -> str:
    """Show a link to the running server's page in a Colab output cell; return its URL."""
    url = colab_url(server.port)
    from IPython.display import HTML, display

    display(HTML(f'<a href="{url}" target="_blank" rel="noopener">Open the kwslab live page '
                 f"(new tab; allow the microphone)</a>"))
    return url


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``kwslab serve``: --model, --config, --host, --port."""
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL, help="int8 .tflite model")
    parser.add_argument("--config", type=Path, default=None,
                        help="config JSON (default: config.json beside the model)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (0.0.0.0 for other machines)")
    parser.add_argument("--port", type=int, default=8000, help="port (0 picks a free one)")


def main_serve(args: argparse.Namespace) -> int:
    """``kwslab serve``: print the URL and serve until Ctrl+C."""
    try:
        _require_web()
    except ModuleNotFoundError as e:
        raise ValueError(str(e)) from e
    tflite, cfg = load_model(args.model, args.config)
    server = Server(create_app(tflite, cfg, model_name=args.model.name), args.host, args.port)
    print(f"kwslab serve: {server.url}  (model {args.model}, labels "
          f"{', '.join(cfg.data.labels)}; Ctrl+C stops)", flush=True)
    server.run()
    return 0
