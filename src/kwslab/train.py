"""The training loop, batching, accuracy, evaluation and checkpoints.

Data come from ``kwslab.frontend.prepare_features`` (``FeatureData``): int8 device
features, with an augmentation bank of K copies of every training clip; epoch e draws copy
e mod K.

Training: Adam with a cosine learning-rate decay, cross-entropy, tqdm progress; the best
epoch on validation accuracy is recorded; the final weights are kept by default
(TrainConfig.keep) and saved with the full config.

References:
  1) TensorFlow ``examples/speech_commands/train.py`` (Adam, 0.001 then 0.0001, batch 100).
  2) MLPerf Tiny ``keyword_spotting/train.py`` (DS-CNN training recipe).
"""
from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import augment, frontend
from .config import Config, TrainConfig
from .frontend import FeatureData
from .models import KWSModel, model_from_config

log = logging.getLogger(__name__)


@dataclass
class History:
    """Per-epoch curves; saved as JSON next to the checkpoint."""

    epoch: list[int] = field(default_factory=list)
    lr: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_accuracy: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    val_accuracy: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    best_epoch: int = -1
    best_val_accuracy: float = 0.0

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "History":
        return cls(**json.loads(Path(path).read_text()))


def to_tensor(x_int8: np.ndarray) -> torch.Tensor:
    """int8 device features (N, T, F) -> float32 training features (N, 1, T, F)."""
    return torch.from_numpy(frontend.to_float(x_int8)).unsqueeze(1)


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@torch.no_grad()
def predict_logits(model: nn.Module, x_int8: np.ndarray, batch_size: int = 512,
                   device: str | None = None) -> np.ndarray:
    """Logits (N, C) of a PyTorch model for int8 features (N, T, F), in eval mode."""
    device = device or next(model.parameters()).device
    model.eval()
    out = [model(to_tensor(x_int8[i:i + batch_size]).to(device)).float().cpu()
           for i in range(0, len(x_int8), batch_size)]
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def train(model: nn.Module, data: FeatureData, cfg: TrainConfig, *, device: str | None = None,
          progress: bool = True, on_epoch=None) -> History:
    """Train in place with Adam and cosine decay; keep the last (or best validation) weights.

    Each epoch draws augmented copy e mod K of the bank, shuffles it with a seeded
    generator, and ends with a validation pass.

    Args:
        model: a kwslab model mapping float32 (N, 1, T, F) to logits (N, C).
        data: features from ``frontend.prepare_features``.
        cfg: epochs, batch size, learning rate, seed, keep.
        device: "cpu" / "cuda"; default cuda when available.
        progress: tqdm bar over epochs.
        on_epoch: optional callback(history) after each epoch (live plots in notebooks).
    Returns:
        History (best_epoch records the best validation epoch); the model holds the final
        weights, or those of the best validation epoch when cfg.keep == "best".
    Raises:
        ValueError: if cfg.keep is neither "last" nor "best".
    Note:
        Repeatable on CPU for a given seed whatever the machine's load: training runs with
        cfg.num_threads threads and deterministic algorithms, shuffles come from a seeded
        torch.Generator, SpecAugment and mixup from another, dropout from torch.manual_seed.
        Optional regularizers (off by default): SpecAugment masks, mixup, label smoothing,
        an exponential moving average of the weights (cfg.ema_decay; validation then scores
        the averaged weights, which are the ones kept), knowledge distillation from a
        trained checkpoint (cfg.distill_teacher; ``distillation_loss``).
    """
    if cfg.keep not in ("last", "best"):
        raise ValueError(f"TrainConfig.keep={cfg.keep!r}; use 'last' or 'best'")
    with _repeatable(cfg):
        return _train(model, data, cfg, device=device, progress=progress, on_epoch=on_epoch)


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      label_loss: torch.Tensor, alpha: float, temperature: float) -> torch.Tensor:
    """(1 - alpha) * label_loss + alpha * T^2 * KL(softmax(teacher / T) || softmax(student / T)).

    Args:
        student_logits: float (N, C), with gradient.
        teacher_logits: float (N, C), the teacher's logits for the same inputs (no gradient).
        label_loss: scalar, the student's loss on the labels (cross-entropy).
        alpha: weight of the distillation term in [0, 1].
        temperature: T > 0; the T^2 factor keeps the term's gradients on the scale of the
            label loss's as T changes.
    Returns:
        Scalar loss (KL averaged over the batch).
    Raises:
        ValueError: if alpha is outside [0, 1], temperature <= 0, or the shapes differ.
    Source: Hinton, Vinyals & Dean 2015, "Distilling the knowledge in a neural network"
        (arXiv:1503.02531), Sec. 2.
    """
    if not 0 <= alpha <= 1 or not temperature > 0:
        raise ValueError(f"distill_alpha={alpha} should be in [0, 1] and "
                         f"distill_temperature={temperature} > 0")
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(f"student logits {tuple(student_logits.shape)} and teacher logits "
                         f"{tuple(teacher_logits.shape)} differ: the teacher must have the same classes")
    kl = nn.functional.kl_div(nn.functional.log_softmax(student_logits / temperature, dim=1),
                              nn.functional.log_softmax(teacher_logits / temperature, dim=1),
                              reduction="batchmean", log_target=True)
    return (1 - alpha) * label_loss + alpha * temperature ** 2 * kl


