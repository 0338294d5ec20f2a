"""Firmware budget: flash and RAM of both boards' ELFs, and instructions per slice/inference.

Builds the PSoC 6 app and the Nano 33 BLE sketch (all but mbed OS's libmbed.a) against the
device SDK (``kwslab.firmware_build``) and prints flash/static RAM per ELF, by output
section and by library (from the linker map). Then runs the firmware in QEMU
(``kwslab.firmware_sim``, ``-icount shift=0``) on a real 1 s clip and reports median
instructions per 20 ms feature slice and per model invocation with each library build --
Chirale's CMSIS-NN kernels (Nano), ml-tflite-micro's (PSoC 6), and Chirale's TFLite Micro
with the reference int8 kernels (``chirale-reference``, CMSIS-NN vs reference) -- for the
committed tiny_conv and, with ``--ds-cnn DIR`` (a run folder with model_data.cpp/model_settings.h/config.json),
a ds_cnn, with milliseconds at 1 instruction per cycle at 64 MHz (Nano 33 BLE) and 150 MHz
(PSoC 6) -- lower bounds, since a Cortex-M4 needs more than one cycle for loads, branches
and flash wait states.

    python benchmarks/bench_firmware.py [--ds-cnn runs/ds_cnn_12class] [--json out.json]

Needs the device SDK (../shared/device_sdk or $KWSLAB_DEVICE_SDK), arm-none-eabi-gcc,
arduino-builder and qemu-system-arm.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

from kwslab import firmware_build as fb
from kwslab import firmware_sim as fs
from kwslab.config import Config


def _clip(data_dir: Path) -> np.ndarray:
    import soundfile as sf

    name = next(n for n in (data_dir / "testing_list.txt").read_text().split()
                if n.startswith("yes/"))
    a = sf.read(str(data_dir / name), dtype="int16")[0][:16000]
    return np.pad(a, (0, 16000 - len(a)))


def sizes(build_root: Path) -> dict:
    out = {}
    for name, build in (("psoc6", fb.build_psoc6), ("nano33ble", fb.build_nano)):
        r = build(build_root / name)
        s = fb.map_sizes(r.map_file, r.elf)
        s.update(translation_units=r.translation_units, build_s=round(r.seconds, 1),
                 project_warnings=len(r.project_warnings), warnings=len(r.warnings))
        out[name] = s
    return out


def counts(build_root: Path, audio: np.ndarray, ds_cnn: Path | None) -> list[dict]:
    models = [("tiny_conv", fb.SKETCH_DIR, Config())]
    if ds_cnn is not None:
        cfg = Config.from_dict(json.loads((ds_cnn / "config.json").read_text()))
        models.append(("ds_cnn", ds_cnn, cfg))
    rows = []
    for model, folder, cfg in models:
        for variant in (*fs.VARIANTS, fs.REFERENCE_VARIANT):
            try:
                res = fs.simulate(audio, folder, cfg, variant=variant, every_slices=1,
                                  build_dir=build_root / "sim")
            except fb.FirmwareBuildError as e:  # e.g. an op kernel missing from the snapshot
                print(f"{model}/{variant}: not buildable ({str(e).splitlines()[-2][:120]})",
                      file=sys.stderr)
                continue
            c = fs.instructions(res)
            rows.append({"model": model, "library": variant, **c,
                         **{f"invoke_ms_{b}": round(1000 * c["invoke_instructions"] / hz, 1)
                            for b, hz in fs.BOARD_CLOCK_HZ.items()},
                         **{f"slice_ms_{b}": round(1000 * c["slice_instructions"] / hz, 2)
                            for b, hz in fs.BOARD_CLOCK_HZ.items()}})
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=None, help="Speech Commands folder")
    ap.add_argument("--ds-cnn", type=Path, default=None, help="ds_cnn run folder")
    ap.add_argument("--build", type=Path, default=None, help="build folder (default: temp)")
    ap.add_argument("--json", type=Path, default=None, help="write the numbers here")
    a = ap.parse_args()
    from kwslab import dataset

    build_root = a.build or Path(tempfile.mkdtemp(prefix="kwslab-bench-fw-"))
    result = {"sizes": sizes(build_root)}
    for board, s in result["sizes"].items():
        print(f"\n{board}: flash {s['flash_bytes']:,} B, static RAM {s['ram_bytes']:,} B "
              f"({s['translation_units']} TUs, {s['warnings']} warnings, "
              f"{s['project_warnings']} in project code, {s['build_s']} s)")
        print("  by section: " + ", ".join(f"{k} {v:,}" for k, v in s["sections"].items()))
        print(f"  {'library':40s} {'flash':>9s} {'RAM':>9s}")
        for lib, v in s["libraries"].items():
            print(f"  {lib:40s} {v['flash_bytes']:9,d} {v['ram_bytes']:9,d}")
    audio = _clip(dataset.find_data_dir(a.data))
    result["instructions"] = counts(build_root, audio, a.ds_cnn)
    print("\n| model | TFLite Micro build | instr. / 20 ms slice | instr. / invocation | "
          "ms @ 64 MHz (Nano) | ms @ 150 MHz (PSoC 6) |")
    print("|---|---|---|---|---|---|")
    for r in result["instructions"]:
        print(f"| {r['model']} | {r['library']} | {r['slice_instructions']:,} | "
              f"{r['invoke_instructions']:,} | {r['invoke_ms_nano33ble']} | {r['invoke_ms_psoc6']} |")
    if a.json:
        a.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
