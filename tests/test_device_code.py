"""The device C++: portable parts built and run on the host, the shared application
(kws_device/kws_app.*, model_app.h) run on the host against fake TFLM/frontend definitions,
everything syntax-checked for Cortex-M4 with arm-none-eabi-g++ against the stand-in
headers in tests/device_stubs/.

Compilers: g++ (host) and Debian's gcc-arm-none-eabi + libnewlib-arm-none-eabi +
libstdc++-arm-none-eabi-newlib. Without them the tests skip, except under CI (env CI set),
where they fail.
"""
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from kwslab.detect import RecognizeCommands

REPO = Path(__file__).resolve().parents[1]
SKETCH = REPO / "arduino" / "kws_nano33ble"
PORTABLE = SKETCH / "src" / "kws"
PSOC_SOURCE = REPO / "psoc6" / "kws_psoc6" / "source"
STUBS = REPO / "tests" / "device_stubs"
ARM_FLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfpu=fpv4-sp-d16", "-fsyntax-only", "-Wall",
             "-Wextra", "-Werror"]
# The Nano core (ArduinoCore-mbed cflags/cxxflags.txt) and ModusToolbox's GCC_ARM recipe
# with VFP_SELECT=hardfp; the shared code builds on both, checked with the Nano's (older
# standard). Real builds against the libraries: tests/test_firmware_build.py.
NANO_FLAGS = ["-mfloat-abi=softfp", "-std=gnu++14"]
PSOC6_FLAGS = ["-mfloat-abi=hard"]

DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "kws/audio_ring.h"
#include "kws/feature_quant.h"
#include "kws/feature_ring.h"
#include "kws/labels.h"
#include "kws/recognize_commands.h"

