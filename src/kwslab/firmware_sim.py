"""Firmware in the loop: the boards' application on an emulated Cortex-M4F (QEMU).

The portable device code -- the feature provider with the micro frontend, the model runner
(TFLite Micro with CMSIS-NN kernels), RecognizeCommands, all driven by the boards' own
``kws::App`` -- is cross-compiled for a Cortex-M4F and run under ``qemu-system-arm
-machine mps2-an386`` with semihosting file I/O (``src/kwslab/emulator/sim_main.cpp``). The
harness feeds an int16 recording one 20 ms stride at a time and reads back, per inference,
the int8 input window, the int8 scores and the audio time, plus the "Heard ..." lines and
per-inference profile ticks. QEMU runs with ``-icount shift=0``: virtual time advances 1 ns
per instruction, so the board's 25 MHz timer counts one tick per 40 instructions.

Two library builds (:data:`VARIANTS`), both from the device SDK (:mod:`kwslab.firmware_build`):

* ``chirale``: Chirale_TensorFLowLite 2.0.0's TFLite Micro + CMSIS-NN sources, compiled with
  the Nano 33 BLE's flags (``-mfloat-abi=softfp``) -- the Nano's inference code;
* ``ml-tflite-micro``: Infineon's prebuilt library (hard float) with the PSoC 6 flags -- the
  PSoC 6's inference code.

A third, :data:`REFERENCE_VARIANT`, swaps Chirale's CMSIS-NN kernels for TFLite Micro's
reference int8 kernels, to count what CMSIS-NN saves. :func:`library_filterbank_tables`
runs the micro frontend's setup alone, on the host or on the emulated board, to compare its
tables with the ones the device installs (``kwslab.firmware.filterbank_tables``).

:func:`simulate` returns what the device computed; :func:`compare_with_host` checks it
against the Python side (frontend features, the TFLite Micro Python interpreter's scores on
the same features, ``kwslab.detect``'s detections at the same inference cadence).

Caveat on instruction counts: QEMU counts instructions, not cycles. A Cortex-M4 takes 1 to
several cycles per instruction (multiply-accumulate 1, loads 2, branches 2-4, flash wait
states at high clock), so milliseconds derived from counts at 1 instruction per cycle are
lower bounds.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from . import firmware_build as fb

log = logging.getLogger(__name__)

EMULATOR_DIR = Path(__file__).resolve().parent / "emulator"
VARIANTS = ("chirale", "ml-tflite-micro")
REFERENCE_VARIANT = "chirale-reference"
"""Chirale's TFLite Micro with TFLite Micro's reference int8 kernels for CONV_2D,
FULLY_CONNECTED and SOFTMAX (``emulator/reference_kernels.cpp``) instead of its CMSIS-NN
ones: for instruction counts of CMSIS-NN vs reference kernels (DEPTHWISE_CONV_2D stays
CMSIS-NN: the library ships no reference Prepare for it)."""
CMSIS_NN_REPLACED = ("conv.cpp", "fully_connected.cpp", "softmax.cpp")
TICK_INSTRUCTIONS = 40
"""Instructions per tick of the 25 MHz CMSDK timer under ``-icount shift=0`` (1 ns each)."""
BOARD_INFERENCE_EVERY_SLICES = {"nano33ble": 3, "psoc6": 2}
"""The boards' inference cadence (``KWS_INFERENCE_EVERY_SLICES`` in their mains)."""
BOARD_CLOCK_HZ = {"nano33ble": 64_000_000, "psoc6": 150_000_000}
QEMU = "qemu-system-arm"


@dataclasses.dataclass
class SimResult:
    """What the emulated device computed for one recording.

    Attributes:
        times_ms: int64 (K,) audio time at the end of each scored window.
        features: int8 (K, T*F) input windows.
        scores: int8 (K, C) model outputs.
        detections: [(label, time_ms, score)] from the "Heard ..." lines.
        profile_ticks: int64 (K, 4) capture, features, invoke, post per inference (25 MHz
            timer ticks; x TICK_INSTRUCTIONS = instructions).
        lines: every line the app printed.
    """

    times_ms: np.ndarray
    features: np.ndarray
    scores: np.ndarray
    detections: list
    profile_ticks: np.ndarray
    lines: list


