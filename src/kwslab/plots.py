"""Figures for the notebooks and the run report: audio, spectra, features, curves, confusion.

Every function draws into a given (or new) matplotlib Axes and returns it, with a title and
axis units, so notebooks can compose figures and ``kwslab run`` can save them.

References: librosa.display (specshow), scipy.signal (periodogram, welch, stft).
"""
from __future__ import annotations

import numpy as np


def _ax(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(6, 3))
    return ax


def waveform(audio: np.ndarray, sample_rate_hz: int = 16000, ax=None, title="Waveform"):
    """Amplitude (float, -1..1) against time (s)."""
    ax = _ax(ax)
    t = np.arange(len(audio)) / sample_rate_hz
    ax.plot(t, audio, lw=0.6)
    ax.set(title=title, xlabel="time (s)", ylabel="amplitude (full scale)", xlim=(0, t[-1] if len(t) else 1))
    return ax


def spectrum(audio: np.ndarray, sample_rate_hz: int = 16000, ax=None, title="FFT magnitude"):
    """Magnitude of the real FFT of the whole clip, in dB."""
    ax = _ax(ax)
    mag = np.abs(np.fft.rfft(audio))
    freqs = np.fft.rfftfreq(len(audio), 1 / sample_rate_hz)
    ax.plot(freqs, 20 * np.log10(mag + 1e-9), lw=0.6)
    ax.set(title=title, xlabel="frequency (Hz)", ylabel="magnitude (dB)")
    return ax


def power_spectral_density(audio: np.ndarray, sample_rate_hz: int = 16000, ax=None,
                           title="Power spectral density"):
    """Periodogram and Welch PSD (scipy.signal), in dB/Hz."""
    from scipy import signal

    ax = _ax(ax)
    f, p = signal.periodogram(audio, sample_rate_hz)
    fw, pw = signal.welch(audio, sample_rate_hz, nperseg=512)
    ax.semilogy(f, p + 1e-12, lw=0.4, alpha=0.6, label="periodogram")
    ax.semilogy(fw, pw + 1e-12, lw=1.2, label="Welch (512)")
    ax.set(title=title, xlabel="frequency (Hz)", ylabel="PSD (1/Hz)")
    ax.legend()
    return ax


def image(values: np.ndarray, ax=None, title="", xlabel="time (frames)", ylabel="channel",
          extent=None, colorbar_label=None, cmap="viridis", vmin=None, vmax=None):
    """A (T, F) or (F, T) array as an image with time on x; values.shape[0] is time."""
    ax = _ax(ax)
    im = ax.imshow(np.asarray(values).T, origin="lower", aspect="auto", extent=extent, cmap=cmap,
                   vmin=vmin, vmax=vmax)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if colorbar_label is not None:
        ax.figure.colorbar(im, ax=ax, label=colorbar_label)
    return ax