int main(int argc, char** argv) {
  if (argc < 2) return 1;
  const char* mode = argv[1];
  if (strcmp(mode, "quant") == 0) {  // int8 of every uint16 value, as raw bytes
    for (int v = 0; v < 65536; ++v) {
      int8_t q = kws::QuantizeFeature(static_cast<uint16_t>(v));
      fwrite(&q, 1, 1, stdout);
    }
    return 0;
  }
  if (strcmp(mode, "rc") == 0) {  // rc C window threshold suppression minimum < "t s..."
    const int c = atoi(argv[2]);
    kws::RecognizeCommands rc(c, atoi(argv[3]), atoi(argv[4]), atoi(argv[5]), atoi(argv[6]));
    long t;
    while (scanf("%ld", &t) == 1) {
      int8_t s[16];
      for (int i = 0; i < c; ++i) { int v; if (scanf("%d", &v) != 1) return 2; s[i] = (int8_t)v; }
      kws::RecognizeResult r;
      kws::RecognizeStatus st = rc.ProcessLatestResults(s, (int32_t)t, &r);
      if (st != kws::RecognizeStatus::kOk) { printf("status %d\n", (int)st); continue; }
      printf("%d %ld %d\n", r.label_index, (long)r.score, r.is_new_command ? 1 : 0);
    }
    return 0;
  }
  if (strcmp(mode, "ring") == 0) {  // 3 slices of 2; push 1..5 (slice k = {k, -k})
    int8_t storage[6], window[6], slice[2];
    kws::FeatureRing ring(storage, 3, 2);
    for (int k = 1; k <= 5; ++k) {
      slice[0] = (int8_t)k; slice[1] = (int8_t)-k;
      ring.PushSlice(slice);
      ring.CopyWindow(window);
      printf("%d %d:", ring.size(), ring.full() ? 1 : 0);
      for (int i = 0; i < 6; ++i) printf(" %d", window[i]);
      printf("\n");
    }
    return 0;
  }
  if (strcmp(mode, "audio") == 0) {  // capacity 8: write 0..11, then reads
    int16_t storage[8], chunk[12], out[8];
    for (int i = 0; i < 12; ++i) chunk[i] = (int16_t)i;
    kws::AudioRing ring(storage, 8);
    ring.Write(chunk, 5);
    printf("%d", ring.Read(0, 5, out) ? 1 : 0);          // 1: 0..4 present
    printf(" %d", ring.Read(3, 3, out) ? 1 : 0);         // 0: sample 5 not written yet
    ring.Write(chunk + 5, 7);                            // total 12, keeps 4..11
    printf(" %d", ring.Read(3, 2, out) ? 1 : 0);         // 0: sample 3 overwritten
    printf(" %d", ring.Read(4, 8, out) ? 1 : 0);         // 1: 4..11
    for (int i = 0; i < 8; ++i) printf(" %d", out[i]);
    printf(" %d", ring.Read(4, 2, out, 2) ? 1 : 0);      // 0: 4, 5 inside the 2-sample guard
    printf(" %d\n", ring.Read(6, 2, out, 2) ? 1 : 0);    // 1
    return 0;
  }
  if (strcmp(mode, "labels") == 0) {
    const char* labels[] = {"_silence_", "_unknown_", "yes"};
    const int8_t scores[] = {3, 9, 9};
    printf("%s %s %s %d %d %d %d\n", kws::LabelFor(2, labels, 3), kws::LabelFor(3, labels, 3),
           kws::LabelFor(-1, labels, 3), kws::ArgMax(scores, 3), kws::ArgMax(scores, 0),
           kws::IsBackgroundLabel(labels[1]) ? 1 : 0, kws::IsBackgroundLabel(labels[2]) ? 1 : 0);
    return 0;
  }
  return 1;
}
"""

OPS_DRIVER = r"""
#include <stdio.h>
#include "model_settings.h"
#include "kws/op_registration.h"
#include "model_data.h"
struct RecordingResolver {
#define KWS_RECORD(name) int Add##name() { printf(#name "\n"); return 0; }
  KWS_RECORD(Add) KWS_RECORD(AveragePool2D) KWS_RECORD(Concatenation) KWS_RECORD(Conv2D)
  KWS_RECORD(DepthwiseConv2D) KWS_RECORD(Dequantize) KWS_RECORD(FullyConnected)
  KWS_RECORD(Logistic) KWS_RECORD(MaxPool2D) KWS_RECORD(Mean) KWS_RECORD(Mul) KWS_RECORD(Pack)
  KWS_RECORD(Pad) KWS_RECORD(Quantize) KWS_RECORD(Relu) KWS_RECORD(Relu6) KWS_RECORD(Reshape)
  KWS_RECORD(Shape) KWS_RECORD(Softmax) KWS_RECORD(StridedSlice)
};
static_assert(kws::StringsEqual(KWS_MODEL_DATA_SHA256, KWS_MODEL_SETTINGS_SHA256), "drift");
int main() { RecordingResolver r; return kws::RegisterModelOps(r); }
"""


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        msg = (f"{tool} not found; install g++ and Debian's gcc-arm-none-eabi "
               "libnewlib-arm-none-eabi libstdc++-arm-none-eabi-newlib")
        if os.environ.get("CI"):
            pytest.fail(msg + " (required in CI)")
        pytest.skip(msg)
    return path


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    gxx = _need("g++")
    out = tmp_path_factory.mktemp("driver") / "driver"
    src = out.with_suffix(".cpp")
    src.write_text(DRIVER)
    sources = sorted(str(p) for p in PORTABLE.glob("*.cpp"))
    _compile([gxx, "-std=c++11", "-O1", "-Wall", "-Wextra", "-Werror",
              f"-I{PORTABLE.parent}", str(src), *sources, "-o", str(out)])
    return out


def _compile(cmd):
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, f"{' '.join(cmd)}\n{result.stderr}"


def _run(driver, *args, stdin=""):
    return subprocess.run([str(driver), *map(str, args)], input=stdin, check=True,
                          capture_output=True, text=True).stdout


def test_cpp_feature_quantization_equals_python_for_all_uint16(driver):
    from kwslab.frontend import to_int8

    out = subprocess.run([str(driver), "quant"], check=True, capture_output=True).stdout
    cpp = np.frombuffer(out, np.int8)
    raw = np.arange(65536)
    np.testing.assert_array_equal(cpp, to_int8(raw))
    # Hand checks: 0 -> 333 // 666 - 128 = -128; 333 -> 85581 // 666 - 128 = 0;
    # 665 -> 170573 // 666 - 128 = 256 - 128 = 128 -> clamped 127; 664 -> 170317 // 666
    # - 128 = 255 - 128 = 127 (at the clamp already).
    assert (cpp[0], cpp[333], cpp[664], cpp[665], cpp[65535]) == (-128, 0, 127, 127, 127)
    # 331 -> 85069 // 666 = 127 -> -1; 332 -> 85325 // 666 = 128 -> 0.
    assert (cpp[331], cpp[332]) == (-1, 0)


def _random_score_stream(rng, n, c):
    """Scores with regimes (one class dominant, then another, noise) and irregular times."""
    times = np.cumsum(rng.integers(0, 60, n))  # includes repeats (0 ms steps)
    scores = np.full((n, c), -128, np.int64)
    top = 0
    for i in range(n):
        if rng.random() < 0.05:
            top = int(rng.integers(c))
        scores[i] = rng.integers(-128, -60, c)
        scores[i, top] = rng.integers(40, 128)
        if rng.random() < 0.2:
            scores[i] = rng.integers(-128, 128, c)
    return times, scores


@pytest.mark.parametrize("params", [(4, 1000, 200, 1500, 3), (12, 500, 150, 700, 5),
                                    (3, 1000, 120, 0, 1)])
def test_cpp_recognize_commands_matches_python_twin(driver, params):
    c, window, thr, supp, minimum = params
    rng = np.random.default_rng(c)
    times, scores = _random_score_stream(rng, 3000, c)
    stdin = "\n".join(f"{t} " + " ".join(map(str, s)) for t, s in zip(times, scores))
    cpp = [tuple(map(int, line.split())) for line in
           _run(driver, "rc", c, window, thr, supp, minimum, stdin=stdin).splitlines()]
    rc = RecognizeCommands(c, window, thr, supp, minimum)
    py = []
    for t, s in zip(times, scores):
        r = rc.process_latest_results(s, int(t))
        py.append((r.label_index, r.score, int(r.is_new_command)))
    assert cpp == py
    assert sum(p[2] for p in py) > 5  # the stream exercises detections, not just silence


def test_cpp_recognize_commands_hand_sequence(driver):
    # Same as test_detect's suppression example: new at 300 and at 1900 only.
    stdin = "\n".join(f"{t} -128 127" for t in range(0, 2001, 100))
    lines = _run(driver, "rc", 2, 1000, 200, 1500, 3, stdin=stdin).splitlines()
    assert [t for t, line in zip(range(0, 2001, 100), lines) if line.endswith(" 1")] == [300, 1900]
    assert lines[:4] == ["0 0 0", "0 0 0", "0 0 0", "1 255 1"]


def test_cpp_recognize_commands_rejects_time_going_back(driver):
    out = _run(driver, "rc", 2, 1000, 200, 1500, 3, stdin="100 0 0\n99 0 0\n")
    assert out.splitlines()[1] == "status 2"


def test_cpp_feature_ring_window_is_oldest_first(driver):
    # 3 slots of 2: before full, missing slices read as -128 at the front.
    assert _run(driver, "ring").splitlines() == [
        "1 0: -128 -128 -128 -128 1 -1",
        "2 0: -128 -128 1 -1 2 -2",
        "3 1: 1 -1 2 -2 3 -3",
        "3 1: 2 -2 3 -3 4 -4",
        "3 1: 3 -3 4 -4 5 -5",
    ]


def test_cpp_audio_ring_reads_only_live_samples(driver):
    assert _run(driver, "audio").split() == (
        ["1", "0", "0", "1"] + [str(v) for v in range(4, 12)] + ["0", "1"])


def test_cpp_labels(driver):
    assert _run(driver, "labels").split() == ["yes", "?", "?", "1", "-1", "1", "0"]


@pytest.mark.parametrize("deploy_dir", [SKETCH, PSOC_SOURCE], ids=["arduino", "psoc6"])
def test_op_registration_registers_exactly_the_model_ops(deploy_dir, tmp_path):
    """The device's kws::RegisterModelOps with this folder's model_settings.h registers
    exactly the ops of the committed model, each once."""
    from kwslab.export import op_names as tflite_op_names
    from kwslab.firmware import OP_RESOLVER_METHODS, parse_c_array

    gxx = _need("g++")
    src = tmp_path / "ops.cpp"
    src.write_text(OPS_DRIVER)
    exe = tmp_path / "ops"
    _compile([gxx, "-std=c++11", "-Wall", "-Werror", f"-I{deploy_dir}",
              f"-I{PORTABLE.parent}", str(src), "-o", str(exe)])
    registered = subprocess.run([str(exe)], check=True, capture_output=True,
                                text=True).stdout.split()
    model = parse_c_array((deploy_dir / "model_data.cpp").read_text())
    expected = [OP_RESOLVER_METHODS[op] for op in dict.fromkeys(tflite_op_names(model))]
    assert registered == expected


def _device_sources():
    files = sorted(SKETCH.rglob("*.ino")) + sorted(SKETCH.rglob("*.cpp"))
    files += sorted((REPO / "psoc6").rglob("*.cpp")) + sorted((REPO / "psoc6").rglob("*.c"))
    return files


def test_device_source_list_is_complete():
    names = {p.relative_to(REPO).as_posix() for p in _device_sources()}
    assert {"arduino/kws_nano33ble/kws_nano33ble.ino",
            "arduino/kws_nano33ble/src/kws/recognize_commands.cpp",
            "arduino/kws_nano33ble/src/kws_device/feature_provider.cpp",
            "arduino/kws_nano33ble/src/kws_device/kws_app.cpp",
            "psoc6/kws_psoc6/source/main.cpp",
            "psoc6/kws_psoc6/source/audio_capture.cpp"} <= names
    assert not list(REPO.joinpath("arduino").rglob("*.cc")), "Arduino does not build .cc"


@pytest.mark.parametrize("profile", [0, 1])
@pytest.mark.parametrize("source", _device_sources(),
                         ids=lambda p: p.relative_to(REPO).as_posix())
def test_device_source_compiles_for_cortex_m4(source, profile):
    gxx = _need("arm-none-eabi-g++")
    if source.suffix == ".ino":
        # The Arduino builder prepends Arduino.h and compiles the .ino as C++.
        cmd = [gxx, *NANO_FLAGS, "-x", "c++", "-include", "Arduino.h", f"-I{SKETCH}",
               f"-I{STUBS}"]
    elif source.is_relative_to(REPO / "psoc6"):
        # ModusToolbox: source/ and the shared src/ folder on the include path.
        cmd = [gxx, *PSOC6_FLAGS, f"-I{PSOC_SOURCE}", f"-I{SKETCH / 'src'}", f"-I{STUBS}"]
    else:
        cmd = [gxx, *NANO_FLAGS, f"-I{source.parent}", f"-I{STUBS}"]
    cmd += ARM_FLAGS + [f"-DKWS_PROFILE={profile}", str(source)]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ---- The shared application (src/kws_device/kws_app.*, model_app.h) run on the host ----
# Built with the real app, feature provider and kws/ code and a model_settings.h/model_data.*
# from kwslab.firmware's generators (labels up/down, ops CONV_2D and SOFTMAX, a 5-byte
# "model"), against the stand-in TFLM headers with the fakes below: a frontend that turns
# each 320-sample stride into one frame, an interpreter whose scores put class 2 on top,
# and a clock the fakes advance by fixed steps.

APP_DRIVER = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model_settings.h"
#include "model_data.h"
#include "kws_device/model_app.h"
#include "tensorflow/lite/experimental/microfrontend/lib/frontend_util.h"

static const char* g_fault = "";  // which boot check to break
static uint32_t g_clock = 0;      // fake microseconds
static bool Fault(const char* name) { return strcmp(g_fault, name) == 0; }

// Frontend: one 40-value frame per 320 samples, +300 us each. Its filterbank tables are
// malloc'd arrays of -1, as the library's would be (with other values).
static struct FrontendState* g_state = nullptr;
static int16_t* g_library_weights = nullptr;
static int16_t* Junk(int n) {
  int16_t* p = static_cast<int16_t*>(malloc(n * sizeof(int16_t)));
  for (int i = 0; i < n; ++i) p[i] = -1;
  return p;
}
extern "C" int FrontendPopulateState(const struct FrontendConfig* config,
                                     struct FrontendState* state, int) {
  g_state = state;
  FilterbankState& fb = state->filterbank;
  fb.num_channels = config->filterbank.num_channels;
  fb.start_index = fb.end_index = -1;
  fb.channel_frequency_starts = Junk(fb.num_channels + 1);
  fb.channel_weight_starts = Junk(fb.num_channels + 1);
  fb.channel_widths = Junk(fb.num_channels + 1);
  fb.weights = g_library_weights = Junk(8);
  fb.unweights = Junk(8);
  return !Fault("frontend");
}
extern "C" void FrontendFreeStateContents(struct FrontendState* state) {
  FilterbankState& fb = state->filterbank;
  free(fb.channel_frequency_starts);
  free(fb.channel_weight_starts);
  free(fb.channel_widths);
  free(fb.weights);
  free(fb.unweights);
}
// "tables" mode: does the frontend state hold model_settings.h's filterbank tables?
static void PrintTables() {
  const FilterbankState& fb = g_state->filterbank;
  const size_t n1 = (kFeatureNumChannels + 1) * sizeof(int16_t);
  const size_t nw = kFilterbankWeightCount * sizeof(int16_t);
  printf("tables start %d end %d starts %d weight_starts %d widths %d weights %d unweights %d "
         "replaced %d\n", fb.start_index == kFilterbankStartIndex, fb.end_index == kFilterbankEndIndex,
         !memcmp(fb.channel_frequency_starts, kFilterbankChannelFrequencyStarts, n1),
         !memcmp(fb.channel_weight_starts, kFilterbankChannelWeightStarts, n1),
         !memcmp(fb.channel_widths, kFilterbankChannelWidths, n1),
         !memcmp(fb.weights, kFilterbankWeights, nw), !memcmp(fb.unweights, kFilterbankUnweights, nw),
         fb.weights != g_library_weights);
}
extern "C" struct FrontendOutput FrontendProcessSamples(struct FrontendState*, const int16_t*,
                                                        size_t n, size_t* read) {
  static uint16_t frame[40];
  g_clock += 300;
  *read = n;
  struct FrontendOutput out = {frame, 40};
  return out;
}

// TFLM: schema 3, ops registered, int8 1960 -> int8 4 with class 2 on top; Invoke +9000 us.
static int8_t g_in_data[1960], g_out_data[4];
static TfLiteTensor g_in, g_out;
uint32_t tflite::Model::version() const { return Fault("schema") ? 2 : 3; }
template <unsigned int N>
TfLiteStatus tflite::MicroMutableOpResolver<N>::AddConv2D() { return kTfLiteOk; }
template <unsigned int N>
TfLiteStatus tflite::MicroMutableOpResolver<N>::AddSoftmax() {
  return Fault("ops") ? kTfLiteError : kTfLiteOk;
}
tflite::MicroInterpreter::MicroInterpreter(const Model*, const MicroOpResolver&, uint8_t*,
                                           size_t, MicroResourceVariables*,
                                           MicroProfilerInterface*, bool) {}
TfLiteStatus tflite::MicroInterpreter::AllocateTensors() {
  g_in.type = Fault("input_type") ? kTfLiteFloat32 : kTfLiteInt8;
  g_in.data.int8 = g_in_data;
  g_in.bytes = 1960;
  g_in.params.scale = Fault("scale") ? 0.1f : 0.10162353515625f;
  g_in.params.zero_point = -128;
  g_out.type = kTfLiteInt8;
  g_out.data.int8 = g_out_data;
  g_out.bytes = Fault("output_size") ? 3 : 4;
  return Fault("allocate") ? kTfLiteError : kTfLiteOk;
}
TfLiteStatus tflite::MicroInterpreter::Invoke() {
  g_clock += 9000;
  const int8_t scores[4] = {-128, -128, 127, -128};
  memcpy(g_out_data, scores, 4);
  return kTfLiteOk;
}
TfLiteTensor* tflite::MicroInterpreter::input(size_t) { return &g_in; }
TfLiteTensor* tflite::MicroInterpreter::output(size_t) { return &g_out; }
size_t tflite::MicroInterpreter::arena_used_bytes() const { return 3000; }

// Board hooks: each clock read advances 1 us; a response costs 2000 us.
static kws::AudioRing* g_ring = nullptr;
static uint32_t Micros() { return g_clock++; }
static void PrintLine(const char* line) { printf("%s\n", line); }
static void Fail(const char* message) { printf("ERROR: %s\n", message); exit(3); }
static const char* StartAudio(kws::AudioRing* ring, int rate) {
  g_ring = ring;
  printf("start_audio %d\n", rate);
  return Fault("audio") ? "mic failed" : nullptr;
}
static void Respond(int index, const char* label, int32_t score, int32_t time_ms) {
  printf("respond %d %s %ld %ld\n", index, label, (long)score, (long)time_ms);
  g_clock += 2000;
}
static const kws::AppHooks kHooks = {Micros, PrintLine, Fail, StartAudio, Respond, nullptr,
                                     nullptr};

int main(int argc, char** argv) {  // app FAULT STEPS PROFILE_EVERY
  if (argc < 4) return 1;
  g_fault = argv[1];
  static kws::ModelApp app("Host", kHooks, atoi(argv[3]));
  app.Begin();
  if (strcmp(g_fault, "tables") == 0) PrintTables();
  static int16_t stride[320];
  int inferences = 0;
  for (int k = 1; k <= atoi(argv[2]); ++k) {  // one new 20 ms stride per step
    g_ring->Write(stride, 320);
    inferences += app.Step() ? 1 : 0;
  }
  printf("inferences %d\n", inferences);
  return 0;
}
"""