def _chirale_units(sdk: Path) -> tuple[list, list]:
    """Chirale_TensorFLowLite's sources with exactly the Nano build's argv (so a shared
    build folder reuses the Nano's objects), minus system_setup.cpp (its DebugLog writes to
    the Arduino Serial; sim_main.cpp provides DebugLog)."""
    cflags, cxxflags, _ = fb.nano_flags(sdk)
    src = sdk / "libs" / fb.CHIRALE / "src"
    units = [(p, cflags if p.suffix == ".c" else cxxflags) for p in sorted(src.rglob("*"))
             if p.suffix in (".c", ".cpp") and p.name != "system_setup.cpp"]
    return units, cxxflags


def _psoc6_frontend_units(sdk: Path) -> tuple[list, list]:
    """The micro frontend's sources (from Chirale's copy: ml-tflite-micro's prebuilt library
    has no frontend) with the PSoC 6 flags and ml-tflite-micro's headers; and the C++ argv."""
    tflm = sdk / "libs" / "Infineon+ml-tflite-micro" / "COMPONENT_ML_TFLM"
    inc = tflm / "include"
    front = sdk / "libs" / fb.CHIRALE / "src"
    flags = [*fb.PSOC6_CORE_FLAGS, *fb.PSOC6_COMMON_FLAGS, "-DTF_LITE_STATIC_MEMORY",
             "-DTF_LITE_STRIP_ERROR_STRINGS", f"-I{inc}", f"-I{inc / 'flatbuffers' / 'include'}",
             f"-I{inc / 'gemmlowp'}", "-idirafter", str(front)]
    lib = front / "tensorflow" / "lite" / "experimental" / "microfrontend" / "lib"
    units = [(p, [fb.GCC, *flags] if p.suffix == ".c" else [fb.GXX, *fb.PSOC6_CXX_FLAGS, *flags])
             for p in sorted(lib.iterdir()) if p.suffix in (".c", ".cpp", ".cc")]
    return units, [fb.GXX, *fb.PSOC6_CXX_FLAGS, *flags]