def _load_teacher(cfg: TrainConfig, labels, device) -> nn.Module | None:
    """The frozen teacher of cfg.distill_teacher in eval mode on device, or None.

    Raises:
        FileNotFoundError: if the checkpoint does not exist (names the path).
        ValueError: if its labels are not the data's (names both), or alpha / T are invalid.
    """
    if not cfg.distill_teacher:
        return None
    distillation_loss(torch.zeros(1, 1), torch.zeros(1, 1), torch.zeros(()),  # validates alpha, T
                      cfg.distill_alpha, cfg.distill_temperature)
    teacher, tcfg, _ = load_checkpoint(cfg.distill_teacher)
    if tuple(tcfg.data.labels) != tuple(labels):
        raise ValueError(f"distillation teacher {cfg.distill_teacher} has labels "
                         f"{list(tcfg.data.labels)}; the data has {list(labels)}")
    teacher.to(device).eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


@contextlib.contextmanager
def _repeatable(cfg: TrainConfig):
    """Fix torch's CPU thread count and ask for deterministic algorithms; restore after."""
    import torch.utils.deterministic as det

    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    fill = det.fill_uninitialized_memory
    if cfg.num_threads is not None:
        torch.set_num_threads(cfg.num_threads)
    torch.use_deterministic_algorithms(cfg.deterministic)
    # Deterministic mode also fills every new uninitialized tensor with NaN (a debugging aid,
    # about 15 % of a DS-CNN step on the CPU); no kernel used here reads uninitialized memory,
    # so the results are the same without it (tests/test_train_recipe.py checks repeatability).
    det.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)
        det.fill_uninitialized_memory = fill