@pytest.fixture(scope="module")
def app_driver(tmp_path_factory):
    from kwslab.config import Config, DataConfig
    from kwslab.firmware import c_array_source, model_settings_header, model_sha256

    gxx = _need("g++")
    work = tmp_path_factory.mktemp("app")
    model = bytes([1, 2, 3, 4, 5])
    header, source = c_array_source(model)
    (work / "model_data.h").write_text(header)
    (work / "model_data.cpp").write_text(source)
    # Arena: 2000 measured -> 2000 * 1.2 + 1024 = 3424 -> rounded up to 4096 bytes.
    (work / "model_settings.h").write_text(model_settings_header(
        Config(data=DataConfig(words=("up", "down"))), input_scale=6660 / 65536,
        input_zero_point=-128, ops=["CONV_2D", "SOFTMAX"], arena_bytes=2000,
        model_name="host_test", model_sha256=model_sha256(model)))
    src = work / "app.cpp"
    src.write_text(APP_DRIVER)
    out = work / "app"
    sources = [str(work / "model_data.cpp")] + sorted(str(p) for p in PORTABLE.glob("*.cpp"))
    sources += sorted(str(p) for p in (SKETCH / "src" / "kws_device").glob("*.cpp"))
    _compile([gxx, "-std=c++11", "-O1", "-Wall", "-Wextra", "-Werror", f"-I{work}",
              f"-I{SKETCH / 'src'}", f"-I{STUBS}", str(src), *sources, "-o", str(out)])
    return out


