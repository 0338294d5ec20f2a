"""Both firmwares built for real against the device SDK snapshot (../shared/device_sdk or
$KWSLAB_DEVICE_SDK), with each platform's own flags: the PSoC 6 app to a linked ELF as
ModusToolbox builds it, the Nano 33 BLE sketch (Arduino-preprocessed .ino, core, PDM, Wire,
Chirale_TensorFLowLite) to objects and a link of everything but mbed OS's prebuilt library.

Needs arm-none-eabi-gcc/g++ (+ newlib), GNU make and arduino-builder; without them or the
SDK the tests skip, except under CI (env CI set), where they fail. Each build runs once per
test session (make -j2 in a temp folder).
"""
import os
import re
import subprocess
from pathlib import Path

import pytest

from kwslab import firmware_build as fb
from kwslab import firmware_sim as fs

pytestmark = pytest.mark.slow


def _sdk():
    try:
        fb.require_tools(fb.GCC, fb.GXX, "make", "arduino-builder", "arduino-ctags")
        return fb.require_sdk()
    except fb.DeviceSdkMissing as e:
        if os.environ.get("CI"):
            pytest.fail(f"{e} (required in CI)")
        pytest.skip(str(e))


def firmware_root(tmp_path_factory):
    """One build folder per test session, shared with tests/test_firmware_sim.py (the
    emulator's Chirale objects are the Nano build's, compiled once). $KWSLAB_FIRMWARE_BUILD
    keeps objects between local runs (CI leaves it unset: nothing is cached)."""
    env = os.environ.get("KWSLAB_FIRMWARE_BUILD")
    return Path(env) if env else tmp_path_factory.getbasetemp() / "firmware"


@pytest.fixture(scope="session")
def psoc6_build(tmp_path_factory):
    return fb.build_psoc6(firmware_root(tmp_path_factory) / "psoc6", _sdk(), jobs=2)


@pytest.fixture(scope="session")
def nano_build(tmp_path_factory):
    return fb.build_nano(firmware_root(tmp_path_factory) / "nano", _sdk(), jobs=2)


def _symbols(elf):
    out = subprocess.run(["arm-none-eabi-nm", "-C", str(elf)], capture_output=True, text=True,
                         check=True).stdout
    return {line[11:] for line in out.splitlines() if len(line) > 11 and line[9] != "U"}


def test_mtb_pins_name_refs_the_manifest_lists():
    """make getlibs fetches deps/*.mtb refs: each must be a tag, branch pattern or commit of
    the library as the device SDK's manifest records it (Chirale's tags carry a 'v')."""
    rows = {r["repository"].rstrip("/").rsplit("/", 1)[-1]: r for r in fb.read_manifest(_sdk())}
    pins = fb.mtb_pins()
    assert {p["name"] for p in pins} == {"TARGET_CY8CPROTO-062-4343W", "ml-tflite-micro",
                                         "retarget-io", "Chirale_TensorFlowLite"}
    for pin in pins:
        row = rows.get(pin["name"])
        assert row is not None, f"{pin['file']}: {pin['name']} is not in MANIFEST.tsv"
        refs = {row["ref"], row["commit"], *row["tags"].split(",")} - {"-", ""}
        assert pin["ref"] in refs, f"{pin['file']}: ref {pin['ref']!r} not in {sorted(refs)}"


def test_psoc6_app_links_without_warnings(psoc6_build):
    b = psoc6_build
    assert b.elf.is_file() and b.map_file.is_file()
    assert b.translation_units >= 70
    assert b.project_warnings == [], "\n".join(b.project_warnings)
    syms = _symbols(b.elf)
    # The app, the frontend and ml-tflite-micro's interpreter are linked in; with
    # TF_LITE_STRIP_ERROR_STRINGS nothing needs MicroPrintf (the library has none).
    assert {"kws::App::Step()", "FrontendProcessSamples", "tflite::MicroInterpreter::Invoke()",
            "cybsp_init"} <= syms
    assert not any(s.startswith("MicroPrintf") for s in syms)
    # -u _printf_float (the boot check prints %f) reaches the link, and with
    # COMPONENT_MW_CAT1CM0P + CORE_NAME_CM4_0 cybsp_init runs the generated clock/pin setup.
    assert "_printf_float" in syms and "cycfg_config_init" in syms
    sizes = fb.map_sizes(b.map_file, b.elf)
    assert 120_000 < sizes["flash_bytes"] < 400_000 and 20_000 < sizes["ram_bytes"] < 200_000
    assert {"kwslab", "ml-tflite-micro", "mtb-hal-cat1"} <= set(sizes["libraries"])


def test_nano_sketch_compiles_and_links_all_but_mbed_os(nano_build):
    b = nano_build
    assert b.elf.is_file() and b.translation_units >= 100
    assert b.project_warnings == [], "\n".join(b.project_warnings)
    syms = _symbols(b.elf)
    assert {"setup", "loop", "kws::App::Step()", "FrontendProcessSamples",
            "tflite::MicroInterpreter::Invoke()", "arm_convolve_wrapper_s8"} <= syms
    # What stays undefined is mbed OS (libmbed.a): nothing of the sketch, TFLite Micro,
    # CMSIS-NN or the frontend.
    ours = [s for s in b.undefined_symbols
            if re.search(r"kws|tflite|Frontend|kiss_fft|arm_nn|arm_convolve|g_kws|^(setup|loop)$", s)]
    assert ours == []
    assert b.undefined_symbols, "libmbed.a is absent, so mbed OS symbols must be undefined"
    sizes = fb.map_sizes(b.map_file, b.elf)
    assert 80_000 < sizes["flash_bytes"] < 600_000


def test_board_cadence_matches_the_host_twin_setting():
    """KWS_INFERENCE_EVERY_SLICES in the board mains is what kwslab's twin uses."""
    for board, path in (("nano33ble", fb.SKETCH_DIR / "kws_nano33ble.ino"),
                        ("psoc6", fb.PSOC6_APP_DIR / "source" / "main.cpp")):
        m = re.search(r"#define KWS_INFERENCE_EVERY_SLICES (\d+)", path.read_text())
        assert m and int(m.group(1)) == fs.BOARD_INFERENCE_EVERY_SLICES[board], path
