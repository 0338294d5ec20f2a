#include "feature_provider.h"

#include <stdlib.h>
#include <string.h>

#include "../kws/feature_quant.h"
#include "tensorflow/lite/experimental/microfrontend/lib/frontend.h"
#include "tensorflow/lite/experimental/microfrontend/lib/frontend_util.h"

namespace kws {

namespace {
FrontendState* AsState(void* p) { return static_cast<FrontendState*>(p); }

// Replaces *table (the library's malloc'd array) with a malloc'd copy of values.
bool ReplaceTable(const int16_t* values, int count, int16_t** table) {
  int16_t* copy = static_cast<int16_t*>(malloc(static_cast<size_t>(count) * sizeof(int16_t)));
  if (copy == nullptr) return false;
  memcpy(copy, values, static_cast<size_t>(count) * sizeof(int16_t));
  free(*table);
  *table = copy;
  return true;
}

// Installs the host-computed filterbank tables (see FilterbankTables); the library frees
// them with the rest of the state (FrontendFreeStateContents).
bool UseFilterbankTables(const FilterbankTables& t, FilterbankState* fb) {
  const int channels_plus_1 = fb->num_channels + 1;
  if (t.weight_count <= 0 || t.start_index < 0 || t.end_index <= t.start_index) return false;
  fb->start_index = t.start_index;
  fb->end_index = t.end_index;
  return ReplaceTable(t.channel_frequency_starts, channels_plus_1, &fb->channel_frequency_starts) &&
         ReplaceTable(t.channel_weight_starts, channels_plus_1, &fb->channel_weight_starts) &&
         ReplaceTable(t.channel_widths, channels_plus_1, &fb->channel_widths) &&
         ReplaceTable(t.weights, t.weight_count, &fb->weights) &&
         ReplaceTable(t.unweights, t.weight_count, &fb->unweights);
}
}  // namespace

FeatureProvider::FeatureProvider(const FrontendSettings& settings, AudioRing* audio,
                                 FeatureRing* features)
    : settings_(settings),
      audio_(audio),
      features_(features),
      state_(nullptr),
      begun_(false),
      cursor_(0),
      latest_frame_end_ms_(0),
      dropped_strides_(0) {}

FeatureProvider::~FeatureProvider() {
  if (state_ != nullptr) {
    if (begun_) FrontendFreeStateContents(AsState(state_));
    free(state_);
  }
}

bool FeatureProvider::Begin() {
  if (settings_.window_stride_samples <= 0 ||
      settings_.window_stride_samples > kMaxStrideSamples || settings_.num_channels <= 0 ||
      settings_.num_channels > kMaxChannels) {
    return false;
  }
  FrontendConfig config;
  memset(&config, 0, sizeof(config));
  config.window.size_ms = static_cast<size_t>(settings_.window_size_ms);
  config.window.step_size_ms = static_cast<size_t>(settings_.window_stride_ms);
  config.filterbank.num_channels = settings_.num_channels;
  config.filterbank.lower_band_limit = settings_.lower_band_limit_hz;
  config.filterbank.upper_band_limit = settings_.upper_band_limit_hz;
  config.noise_reduction.smoothing_bits = settings_.smoothing_bits;
  config.noise_reduction.even_smoothing = settings_.even_smoothing;
  config.noise_reduction.odd_smoothing = settings_.odd_smoothing;
  config.noise_reduction.min_signal_remaining = settings_.min_signal_remaining;
  config.pcan_gain_control.enable_pcan = settings_.enable_pcan;
  config.pcan_gain_control.strength = settings_.pcan_strength;
  config.pcan_gain_control.offset = settings_.pcan_offset;
  config.pcan_gain_control.gain_bits = settings_.pcan_gain_bits;
  config.log_scale.enable_log = settings_.enable_log;
  config.log_scale.scale_shift = settings_.log_scale_shift;

  state_ = calloc(1, sizeof(FrontendState));
  if (state_ == nullptr) return false;
  if (!FrontendPopulateState(&config, AsState(state_), settings_.sample_rate_hz)) return false;
  if (settings_.filterbank != nullptr &&
      !UseFilterbankTables(*settings_.filterbank, &AsState(state_)->filterbank)) {
    FrontendFreeStateContents(AsState(state_));
    return false;
  }
  begun_ = true;
  cursor_ = audio_->total_written();
  return true;
}

int FeatureProvider::Update(int max_frames) {
  if (!begun_) return 0;
  const uint32_t stride = static_cast<uint32_t>(settings_.window_stride_samples);
  int pushed = 0;
  // Keep one stride of guard so the ISR never writes what is being copied.
  while (pushed < max_frames && audio_->total_written() - cursor_ >= stride) {
    if (!audio_->Read(cursor_, stride, stride_, stride)) {
      // Fell behind: restart two strides before the newest audio (the frontend state
      // carries on across the gap).
      const uint32_t new_cursor = audio_->total_written() - 2 * stride;
      dropped_strides_ += (new_cursor - cursor_) / stride;
      cursor_ = new_cursor;
      continue;
    }
    const int16_t* samples = stride_;
    size_t left = stride;
    while (left > 0) {
      size_t read = 0;
      FrontendOutput out = FrontendProcessSamples(AsState(state_), samples, left, &read);
      samples += read;
      left -= read;
      if (out.values != nullptr && out.size == static_cast<size_t>(settings_.num_channels)) {
        QuantizeFeatures(out.values, out.size, slice_);
        features_->PushSlice(slice_);
        ++pushed;
        const uint32_t end_sample = cursor_ + (stride - static_cast<uint32_t>(left));
        latest_frame_end_ms_ = static_cast<int32_t>(
            (static_cast<uint64_t>(end_sample) * 1000u) /
            static_cast<uint32_t>(settings_.sample_rate_hz));
      }
      if (read == 0) break;
    }
    cursor_ += stride;
  }
  return pushed;
}

}  // namespace kws
