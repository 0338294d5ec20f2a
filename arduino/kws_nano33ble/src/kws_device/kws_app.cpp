#include "kws_app.h"

#include <stdio.h>
#include <string.h>

#include "../kws/feature_quant.h"
#include "../kws/labels.h"
#include "tensorflow/lite/schema/schema_generated.h"

namespace kws {

App::App(const char* board_name, const ModelSpec& spec, const AppHooks& hooks,
         AudioRing* audio, FeatureRing* features, FeatureProvider* provider, int profile_every,
         int inference_every_slices)
    : board_name_(board_name),
      spec_(spec),
      hooks_(hooks),
      audio_(audio),
      features_(features),
      provider_(provider),
      profile_every_(profile_every),
      inference_every_slices_(inference_every_slices < 1 ? 1 : inference_every_slices),
      recognizer_(spec.category_count, spec.average_window_ms, spec.detection_threshold,
                  spec.suppression_ms, spec.minimum_count),
      interpreter_(nullptr),
      input_(nullptr),
      output_(nullptr),
      profile_us_{0, 0, 0, 0},
      profile_count_(0) {
  line_[0] = '\0';
}

void App::Begin(const tflite::MicroOpResolver& resolver, int op_registration_failures) {
  snprintf(line_, sizeof(line_), "kwslab KWS on %s: model \"%s\", %u bytes", board_name_,
           spec_.name, spec_.data_len);
  Print(line_);

  const tflite::Model* model = tflite::GetModel(spec_.data);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    hooks_.fail("model schema version differs from the library's TFLITE_SCHEMA_VERSION");
  }
  if (op_registration_failures != 0) {
    hooks_.fail("op registration failed (KWS_OP_COUNT too small?)");
  }
  static tflite::MicroInterpreter interpreter(model, resolver, spec_.arena,
                                              static_cast<size_t>(spec_.arena_bytes));
  interpreter_ = &interpreter;
  if (interpreter_->AllocateTensors() != kTfLiteOk) {
    snprintf(line_, sizeof(line_),
             "AllocateTensors failed: arena of %d bytes too small or an op is missing",
             spec_.arena_bytes);
    hooks_.fail(line_);
  }
  input_ = interpreter_->input(0);
  output_ = interpreter_->output(0);
  if (input_->type != kTfLiteInt8 ||
      input_->bytes != static_cast<size_t>(spec_.feature_element_count)) {
    hooks_.fail("model input is not int8 49x40 (kFeatureElementCount)");
  }
  if (output_->type != kTfLiteInt8 ||
      output_->bytes != static_cast<size_t>(spec_.category_count)) {
    hooks_.fail("model output is not int8 with kCategoryCount values");
  }
  const float scale = input_->params.scale;
  const int32_t zero_point = input_->params.zero_point;
  if (zero_point != spec_.input_zero_point || scale != spec_.input_scale ||
      !InputQuantizationMatches(scale, zero_point)) {
    snprintf(line_, sizeof(line_),
             "model input scale %.6f / zero point %ld differ from model_settings.h "
             "(%.6f / %ld) or the feature mapping (0.101624 / -128)",
             static_cast<double>(scale), static_cast<long>(zero_point),
             static_cast<double>(spec_.input_scale), static_cast<long>(spec_.input_zero_point));
    hooks_.fail(line_);
  }
  snprintf(line_, sizeof(line_), "arena used %u of %d bytes",
           static_cast<unsigned>(interpreter_->arena_used_bytes()), spec_.arena_bytes);
  Print(line_);
  if (strncmp(spec_.name, "PLACEHOLDER", 11) == 0) {
    Print("WARNING: placeholder model, detections are meaningless: run the export");
  }

  if (!provider_->Begin()) hooks_.fail("micro frontend setup failed (memory?)");
  const char* audio_error = hooks_.start_audio(audio_, spec_.sample_rate_hz);
  if (audio_error != nullptr) hooks_.fail(audio_error);

