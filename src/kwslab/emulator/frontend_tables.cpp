// Prints the micro frontend's filterbank tables as the library computes them on the
// machine it runs on (FrontendPopulateState with model_settings.h's FrontendConfig), one
// line per table: "<name> v0 v1 ...". Built for the host (gcc, glibc) and for the
// emulated Cortex-M4F with the boards' flags (startup.cpp, newlib over semihosting), so a
// test can compare both with kwslab.firmware.filterbank_tables.
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "model_settings.h"
#include "tensorflow/lite/experimental/microfrontend/lib/frontend.h"
#include "tensorflow/lite/experimental/microfrontend/lib/frontend_util.h"

int RunSimulation();

namespace {

void PrintTable(const char* name, const int16_t* values, int count) {
  printf("%s", name);
  for (int i = 0; i < count; ++i) printf(" %d", values[i]);
  printf("\n");
}

}  // namespace

int RunSimulation() {
  FrontendConfig config;
  memset(&config, 0, sizeof(config));
  config.window.size_ms = kWindowSizeMs;
  config.window.step_size_ms = kWindowStrideMs;
  config.filterbank.num_channels = kFeatureNumChannels;
  config.filterbank.lower_band_limit = kLowerBandLimitHz;
  config.filterbank.upper_band_limit = kUpperBandLimitHz;
  config.noise_reduction.smoothing_bits = kSmoothingBits;
  config.noise_reduction.even_smoothing = kEvenSmoothing;
  config.noise_reduction.odd_smoothing = kOddSmoothing;
  config.noise_reduction.min_signal_remaining = kMinSignalRemaining;
  config.pcan_gain_control.enable_pcan = kEnablePcan;
  config.pcan_gain_control.strength = kPcanStrength;
  config.pcan_gain_control.offset = kPcanOffset;
  config.pcan_gain_control.gain_bits = kPcanGainBits;
  config.log_scale.enable_log = kEnableLog;
  config.log_scale.scale_shift = kLogScaleShift;
  static FrontendState state;
  if (!FrontendPopulateState(&config, &state, kAudioSampleRateHz)) {
    printf("ERROR: FrontendPopulateState failed\n");
    return 2;
  }
  const FilterbankState& fb = state.filterbank;
  const int channels_plus_1 = fb.num_channels + 1;
  int weight_count = 0;  // the weights array's length: the end of the furthest channel
  for (int c = 0; c < channels_plus_1; ++c) {
    const int end = fb.channel_weight_starts[c] + fb.channel_widths[c];
    if (end > weight_count) weight_count = end;
  }
  printf("num_channels %d\nstart_index %d\nend_index %d\n", fb.num_channels, fb.start_index,
         fb.end_index);
  PrintTable("channel_frequency_starts", fb.channel_frequency_starts, channels_plus_1);
  PrintTable("channel_weight_starts", fb.channel_weight_starts, channels_plus_1);
  PrintTable("channel_widths", fb.channel_widths, channels_plus_1);
  PrintTable("weights", fb.weights, weight_count);
  PrintTable("unweights", fb.unweights, weight_count);
  printf("done\n");
  FrontendFreeStateContents(&state);
  return 0;
}

#ifndef __arm__
int main() { return RunSimulation(); }
#endif
