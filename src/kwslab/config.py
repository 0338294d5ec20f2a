"""One configuration for the whole pipeline, as frozen dataclasses.

The config travels with the checkpoint (``dataclasses.asdict``) and with the exported model;
``model_settings.h`` for the firmware is generated from it alone, so the device's frontend
settings, labels and input quantization cannot drift from what the model was trained on.

References:
  1) tflite-micro ``micro_speech/audio_preprocessor.py`` ``FeatureParams`` (a frozen
     dataclass with one docstring per field).
  2) TensorFlow ``speech_commands/train.py`` flags (silence/unknown percentages, time shift,
     background volume and frequency) and ``models.py`` ``prepare_model_settings``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SILENCE_LABEL = "_silence_"
UNKNOWN_LABEL = "_unknown_"
BACKGROUND_NOISE_DIR = "_background_noise_"
TWELVE_CLASS_WORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
REPO_ROOT = Path(__file__).resolve().parents[2]
"""Where a repository checkout would be (src/kwslab/config.py -> parents[2]); ``repo_root()``
checks that it is one."""
DEPLOY_DIRS = (REPO_ROOT / "arduino" / "kws_nano33ble", REPO_ROOT / "psoc6" / "kws_psoc6" / "source")
"""The Arduino sketch and the PSoC 6 app's source folder: the C model and settings go there
(``deploy_dirs()`` checks that the checkout exists)."""


@dataclass(frozen=True)
class FrontendConfig:
    """micro_speech feature settings: TFLite Micro's micro frontend (FFT filterbank, noise
    reduction, PCAN gain control, log scale), the same C code the firmware runs."""

    sample_rate_hz: int = 16_000
    clip_duration_ms: int = 1000
    window_size_ms: int = 30
    """Analysis window: 480 samples at 16 kHz."""
    window_stride_ms: int = 20
    """Hop between frames: 320 samples at 16 kHz."""
    num_channels: int = 40
    """Filter-bank channels spanning lower_band_limit_hz..upper_band_limit_hz."""
    lower_band_limit_hz: float = 125.0
    upper_band_limit_hz: float = 7500.0
    smoothing_bits: int = 10
    even_smoothing: float = 0.025
    odd_smoothing: float = 0.06
    min_signal_remaining: float = 0.05
    enable_pcan: bool = True
    pcan_strength: float = 0.95
    pcan_offset: float = 80.0
    gain_bits: int = 21
    enable_log: bool = True
    scale_shift: int = 6

    @property
    def clip_samples(self) -> int:
        """Samples in one clip: 16000 * 1000 / 1000 = 16000."""
        return self.sample_rate_hz * self.clip_duration_ms // 1000

    @property
    def window_samples(self) -> int:
        """30 ms at 16 kHz = 480 samples."""
        return self.sample_rate_hz * self.window_size_ms // 1000

    @property
    def stride_samples(self) -> int:
        """20 ms at 16 kHz = 320 samples."""
        return self.sample_rate_hz * self.window_stride_ms // 1000

    @property
    def num_frames(self) -> int:
        """Frames per clip: 1 + (16000 - 480) // 320 = 49."""
        return 1 + (self.clip_samples - self.window_samples) // self.stride_samples

    @property
    def feature_shape(self) -> tuple[int, int]:
        """(T, F) = (49, 40)."""
        return (self.num_frames, self.num_channels)


