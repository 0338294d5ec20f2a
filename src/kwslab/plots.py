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
