// Stand-in for the micro frontend's frontend.h (C API).
#pragma once
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
struct FrontendState { void* opaque_parts[8]; };
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
