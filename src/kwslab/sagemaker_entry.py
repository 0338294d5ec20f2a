"""SageMaker script mode: ``kwslab run`` as a cloud training job.

SageMaker's PyTorch container starts the entry point as ``python train.py --epochs 200
--words yes,no ...`` (each hyperparameter as ``--name value``, also in ``SM_HPS`` as JSON),
with the ``training`` data channel unpacked at ``SM_CHANNEL_TRAINING``
(``/opt/ml/input/data/training``). When the job ends it uploads ``SM_MODEL_DIR``
(``/opt/ml/model``) as ``model.tar.gz`` and ``SM_OUTPUT_DATA_DIR``
(``/opt/ml/output/data``) as ``output.tar.gz``, and shows the text of
``/opt/ml/output/failure`` as the reason of a failed job.

This entry point runs exactly ``kwslab run`` (the same parser, config and pipeline; only the
paths come from SageMaker) with the run folder = ``SM_MODEL_DIR``, so the model archive
holds what deploys: ``checkpoint.pt``, ``model.tflite``, ``model_data.{h,cpp}``,
``model_settings.h``, ``config.json``; the report (``report.md``, ``report.json``,
``history.json``, plots) is also copied to ``SM_OUTPUT_DATA_DIR``. Hyperparameters are
``kwslab run``'s options (``epochs``, ``words``, ``model``, ``seed``, ``max-clips`` ...;
``_`` and ``-`` alike); its flags take ``true``/``false`` (SageMaker always sends a value).
Every path can be overridden (``--data-dir``, ``--model-dir``, ``--output-data-dir``,
``--cache``) to run the same job on a laptop. The launcher example is
``docs/sagemaker/launch.py``.

Usage (what the container runs): ``python -m kwslab.sagemaker_entry --epochs 200``.

References:
  1) SageMaker Training Toolkit ``environment.py`` (``SM_HPS``, ``SM_CHANNEL_<NAME>``,
     ``SM_MODEL_DIR``, ``SM_OUTPUT_DATA_DIR``, ``SM_OUTPUT_DIR``) and the script-mode
     argument convention.
  2) SageMaker developer guide, "Use your own training algorithms": ``/opt/ml`` layout and
     the ``failure`` file.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import traceback
from pathlib import Path

log = logging.getLogger(__name__)

OPT_ML = Path("/opt/ml")
REPORT_FILES = ("report.md", "report.json", "history.json", "config.json", "*.png")
"""Copied from the run folder (the model dir) into the output data dir."""
RESERVED = {"data": "--data-dir", "runs": "--model-dir", "name": "--model-dir"}
"""``kwslab run`` options that the entry point sets from SageMaker's paths."""


def _str2bool(value) -> bool:
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _run_parser() -> argparse.ArgumentParser:
    """The ``kwslab run`` sub-parser of the CLI (one source of truth for the options)."""
    from . import cli

    for action in cli.build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices["run"]
    raise RuntimeError("kwslab's CLI has no run command")


def run_arguments(hyperparameters: dict) -> list[str]:
    """``kwslab run`` arguments from SageMaker hyperparameters.

    Example: ``{"epochs": "2", "max_clips": 15, "no-augment": "True", "deploy": "false"}``
    -> ``["--epochs", "2", "--max-clips", "15", "--no-augment"]``.

    Raises:
        ValueError: for a name ``kwslab run`` does not take, a path option the entry point
            sets itself, or a flag whose value is not true/false.
    """
    options = {}
    for action in _run_parser()._actions:
        for opt in action.option_strings:
            if opt.startswith("--"):
                options[opt[2:]] = action
    out: list[str] = []
    for key, value in hyperparameters.items():
        name = str(key).lstrip("-").replace("_", "-")
        if name in RESERVED:
            raise ValueError(f"hyperparameter {key!r} is set by the SageMaker entry point; "
                             f"use {RESERVED[name]} instead")
        action = options.get(name)
        if action is None or name in ("help", "verbose"):
            allowed = sorted(n for n in options if n not in RESERVED and n not in ("help",))
            raise ValueError(f"unknown hyperparameter {key!r}; kwslab run takes {allowed}")
        if action.nargs == 0:  # a flag: --no-augment, --deploy
            try:
                on = _str2bool(value)
            except ValueError as e:
                raise ValueError(f"hyperparameter {key!r}: {e}") from e
            if on:
                out.append(f"--{name}")
        else:
            out += [f"--{name}", str(value)]
    return out


