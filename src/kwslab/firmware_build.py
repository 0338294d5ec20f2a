"""Build both firmwares against the boards' real libraries, as their own tools would.

Makers build ``arduino/kws_nano33ble`` with the Arduino IDE / arduino-cli and
``psoc6/kws_psoc6`` with ModusToolbox; neither tool is on a CI machine. This module
rebuilds both from a read-only snapshot of the libraries' sources (the *device SDK*:
``$KWSLAB_DEVICE_SDK``, default ``../shared/device_sdk`` beside the checkout; see its
``README.md`` and ``MANIFEST.tsv``) with each platform's real compiler flags:

* **PSoC 6** (:func:`build_psoc6`): the app's own ``Makefile`` is evaluated by GNU make with
  a stand-in for ModusToolbox's ``start.mk`` that only prints its variables (COMPONENTS,
  DEFINES, SOURCES, INCLUDES, LDFLAGS, ...); sources are then discovered the way
  ModusToolbox does it (every ``.c/.cpp/.S`` under the app and its libraries, minus
  ``.cyignore`` entries and ``COMPONENT_*``/``TARGET_*``/``TOOLCHAIN_*`` folders that do
  not match), compiled with the GCC_ARM Release flags of ``recipe-make-cat1a``
  (``-mfloat-abi=hard``) and linked into an ELF with a map file.
* **Nano 33 BLE** (:func:`build_nano`): the ``.ino`` goes through the Arduino preprocessing
  step (Debian's ``arduino-builder -preprocess`` with ``arduino-ctags``); the sketch, the
  core, the PDM library and Chirale_TensorFLowLite are compiled with the variant's
  ``cflags.txt``/``cxxflags.txt``/``defines.txt``/``includes.txt``
  (``-mfloat-abi=softfp -std=gnu++14``) and linked with its linker script and
  ``ldflags.txt`` -- everything except mbed OS's prebuilt ``libmbed.a``, which the snapshot
  does not carry, so the link leaves mbed OS's symbols undefined (listed in the result).

Both builds run ``make -j`` over a generated Makefile and report every compiler warning;
:func:`map_sizes` reads flash and RAM per section and per library from the map file
(``benchmarks/bench_firmware.py`` prints them).

References:
  1) ModusToolbox 3 build system (core-make ``start.mk``, recipe-make-cat1a
     ``GCC_ARM.mk``): auto-discovery, ``.cyignore``, COMPONENT/TARGET/TOOLCHAIN filters.
  2) ArduinoCore-mbed 4.6.0 ``platform.txt`` (compile/link recipes) and Arduino's sketch
     build process (``.ino`` preprocessing with ctags prototypes).
"""
from __future__ import annotations

import csv
import dataclasses
import logging
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[2]
SKETCH_DIR = REPO_ROOT / "arduino" / "kws_nano33ble"
PSOC6_APP_DIR = REPO_ROOT / "psoc6" / "kws_psoc6"
SDK_ENV = "KWSLAB_DEVICE_SDK"
"""Environment variable naming the device SDK folder."""

GCC = "arm-none-eabi-gcc"
GXX = "arm-none-eabi-g++"
SOURCE_SUFFIXES = {".c", ".cpp", ".cc", ".S", ".s"}

# recipe-make-cat1a, GCC_ARM, CONFIG=Release, VFP_SELECT=hardfp.
PSOC6_CORE_FLAGS = ["-mcpu=cortex-m4", "--specs=nano.specs", "-mfloat-abi=hard",
                    "-mfpu=fpv4-sp-d16"]
PSOC6_COMMON_FLAGS = ["-mthumb", "-ffunction-sections", "-fdata-sections", "-ffat-lto-objects",
                      "-g", "-Wall", "-pipe", "-Os", "-DNDEBUG"]
PSOC6_CXX_FLAGS = ["-fno-rtti", "-fno-exceptions"]
PSOC6_DEVICE = "CY8C624ABZI-S2D44"
PSOC6_TARGET = "CY8CPROTO-062-4343W"
PSOC6_BSP_COMPONENTS = ["CAT1", "CAT1A", "CM4", "CM0P_SLEEP", "PSOC6_02", "BSP_DESIGN_MODUS"]
PSOC6_LIBS = ["Infineon+TARGET_CY8CPROTO-062-4343W", "Infineon+cat1cm0p", "Infineon+cmsis",
              "Infineon+core-lib", "Infineon+ml-tflite-micro", "Infineon+mtb-hal-cat1",
              "Infineon+mtb-pdl-cat1", "Infineon+retarget-io",
              "spaziochirale+Chirale_TensorFlowLite"]