def _train(model, data, cfg, *, device, progress, on_epoch) -> History:
    device = device or default_device()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model.to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    num_train = len(data.train_y)
    steps_per_epoch = max(1, math.ceil(num_train / cfg.batch_size))
    total_steps = cfg.epochs * steps_per_epoch
    floor = cfg.lr_final_fraction
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / total_steps)))
    loss_fn = nn.CrossEntropyLoss()
    train_loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    aug_gen = torch.Generator().manual_seed(cfg.seed + 1)  # SpecAugment and mixup only
    ema = None
    if cfg.ema_decay > 0:
        ema = torch.optim.swa_utils.AveragedModel(
            model, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(cfg.ema_decay),
            use_buffers=True)
    num_classes = len(data.labels)
    teacher = _load_teacher(cfg, data.labels, device)
    hist = History()
    best_state = None
    train_y = torch.from_numpy(data.train_y)
    bar = tqdm(range(cfg.epochs), desc="train", leave=False, disable=not progress)
    for epoch in bar:
        t0 = time.perf_counter()
        model.train()
        copy = data.train_x[epoch % len(data.train_x)]
        order = torch.randperm(num_train, generator=gen)
        loss_sum, correct = 0.0, 0
        for i in range(0, num_train, cfg.batch_size):
            idx = order[i:i + cfg.batch_size]
            x = to_tensor(copy[idx.numpy()]).to(device)
            y = train_y[idx].to(device)
            if cfg.spec_time_masks or cfg.spec_freq_masks:
                x = augment.spec_augment(x, aug_gen, time_masks=cfg.spec_time_masks,
                                         max_frames=cfg.spec_max_frames, freq_masks=cfg.spec_freq_masks,
                                         max_channels=cfg.spec_max_channels)
            target = y
            if cfg.mixup_alpha > 0:
                x, target = augment.mixup(x, y, num_classes, cfg.mixup_alpha, aug_gen)
            opt.zero_grad(set_to_none=True)
            logits = model(x)
            loss = train_loss_fn(logits, target)
            if teacher is not None:
                with torch.no_grad():
                    teacher_logits = teacher(x)
                loss = distillation_loss(logits, teacher_logits, loss, cfg.distill_alpha,
                                         cfg.distill_temperature)
            loss.backward()
            opt.step()
            sched.step()
            if ema is not None:
                ema.update_parameters(model)
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == y).sum().item()
        scored = model if ema is None else ema.module  # validation scores the weights kept
        val_logits = torch.from_numpy(predict_logits(scored, data.val_x, device=device))
        val_y = torch.from_numpy(data.val_y)
        val_loss = loss_fn(val_logits, val_y).item() if len(val_y) else float("nan")
        val_acc = (val_logits.argmax(1) == val_y).float().mean().item() if len(val_y) else 0.0
        hist.epoch.append(epoch + 1)
        hist.lr.append(opt.param_groups[0]["lr"])
        hist.train_loss.append(loss_sum / num_train)
        hist.train_accuracy.append(correct / num_train)
        hist.val_loss.append(val_loss)
        hist.val_accuracy.append(val_acc)
        hist.seconds.append(time.perf_counter() - t0)
        if hist.best_epoch < 0 or val_acc > hist.best_val_accuracy:
            hist.best_epoch, hist.best_val_accuracy = epoch + 1, val_acc
            if cfg.keep == "best":
                best_state = {k: v.detach().clone() for k, v in scored.state_dict().items()}
        bar.set_postfix(loss=f"{hist.train_loss[-1]:.3f}", val=f"{val_acc:.3f}")
        if on_epoch is not None:
            on_epoch(hist)
    if best_state is not None:
        model.load_state_dict(best_state)
    elif ema is not None:  # end with the averaged weights and BatchNorm statistics
        model.load_state_dict(ema.module.state_dict())
    model.eval()
    return hist


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (C, C): row = true class, column = predicted class."""
    cm = np.zeros((num_classes, num_classes), np.int64)
    np.add.at(cm, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return cm


def accuracy_report(y_true: np.ndarray, y_pred: np.ndarray, labels) -> dict:
    """Accuracy, accuracy without _silence_ clips, per-class accuracy and confusion matrix."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    cm = confusion_matrix(y_true, y_pred, len(labels))
    per_class = {lab: (float(cm[i, i] / cm[i].sum()) if cm[i].sum() else None)
                 for i, lab in enumerate(labels)}
    speech = y_true != 0  # label 0 is _silence_
    return {
        "accuracy": float((y_true == y_pred).mean()) if len(y_true) else 0.0,
        "accuracy_without_silence": float((y_true[speech] == y_pred[speech]).mean()) if speech.any() else 0.0,
        "per_class": per_class,
        "confusion": cm.tolist(),
        "num_clips": int(len(y_true)),
    }


def format_confusion(cm, labels) -> str:
    """The confusion matrix as a text table (rows true, columns predicted)."""
    cm = np.asarray(cm)
    width = max(7, *(len(l) for l in labels))
    head = " " * width + " " + " ".join(f"{l[:7]:>7}" for l in labels)
    rows = [f"{l:>{width}} " + " ".join(f"{v:>7d}" for v in row) for l, row in zip(labels, cm)]
    return "\n".join([head, *rows])


def evaluate(model: nn.Module, data: FeatureData) -> dict:
    """Float accuracy reports for validation and test: {"validation": ..., "testing": ...}."""
    out = {}
    for split, x, y in (("validation", data.val_x, data.val_y), ("testing", data.test_x, data.test_y)):
        pred = predict_logits(model, x).argmax(1) if len(x) else np.zeros(0, np.int64)
        out[split] = accuracy_report(y, pred, data.labels)
    return out


