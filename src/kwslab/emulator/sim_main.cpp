// kwslab firmware-in-the-loop: the boards' application (kws::ModelApp: micro frontend ->
// int8 feature window -> TFLite Micro -> RecognizeCommands) run on an emulated Cortex-M4F
// (QEMU mps2-an386) with semihosting file I/O instead of a microphone.
//
// Reads audio.raw (int16 mono PCM, 16 kHz) from QEMU's working folder and feeds it one
// 20 ms stride per loop pass, as the microphone's interrupt would, calling App::Step after
// each. Writes trace.bin: per inference, int32 time_ms, the int8 input window and the int8
// scores. Prints the app's lines (banner, "Heard ...", and with profiling one
// "profile_us ..." line per inference whose values are ticks of the board's 25 MHz
// CMSDK timer: with -icount shift=0 one tick is 40 instructions).
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_settings.h"
#include "model_data.h"
#include "kws_device/model_app.h"

#ifndef KWS_INFERENCE_EVERY_SLICES
#define KWS_INFERENCE_EVERY_SLICES 1
#endif

int RunSimulation();  // called by startup.cpp's Reset_Handler

// TFLite Micro's log sink (the Arduino library's Serial version is excluded).
extern "C" void DebugLog(const char* s) { fputs(s, stdout); }

namespace {

// CMSDK APB timer 0 (mps2-an386): 25 MHz down counter.
struct CmsdkTimer {
  volatile uint32_t ctrl, value, reload, intstatus;
};
CmsdkTimer* const kTimer0 = reinterpret_cast<CmsdkTimer*>(0x40000000u);

uint32_t Ticks() { return 0xFFFFFFFFu - kTimer0->value; }

kws::AudioRing* g_ring = nullptr;
FILE* g_trace = nullptr;

void PrintLine(const char* line) { printf("%s\n", line); }
void Fail(const char* message) {
  printf("ERROR: %s\n", message);
  exit(3);
}
const char* StartAudio(kws::AudioRing* ring, int /*sample_rate_hz*/) {
  g_ring = ring;
  return nullptr;
}
void Respond(int, const char*, int32_t, int32_t) {}
// The input window is copied before Invoke (the arena may reuse its memory); the record is
// written with the scores.
int8_t g_window[kFeatureElementCount];
void ObserveInput(const int8_t* input, int input_bytes) {
  memcpy(g_window, input, static_cast<size_t>(input_bytes));
}
void ObserveScores(const int8_t* scores, int category_count, int32_t time_ms) {
  fwrite(&time_ms, sizeof(time_ms), 1, g_trace);
  fwrite(g_window, 1, sizeof(g_window), g_trace);
  fwrite(scores, 1, static_cast<size_t>(category_count), g_trace);
}

const kws::AppHooks kHooks = {Ticks, PrintLine, Fail, StartAudio, Respond, ObserveInput,
                              ObserveScores};
kws::ModelApp g_app("emulated Cortex-M4F", kHooks, 1, KWS_INFERENCE_EVERY_SLICES);

}  // namespace

int RunSimulation() {
  kTimer0->ctrl = 0;
  kTimer0->reload = 0xFFFFFFFFu;
  kTimer0->value = 0xFFFFFFFFu;
  kTimer0->ctrl = 1;
  FILE* audio = fopen("audio.raw", "rb");
  g_trace = fopen("trace.bin", "wb");
  if (audio == nullptr || g_trace == nullptr) {
    printf("ERROR: cannot open audio.raw / trace.bin\n");
    return 2;
  }
  const uint32_t t0 = Ticks();
  g_app.Begin();
  printf("boot_ticks %lu\n", static_cast<unsigned long>(Ticks() - t0));
  static int16_t stride[kWindowStrideSamples];
  for (;;) {
    const size_t n = fread(stride, sizeof(int16_t), kWindowStrideSamples, audio);
    if (n < static_cast<size_t>(kWindowStrideSamples)) break;  // a partial stride is not fed
    g_ring->Write(stride, static_cast<uint32_t>(n));
    g_app.Step();
  }
  fclose(audio);
  fclose(g_trace);
  printf("done\n");
  return 0;
}