def _run_app(app_driver, fault="", steps=0, profile_every=0):
    result = subprocess.run([str(app_driver), fault, str(steps), str(profile_every)],
                            capture_output=True, text=True)
    return result.returncode, result.stdout.splitlines()


BOOT_LINES = ['kwslab KWS on Host: model "host_test", 5 bytes', "arena used 3000 of 4096 bytes",
              "start_audio 16000", "Listening for: up down"]


def test_app_boot_prints_banner_arena_and_labels(app_driver):
    assert _run_app(app_driver) == (0, BOOT_LINES + ["inferences 0"])


@pytest.mark.parametrize("fault, message", [
    ("schema", "model schema version differs from the library's TFLITE_SCHEMA_VERSION"),
    ("ops", "op registration failed (KWS_OP_COUNT too small?)"),
    ("allocate", "AllocateTensors failed: arena of 4096 bytes too small or an op is missing"),
    ("input_type", "model input is not int8 49x40 (kFeatureElementCount)"),
    ("output_size", "model output is not int8 with kCategoryCount values"),
    ("scale", "model input scale 0.100000 / zero point -128 differ from model_settings.h "
              "(0.101624 / -128) or the feature mapping (0.101624 / -128)"),
    ("frontend", "micro frontend setup failed (memory?)"),
    ("audio", "mic failed"),
])
def test_app_boot_check_fails_with_its_message(app_driver, fault, message):
    code, lines = _run_app(app_driver, fault)
    assert code == 3
    assert lines[0] == BOOT_LINES[0]  # the banner comes first
    assert lines[-1] == "ERROR: " + message
    assert "Listening for: up down" not in lines


