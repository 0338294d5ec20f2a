"""kwslab.sagemaker_entry: `kwslab run` under SageMaker's /opt/ml conventions, and the launcher."""
import ast
import json
import py_compile
from pathlib import Path

import pytest

from kwslab import cli, sagemaker_entry
from kwslab.sagemaker_entry import parse, run_arguments

REPO = Path(__file__).resolve().parents[1]
LAUNCHER = REPO / "docs" / "sagemaker" / "launch.py"
SMOKE = {"epochs": 1, "max-clips": 10, "augmented-copies": 1, "seed": 0}


def test_hyperparameters_become_kwslab_run_options():
    got = run_arguments({"epochs": "2", "max_clips": 15, "no-augment": "True", "deploy": "false"})
    assert got == ["--epochs", "2", "--max-clips", "15", "--no-augment"]


@pytest.mark.parametrize("hps, message", [
    ({"epoch": 3}, "unknown hyperparameter 'epoch'"),
    ({"name": "x"}, "set by the SageMaker entry point; use --model-dir"),
    ({"no-augment": "maybe"}, "expected true or false"),
])
def test_bad_hyperparameters_are_named(hps, message):
    with pytest.raises(ValueError, match=message):
        run_arguments(hps)


def test_argv_wins_over_sm_hps_and_paths_come_from_the_environment():
    env = {"SM_HPS": json.dumps({"epochs": 5, "words": "yes,no"}),
           "SM_CHANNEL_TRAINING": "/data", "SM_MODEL_DIR": "/m", "SM_OUTPUT_DATA_DIR": "/o"}
    paths, hps = parse(["--epochs", "7", "--model_dir", "/elsewhere"], env)
    assert hps == {"epochs": "7", "words": "yes,no"}
    assert (paths["data_dir"], paths["model_dir"], paths["output_data_dir"]) == ("/data", "/elsewhere", "/o")


def test_a_bad_hyperparameter_fails_the_job_with_a_failure_file(tmp_path):
    env = {"SM_OUTPUT_DIR": str(tmp_path / "output"), "SM_MODEL_DIR": str(tmp_path / "model")}
    assert sagemaker_entry.main(["--epoch", "3"], env) == 2
    assert "unknown hyperparameter 'epoch'" in (tmp_path / "output" / "failure").read_text()


@pytest.mark.slow
@pytest.mark.tflm
def test_opt_ml_layout_gives_kwslab_runs_tflite_bytes(data_dir, tmp_path):
    # /opt/ml laid out in a temp folder: the data channel is a link to the subset (nothing
    # copied), hyperparameters both in SM_HPS and in argv, as SageMaker passes them.
    ml = tmp_path / "opt" / "ml"
    channel = ml / "input" / "data" / "training"
    channel.parent.mkdir(parents=True)
    channel.symlink_to(Path(data_dir).resolve(), target_is_directory=True)
    env = {"SM_CHANNEL_TRAINING": str(channel), "SM_MODEL_DIR": str(ml / "model"),
           "SM_OUTPUT_DATA_DIR": str(ml / "output" / "data"), "SM_OUTPUT_DIR": str(ml / "output"),
           "SM_HPS": json.dumps(SMOKE)}
    argv = [x for k, v in SMOKE.items() for x in (f"--{k.replace('-', '_')}", str(v))]
    cache = tmp_path / "cache"
    assert sagemaker_entry.main([*argv, "--cache", str(cache)], env) == 0

    model_dir, out = ml / "model", ml / "output" / "data"
    for name in ("checkpoint.pt", "model.tflite", "model_data.h", "model_data.cpp",
                 "model_settings.h", "config.json"):
        assert (model_dir / name).is_file(), name
    for name in ("report.md", "report.json", "history.json", "config.json"):
        assert (out / name).is_file(), name
    assert list(out.glob("*.png"))
    assert not (ml / "output" / "failure").exists()

    ref = tmp_path / "runs"
    assert cli.main(["run", "--data", str(data_dir), "--runs", str(ref), "--name", "ref",
                     "--cache", str(cache), *[x for k, v in SMOKE.items() for x in (f"--{k}", str(v))]]) == 0
    assert (model_dir / "model.tflite").read_bytes() == (ref / "ref" / "model.tflite").read_bytes()
    assert (model_dir / "model_data.cpp").read_text() == (ref / "ref" / "model_data.cpp").read_text()
    report = json.loads((out / "report.json").read_text())
    assert report["config"]["train"]["epochs"] == 1 and report["config"]["train"]["seed"] == 0


def test_launcher_compiles_and_uses_paths_and_options_that_exist(tmp_path):
    py_compile.compile(str(LAUNCHER), cfile=str(tmp_path / "launch.pyc"), doraise=True)
    tree = ast.parse(LAUNCHER.read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and getattr(n.func, "id", None) == "PyTorch"]
    assert len(calls) == 1
    kw = {k.arg: k.value for k in calls[0].keywords}
    source_dir = REPO / ast.literal_eval(kw["source_dir"])
    assert (source_dir / ast.literal_eval(kw["entry_point"])).is_file()
    assert (source_dir / "requirements.txt").is_file()
    assert all((REPO / d / "__init__.py").is_file() for d in ast.literal_eval(kw["dependencies"]))
    run_arguments(ast.literal_eval(kw["hyperparameters"]))  # raises on a name kwslab run lacks
    fit = [n for n in ast.walk(tree) if isinstance(n, ast.Attribute) and n.attr == "fit"]
    assert fit, "the launcher must call estimator.fit with the S3 training channel"
    assert "torch" not in (source_dir / "requirements.txt").read_text().split("#")[-1].split()