def _pairs(argv: list[str]) -> dict[str, str]:
    """``--a 1 --b=2 --flag true`` -> {"a": "1", "b": "2", "flag": "true"}."""
    out, i = {}, 0
    while i < len(argv):
        tok = argv[i]
        if not tok.startswith("--"):
            raise ValueError(f"unexpected argument {tok!r}; hyperparameters come as --name value")
        if "=" in tok:
            k, v = tok[2:].split("=", 1)
            i += 1
        elif i + 1 < len(argv) and not argv[i + 1].startswith("--"):
            k, v = tok[2:], argv[i + 1]
            i += 2
        else:  # a bare flag typed by hand
            k, v = tok[2:], "true"
            i += 1
        out[k] = v
    return out


def parse(argv: list[str] | None = None, environ=None) -> tuple[dict, dict]:
    """Split argv + ``SM_HPS`` into the entry point's paths and ``kwslab run``'s options.

    Returns:
        (paths: data_dir, model_dir, output_data_dir, output_dir, cache as str,
         hyperparameters: the rest, argv winning over ``SM_HPS``).
    Raises:
        ValueError: if SM_HPS is not a JSON object or argv is not ``--name value`` pairs.
    """
    environ = os.environ if environ is None else environ
    try:
        hps = json.loads(environ.get("SM_HPS", "{}") or "{}")
    except json.JSONDecodeError as e:
        raise ValueError(f"SM_HPS is not JSON ({e})") from e
    if not isinstance(hps, dict):
        raise ValueError(f"SM_HPS must be a JSON object, got {type(hps).__name__}")
    hps = {str(k).replace("_", "-"): v for k, v in hps.items()}
    hps.update({k.replace("_", "-"): v for k, v in _pairs(list(sys.argv[1:] if argv is None
                                                              else argv)).items()})
    paths = {
        "data_dir": environ.get("SM_CHANNEL_TRAINING", str(OPT_ML / "input/data/training")),
        "model_dir": environ.get("SM_MODEL_DIR", str(OPT_ML / "model")),
        "output_data_dir": environ.get("SM_OUTPUT_DATA_DIR", str(OPT_ML / "output/data")),
        "output_dir": environ.get("SM_OUTPUT_DIR", str(OPT_ML / "output")),
        "cache": "/tmp/kwslab-features",
    }
    for key in list(hps):
        k = key.replace("-", "_")
        if k in paths:
            paths[k] = str(hps.pop(key))
    return paths, hps


def main(argv: list[str] | None = None, environ=None) -> int:
    """Run the job; 0 on success, else ``kwslab run``'s exit code (reason in ``failure``)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from . import cli

    paths: dict = {}
    try:
        paths, hps = parse(argv, environ)
        model_dir = Path(paths["model_dir"])
        run_argv = ["run", "--data", paths["data_dir"], "--runs", str(model_dir.parent),
                    "--name", model_dir.name, "--cache", paths["cache"], *run_arguments(hps)]
        log.info("kwslab %s", " ".join(run_argv))
        code = cli.main(run_argv)
        if code != 0:
            raise RuntimeError(f"kwslab run exited with code {code} (its message is in the "
                               "job's log)")
        out = Path(paths["output_data_dir"])
        out.mkdir(parents=True, exist_ok=True)
        for pattern in REPORT_FILES:
            for f in sorted(model_dir.glob(pattern)):
                shutil.copy2(f, out / f.name)
        log.info("model files in %s, report in %s", model_dir, out)
        return 0
    except Exception as e:  # SageMaker shows the failure file as the job's failure reason
        failure = Path(paths.get("output_dir", OPT_ML / "output")) / "failure"
        try:
            failure.parent.mkdir(parents=True, exist_ok=True)
            failure.write_text(f"{type(e).__name__}: {e}\n\n{traceback.format_exc()}")
        except OSError:
            pass
        print(f"kwslab sagemaker entry: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, ValueError) else 1


if __name__ == "__main__":
    sys.exit(main())