  size_t used = static_cast<size_t>(snprintf(line_, sizeof(line_), "Listening for:"));
  for (int i = 0; i < spec_.category_count; ++i) {
    const char* label = spec_.labels[i];
    if (IsBackgroundLabel(label)) continue;
    if (used + 1 + strlen(label) >= sizeof(line_)) break;  // keep the line whole-word
    used += static_cast<size_t>(snprintf(line_ + used, sizeof(line_) - used, " %s", label));
  }
  Print(line_);
}

bool App::Step() {
  const bool profile = profile_every_ > 0;
  // Features: only the new 20 ms slices since the last step (audio copy included), up to
  // the next slice the cadence scores.
  const uint32_t t0 = profile ? hooks_.micros() : 0;
  const uint32_t window = static_cast<uint32_t>(features_->num_slices());
  const uint32_t every = static_cast<uint32_t>(inference_every_slices_);
  const uint32_t pushed = features_->total_pushed();
  const uint32_t to_next = pushed < window ? window - pushed : every - (pushed - window) % every;
  const int new_slices = provider_->Update(static_cast<int>(to_next));
  if (new_slices != static_cast<int>(to_next)) return false;
  const uint32_t t1 = profile ? hooks_.micros() : 0;
  features_->CopyWindow(input_->data.int8);
  if (hooks_.observe_input != nullptr) {
    hooks_.observe_input(input_->data.int8, spec_.feature_element_count);
  }
  const uint32_t t2 = profile ? hooks_.micros() : 0;
  if (interpreter_->Invoke() != kTfLiteOk) {
    Print("ERROR: Invoke failed");
    return false;
  }
  const uint32_t t3 = profile ? hooks_.micros() : 0;
  RecognizeResult result;
  const int32_t now_ms = provider_->latest_frame_end_ms();
  if (hooks_.observe_scores != nullptr) {
    hooks_.observe_scores(output_->data.int8, spec_.category_count, now_ms);
  }
  if (recognizer_.ProcessLatestResults(output_->data.int8, now_ms, &result) !=
      RecognizeStatus::kOk) {
    Print("ERROR: RecognizeCommands rejected the result");
    return false;
  }
  const char* label = LabelFor(result.label_index, spec_.labels, spec_.category_count);
  if (result.is_new_command && !IsBackgroundLabel(label)) {
    snprintf(line_, sizeof(line_), "Heard %s (score %ld) @%ld ms", label,
             static_cast<long>(result.score), static_cast<long>(now_ms));
    Print(line_);
    hooks_.respond(result.label_index, label, result.score, now_ms);
  }
  if (profile) AccumulateProfile(t0, t1, t2, t3, hooks_.micros());
  return true;
}

// Stages: capture = window copy into the input tensor (the microphone runs in an
// interrupt), features = frontend on the new slices, invoke, post-processing
// (RecognizeCommands and the response). Parsed by kwslab.prune_lab.parse_profile.
void App::AccumulateProfile(uint32_t t0, uint32_t t1, uint32_t t2, uint32_t t3, uint32_t t4) {
  profile_us_[0] += t2 - t1;
  profile_us_[1] += t1 - t0;
  profile_us_[2] += t3 - t2;
  profile_us_[3] += t4 - t3;
  if (++profile_count_ < profile_every_) return;
  const uint32_t n = static_cast<uint32_t>(profile_every_);
  snprintf(line_, sizeof(line_),
           "profile_us capture=%lu features=%lu invoke=%lu post=%lu dropped_strides=%lu",
           static_cast<unsigned long>(profile_us_[0] / n),
           static_cast<unsigned long>(profile_us_[1] / n),
           static_cast<unsigned long>(profile_us_[2] / n),
           static_cast<unsigned long>(profile_us_[3] / n),
           static_cast<unsigned long>(provider_->dropped_strides()));
  Print(line_);
  for (uint32_t& v : profile_us_) v = 0;
  profile_count_ = 0;
}

}  // namespace kws