def test_app_installs_the_host_filterbank_tables(app_driver):
    """kws::FeatureProvider::Begin replaces the tables FrontendPopulateState computed with
    model_settings.h's (kwslab.firmware.filterbank_tables), every value."""
    code, lines = _run_app(app_driver, "tables")
    assert code == 0 and lines[:4] == BOOT_LINES
    assert lines[4] == ("tables start 1 end 1 starts 1 weight_starts 1 widths 1 weights 1 "
                        "unweights 1 replaced 1")


def test_app_step_detects_and_profiles(app_driver):
    from kwslab.firmware import parse_profile

    code, lines = _run_app(app_driver, steps=150, profile_every=50)
    assert code == 0 and lines[:4] == BOOT_LINES
    # Step k ends frame k at 20k ms; the feature window is full from k = 49 (980 ms), so
    # 150 steps run 102 inferences. All scores favour "up" (index 2: 127 + 128 = 255):
    # the first decision needs a 250 ms span of results (1240 - 980 = 260 >= 250 at
    # k = 62), the next one must be more than 1500 ms later (2760 ms, k = 138).
    assert lines[4:] == [
        "Heard up (score 255) @1240 ms", "respond 2 up 255 1240",
        # Per inference: features = 1 (t0 read) + 300 (frontend) = 301; capture = 1 (t1
        # read); invoke = 1 + 9000; post = 1, + 2000 once per 50 (one detection in each of
        # inferences k = 49..98 and k = 99..148): (50 + 2000) // 50 = 41.
        "profile_us capture=1 features=301 invoke=9001 post=41 dropped_strides=0",
        "Heard up (score 255) @2760 ms", "respond 2 up 255 2760",
        "profile_us capture=1 features=301 invoke=9001 post=41 dropped_strides=0",
        "inferences 102"]
    assert parse_profile("\n".join(lines)) == {"capture": 1.0, "features": 301.0,
                                               "invoke": 9001.0, "post": 41.0,
                                               "dropped_strides": 0.0}


def test_app_without_profiling_prints_no_profile_line(app_driver):
    _, lines = _run_app(app_driver, steps=150, profile_every=0)
    assert not [line for line in lines if line.startswith("profile_us")]
    assert lines[-1] == "inferences 102"