def build_sim(model_dir: Path, build_dir: Path, variant: str = "chirale", every_slices: int = 1,
              sdk: Path | None = None, jobs: int = 2) -> Path:
    """Cross-compile the emulator firmware for one model folder and library variant.

    Args:
        model_dir: folder with ``model_data.h/.cpp`` and ``model_settings.h`` (an export).
        build_dir: object/ELF folder (objects are reused across models and calls).
        variant: "chirale" (Nano's TFLM), "ml-tflite-micro" (PSoC 6's) or
            :data:`REFERENCE_VARIANT`.
        every_slices: the inference cadence (KWS_INFERENCE_EVERY_SLICES).
    Returns:
        the ELF path.
    Raises:
        ValueError: unknown variant. DeviceSdkMissing, FirmwareBuildError: as firmware_build.
    """
    if variant not in (*VARIANTS, REFERENCE_VARIANT):
        raise ValueError(f"variant {variant!r}: expected one of {(*VARIANTS, REFERENCE_VARIANT)}")
    sdk = fb.require_sdk(sdk)
    fb.require_tools(fb.GCC, fb.GXX, "make")
    model_dir = Path(model_dir).resolve()
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    shared = fb.SKETCH_DIR / "src"
    warn = ["-Wall", "-Wextra", "-Werror"]
    if variant in ("chirale", REFERENCE_VARIANT):
        units, cxx = _chirale_units(sdk)
        archives = []
        cxx = [a for a in cxx if a not in ("-c", "-MMD")]
        if variant == REFERENCE_VARIANT:
            units = [(p, a) for p, a in units
                     if not (p.parent.name == "cmsis_nn" and p.name in CMSIS_NN_REPLACED)]
    else:
        units, cxx = _psoc6_frontend_units(sdk)
        tflm = sdk / "libs" / "Infineon+ml-tflite-micro" / "COMPONENT_ML_TFLM"
        archives = sorted((tflm / "COMPONENT_CM4" / "COMPONENT_HARDFP").rglob("*.a"))
    # Our code with -Wall -Wextra -Werror (the libraries' headers as system headers, so only
    # our code's warnings count); the model folder first on the include path.
    system = [x for f in cxx if f.startswith("-I") for x in ("-isystem", f[2:])]
    ours = [cxx[0], f"-I{model_dir}", *cxx[1:], *system, *warn, f"-I{shared}"]
    units += [(p, ours) for p in sorted((shared / "kws").glob("*.cpp"))]
    units += [(p, ours) for p in sorted((shared / "kws_device").glob("*.cpp"))]
    units += [(EMULATOR_DIR / "sim_main.cpp",
               [*ours, f"-DKWS_INFERENCE_EVERY_SLICES={int(every_slices)}"]),
              (EMULATOR_DIR / "startup.cpp", ours),
              *([(EMULATOR_DIR / "reference_kernels.cpp", ours)] if variant == REFERENCE_VARIANT
                else []),
              (model_dir / "model_data.cpp", ours),
              (EMULATOR_DIR / "runtime.c", [fb.GCC, *[f for f in cxx[1:] if f.startswith("-m")],
                                            "-mthumb", "-Os", *warn])]
    objects, _ = fb._run_units(units, build_dir, jobs)
    tag = hashlib.sha256(f"{model_dir}{variant}{every_slices}".encode()).hexdigest()[:10]
    elf = build_dir / f"sim_{variant}_{tag}.elf"
    base = [f for f in cxx[1:] if f.startswith("-m")] + ["-mthumb"]
    link = [fb.GXX, *dict.fromkeys(base), "--specs=nano.specs",
            "--specs=rdimon.specs", "-nostartfiles", f"-T{EMULATOR_DIR / 'mps2_an386.ld'}",
            "-Wl,--gc-sections",
            "-o", str(elf), f"-Wl,-Map,{elf.with_suffix('.map')}", *map(str, objects),
            *map(str, archives), "-lm"]
    fb._link(link, "emulator")
    return elf


FRONTEND_LIB = Path("tensorflow") / "lite" / "experimental" / "microfrontend" / "lib"
"""The micro frontend's C library inside Chirale_TensorFLowLite's ``src`` (both boards
compile it from there: ml-tflite-micro's prebuilt library does not carry it)."""