@dataclass(frozen=True)
class DataConfig:
    """Which words, how much silence and unknown, and the training augmentation."""

    words: tuple[str, ...] = ("yes", "no")
    """The wanted words; labels are _silence_, _unknown_, then these in order."""
    silence_percentage: float = 10.0
    """Silence clips, as a percentage of the wanted-word clips in each split."""
    unknown_percentage: float = 10.0
    """Unknown-word clips, as a percentage of the wanted-word clips in each split."""
    validation_percentage: float = 10.0
    """Used only when the folder has no validation_list.txt (TensorFlow's hash rule)."""
    testing_percentage: float = 10.0
    time_shift_ms: float = 100.0
    """Training clips are shifted by U(-100, 100) ms, zero-filled."""
    background_frequency: float = 0.8
    """Probability that a training clip gets background noise mixed in."""
    background_volume: float = 0.1
    """Mixed-in noise volume is U(0, background_volume)."""
    silence_volume: float = 1.0
    """Silence clips are background noise at volume U(0, silence_volume)."""
    max_clips_per_label: int | None = None
    """Cap on clips per word and split (smoke runs); None keeps all."""

    @property
    def labels(self) -> tuple[str, ...]:
        return (SILENCE_LABEL, UNKNOWN_LABEL, *self.words)

    @property
    def num_classes(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class ModelConfig:
    name: str = "tiny_conv"
    """A key of ``kwslab.models.MODELS``."""
    dropout: float | None = None
    """Dropout probability; None uses the model's own default (tiny_conv 0.5, ds_cnn 0.2:
    DS-CNN drops 2 * dropout before pooling, so it needs dropout < 0.5)."""
    channels: int | None = None
    """Width: output channels of every conv (tiny_conv 8, ds_cnn 64 when None). Measured
    int8 sizes of DS-CNN: 4 classes, ``channels=32`` (7,236 parameters) 21,384 B, arena
    37,824 B; 12 classes, 64 channels 44,840 B, 36 channels 24,120 B."""


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 200
    batch_size: int = 100
    learning_rate: float = 1e-3
    """Peak learning rate of Adam; cosine-decayed to lr_final_fraction of it."""
    lr_final_fraction: float = 0.05
    weight_decay: float = 0.0
    seed: int = 0
    augment: bool = True
    keep: str = "last"
    """Which weights to keep: "last" (end of the cosine schedule) or "best" (best validation
    accuracy). Default "last": with validation splits of ~100 clips the best-epoch pick is
    mostly noise. Measured on the subset (yes/no tiny_conv, seed 0): the best validation
    epoch (14, val 0.909) scored 0.75 on test; the final epoch 0.84."""
    num_threads: int | None = 1
    """CPU threads for training (``torch.set_num_threads``). Fixed so that a seed gives the
    same weights on any machine and under any load (the split of each reduction over
    threads changes the float rounding); None keeps torch's default (one per core).
    One thread: measured on 2 busy cores (load ~12), 5 tiny_conv epochs took 0.8 s of CPU
    with 1 thread and 6 s with 2 (OpenMP threads spin while waiting for a core)."""
    deterministic: bool = True
    """``torch.use_deterministic_algorithms`` during training (raises on an op that has
    no deterministic version rather than silently varying)."""
    spec_time_masks: int = 0
    """SpecAugment: time masks per training clip (0: off)."""
    spec_max_frames: int = 0
    """SpecAugment: largest time-mask width, frames (20 ms each)."""
    spec_freq_masks: int = 0
    """SpecAugment: frequency masks per training clip (0: off)."""
    spec_max_channels: int = 0
    """SpecAugment: largest frequency-mask width, filter-bank channels."""
    mixup_alpha: float = 0.0
    """mixup Beta(alpha, alpha) parameter (0: off)."""
    label_smoothing: float = 0.0
    """Cross-entropy label smoothing in [0, 1) (0: off)."""
    ema_decay: float = 0.0
    """Keep an exponential moving average of the weights (and BatchNorm statistics) with
    this decay per step, and end with it (0: off; e.g. 0.999)."""
    distill_teacher: str | None = None
    """Knowledge distillation: path of a trained checkpoint (``checkpoint.pt`` of ``kwslab
    run`` or notebook 3) with the same labels, whose softened outputs the model also learns
    (None: off). E.g. the 64-channel DS-CNN teaching a narrower one."""
    distill_alpha: float = 0.5
    """Weight of the distillation term in [0, 1]; the labels' cross-entropy gets 1 - alpha."""
    distill_temperature: float = 4.0
    """Softmax temperature T > 0 of teacher and student in the distillation term."""


@dataclass(frozen=True)
class RecognizeConfig:
    """RecognizeCommands settings: how int8 score vectors become keyword detections.

    The host twin (``kwslab.detect.RecognizeCommands``) reads them from here and
    ``model_settings.h`` (``kAverageWindowMs`` ...) is generated from them for the devices.
    Defaults are micro_speech's.

    Source: tflite-micro micro_speech ``recognize_commands.h``.
    """

    average_window_ms: int = 1000
    """Scores of the last average_window_ms are averaged."""
    detection_threshold: int = 200
    """A class fires when its average of (score + 128), 0..255, exceeds this."""
    suppression_ms: int = 1500
    """The same keyword cannot fire again within this time."""
    minimum_count: int = 3
    """No decision from fewer results than this in the window."""


@dataclass(frozen=True)
class Config:
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    recognize: RecognizeConfig = field(default_factory=RecognizeConfig)

    @classmethod
    def for_model(cls, name: str = "tiny_conv", words: tuple[str, ...] | None = None, *,
                  smoke: bool = False, **sections: Any) -> "Config":
        """The recipe of a named model (``PRESETS``), for the given words.

        Args:
            name: a key of ``PRESETS`` (= ``kwslab.models.MODELS``): "tiny_conv" or "ds_cnn".
            words: the wanted words; None uses the preset's (tiny_conv: yes, no;
                ds_cnn: the 10 words of the 12-class task).
            smoke: cap the data and epochs (``SMOKE``) for a run of seconds (tests, CI).
            **sections: further changes, as for ``replace``:
                ``Config.for_model("ds_cnn", train={"seed": 1})``.
        Returns:
            The Config. ``Config.for_model()`` equals ``kwslab run``'s default recipe.
        Raises:
            ValueError: if name is not a preset (the message lists them).
        """
        if name not in PRESETS:
            raise ValueError(f"unknown model {name!r}; choose one of {sorted(PRESETS)}")
        preset = PRESETS[name]
        cfg = cls().replace(model={"name": name, "dropout": preset["dropout"]},
                            data={"words": tuple(words or preset["words"])},
                            train={"epochs": preset["epochs"],
                                   "learning_rate": preset["learning_rate"]})
        if smoke:
            cfg = cfg.replace(**SMOKE)
        return cfg.replace(**sections)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Config":
        data = dict(d.get("data", {}))
        if "words" in data:
            data["words"] = tuple(data["words"])
        return cls(
            frontend=FrontendConfig(**d.get("frontend", {})),
            data=DataConfig(**data),
            model=ModelConfig(**d.get("model", {})),
            train=TrainConfig(**d.get("train", {})),
            recognize=RecognizeConfig(**d.get("recognize", {})),
        )

    def replace(self, **sections: Any) -> "Config":
        """Copy with some fields changed: ``cfg.replace(train={"epochs": 1})``."""
        changes = {}
        for name, values in sections.items():
            current = getattr(self, name)
            changes[name] = dataclasses.replace(current, **values)
        return dataclasses.replace(self, **changes)


def parse_overrides(items: list[str]) -> dict[str, dict[str, Any]]:
    """``section.field=value`` strings (the ``--set`` options) -> ``Config.replace`` keywords.

    Values are parsed as JSON (``400``, ``0.5``, ``true``, ``["yes", "no"]``), else kept as
    strings. Example: ["data.unknown_percentage=400", "recognize.average_window_ms=500"] ->
    {"data": {"unknown_percentage": 400}, "recognize": {"average_window_ms": 500}}.

    Raises:
        ValueError: an item without ``section.field=``, or a section or field that Config
            does not have (the message lists the valid names).
    """
    import json

    sections = {f.name: f.type for f in dataclasses.fields(Config)}
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        section, dot, name = key.partition(".")
        if not sep or not dot:
            raise ValueError(f"--set {item!r}: expected section.field=value, "
                             "e.g. data.unknown_percentage=400")
        if section not in sections:
            raise ValueError(f"--set {item!r}: no config section {section!r}; "
                             f"choose one of {sorted(sections)}")
        fields = [f.name for f in dataclasses.fields(getattr(Config(), section))]
        if name not in fields:
            raise ValueError(f"--set {item!r}: {section} has no field {name!r}; "
                             f"its fields are {fields}")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw
        out.setdefault(section, {})[name] = value
    return out


PRESETS: dict[str, dict[str, Any]] = {
    "tiny_conv": {"words": ("yes", "no"), "dropout": 0.5, "epochs": 200, "learning_rate": 1e-3},
    "ds_cnn": {"words": TWELVE_CLASS_WORDS, "dropout": 0.2, "epochs": 60, "learning_rate": 2e-3},
    "tc_cnn": {"words": TWELVE_CLASS_WORDS, "dropout": 0.2, "epochs": 60, "learning_rate": 2e-3},
}
"""Model recipes, one per ``kwslab.models.MODELS`` name: default words, dropout, epochs and
peak learning rate. tiny_conv follows micro_speech (yes/no); ds_cnn the 12-class MLPerf Tiny
task (measured on the shared subset: 60 epochs at 2e-3 reach float test 0.84)."""

SMOKE: dict[str, dict[str, Any]] = {"data": {"max_clips_per_label": 25}, "train": {"epochs": 2}}
"""Changes that make any recipe a smoke run of seconds (25 clips per label, 2 epochs)."""


def repo_root() -> Path:
    """The repository checkout this package runs from (``src/kwslab/config.py`` -> parents[2]).

    Returns:
        The folder holding ``pyproject.toml``, ``arduino/`` and ``psoc6/``.
    Raises:
        FileNotFoundError: when the package is installed outside a checkout (a wheel in
            site-packages): deploy folders and the repository's data exist only in one.
    """
    if not (REPO_ROOT / "pyproject.toml").is_file() or not (REPO_ROOT / "src" / "kwslab").is_dir():
        raise FileNotFoundError(
            f"kwslab runs from {Path(__file__).resolve().parent}, not from a repository checkout "
            f"(no pyproject.toml and src/kwslab under {REPO_ROOT}); clone the repository and "
            f"`pip install -e .` to write into arduino/ and psoc6/")
    return REPO_ROOT


def deploy_dirs() -> tuple[Path, Path]:
    """The folders the C model and settings go to: the Arduino sketch and the PSoC 6 app.

    Raises:
        FileNotFoundError: outside a repository checkout (see ``repo_root``).
    """
    repo_root()
    return DEPLOY_DIRS


def config_hash(obj: Any) -> str:
    """A short stable hash of a dataclass (or any JSON-able value), for cache keys."""
    if dataclasses.is_dataclass(obj):
        obj = dataclasses.asdict(obj)
    blob = json.dumps(obj, sort_keys=True, default=str).encode()
    return hashlib.sha1(blob).hexdigest()[:16]
