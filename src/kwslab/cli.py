"""`kwslab <command>`: thin wrappers over the package's functions.

    kwslab run        train + export one model on Speech Commands (the main job)
    kwslab download   fetch and unpack speech_commands_v0.02 (progress, checksum, resume)
    kwslab export     convert a checkpoint to int8 TFLite + C files (deploy folders)
    kwslab detect     stream a long WAV through features + TFLM model + RecognizeCommands
    kwslab serve      live demo page: browser microphone -> the same device twin
    kwslab firmware simulate   the board firmware on an emulated Cortex-M4F (QEMU)
    kwslab course     instructor tools: release the student tree, grade submissions
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from .config import PRESETS, TWELVE_CLASS_WORDS, Config, parse_overrides


def _words(text: str) -> tuple[str, ...]:
    if text in ("12", "twelve"):
        return TWELVE_CLASS_WORDS
    words = tuple(w.strip() for w in text.split(",") if w.strip())
    if not words:
        raise argparse.ArgumentTypeError("--words needs at least one word, e.g. yes,no")
    return words


def _add_data(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", default=None,
                   help="Speech Commands folder (default: $KWSLAB_DATA, data/speech_commands/, "
                        "then ../shared/speech_commands_subset)")


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="kwslab", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="train + export one model (the main job)")
    _add_data(p)
    p.add_argument("--model", default="tiny_conv", choices=sorted(PRESETS),
                   help="model recipe (kwslab.config.PRESETS)")
    p.add_argument("--words", type=_words, default=None,
                   help="comma-separated wanted words, or 12 for the 10-word/12-class task "
                        "(default: the recipe's, yes,no for tiny_conv, 12 for ds_cnn and tc_cnn)")
    p.add_argument("--epochs", type=int, default=None,
                   help="default: the recipe's (200 tiny_conv, 60 ds_cnn and tc_cnn)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=None,
                   help="peak learning rate (default: the recipe's, 1e-3 tiny_conv, 2e-3 ds_cnn)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-clips", type=int, default=None, help="cap clips per word and split (smoke runs)")
    p.add_argument("--augmented-copies", type=int, default=8)
    p.add_argument("--no-augment", action="store_true")
    p.add_argument("--name", default=None, help="run folder name under runs/")
    p.add_argument("--runs", default="runs", help="parent folder of run folders")
    p.add_argument("--cache", default=".cache/features", help="feature cache folder ('' disables)")
    p.add_argument("--deploy", action="store_true", help="write the C model into arduino/ and psoc6/")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                   help="change one config field, applied last (repeatable), e.g. "
                        "--set data.unknown_percentage=400 --set recognize.average_window_ms=500")

    p = sub.add_parser("download", help="download and unpack speech_commands_v0.02 (2.3 GB)")
    p.add_argument("dir", nargs="?", default=None, help="destination (default data/speech_commands)")

    p = sub.add_parser("export", help="checkpoint -> int8 .tflite + C files")
    _add_data(p)
    p.add_argument("checkpoint")
    p.add_argument("--out", default=None, help="default: the checkpoint's folder")
    p.add_argument("--deploy", action="store_true", help="also write into arduino/ and psoc6/")
    p.add_argument("--cache", default=".cache/features")

    p = sub.add_parser("detect", help="streaming detection over a long WAV (host twin of the device)")
    p.add_argument("wav", type=Path, help="16 kHz mono WAV to scan")
    p.add_argument("--model", type=Path, required=True, help="int8 .tflite model")
    p.add_argument("--config", type=Path, default=None,
                   help="config JSON saved with the model (default: Config())")
    p.add_argument("--arena-bytes", type=int, default=None, help="TFLM arena bytes")
    p.add_argument("--every-slices", type=int, default=1,
                   help="infer every N-th 20 ms slice, as a board does (Nano 3, PSoC 6 2)")

    p = sub.add_parser("serve", help="live demo page: microphone or WAV through the device twin")
    from .serve import add_serve_arguments

    add_serve_arguments(p)

    p = sub.add_parser("firmware", help="the board firmware on an emulated Cortex-M4F (QEMU)")
    fsub = p.add_subparsers(dest="firmware_command", required=True)
    from .firmware_sim import add_simulate_arguments

    add_simulate_arguments(fsub.add_parser("simulate", help="run the emulated board on a WAV"))

    p = sub.add_parser("course", help="instructor tools (release, grade); see course/README.md")
    _add_course(p)
    return ap


def _add_course(p: argparse.ArgumentParser) -> None:
    """`kwslab course [--repo R] release|nbgrader-source|grade ...` (kwslab.course)."""
    p.add_argument("--repo", type=Path, help="instructor repository (default: the one "
                   "containing the current folder)")
    sub = p.add_subparsers(dest="course_command", required=True)
    q = sub.add_parser("release", help="write the student tree")
    q.add_argument("out", type=Path)
    q.add_argument("--force", action="store_true", help="replace a non-empty OUT")
    q.add_argument("--untracked", action="store_true",
                   help="also release untracked files git does not ignore")
    q.add_argument("--repo-url", default=None, metavar="URL",
                   help="the students' GitHub repository (https://github.com/OWNER/NAME): "
                        "rewrites every Colab badge and clone URL")
    q.add_argument("--classroom", action="store_true", help="also write the GitHub Classroom "
                   "workflow (.github/workflows/classroom.yml, public graded tests)")
    q = sub.add_parser("nbgrader-source", help="write <course-dir>/source/<assignment>/")
    q.add_argument("--assignment", default="kwslab")
    q.add_argument("--course-dir", type=Path, help="nbgrader course folder (default: course/)")
    q.add_argument("--notebooks", nargs="+", help="notebook names (default: all)")
    q.add_argument("--force", action="store_true")
    q = sub.add_parser("gradescope", help="write the Gradescope autograder zip")
    q.add_argument("out", type=Path, help="the zip to write, e.g. autograder.zip")
    q = sub.add_parser("grade", help="autograde a folder of submissions")
    q.add_argument("submissions", type=Path, help="folder with one subfolder per student")
    q.add_argument("--out", type=Path, default=Path("grades"))
    q.add_argument("--jobs", type=int, default=1, help="submissions graded in parallel")
    q.add_argument("--time-limit", type=float, default=300,
                   help="hard wall-clock limit per submission, s")
    q.add_argument("--test-timeout", type=int, default=60, help="limit per test, s")
    q.add_argument("--memory-mb", type=int, default=4096, help="address-space limit, MiB")
    q.add_argument("--nbgrader-csv", type=Path,
                   help="`nbgrader export` CSV to merge (notebook scores)")
    q.add_argument("--sandbox", default="strict", choices=("strict", "userns", "none"),
                   help="isolation of student code (default strict; weaker modes only when "
                        "named, see course/README.md)")


def run_config(a: argparse.Namespace) -> Config:
    """The Config of ``kwslab run``: the model's recipe, then the options given."""
    cfg = Config.for_model(a.model, a.words)
    train = {"batch_size": a.batch_size, "seed": a.seed, "augment": not a.no_augment}
    if a.epochs is not None:
        train["epochs"] = a.epochs
    if a.lr is not None:
        train["learning_rate"] = a.lr
    cfg = cfg.replace(data={"max_clips_per_label": a.max_clips}, train=train)
    return cfg.replace(**parse_overrides(getattr(a, "set", None) or []))