def library_filterbank_tables(model_dir: Path, build_dir: Path, target: str = "chirale",
                              sdk: Path | None = None) -> dict:
    """The filterbank tables the micro frontend library itself computes on a target.

    Builds ``emulator/frontend_tables.cpp`` with the SDK's micro frontend sources and the
    model folder's ``model_settings.h`` (its FrontendConfig), and runs it: ``"host"``
    compiles with the host's gcc (glibc's maths, as TensorFlow's frontend op uses it;
    ``-ffp-contract=off``, as an x86-64 build without FMA computes);
    ``"chirale"`` / ``"ml-tflite-micro"`` cross-compile with the flags the emulator firmware
    of that variant uses (the Nano's / the PSoC 6's) and run under QEMU.

    Returns:
        dict like :func:`kwslab.firmware.filterbank_tables` (ints and int16 arrays).
    Raises:
        ValueError: unknown target. RuntimeError: the program failed.
        DeviceSdkMissing, FirmwareBuildError: as firmware_build.
    """
    sdk = fb.require_sdk(sdk)
    src = sdk / "libs" / fb.CHIRALE / "src"
    lib = sorted(p for p in (src / FRONTEND_LIB).iterdir() if p.suffix in (".c", ".cpp"))
    model_dir = Path(model_dir).resolve()
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    probe = EMULATOR_DIR / "frontend_tables.cpp"
    tag = hashlib.sha256(f"{model_dir}{target}".encode()).hexdigest()[:10]
    exe = build_dir / f"frontend_tables_{target}_{tag}"
    if target == "host":
        fb.require_tools("gcc", "g++", "make")
        # No contraction on any host (x86-64 has no FMA by default; aarch64 would fuse).
        cc = ["gcc", "-O2", "-ffp-contract=off", f"-I{src}"]
        cxx = ["g++", "-O2", "-ffp-contract=off", f"-I{src}"]
        units = [(p, cc if p.suffix == ".c" else cxx) for p in lib]
        units.append((probe, [*cxx, f"-I{model_dir}"]))
        objects, _ = fb._run_units(units, build_dir, 2)
        fb._link(["g++", "-o", str(exe), *map(str, objects), "-lm"], "frontend tables (host)")
        out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
        text, code = out.stdout, out.returncode
    elif target in VARIANTS:
        fb.require_tools(fb.GCC, fb.GXX, "make", QEMU)
        if target == "chirale":
            units, cxx = _chirale_units(sdk)
            units = [(p, [a for a in argv if a not in ("-c", "-MMD")]) for p, argv in units
                     if p.parent == src / FRONTEND_LIB]
            cxx = [a for a in cxx if a not in ("-c", "-MMD")]
        else:
            units, cxx = _psoc6_frontend_units(sdk)
        ours = [cxx[0], f"-I{model_dir}", *cxx[1:]]
        units += [(probe, ours), (EMULATOR_DIR / "startup.cpp", ours),
                  (EMULATOR_DIR / "runtime.c", [fb.GCC, *[f for f in cxx[1:] if f.startswith("-m")],
                                                "-mthumb", "-Os"])]
        objects, _ = fb._run_units(units, build_dir, 2)
        base = list(dict.fromkeys([f for f in cxx[1:] if f.startswith("-m")] + ["-mthumb"]))
        exe = exe.with_suffix(".elf")
        fb._link([fb.GXX, *base, "--specs=nano.specs", "--specs=rdimon.specs", "-nostartfiles",
                  f"-T{EMULATOR_DIR / 'mps2_an386.ld'}", "-Wl,--gc-sections", "-o", str(exe),
                  *map(str, objects), "-lm"], f"frontend tables ({target})")
        out = subprocess.run([QEMU, "-machine", "mps2-an386", "-cpu", "cortex-m4", "-nographic",
                              "-monitor", "none", "-serial", "none", "-semihosting-config",
                              "enable=on,target=native", "-kernel", str(exe)],
                             capture_output=True, text=True, timeout=120)
        text, code = out.stdout, out.returncode
    else:
        raise ValueError(f"target {target!r}: expected 'host' or one of {VARIANTS}")
    lines = dict(line.split(" ", 1) for line in text.splitlines() if " " in line)
    if code != 0 or "done" not in text.splitlines():
        raise RuntimeError(f"{exe.name} failed (exit {code}):\n{text[-2000:]}")
    tables = {k: np.array(v.split(), np.int16) for k, v in lines.items()
              if k.startswith(("channel_", "weights", "unweights"))}
    return {**{k: int(lines[k]) for k in ("num_channels", "start_index", "end_index")}, **tables}