def save_checkpoint(path: str | Path, model: KWSModel, cfg: Config, history: History | None = None,
                    extra: dict | None = None) -> Path:
    """Save weights + full config (+ history) to one .pt file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"model_state": model.state_dict(), "config": cfg.to_dict(),
                "history": asdict(history) if history else None, "extra": extra or {}}, path)
    return path


def load_checkpoint(path: str | Path, map_location: str = "cpu") -> tuple[KWSModel, Config, dict]:
    """Rebuild the model from a checkpoint. Returns (model in eval mode, config, raw dict).

    Raises:
        FileNotFoundError: naming the path (run `kwslab run` or notebook 3 first).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; train one with `kwslab run` or notebook 3")
    ckpt = torch.load(path, map_location=map_location, weights_only=False)
    cfg = Config.from_dict(ckpt["config"])
    model = model_from_config(cfg)
    model.load_state_dict(ckpt["model_state"])
    model.eval()
    return model, cfg, ckpt


# ----------------------------------------------------------------------------- batches and accuracy


class FeatureBatches:
    """Shuffled (x, y) batches from the augmented training bank, one copy per epoch.

    Iterating again starts the next epoch: epoch e uses augmented copy e mod K of the bank
    (K, N, T, F) and a new permutation from a seeded generator, as ``train.train`` does.

    Args:
        train_x: int8 (K, N, T, F) device features.
        train_y: int64 (N,) labels.
        batch_size: clips per batch, >= 1.
        seed: seed of the shuffles.
    Yields:
        x float32 (B, 1, T, F), y int64 (B,).
    Raises:
        ValueError: if batch_size < 1 or the bank and labels disagree in N.
    """

    def __init__(self, train_x: np.ndarray, train_y: np.ndarray, batch_size: int = 100,
                 seed: int = 0):
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} should be >= 1")
        if train_x.ndim != 4 or train_x.shape[1] != len(train_y):
            raise ValueError(f"train_x of shape {train_x.shape} should be (K, N, T, F) with "
                             f"N = len(train_y) = {len(train_y)}")
        self.train_x, self.train_y, self.batch_size = train_x, np.asarray(train_y), batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch = 0

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        bank = self.train_x[self.epoch % len(self.train_x)]  # (N, T, F)
        self.epoch += 1
        order = torch.randperm(len(self.train_y), generator=self.generator).numpy()
        for i in range(0, len(order), self.batch_size):
            idx = order[i:i + self.batch_size]
            yield to_tensor(bank[idx]), torch.from_numpy(self.train_y[idx]).long()


def accuracy(model: nn.Module, x_int8: np.ndarray, y: np.ndarray) -> float:
    """Fraction of clips whose argmax logit is the label (0.0 for no clips).

    Args:
        model: a kwslab model (logits out); run on the CPU in eval mode.
        x_int8: int8 device features of shape (N, T, F).
        y: int64 labels of shape (N,).
    Returns:
        Accuracy in [0, 1].
    """
    if len(y) == 0:
        return 0.0
    return float(np.mean(predict_logits(model, x_int8, device="cpu").argmax(1) == y))


def calibration_batches(x_int8: np.ndarray, num_examples: int = 512,
                        batch_size: int = 128) -> list[torch.Tensor]:
    """Float model inputs for calibration: the first num_examples features, in batches.

    Args:
        x_int8: int8 device features, shape (N, T, F) or a bank (K, N, T, F) (its first
            copy is used).
        num_examples: how many examples at most.
        batch_size: examples per batch.
    Returns:
        list of float32 tensors (B, 1, T, F).
    Raises:
        ValueError: if x_int8 holds no example.
    """
    x = x_int8[0] if x_int8.ndim == 4 else x_int8
    x = x[:num_examples]
    if len(x) == 0:
        raise ValueError(f"no features to calibrate on (shape {tuple(x_int8.shape)})")
    return [to_tensor(x[i:i + batch_size]) for i in range(0, len(x), batch_size)]


def accuracies(model: nn.Module, data: FeatureData, prefix: str = "") -> dict[str, float]:
    """Validation and test accuracy (fractions in [0, 1]) of a model, in eval mode.

    Args:
        model: a kwslab model (logits out).
        data: FeatureData (val_x/val_y, test_x/test_y).
        prefix: put before the keys, e.g. "finetuned_".
    Returns:
        {prefix + "val_accuracy": ..., prefix + "test_accuracy": ...}.
    """
    return {f"{prefix}val_accuracy": accuracy(model, data.val_x, data.val_y),
            f"{prefix}test_accuracy": accuracy(model, data.test_x, data.test_y)}
