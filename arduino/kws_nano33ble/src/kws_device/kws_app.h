// The keyword-spotting application shared by the Arduino sketch and the PSoC 6 app: boot
// checks and interpreter setup, then the streaming step (new 20 ms slices -> features ->
// TFLite Micro Invoke -> RecognizeCommands -> response) with optional per-stage profiling.
//
// Board-independent and model-independent: the board passes its clock, line output, failure
// handler, audio start and response as AppHooks, and the model's numbers as a ModelSpec.
// kws_device/model_app.h fills both from the generated model_settings.h / model_data.h and
// owns the buffers sized by them; the board mains use that header, not this one directly.
// Depends on TFLite Micro (MicroInterpreter), not on Arduino or cyhal.
#ifndef KWS_DEVICE_KWS_APP_H_
#define KWS_DEVICE_KWS_APP_H_

#include <stdint.h>

#include "../kws/audio_ring.h"
#include "../kws/feature_ring.h"
#include "../kws/recognize_commands.h"
#include "feature_provider.h"
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/micro_interpreter.h"

namespace kws {

// What the board provides. Every pointer must be set.
struct AppHooks {
  // Free-running microsecond counter (wraps at 2^32); used for profiling only.
  uint32_t (*micros)();
  // Writes one line of text; the board adds its line ending.
  void (*print_line)(const char* line);
  // Reports a failed boot check (prints "ERROR: " + message) and never returns.
  void (*fail)(const char* message);
  // Starts audio capture into ring at sample_rate_hz; nullptr on success, else the message
  // to fail with.
  const char* (*start_audio)(AudioRing* ring, int sample_rate_hz);
  // Shows a new, non-background command (LED); the app has already printed its line.
  // label_index indexes the labels; score is the 0..255 average; time_ms is audio time.
  void (*respond)(int label_index, const char* label, int32_t score, int32_t time_ms);
  // Optional (nullptr on the boards): see each inference's int8 input window just before
  // Invoke (the arena may reuse the input's memory during Invoke), then its int8 scores
  // and audio time before RecognizeCommands. The emulator harness records them.
  void (*observe_input)(const int8_t* input, int input_bytes);
  void (*observe_scores)(const int8_t* scores, int category_count, int32_t time_ms);
};

// The model and its settings (model_data.h, model_settings.h).
struct ModelSpec {
  const char* name;
  const unsigned char* data;  // .tflite flatbuffer
  unsigned int data_len;      // bytes
  uint8_t* arena;             // tensor arena, 16-byte aligned
  int arena_bytes;
  int sample_rate_hz;
  int feature_element_count;  // frames x channels of the int8 input
  const char* const* labels;  // category_count names in model output order
  int category_count;
  float input_scale;          // the input quantization model_settings.h records
  int32_t input_zero_point;
  int32_t average_window_ms;  // RecognizeCommands settings
  int32_t detection_threshold;
  int32_t suppression_ms;
  int32_t minimum_count;
};

class App {
 public:
  // Inferences averaged per "profile_us ..." line; profile_every = 0 turns profiling off.
  static constexpr int kDefaultProfileEvery = 50;

  // board_name goes into the boot banner. audio/features/provider outlive the App.
  // inference_every_slices (>= 1) is the inference cadence: the model runs on the window
  // that ends with the first full window's slice and then on every inference_every_slices-th
  // slice after it (1: every 20 ms slice, as the host twin's default). A board too slow for
  // its cadence falls behind on audio (the audio ring absorbs up to 512 ms, then
  // dropped_strides counts what was skipped) but never changes which windows it scores.
  App(const char* board_name, const ModelSpec& spec, const AppHooks& hooks, AudioRing* audio,
      FeatureRing* features, FeatureProvider* provider, int profile_every,
      int inference_every_slices = 1);

  // Boot: banner, schema version, op registration (op_registration_failures as returned by
  // kws::RegisterModelOps on resolver), interpreter and AllocateTensors, input/output
  // type and size, input scale/zero point, arena use, frontend, audio start, label list.
  // A failed check calls hooks.fail. Call once: the interpreter is a function-local static.
  void Begin(const tflite::MicroOpResolver& resolver, int op_registration_failures);

  // One pass of the loop: feeds the new audio strides through the frontend, up to the next
  // slice the cadence scores, and if that slice arrived runs the model and
  // RecognizeCommands and responds. Returns true if it ran an inference.
  bool Step();

 private:
  void Print(const char* line) { hooks_.print_line(line); }
  void AccumulateProfile(uint32_t t0, uint32_t t1, uint32_t t2, uint32_t t3, uint32_t t4);

  const char* board_name_;
  ModelSpec spec_;
  AppHooks hooks_;
  AudioRing* audio_;
  FeatureRing* features_;
  FeatureProvider* provider_;
  int profile_every_;
  int inference_every_slices_;
  RecognizeCommands recognizer_;
  tflite::MicroInterpreter* interpreter_;
  TfLiteTensor* input_;
  TfLiteTensor* output_;
  uint32_t profile_us_[4];  // capture, features, invoke, post-processing (sums)
  int profile_count_;
  char line_[160];
};

}  // namespace kws

#endif  // KWS_DEVICE_KWS_APP_H_
