// Streaming feature generation on the device with TFLite Micro's micro frontend C API
// (FrontendPopulateState / FrontendProcessSamples / FrontendFreeStateContents).
//
// Audio is fed to the frontend contiguously, one 20 ms stride at a time; the frontend keeps
// the window overlap and its noise/PCAN state between calls, exactly as the host feature
// op does when it runs over a whole stream. Each completed frame (40 uint16 values) is
// quantized to int8 (kws::QuantizeFeatures) and pushed into a kws::FeatureRing.
// Shared by the Arduino sketch and the PSoC 6 app; needs the microfrontend headers only.
#ifndef KWS_DEVICE_FEATURE_PROVIDER_H_
#define KWS_DEVICE_FEATURE_PROVIDER_H_

#include <stdint.h>

#include "../kws/audio_ring.h"
#include "../kws/feature_ring.h"

namespace kws {

// The micro frontend's filterbank tables as the host computes them (model_settings.h's
// kFilterbank*; kwslab.firmware.filterbank_tables). Begin copies them over the ones
// FrontendPopulateState computed on the board: built with the boards' flags, GCC fuses a
// multiply-add in the library's CalculateCenterFrequencies (vfma.f32), which moves two
// weights of the top channel by 1/4096, and the board's features would then differ from
// the training features in rare frames.
struct FilterbankTables {
  int start_index;
  int end_index;
  int weight_count;
  const int16_t* channel_frequency_starts;  // num_channels + 1 values each
  const int16_t* channel_weight_starts;
  const int16_t* channel_widths;
  const int16_t* weights;  // weight_count values each
  const int16_t* unweights;
};

// FrontendConfig values (filled from the generated model_settings.h by the caller).
struct FrontendSettings {
  int sample_rate_hz;
  int window_size_ms;
  int window_stride_ms;
  int window_stride_samples;
  int num_channels;
  float lower_band_limit_hz;
  float upper_band_limit_hz;
  int smoothing_bits;
  float even_smoothing;
  float odd_smoothing;
  float min_signal_remaining;
  int enable_pcan;
  float pcan_strength;
  float pcan_offset;
  int pcan_gain_bits;
  int enable_log;
  int log_scale_shift;
  const FilterbankTables* filterbank;  // nullptr: keep the tables the library computed
};

class FeatureProvider {
 public:
  static constexpr int kMaxStrideSamples = 512;
  static constexpr int kMaxChannels = 64;

  FeatureProvider(const FrontendSettings& settings, AudioRing* audio, FeatureRing* features);
  ~FeatureProvider();

  // Allocates the frontend state and installs settings.filterbank's tables; false on bad
  // settings or out of memory.
  bool Begin();

  // Feeds complete new strides of captured audio through the frontend, pushing each
  // finished frame, and stops after max_frames frames (the rest waits for the next call).
  // Returns the number of frames pushed (0 if no new stride yet).
  // If the reader fell behind the audio ring, skips to the newest audio and counts it.
  int Update(int max_frames = 0x7fffffff);

  // Audio position (samples since capture start) at the end of the newest frame, in ms.
  int32_t latest_frame_end_ms() const { return latest_frame_end_ms_; }
  uint32_t dropped_strides() const { return dropped_strides_; }
  uint32_t audio_cursor() const { return cursor_; }

 private:
  FrontendSettings settings_;
  AudioRing* audio_;
  FeatureRing* features_;
  void* state_;  // struct FrontendState*, kept opaque so callers need no frontend headers
  bool begun_;
  uint32_t cursor_;  // next audio sample to feed
  int32_t latest_frame_end_ms_;
  uint32_t dropped_strides_;
  int16_t stride_[kMaxStrideSamples];
  int8_t slice_[kMaxChannels];
};

}  // namespace kws

#endif  // KWS_DEVICE_FEATURE_PROVIDER_H_