def cmd_run(a) -> int:
    from .pipeline import run

    cfg = run_config(a)
    model, words = cfg.model.name, cfg.data.words
    name = a.name or ("default" if (model, words) == ("tiny_conv", ("yes", "no")) else
                      f"{model}_{len(words) + 2}class")
    report = run(cfg, a.data, Path(a.runs) / name, cache_dir=a.cache or None, deploy=a.deploy,
                 num_augmented=a.augmented_copies, progress=sys.stderr.isatty())
    acc = report["accuracy"]
    print(f"run {name}: float val {acc['float_val']:.3f}, float test {acc['float_test']:.3f}, "
          f"int8 test (TFLM) {acc['int8_test']:.3f}, TFLM=LiteRT {report['tflm_litert_agreement']:.3f}, "
          f"{report['tflite_bytes']:,} B .tflite ({report['device_tflite_bytes']:,} B on the board), arena {report['arena_bytes']} B, "
          f"{report['timings_s']['total']:.1f} s")
    print(f"report: {Path(a.runs) / name / 'report.md'}")
    return 0


def cmd_download(a) -> int:
    from .download import download_speech_commands

    kwargs = {} if a.dir is None else {"dest_dir": Path(a.dir)}
    path = download_speech_commands(**kwargs)
    print(f"Speech Commands ready in {path}; use it with --data {path} or KWSLAB_DATA={path}")
    return 0