PSOC6_GENERATED_SOURCE = ("Infineon+mtb-xensiv-3d-magnetic-sensor-tlx493d",
                          "bsps/TARGET_APP_CY8CPROTO-062-4343W/config/GeneratedSource")

# ArduinoCore-mbed platform.txt for arduino:mbed_nano:nano33ble.
NANO_BOARD_FLAGS = ["-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=softfp"]
NANO_DEFINES = ["-DARDUINO=10607", "-DARDUINO_ARDUINO_NANO33BLE", "-DARDUINO_ARCH_MBED_NANO",
                "-DARDUINO_ARCH_MBED", "-DARDUINO_ARCH_NRF52840",
                "-DARDUINO_LIBRARY_DISCOVERY_PHASE=0"]
NANO_CORE = "arduino+ArduinoCore-mbed"
CHIRALE = "spaziochirale+Chirale_TensorFlowLite"
CHIRALE_LIBRARY_NAME = "Chirale_TensorFLowLite"
NANO_PLATFORM_LIBRARIES = ("PDM", "Wire")
"""The core's libraries the sketch uses: PDM (microphone) and Wire (Chirale's peripherals.h)."""


class DeviceSdkMissing(FileNotFoundError):
    """The device SDK snapshot or a cross tool is not installed."""


class FirmwareBuildError(RuntimeError):
    """A compile or link step failed; the message holds the compiler's output."""


@dataclasses.dataclass
class BuildResult:
    """What one firmware build produced.

    Attributes:
        name: "psoc6" or "nano".
        elf: the linked ELF; map_file: its linker map.
        translation_units: number of compiled sources.
        warnings: every "warning:" line of the compiles and the link.
        project_warnings: the warnings located in this repository's files.
        undefined_symbols: symbols the link left undefined (Nano: mbed OS's).
        seconds: wall time of compile + link.
    """

    name: str
    elf: Path
    map_file: Path
    translation_units: int
    warnings: list
    project_warnings: list
    undefined_symbols: list
    seconds: float


def sdk_dir() -> Path:
    """The device SDK folder: ``$KWSLAB_DEVICE_SDK`` or ``../shared/device_sdk``."""
    env = os.environ.get(SDK_ENV)
    return Path(env) if env else REPO_ROOT.parent / "shared" / "device_sdk"


def require_tools(*tools: str) -> dict:
    """Paths of the named executables.

    Raises:
        DeviceSdkMissing: naming the missing tools and the Debian packages that have them.
    """
    found = {t: shutil.which(t) for t in tools}
    missing = [t for t, p in found.items() if p is None]
    if missing:
        raise DeviceSdkMissing(
            f"not found: {', '.join(missing)} (Debian: apt-get install gcc-arm-none-eabi "
            "libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib qemu-system-arm "
            "arduino-builder)")
    return found


def require_sdk(sdk: Path | None = None) -> Path:
    """The SDK folder, checked to hold ``libs/`` and ``MANIFEST.tsv``.

    Raises:
        DeviceSdkMissing: if it does not (set $KWSLAB_DEVICE_SDK).
    """
    sdk = Path(sdk) if sdk is not None else sdk_dir()
    if not (sdk / "MANIFEST.tsv").is_file() or not (sdk / "libs").is_dir():
        raise DeviceSdkMissing(f"{sdk}: no device SDK (MANIFEST.tsv + libs/); set ${SDK_ENV} "
                               "to the snapshot of the board libraries")
    return sdk