def spectrogram(audio: np.ndarray, sample_rate_hz: int = 16000, window_ms=30, stride_ms=20, ax=None,
                title="Spectrogram (STFT, 30 ms / 20 ms)"):
    """STFT magnitude in dB (scipy.signal.stft, Hann window)."""
    from scipy import signal

    n = sample_rate_hz * window_ms // 1000
    f, t, z = signal.stft(audio, sample_rate_hz, nperseg=n, noverlap=n - sample_rate_hz * stride_ms // 1000)
    db = 20 * np.log10(np.abs(z) + 1e-9)
    return image(db.T, ax, title, "time (s)", "frequency (Hz)", extent=(t[0], t[-1], f[0], f[-1]),
                 colorbar_label="dB")


def mel_spectrogram(audio: np.ndarray, sample_rate_hz: int = 16000, n_mels: int = 40,
                    window_ms=30, stride_ms=20, ax=None, title="Mel spectrogram (librosa, 40 mels)"):
    """Log-power mel spectrogram (librosa, Slaney mel scale, 0..sample_rate/2), in dB."""
    import librosa

    n_fft = sample_rate_hz * window_ms // 1000
    hop = sample_rate_hz * stride_ms // 1000
    mel = librosa.feature.melspectrogram(y=np.asarray(audio, np.float32), sr=sample_rate_hz,
                                         n_fft=n_fft, hop_length=hop, n_mels=n_mels)
    db = librosa.power_to_db(mel, ref=np.max)  # (n_mels, frames)
    duration = len(audio) / sample_rate_hz
    return image(db.T, ax, title, "time (s)", "mel band", extent=(0, duration, 0, n_mels),
                 colorbar_label="dB re max")


def mfcc(audio: np.ndarray, sample_rate_hz: int = 16000, n_mfcc: int = 13, window_ms=30,
         stride_ms=20, ax=None, title="MFCC (librosa, 13 coefficients)"):
    """Mel-frequency cepstral coefficients (DCT of the log mel spectrogram)."""
    import librosa

    coeffs = librosa.feature.mfcc(y=np.asarray(audio, np.float32), sr=sample_rate_hz,
                                  n_mfcc=n_mfcc, n_fft=sample_rate_hz * window_ms // 1000,
                                  hop_length=sample_rate_hz * stride_ms // 1000)
    duration = len(audio) / sample_rate_hz
    return image(coeffs.T, ax, title, "time (s)", "coefficient", extent=(0, duration, 0, n_mfcc),
                 colorbar_label="value (dB-scaled)")


def bars(groups: dict, ax=None, title="", ylabel="", xlabel="", log=False, hline=None):
    """Grouped bar chart: {group: {series: value}}; one colour per series.

    Example: ``bars({"training": {"yes": 250, "no": 240}, "validation": {...}})`` (clips per
    split and label), or percent of each board's memory per model with ``hline=100``.
    """
    ax = _ax(ax)
    names = list(groups)
    series = list(dict.fromkeys(k for g in groups.values() for k in g))
    width = 0.8 / max(len(series), 1)
    x = np.arange(len(names))
    for i, s in enumerate(series):
        vals = [groups[g].get(s, 0) for g in names]
        rects = ax.bar(x + (i - (len(series) - 1) / 2) * width, vals, width, label=str(s))
        ax.bar_label(rects, fmt="%.3g", fontsize=7)
    if hline is not None:
        ax.axhline(hline, color="red", lw=1, ls="--")
    ax.set_xticks(x, names)
    ax.set(title=title, ylabel=ylabel, xlabel=xlabel)
    if log:
        ax.set_yscale("log")
    if len(series) > 1:
        ax.legend(fontsize=8)
    return ax


def history(hist, axes=None, title=""):
    """Loss and accuracy curves (train and validation) against epoch."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(10, 3.2))
    h = hist if isinstance(hist, dict) else hist.__dict__
    axes[0].plot(h["epoch"], h["train_loss"], label="train")
    axes[0].plot(h["epoch"], h["val_loss"], label="validation")
    axes[0].set(title=f"{title} loss".strip(), xlabel="epoch", ylabel="cross-entropy")
    axes[1].plot(h["epoch"], h["train_accuracy"], label="train")
    axes[1].plot(h["epoch"], h["val_accuracy"], label="validation")
    axes[1].set(title=f"{title} accuracy".strip(), xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
    for ax in axes:
        ax.legend()
    return axes


def confusion(cm, labels, ax=None, title="Confusion matrix (test)"):
    """Counts with row-normalised colour; rows true, columns predicted."""
    import matplotlib.pyplot as plt

    cm = np.asarray(cm)
    if ax is None:
        size = 2.5 + 0.45 * len(labels)
        _, ax = plt.subplots(figsize=(size, size))
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(labels)):
        for j in range(len(labels)):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if norm[i, j] > 0.5 else "black", fontsize=8)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set(title=title, xlabel="predicted label", ylabel="true label")
    return ax


def per_class(acc: dict, ax=None, title="Per-class accuracy (test)"):
    """Bar chart of {label: accuracy or None}."""
    ax = _ax(ax)
    labels = list(acc)
    vals = [acc[k] if acc[k] is not None else 0 for k in labels]
    ax.bar(range(len(labels)), vals)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set(title=title, ylabel="accuracy", ylim=(0, 1))
    return ax


def save(fig_or_ax, path) -> None:
    """Save a figure (or the figure of an Axes / array of Axes) and close it."""
    import matplotlib.pyplot as plt

    fig = fig_or_ax
    if isinstance(fig, np.ndarray):
        fig = fig.flat[0]
    fig = getattr(fig, "figure", fig)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------- features, streaming, quantization


def plot_feature_mapping(raw_max: int = 700, scale: float | None = None,
                         zero_point: int | None = None, axes=None):
    """Two panels: device int8 vs raw, and int8 vs the training feature with the affine line.

    Returns:
        The array of two matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 4))
    from . import frontend

    scale = frontend.INPUT_SCALE if scale is None else scale
    zero_point = frontend.INPUT_ZERO_POINT if zero_point is None else zero_point
    m = frontend.feature_mapping(np.arange(raw_max + 1), scale, zero_point)
    ax = axes[0]
    ax.step(m["raw"], m["device_int8"], where="post", lw=1, label="((raw*256)+333)//666 - 128")
    ax.axhline(127, color="gray", ls=":", lw=0.8)
    ax.set(title="Device int8 feature vs raw frontend output", xlabel="raw frontend output (uint16 units)",
           ylabel="int8 feature (steps)")
    ax.legend(loc="lower right")
    ax = axes[1]
    ax.plot(m["float"], m["device_int8"], ".", ms=2, label="device int8")
    f = np.linspace(0, m["float"].max(), 200)
    ax.plot(f, np.clip(f / scale + zero_point, -128, 127), lw=0.8, color="C1",
            label=f"f / {scale:.5f} + ({zero_point})")
    ax.set(title="int8 = round(f / scale) + zero_point", xlabel="training feature f = raw*10/256 (unitless)",
           ylabel="int8 feature (steps)")
    ax.legend(loc="lower right")
    return axes


