// PDM microphone capture on PSoC 6 through cyhal_pdm_pcm (16 kHz, mono left, 16-bit),
// clocked from PLL0 at 24.576 MHz through CLK_HF[1], into a kws::AudioRing from the
// PDM/PCM interrupt (ping-pong async reads).
#ifndef KWS_PSOC6_AUDIO_CAPTURE_H_
#define KWS_PSOC6_AUDIO_CAPTURE_H_

#include "kws/audio_ring.h"

// gain_half_db: PDM/PCM PGA gain in 0.5 dB steps (-24..21). Returns false on HAL errors.
bool AudioCaptureBegin(kws::AudioRing* ring, int sample_rate_hz, int gain_half_db);

#endif  // KWS_PSOC6_AUDIO_CAPTURE_H_