def read_manifest(sdk: Path | None = None) -> list[dict]:
    """Rows of the SDK's ``MANIFEST.tsv`` (library, repository, ref, commit, tags, ...)."""
    path = require_sdk(sdk) / "MANIFEST.tsv"
    with path.open(newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def mtb_pins(app_dir: Path = PSOC6_APP_DIR) -> list[dict]:
    """The ``deps/*.mtb`` pins: file, repository name, ref (tag, branch pattern or commit).

    ``.mtb`` form: ``URL#REF#DESTINATION`` (``mtb://NAME#...`` for Infineon's manifest).
    Raises:
        ValueError: naming the file if a line does not have that form.
    """
    pins = []
    for f in sorted((Path(app_dir) / "deps").glob("*.mtb")):
        parts = f.read_text().strip().split("#")
        if len(parts) != 3 or not parts[0] or not parts[1]:
            raise ValueError(f"{f}: expected URL#REF#PATH, got {f.read_text().strip()!r}")
        name = parts[0].rstrip("/").rsplit("/", 1)[-1]
        pins.append({"file": f.name, "url": parts[0], "name": name, "ref": parts[1]})
    return pins


# ---------------------------------------------------------------------------------------
# ModusToolbox-style discovery

def _cyignore(directory: Path, make_vars: dict) -> set[Path]:
    f = directory / ".cyignore"
    if not f.is_file():
        return set()
    out = set()
    for line in f.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        for name, value in make_vars.items():
            line = line.replace(f"$({name})", value)
        p = Path(line)
        out.add((p if p.is_absolute() else directory / p).resolve())
    return out


def discover(root: Path, components, target: str, make_vars: dict | None = None,
             stop_at=()) -> tuple[list[Path], list[Path], list[Path]]:
    """Sources, include folders and static libraries under root, as ModusToolbox finds them.

    A folder is skipped if a ``.cyignore`` above it names it, or it is ``COMPONENT_X``
    with X not in components, ``TARGET_X`` with X != target, ``TOOLCHAIN_X`` with
    X != GCC_ARM, or it is listed in stop_at (paths relative to root: ``props.json``'s
    ``stop-at``, no include folders below it).

    Returns:
        (sources, include_dirs, archives), each sorted.
    """
    components = set(components)
    make_vars = make_vars or {}
    sources, includes, archives = [], [], []
    ignored: set[Path] = set()
    stops = {(root / s).resolve() for s in stop_at}

    def keep(d: Path) -> bool:
        n = d.name
        if n.startswith("."):
            return False
        if n.startswith("COMPONENT_") and n[len("COMPONENT_"):] not in components:
            return False
        if n.startswith("TARGET_") and n[len("TARGET_"):] != target:
            return False
        if n.startswith("TOOLCHAIN_") and n[len("TOOLCHAIN_"):] != "GCC_ARM":
            return False
        return d.resolve() not in ignored

    def walk(d: Path):
        ignored.update(_cyignore(d, make_vars))
        entries = sorted(d.iterdir())
        files = [e for e in entries if e.is_file()]
        includes.append(d)  # every searched folder is an include folder
        sources.extend(f for f in files if f.suffix in SOURCE_SUFFIXES and f.resolve() not in ignored)
        archives.extend(f for f in files if f.suffix == ".a")
        if d.resolve() in stops:
            return
        for e in entries:
            if e.is_dir() and keep(e):
                walk(e)

    walk(root)
    return sources, includes, archives


_START_MK = r"""
kwslab-vars:
	@$(foreach v,COMPONENTS DEFINES SOURCES INCLUDES CFLAGS CXXFLAGS ASFLAGS LDFLAGS LDLIBS VFP_SELECT TARGET APPNAME CONFIG TOOLCHAIN,echo '$(v)=$(strip $($(v)))';)
"""


def psoc6_make_vars(app_dir: Path, search: dict, work: Path) -> dict:
    """The app Makefile's variables, evaluated by GNU make with a stand-in ``start.mk``.

    Args:
        app_dir: the ModusToolbox app (its Makefile).
        search: ``SEARCH_<lib>`` paths to define (as ``make getlibs`` would).
        work: scratch folder for the stand-in tools folder.
    Returns:
        dict of variable name -> value string.
    """
    tools = work / "tools_kwslab"
    (tools / "make").mkdir(parents=True, exist_ok=True)
    (tools / "make" / "start.mk").write_text(_START_MK)
    cmd = ["make", "--no-print-directory", "-C", str(app_dir), f"CY_TOOLS_PATHS={tools}",
           *(f"SEARCH_{k}={v}" for k, v in search.items()), "kwslab-vars"]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        raise FirmwareBuildError(f"{app_dir / 'Makefile'}: make failed:\n{out.stderr}")
    values = {}
    for line in out.stdout.splitlines():
        if "=" in line and not line.startswith("Tools Directory"):
            k, v = line.split("=", 1)
            values[k] = v
    return values


# ---------------------------------------------------------------------------------------
# Generic compile + link through a generated Makefile

def _obj_name(src: Path) -> str:
    """``<library>/<flattened path>.o``: the library is "kwslab" for this repository's
    files, else the device SDK folder (``libs/<library>/``) the source lives in."""
    src = src.resolve()
    try:
        rel, lib = src.relative_to(REPO_ROOT.resolve()), "kwslab"
    except ValueError:
        rel, lib = None, None
    if "arduino-build" in src.parts:  # the Arduino builder's copy of the sketch
        rel, lib = Path(*src.parts[src.parts.index("arduino-build"):]), "kwslab"
    if lib is None:
        parts = src.parts
        if "libs" in parts:
            i = len(parts) - 1 - parts[::-1].index("libs")
            lib, rel = parts[i + 1], Path(*parts[i + 2:])
        else:
            import hashlib

            digest = hashlib.sha256(str(src).encode()).hexdigest()[:8]
            lib, rel = "other", Path(f"{digest}_{src.name}")
    return f"{lib}/" + re.sub(r"[^A-Za-z0-9_.+-]", "_", rel.as_posix()) + ".o"


def _q(s) -> str:
    s = str(s)
    return "'" + s.replace("'", "'\\''") + "'" if re.search(r"[^\w@%+=:,./-]", s) else s


def _run_units(units, build_dir: Path, jobs: int) -> tuple[list[Path], str]:
    """Compile units [(source, argv_without_io)] with make -j; returns (objects, stderr)."""
    lines, objects = ["all:"], []
    import hashlib

    for src, argv in units:
        # The flags' hash in the path: a changed flag never reuses a stale object.
        flags = hashlib.sha256("\0".join(map(str, argv)).encode()).hexdigest()[:10]
        obj = build_dir / "obj" / flags / _obj_name(src)
        objects.append(obj)
        lines[0] += f" {obj}"
        lines.append(f"{obj}: {src}\n\t@mkdir -p {obj.parent}\n\t@{' '.join(_q(a) for a in argv)}"
                     f" -c {_q(src)} -o {obj}")
    mk = build_dir / "objects.mk"
    mk.write_text("\n".join(lines) + "\n")
    out = subprocess.run(["make", "-k", f"-j{jobs}", "-f", str(mk)], capture_output=True, text=True)
    if out.returncode != 0:
        raise FirmwareBuildError(f"compile failed ({mk}):\n{out.stderr[-6000:]}")
    return objects, out.stderr


def _warnings(text: str) -> tuple[list, list]:
    warns = [line for line in text.splitlines() if "warning:" in line]
    root = str(REPO_ROOT.resolve())
    project = [w for w in warns if w.startswith(root) or w.startswith(str(REPO_ROOT))]
    return warns, project


def _link(argv, what: str) -> str:
    out = subprocess.run(argv, capture_output=True, text=True)
    if out.returncode != 0:
        raise FirmwareBuildError(f"{what} link failed:\n{out.stderr[-6000:]}")
    return out.stderr


# ---------------------------------------------------------------------------------------
# PSoC 6

def build_psoc6(build_dir: Path, sdk: Path | None = None, jobs: int = 2,
                app_dir: Path = PSOC6_APP_DIR) -> BuildResult:
    """Build the ModusToolbox app to ``build_dir/kws_psoc6.elf`` (+ ``.map``).

    Raises:
        DeviceSdkMissing: no SDK or no cross compiler.
        FirmwareBuildError: a compile or the link failed (compiler output in the message).
    """
    t0 = time.perf_counter()
    sdk = require_sdk(sdk)
    require_tools(GCC, GXX, "make")
    libs = sdk / "libs"
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    search = {"Chirale_TensorFlowLite": str(libs / CHIRALE)}
    mv = psoc6_make_vars(app_dir, search, build_dir)
    if mv.get("TARGET") != PSOC6_TARGET:
        raise FirmwareBuildError(f"{app_dir}/Makefile: TARGET={mv.get('TARGET')}, this build "
                                 f"knows {PSOC6_TARGET}")
    components = set(PSOC6_BSP_COMPONENTS) | set(mv["COMPONENTS"].split())
    components.add("HARDFP" if mv.get("VFP_SELECT") == "hardfp" else "SOFTFP")
    components.add(mv.get("CONFIG", "Release"))
    make_vars = {f"SEARCH_{k}": v for k, v in search.items()}

    sources, includes, archives = discover(Path(app_dir), components, PSOC6_TARGET, make_vars)
    mw_defines = []
    for lib in PSOC6_LIBS:
        root = libs / lib
        if not root.is_dir():
            raise DeviceSdkMissing(f"{root}: library missing from the device SDK")
        stop_at = []
        props = root / "props.json"
        if props.is_file():
            import json
            stop_at = json.loads(props.read_text()).get("opt", {}).get("stop-at", [])
        s, i, a = discover(root, components, PSOC6_TARGET, make_vars, stop_at)
        if lib == CHIRALE and (root.resolve() in _cyignore(Path(app_dir), make_vars)):
            s, i, a = [], [], []
        sources += s
        includes += i
        archives += a
        name = lib.split("+", 1)[1]
        mw_defines.append("-DCOMPONENT_MW_" + re.sub(r"[^A-Z0-9]", "_", name.upper()))
    gen = libs / PSOC6_GENERATED_SOURCE[0] / PSOC6_GENERATED_SOURCE[1]
    s, i, _ = discover(gen, components, PSOC6_TARGET)
    sources += [f for f in s if "cycfg_capsense" not in f.name]
    includes += i
    # SOURCES+= and INCLUDES+= of the Makefile (relative to the app folder).
    for f in mv.get("SOURCES", "").split():
        p = (Path(app_dir) / f).resolve()
        if p not in {x.resolve() for x in sources}:
            sources.append(p)
    includes += [(Path(app_dir) / d).resolve() for d in mv.get("INCLUDES", "").split()]

    defines = [f"-D{d}" for d in mv.get("DEFINES", "").split()]
    defines += ["-DCY_USING_HAL", f"-D{PSOC6_DEVICE.replace('-', '_')}",
                f"-DCY_TARGET_BOARD=APP_{PSOC6_TARGET.replace('-', '_')}",
                f"-DTARGET_APP_{PSOC6_TARGET.replace('-', '_')}", "-DCY_SUPPORTS_DEVICE_VALIDATION",
                f"-DCY_APPNAME_{mv.get('APPNAME', 'app')}", "-DCORE_NAME_CM4_0=1",
                "-DCOMPONENT_APP_" + PSOC6_TARGET.replace("-", "_")]
    defines += [f"-DCOMPONENT_{c}" for c in sorted(components)] + mw_defines
    inc = [f"-I{d}" for d in dict.fromkeys(includes)]
    base = PSOC6_CORE_FLAGS + PSOC6_COMMON_FLAGS
    cflags = [GCC, *base, *defines, *inc, *mv.get("CFLAGS", "").split()]
    cxxflags = [GXX, *base, *PSOC6_CXX_FLAGS, *defines, *inc, *mv.get("CXXFLAGS", "").split()]
    asflags = [GCC, "-x", "assembler-with-cpp", *base, *defines, *inc]
    units = []
    for src in sources:
        argv = {".c": cflags, ".S": asflags, ".s": asflags}.get(src.suffix, cxxflags)
        units.append((src, argv))
    objects, stderr = _run_units(units, build_dir, jobs)

    ld_script = libs / PSOC6_LIBS[0] / "COMPONENT_CM4" / "TOOLCHAIN_GCC_ARM" / "linker.ld"
    elf = build_dir / f"{mv.get('APPNAME', 'app')}.elf"
    map_file = elf.with_suffix(".map")
    link = [GXX, *base, "-Wl,--gc-sections", *mv.get("LDFLAGS", "").split(), "-o", str(elf),
            f"-Wl,-Map,{map_file}", f"-T{ld_script}", "-Wl,--start-group",
            *map(str, objects), *map(str, archives), *mv.get("LDLIBS", "").split(),
            "-Wl,--end-group"]
    stderr += _link(link, "PSoC 6")
    warns, project = _warnings(stderr)
    return BuildResult("psoc6", elf, map_file, len(units), warns, project, [],
                       time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------
# Nano 33 BLE

_BOARDS_TXT = """nano33ble.name=Arduino Nano 33 BLE
nano33ble.build.core=arduino
nano33ble.build.variant=ARDUINO_NANO33BLE
nano33ble.build.board=ARDUINO_NANO33BLE
nano33ble.build.mcu=cortex-m4
nano33ble.build.fpu=-mfpu=fpv4-sp-d16
nano33ble.build.float-abi=-mfloat-abi=softfp
nano33ble.build.extra_flags=-DARDUINO_ARCH_MBED -DARDUINO_ARCH_NRF52840
"""

_PLATFORM_TXT = """name=Arduino Mbed OS Nano Boards (kwslab preprocessing stand-in)
version=4.6.0
compiler.path={gcc_dir}/
compiler.cpp.cmd=arm-none-eabi-g++
compiler.mbed.flags="@{{build.variant.path}}/defines.txt" "@{{build.variant.path}}/cxxflags.txt" "-iprefix{{runtime.platform.path}}/cores/arduino" "@{{build.variant.path}}/includes.txt"
compiler.cpp.flags=-c -w -Os -g -nostdlib "-I{{runtime.platform.path}}/cores/arduino/api/deprecated" "-I{{runtime.platform.path}}/cores/arduino/api/deprecated-avr-comp" {{compiler.mbed.flags}} -mcpu={{build.mcu}} {{build.fpu}} {{build.float-abi}} -DARDUINO={{runtime.ide.version}} -DARDUINO_{{build.board}} -DARDUINO_ARCH_{{build.arch}} {{build.extra_flags}}
preproc.includes.flags=-w -x c++ -M -MG -MP
recipe.preproc.includes="{{compiler.path}}{{compiler.cpp.cmd}}" {{compiler.cpp.flags}} {{preproc.includes.flags}} {{includes}} "{{source_file}}"
preproc.macros.flags=-w -x c++ -E -CC
recipe.preproc.macros="{{compiler.path}}{{compiler.cpp.cmd}}" {{compiler.cpp.flags}} {{preproc.macros.flags}} {{includes}} "{{source_file}}" -o "{{preprocessed_file_path}}"
tools.ctags.path=/usr/bin
tools.ctags.cmd.path={{path}}/arduino-ctags
tools.ctags.pattern="{{cmd.path}}" -u --language-force=c++ -f - --c++-kinds=svpf --fields=KSTtzns --line-directives "{{source_file}}"
"""

_LIBRARY_PROPERTIES = f"""name={CHIRALE_LIBRARY_NAME}
version=2.0.0
author=Spazio Chirale
maintainer=Spazio Chirale
sentence=TensorFlow Lite Micro for Arduino (device SDK snapshot)
paragraph=
category=Data Processing
url=https://github.com/spaziochirale/Chirale_TensorFlowLite
architectures=*
"""


def preprocess_ino(sketch_dir: Path, sdk: Path, work: Path) -> Path:
    """The sketch's ``.ino`` as the Arduino builder compiles it (``#include <Arduino.h>``,
    ctags prototypes, ``#line`` directives), via ``arduino-builder -preprocess``.

    Returns:
        path of the written ``<sketch>.ino.cpp`` in work.
    Raises:
        FirmwareBuildError: if arduino-builder fails.
    """
    require_tools("arduino-builder", "arduino-ctags", GXX)
    core = sdk / "libs" / NANO_CORE
    hw = work / "hardware" / "arduino" / "mbed_nano"
    hw.mkdir(parents=True, exist_ok=True)
    (hw / "boards.txt").write_text(_BOARDS_TXT)
    gcc_dir = str(Path(shutil.which(GXX)).parent)
    (hw / "platform.txt").write_text(_PLATFORM_TXT.format(gcc_dir=gcc_dir))
    for sub in ("cores", "variants"):
        if not (hw / sub).exists():
            (hw / sub).symlink_to(core / sub, target_is_directory=True)
    if not (hw / "libraries").exists():
        (hw / "libraries").mkdir()
        for lib in NANO_PLATFORM_LIBRARIES:  # the core's own libraries the sketch pulls in
            src = core / "libraries" / lib
            if (src / "src").is_dir():  # 1.5 layout: the snapshot has no library.properties
                (hw / "libraries" / lib).mkdir()
                (hw / "libraries" / lib / "library.properties").write_text(
                    f"name={lib}\nversion=1.0\nauthor=Arduino\nmaintainer=Arduino\n"
                    f"sentence={lib}\nparagraph=\ncategory=Other\nurl=https://github.com/"
                    "arduino/ArduinoCore-mbed\narchitectures=mbed,mbed_nano\n")
                (hw / "libraries" / lib / "src").symlink_to(src / "src", target_is_directory=True)
            else:
                (hw / "libraries" / lib).symlink_to(src, target_is_directory=True)
    (work / "tools").mkdir(exist_ok=True)
    libdir = work / "libraries" / "Chirale_TensorFlowLite"
    if not libdir.exists():
        libdir.mkdir(parents=True)
        (libdir / "library.properties").write_text(_LIBRARY_PROPERTIES)
        (libdir / "src").symlink_to(sdk / "libs" / CHIRALE / "src", target_is_directory=True)
    build_path = work / "arduino-build"
    build_path.mkdir(exist_ok=True)
    sketch = Path(sketch_dir)
    cmd = ["arduino-builder", "-preprocess", "-hardware", str(work / "hardware"),
           "-tools", str(work / "tools"),
           "-libraries", str(work / "libraries"), "-fqbn", "arduino:mbed_nano:nano33ble",
           "-core-api-version", "10607", "-build-path", str(build_path), "-quiet",
           str(sketch / f"{sketch.name}.ino")]
    out = subprocess.run(cmd, capture_output=True, text=True)
    # The builder writes the sketch's C++ (Arduino.h, prototypes, #line) to sketch/ of the
    # build path; stdout is only the ctags input.
    dst = build_path / "sketch" / f"{sketch.name}.ino.cpp"
    if out.returncode != 0 or not dst.is_file():
        raise FirmwareBuildError(f"arduino-builder -preprocess failed:\n{out.stdout[-3000:]}\n"
                                 f"{out.stderr[-3000:]}")
    return dst


def nano_flags(sdk: Path, sketch_dir: Path = SKETCH_DIR) -> tuple[list, list, list]:
    """(C, C++, assembler) compiler argv prefixes of the Nano 33 BLE build: the core's
    platform.txt recipe with the variant's defines/cflags/cxxflags/includes files and the
    include folders of the core, the variant, PDM, Wire and Chirale_TensorFLowLite."""
    core_root = Path(sdk) / "libs" / NANO_CORE
    core = core_root / "cores" / "arduino"
    variant = core_root / "variants" / "ARDUINO_NANO33BLE"
    includes = [f"-I{core}", f"-I{core / 'api' / 'deprecated'}",
                f"-I{core / 'api' / 'deprecated-avr-comp'}", f"-I{variant}",
                f"-I{core_root / 'libraries' / 'PDM' / 'src'}",
                f"-I{core_root / 'libraries' / 'Wire'}", f"-I{Path(sdk) / 'libs' / CHIRALE / 'src'}"]
    mbed = [f"-iprefix{core}", f"@{variant / 'includes.txt'}"]
    common = ["-Os", "-g", "-nostdlib", *NANO_BOARD_FLAGS, *NANO_DEFINES]
    cflags = [GCC, "-c", *common, f"@{variant / 'defines.txt'}", f"@{variant / 'cflags.txt'}",
              "-MMD", *includes, *mbed]
    cxxflags = [GXX, "-c", *common, f"@{variant / 'defines.txt'}", f"@{variant / 'cxxflags.txt'}",
                "-MMD", f"-I{sketch_dir}", *includes, *mbed]
    asflags = [GCC, "-c", "-x", "assembler-with-cpp", *common, f"@{variant / 'defines.txt'}",
               *includes, *mbed]
    return cflags, cxxflags, asflags


def build_nano(build_dir: Path, sdk: Path | None = None, jobs: int = 2,
               sketch_dir: Path = SKETCH_DIR) -> BuildResult:
    """Compile the Nano 33 BLE sketch, core and libraries; link all but ``libmbed.a``.

    Writes ``build_dir/kws_nano33ble.elf`` (+ ``.map``); mbed OS's symbols stay undefined
    (``undefined_symbols``). Raises DeviceSdkMissing / FirmwareBuildError as build_psoc6.
    """
    t0 = time.perf_counter()
    sdk = require_sdk(sdk)
    require_tools(GCC, GXX, "make")
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    core_root = sdk / "libs" / NANO_CORE
    core = core_root / "cores" / "arduino"
    variant = core_root / "variants" / "ARDUINO_NANO33BLE"
    pdm = core_root / "libraries" / "PDM" / "src"
    wire = core_root / "libraries" / "Wire"
    chirale = sdk / "libs" / CHIRALE / "src"
    ino_cpp = preprocess_ino(Path(sketch_dir), sdk, build_dir / "preprocess")

    def rglob(d: Path):
        return sorted(p for p in d.rglob("*") if p.suffix in {".c", ".cpp", ".S"} and p.is_file())

    sketch = Path(sketch_dir)
    sketch_sources = [ino_cpp] + sorted(p for p in sketch.glob("*.cpp")) + rglob(sketch / "src")
    cflags, cxxflags, asflags = nano_flags(sdk, sketch)
    sources = sketch_sources + rglob(core) + [variant / "variant.cpp"] + rglob(pdm) + [wire / "Wire.cpp"] + rglob(chirale)
    units = [(s, {".c": cflags, ".S": asflags}.get(s.suffix, cxxflags)) for s in sources]
    objects, stderr = _run_units(units, build_dir, jobs)

    elf = build_dir / f"{sketch.name}.elf"
    map_file = elf.with_suffix(".map")
    # platform.txt's combine recipe, minus libmbed.a; the entry is main (mbed OS's
    # Reset_Handler is in libmbed.a) so --gc-sections keeps what the sketch reaches.
    link = [GXX, "-Wl,--gc-sections", "-Wl,--entry=main",
            "-Wl,--unresolved-symbols=ignore-in-object-files", f"@{variant / 'ldflags.txt'}",
            f"-T{variant / 'linker_script.ld'}", f"-Wl,-Map,{map_file}", "--specs=nano.specs",
            "--specs=nosys.specs", "-o", str(elf), *map(str, objects),
            "-Wl,--start-group", "-lstdc++", "-lsupc++", "-lm", "-lc", "-lgcc", "-lnosys",
            "-Wl,--end-group"]
    link_err = _link(link, "Nano 33 BLE")
    nm = subprocess.run(["arm-none-eabi-nm", "-u", "-C", str(elf)], capture_output=True,
                        text=True, check=True).stdout
    undefined = sorted({line.split("U ", 1)[1].strip() for line in nm.splitlines() if "U " in line})
    warns, project = _warnings(stderr + "\n" + link_err)
    return BuildResult("nano", elf, map_file, len(units), warns, project, undefined,
                       time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------
# Sizes from the map file

_FLASH_SECTIONS = (".text", ".rodata", ".ARM.exidx", ".ARM.extab", ".init_array", ".fini_array",
                   ".preinit_array", ".copy.table", ".zero.table", ".cy_m0p_image", ".Vectors")
_RAM_SECTIONS = (".bss", ".noinit", ".heap", ".stack", ".ramVectors", ".cy_sharedmem")


def _library_of(path: str) -> str:
    p = path.replace("\\", "/")
    m = re.search(r"/obj/[0-9a-f]{10}/([^/]+)/", p)
    if m:
        lib = m.group(1)
    else:
        m = re.search(r"libs/([^/]+)/", p)
        if m:
            lib = m.group(1)
        elif "arm-none-eabi" in p:
            return "toolchain (libc, libstdc++, libgcc)"
        else:
            return "other"
    return lib.split("+", 1)[-1]


def map_sizes(map_file: Path, elf: Path | None = None) -> dict:
    """Flash and static RAM of a linked ELF, by output section and by library.

    Flash = the loadable code/constant sections plus ``.data``'s initial values; RAM =
    ``.data`` + ``.bss``-like sections (heap and stack reserves reported separately).
    Input sections in the map are attributed to the library of the object or archive
    they come from (``libs/<library>/`` of the device SDK, this repository, the toolchain).

    Returns:
        dict with flash_bytes, ram_bytes, sections {name: bytes}, and libraries
        {library: {"flash_bytes", "ram_bytes"}}.
    """
    text = Path(map_file).read_text(errors="replace")
    start = text.find("Linker script and memory map")
    body = text[start:] if start >= 0 else text
    sections: dict[str, int] = {}
    libs: dict[str, dict] = {}
    out_sec = None
    pending = None  # input section name on its own line (long names wrap)
    for line in body.splitlines():
        m = re.match(r"^(\.[\w.]+)\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)", line)
        if m:
            out_sec = m.group(1)
            sections[out_sec] = sections.get(out_sec, 0) + int(m.group(3), 16)
            continue
        m = re.match(r"^(\.[\w.]+)\s*$", line)
        if m:
            out_sec = m.group(1)
            continue
        m = re.match(r"^ (\.?[\w.$-]+|COMMON)\s*$", line)
        if m:
            pending = m.group(1)
            continue
        m = re.match(r"^ (\S+)?\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+(\S.*)$", line)
        if m and out_sec is not None and (m.group(1) or pending):
            size = int(m.group(3), 16)
            pending = None
            if size == 0 or int(m.group(2), 16) == 0:
                continue
            lib = _library_of(m.group(4))
            entry = libs.setdefault(lib, {"flash_bytes": 0, "ram_bytes": 0})
            if out_sec == ".data" or out_sec.startswith(".data"):
                entry["flash_bytes"] += size
                entry["ram_bytes"] += size
            elif out_sec in (".heap", ".stack_dummy", ".stack"):
                continue  # reserves, not variables
            elif out_sec.startswith(_RAM_SECTIONS):
                entry["ram_bytes"] += size
            elif out_sec.startswith(_FLASH_SECTIONS):
                entry["flash_bytes"] += size
    flash = sum(v for k, v in sections.items() if k.startswith(_FLASH_SECTIONS) or k.startswith(".data"))
    ram = sum(v for k, v in sections.items()
              if k.startswith(".data") or (k.startswith(_RAM_SECTIONS) and k not in (".heap", ".stack")))
    if elf is not None:
        flash, ram = elf_sizes(elf)
    return {"flash_bytes": flash, "ram_bytes": ram,
            "sections": {k: v for k, v in sections.items()
                         if v and not k.startswith((".debug", ".comment", ".ARM.attributes"))},
            "libraries": dict(sorted(libs.items(), key=lambda kv: -kv[1]["flash_bytes"]))}


def elf_sizes(elf: Path) -> tuple[int, int]:
    """(flash_bytes, ram_bytes) of an ELF from its section headers (``arm-none-eabi-size -A``):
    flash = allocated read-only/code sections + ``.data``; RAM = ``.data`` + ``.bss`` and
    other writable no-load sections, without heap and stack reserves."""
    out = subprocess.run(["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True,
                         check=True).stdout
    flash = ram = 0
    for line in out.splitlines():
        parts = line.split()
        if len(parts) != 3 or not parts[1].isdigit():
            continue
        name, size = parts[0], int(parts[1])
        if name.startswith(".data"):
            flash += size
            ram += size
        elif name in (".heap", ".stack", ".stack_dummy", ".heap_dummy"):
            continue
        elif name.startswith(_RAM_SECTIONS):
            ram += size
        elif name.startswith(_FLASH_SECTIONS):
            flash += size
    return flash, ram
