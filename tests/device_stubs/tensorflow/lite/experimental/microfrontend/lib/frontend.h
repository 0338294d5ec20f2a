// Stand-in for the micro frontend's frontend.h (C API): the filterbank's state as the
// library declares it (filterbank.h), the other parts opaque.
#pragma once
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
struct FilterbankState {
  int num_channels;
  int start_index;
  int end_index;
  int16_t* channel_frequency_starts;
  int16_t* channel_weight_starts;
  int16_t* channel_widths;
  int16_t* weights;
  int16_t* unweights;
  uint64_t* work;
};
struct FrontendState {
  void* window_and_fft_parts[8];
  struct FilterbankState filterbank;
  void* other_parts[8];
};
struct FrontendOutput {
  const uint16_t* values;
  size_t size;
};
struct FrontendOutput FrontendProcessSamples(struct FrontendState* state,
                                             const int16_t* samples, size_t num_samples,
                                             size_t* num_samples_read);
void FrontendReset(struct FrontendState* state);
#ifdef __cplusplus
}
#endif