def cmd_export(a) -> int:
    from . import export, frontend, train
    from .config import deploy_dirs

    model, cfg, _ = train.load_checkpoint(a.checkpoint)
    data = frontend.prepare_features(cfg, a.data, cache_dir=a.cache or None)
    out = Path(a.out) if a.out else Path(a.checkpoint).parent
    rep = export.export(model, cfg, data, out, deploy_dirs=deploy_dirs() if a.deploy else None,
                        model_name=cfg.model.name)
    rep.pop("int8_test_predictions")
    print(json.dumps({k: rep[k] for k in ("tflite_bytes", "device_tflite_bytes", "arena_bytes", "ops", "int8_test",
                                           "tflm_litert_agreement", "files")}, indent=1))
    return 0


def cmd_course(a) -> int:
    from . import course

    logging.getLogger().setLevel(logging.INFO)
    try:
        repo = a.repo or course.find_repo()
        if a.course_command == "release":
            r = course.release(repo, a.out, force=a.force, untracked=a.untracked,
                               repo_url=a.repo_url)
            print(f"released {len(r.files)} files to {r.out} ({r.solution_blocks} solution "
                  f"blocks stubbed, {r.hidden_blocks} hidden-test blocks removed, "
                  f"{len(r.left_out)} solution-only files left out)")
            if a.classroom:
                from .course import classroom

                print(f"wrote {classroom.add_to_release(repo, r.out)}")
        elif a.course_command == "nbgrader-source":
            from .course import nbgrader_course

            dest = nbgrader_course.write_source(repo, a.course_dir or repo / "course",
                                                a.assignment, a.notebooks, a.force)
            print(f"wrote {dest}")
        elif a.course_command == "gradescope":
            from .course import gradescope

            names = gradescope.build_bundle(repo, a.out)
            print(f"wrote {a.out} ({len(names)} files): upload it as the Gradescope autograder")
        else:
            from .course import autograde

            from .course.sandbox import SandboxUnavailable

            try:
                results = autograde.grade_all(repo, a.submissions, a.out, a.jobs,
                                              a.time_limit, a.test_timeout, a.memory_mb,
                                              a.nbgrader_csv, mode=a.sandbox)
            except SandboxUnavailable as e:
                print(f"kwslab course grade: error: {e}", file=sys.stderr)
                return 1
            print(autograde.summary_table(results))
            print(f"wrote {a.out / 'grades.csv'} and {len(results)} "
                  f"students/*/results.json + feedback.md (sandbox: {results[0].sandbox})")
    except (course.ReleaseError, FileExistsError, FileNotFoundError, ValueError) as e:
        print(f"kwslab course: error: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_detect(a) -> int:
    import numpy as np
    import soundfile as sf

    from . import detect

    cfg = Config() if a.config is None else Config.from_dict(json.loads(a.config.read_text()))
    audio, sr = sf.read(str(a.wav), dtype="int16", always_2d=False)
    if sr != cfg.frontend.sample_rate_hz or np.asarray(audio).ndim != 1:
        raise ValueError(f"{a.wav}: expected mono {cfg.frontend.sample_rate_hz} Hz audio, "
                         f"got {sr} Hz with shape {np.asarray(audio).shape}")
    for d in detect.detect_stream(audio, a.model.read_bytes(), cfg, arena_bytes=a.arena_bytes,
                                  every_slices=a.every_slices):
        print(f"{d.label}\t{d.time_ms}\t{d.score}")
    return 0


def cmd_serve(a) -> int:
    from . import serve

    return serve.main_serve(a)


def cmd_firmware(a) -> int:
    from . import firmware_sim

    firmware_sim.main_simulate(a)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if a.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    handler = {"run": cmd_run, "download": cmd_download, "export": cmd_export, "detect": cmd_detect,
               "serve": cmd_serve, "course": cmd_course, "firmware": cmd_firmware}
    try:
        return handler[a.command](a)
    except (FileNotFoundError, ValueError) as e:  # bad data folder, bad WAV, bad option: say it
        print(f"kwslab {a.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