def plot_timeline(audio_int16: np.ndarray, times_ms, scores, labels, truth, detections, *,
                  sample_rate_hz: int = 16_000, threshold: int = 200, average_window_ms: int = 1000,
                  axes=None):
    """Waveform with true keyword spans, averaged scores per class, threshold and detections.

    The score panel shows each class's (score + 128) averaged over the last
    average_window_ms (what RecognizeCommands compares with the threshold; its minimum-count
    rule is ignored here).

    Args:
        audio_int16: the recording, int16 (S,).
        times_ms, scores: ``detect.stream_scores`` output: (K,) window end times, int8 (K, C).
        labels: the C class names.
        truth: detect.Keyword items; detections: detect.Detection items.
    Returns:
        The array of two matplotlib Axes (shared time axis in s).
    """
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(2, 1, figsize=(13, 5.5), sharex=True)
    times_ms = np.asarray(times_ms)
    shifted = np.asarray(scores).astype(np.int64) + 128  # 0..255
    avg = np.empty(shifted.shape, np.float64)
    for k, t in enumerate(times_ms):
        keep = (times_ms[:k + 1] >= t - average_window_ms)
        avg[k] = shifted[:k + 1][keep].mean(axis=0)
    colors = {lab: f"C{i}" for i, lab in enumerate(labels)}
    ax = axes[0]
    audio = np.asarray(audio_int16, np.float32) / 32768.0
    ax.plot(np.arange(len(audio)) / sample_rate_hz, audio, lw=0.4, color="gray")
    for kw in truth:
        ax.axvspan(kw.start_ms / 1000, kw.end_ms / 1000, color=colors.get(kw.label, "k"), alpha=0.2)
        ax.text(kw.start_ms / 1000, 0.9, kw.label, fontsize=8, va="top")
    ax.set(title="Stitched recording: true keyword spans (shaded)", ylabel="amplitude (full scale)",
           ylim=(-1, 1))
    ax = axes[1]
    for c, lab in enumerate(labels):
        ax.plot(times_ms / 1000, avg[:, c], lw=1, color=colors[lab], label=lab.strip("_"))  # "_x" hides a legend entry
    ax.axhline(threshold, color="k", ls="--", lw=0.8, label=f"threshold {threshold}")
    for d in detections:
        ax.plot(d.time_ms / 1000, d.score, "v", ms=9, color=colors.get(d.label, "k"), mec="k")
        ax.text(d.time_ms / 1000, d.score + 6, d.label, fontsize=8, ha="center")
    ax.set(title=f"Scores averaged over {average_window_ms} ms (triangles: detections)",
           xlabel="time (s)", ylabel="score + 128 (0..255)", ylim=(0, 275))
    ax.legend(loc="upper right", ncol=len(labels) + 1, fontsize=8)
    return axes


def plot_accuracy_vs_bits(rows: list[dict], float_accuracy: dict, ax=None,
                          title: str = "Accuracy against bit-width"):
    """PTQ and QAT test (solid) and validation (dashed) accuracy, float baselines as lines.

    Args:
        rows: rows of ptq_sweep / qat_sweep.
        float_accuracy: {"val_accuracy", "test_accuracy"} of the float model.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4.5))
    colors = {"PTQ": "tab:orange", "QAT": "tab:blue"}
    for method in dict.fromkeys(r["method"] for r in rows):
        rs = sorted((r for r in rows if r["method"] == method), key=lambda r: r["num_bits"])
        b = [r["num_bits"] for r in rs]
        c = colors.get(method)
        ax.plot(b, [100 * r["test_accuracy"] for r in rs], "o-", color=c, label=f"{method} test")
        ax.plot(b, [100 * r["val_accuracy"] for r in rs], "s--", color=c, alpha=0.6,
                label=f"{method} validation")
    ax.axhline(100 * float_accuracy["test_accuracy"], color="black", lw=1,
               label="float test")
    ax.axhline(100 * float_accuracy["val_accuracy"], color="gray", lw=1, ls="--",
               label="float validation")
    all_bits = sorted({r["num_bits"] for r in rows})
    ax.set_xticks(all_bits)
    ax.set(title=title, xlabel="bit-width of weights and activations (bits)",
           ylabel="accuracy (%)", ylim=(0, 102))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return ax


def plot_weight_histograms(weights: dict[str, np.ndarray], ax=None, bins: int = 80,
                           title: str = "Weights before and after quantization"):
    """Histograms of weight sets on shared axes.

    A set with at most 256 distinct values (a quantized one) is drawn as one stem per grid
    value, the others as a histogram with ``bins`` bins.
    """
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    lo = min(float(w.min()) for w in weights.values())
    hi = max(float(w.max()) for w in weights.values())
    edges = np.linspace(lo, hi, bins + 1)
    for i, (name, w) in enumerate(weights.items()):
        values, counts = np.unique(w, return_counts=True)
        color = f"C{i}"
        if len(values) <= 256:
            ax.vlines(values, 0, counts, color=color, lw=2, alpha=0.8,
                      label=f"{name} ({len(values)} values)")
            ax.plot(values, counts, "o", color=color, ms=3)
        else:
            ax.hist(w, bins=edges, color=color, alpha=0.4, label=name)
    ax.set(title=title, xlabel="weight value", ylabel="count (weights)")
    ax.legend(fontsize=8)
    return ax