def run_sim(elf: Path, audio_int16: np.ndarray, feature_elements: int, category_count: int,
            labels, work_dir: Path | None = None, timeout_s: float = 600) -> SimResult:
    """Run the emulator firmware on a recording.

    Args:
        elf: from :func:`build_sim`.
        audio_int16: int16 mono PCM at 16 kHz, shape (S,).
        feature_elements: T * F of the model input; category_count: C.
        labels: class names (to check the "Heard" lines).
        work_dir: QEMU's working folder (audio.raw, trace.bin); a temp folder if None.
    Returns:
        SimResult.
    Raises:
        RuntimeError: QEMU failed, timed out or the firmware reported an error.
    """
    fb.require_tools(QEMU)
    audio = np.asarray(audio_int16)
    if audio.dtype != np.int16 or audio.ndim != 1:
        raise TypeError(f"audio must be 1-D int16, got {audio.dtype} {audio.shape}")
    with tempfile.TemporaryDirectory(prefix="kwslab-sim-") as tmp:
        work = Path(work_dir) if work_dir is not None else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        audio.astype("<i2").tofile(work / "audio.raw")
        cmd = [QEMU, "-machine", "mps2-an386", "-cpu", "cortex-m4", "-nographic",
               "-monitor", "none", "-serial", "none", "-icount", "shift=0",
               "-semihosting-config", "enable=on,target=native", "-kernel", str(elf)]
        try:
            out = subprocess.run(cmd, cwd=work, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired as e:
            raise RuntimeError(f"{elf.name}: QEMU did not finish in {timeout_s} s") from e
        lines = out.stdout.splitlines()
        if out.returncode != 0 or "done" not in lines:
            raise RuntimeError(f"{elf.name}: firmware failed (exit {out.returncode}):\n"
                               f"{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
        raw = (work / "trace.bin").read_bytes()
    rec = 4 + feature_elements + category_count
    if len(raw) % rec:
        raise RuntimeError(f"trace.bin: {len(raw)} bytes is not a multiple of {rec}")
    arr = np.frombuffer(raw, np.uint8).reshape(-1, rec)
    times = arr[:, :4].copy().view("<i4").reshape(-1).astype(np.int64)
    feats = arr[:, 4:4 + feature_elements].view(np.int8)
    scores = arr[:, 4 + feature_elements:].view(np.int8)
    dets = []
    for line in lines:
        m = re.match(r"Heard (\S+) \(score (\d+)\) @(\d+) ms", line)
        if m:
            if m.group(1) not in labels:
                raise RuntimeError(f"unknown label in {line!r}")
            dets.append((m.group(1), int(m.group(3)), int(m.group(2))))
    prof = [[int(v) for v in re.findall(r"=(\d+)", line)[:4]]
            for line in lines if line.startswith("profile_us")]
    return SimResult(times, feats.copy(), scores.copy(), dets,
                     np.asarray(prof, np.int64).reshape(-1, 4), lines)


def model_folder(tflite: bytes, cfg, out_dir: Path, arena_bytes: int, model_name: str) -> Path:
    """Write the deploy files of an int8 model (model_data.*, model_settings.h) to out_dir."""
    from . import export, firmware

    quant = export.io_quantization(tflite)
    firmware.write_deploy_files(
        tflite, cfg, out_dirs=[Path(out_dir)], input_scale=quant["input"]["scale"],
        input_zero_point=quant["input"]["zero_point"],
        ops=list(dict.fromkeys(export.op_names(tflite))), arena_bytes=arena_bytes,
        model_name=model_name)
    return Path(out_dir)


def host_twin(audio_int16: np.ndarray, tflite: bytes, cfg, every_slices: int):
    """The Python side at the device's cadence: (times, features (K, T*F), scores, detections).

    Features: ``kwslab.frontend`` over the whole recording; windows ending on the frames the
    device scores (the first full window, then every ``every_slices``-th frame); scores:
    the TFLite Micro Python interpreter on those windows; detections:
    ``kwslab.detect.recognize`` over them.
    """
    from . import detect, frontend

    raw = frontend.compute_raw(np.asarray(audio_int16), cfg.frontend)
    feats = frontend.to_int8(raw)
    t, f = cfg.frontend.feature_shape
    times, scores = detect.stream_scores(feats, tflite, cfg.frontend, every_slices=every_slices)
    windows = np.stack([feats[k:k + t].reshape(-1)
                        for k in range(0, len(feats) - t + 1, every_slices)]).astype(np.int8)
    dets = detect.recognize(times, scores, list(cfg.data.labels), cfg.recognize)
    return times, windows, scores, [(d.label, d.time_ms, d.score) for d in dets]


def simulate(audio_int16: np.ndarray, model_dir: Path, cfg, *, variant: str = "chirale",
             every_slices: int = 1, build_dir: Path | None = None,
             sdk: Path | None = None) -> SimResult:
    """Build (cached in build_dir) and run the emulated firmware on one recording."""
    build_dir = Path(build_dir) if build_dir else Path(tempfile.gettempdir()) / "kwslab-firmware-sim"
    elf = build_sim(model_dir, build_dir, variant, every_slices, sdk)
    t, f = cfg.frontend.feature_shape
    return run_sim(elf, audio_int16, t * f, len(cfg.data.labels), list(cfg.data.labels))


def instructions(result: SimResult, every_slices: int = 1) -> dict:
    """Median instructions per 20 ms feature slice and per model invocation.

    The app profiles each inference's Step: "features" covers the slices fed in that step
    (one per step in the harness), "invoke" the model.
    """
    ticks = result.profile_ticks
    if len(ticks) == 0:
        raise ValueError("no profile lines: the recording is shorter than one window")
    return {"slice_instructions": int(np.median(ticks[:, 1]) * TICK_INSTRUCTIONS),
            "invoke_instructions": int(np.median(ticks[:, 2]) * TICK_INSTRUCTIONS),
            "inferences": int(len(ticks))}


def add_simulate_arguments(parser) -> None:
    """Arguments of ``kwslab firmware simulate``."""
    parser.add_argument("wav", type=Path, help="16 kHz mono 16-bit WAV (a clip or a long recording)")
    parser.add_argument("--model-dir", type=Path, default=fb.SKETCH_DIR,
                        help="folder with model_data.cpp + model_settings.h (default: the sketch's)")
    parser.add_argument("--config", type=Path, default=None,
                        help="config JSON saved with the model (default: Config())")
    parser.add_argument("--board", choices=sorted(BOARD_INFERENCE_EVERY_SLICES), default="nano33ble",
                        help="nano33ble: Chirale's TFLite Micro (softfp); psoc6: ml-tflite-micro")
    parser.add_argument("--every-slices", type=int, default=None,
                        help="inference cadence in 20 ms slices (default: the board's)")
    parser.add_argument("--build-dir", type=Path, default=None, help="object cache folder")
    parser.add_argument("--compare", action="store_true",
                        help="also run the host twin and report whether everything matches")


def main_simulate(args) -> dict:
    """``kwslab firmware simulate``: run the emulated board on a WAV; print detections and
    instructions per slice and per inference (and the host comparison with --compare)."""
    import json

    import soundfile as sf

    from .config import Config

    cfg = Config()
    if args.config is not None:
        cfg = Config.from_dict(json.loads(Path(args.config).read_text()))
    if not Path(args.wav).is_file():
        raise FileNotFoundError(f"{args.wav}: no such WAV file")
    audio, sr = sf.read(str(args.wav), dtype="int16", always_2d=False)
    if sr != cfg.frontend.sample_rate_hz or np.asarray(audio).ndim != 1:
        raise ValueError(f"{args.wav}: expected mono {cfg.frontend.sample_rate_hz} Hz audio, "
                         f"got {sr} Hz with shape {np.asarray(audio).shape}")
    if len(audio) < cfg.frontend.clip_samples:
        audio = np.pad(audio, (0, cfg.frontend.clip_samples - len(audio)))
    every = args.every_slices or BOARD_INFERENCE_EVERY_SLICES[args.board]
    variant = "chirale" if args.board == "nano33ble" else "ml-tflite-micro"
    res = simulate(audio, args.model_dir, cfg, variant=variant, every_slices=every,
                   build_dir=args.build_dir)
    counts = instructions(res)
    for label, time_ms, score in res.detections:
        print(f"{label}\t{time_ms}\t{score}")
    clock = BOARD_CLOCK_HZ[args.board]
    print(f"# {args.board} ({variant}), one inference every {every} slices: "
          f"{counts['inferences']} inferences, {counts['slice_instructions']:,} instructions per "
          f"20 ms slice, {counts['invoke_instructions']:,} per inference "
          f"(>= {1000 * counts['invoke_instructions'] / clock:.1f} ms at {clock / 1e6:.0f} MHz)")
    out = {"detections": res.detections, **counts}
    if args.compare:
        from . import firmware

        tflite = firmware.parse_c_array((Path(args.model_dir) / "model_data.cpp").read_text())
        times, feats, scores, dets = host_twin(audio, tflite, cfg, every)
        same = (np.array_equal(times, res.times_ms) and np.array_equal(feats, res.features)
                and np.array_equal(scores, res.scores) and dets == res.detections)
        print(f"# host twin (kwslab frontend + TFLite Micro Python + RecognizeCommands): "
              f"{'identical' if same else 'DIFFERENT'}")
        out["identical_to_host"] = same
    return out
