#include "audio_capture.h"

#include "cybsp.h"
#include "cyhal.h"

namespace {

constexpr uint32_t kAudioSysClockHz = 24576000;  // PLL: 16 kHz * 64 decimation * 24
constexpr uint8_t kDecimationRate = 64;
constexpr size_t kFrameSamples = 320;  // one 20 ms stride per interrupt

cyhal_clock_t g_pll_clock;
cyhal_clock_t g_audio_clock;
cyhal_pdm_pcm_t g_pdm_pcm;
int16_t g_frames[2][kFrameSamples];
int g_current = 0;
kws::AudioRing* g_ring = nullptr;

void PdmEvent(void* arg, cyhal_pdm_pcm_event_t event) {
  (void)arg;
  if ((event & CYHAL_PDM_PCM_ASYNC_COMPLETE) == 0) return;
  const int done = g_current;
  g_current ^= 1;
  cyhal_pdm_pcm_read_async(&g_pdm_pcm, g_frames[g_current], kFrameSamples);
  g_ring->Write(g_frames[done], kFrameSamples);
}

}  // namespace

bool AudioCaptureBegin(kws::AudioRing* ring, int sample_rate_hz, int gain_half_db) {
  g_ring = ring;
  // Audio clock: PLL0 at 24.576 MHz feeding CLK_HF[1], the PDM/PCM block's root clock.
  if (cyhal_clock_reserve(&g_pll_clock, &CYHAL_CLOCK_PLL[0]) != CY_RSLT_SUCCESS) return false;
  if (cyhal_clock_set_frequency(&g_pll_clock, kAudioSysClockHz, NULL) != CY_RSLT_SUCCESS) {
    return false;
  }
  if (cyhal_clock_set_enabled(&g_pll_clock, true, true) != CY_RSLT_SUCCESS) return false;
  if (cyhal_clock_reserve(&g_audio_clock, &CYHAL_CLOCK_HF[1]) != CY_RSLT_SUCCESS) return false;
  if (cyhal_clock_set_source(&g_audio_clock, &g_pll_clock) != CY_RSLT_SUCCESS) return false;
  if (cyhal_clock_set_enabled(&g_audio_clock, true, true) != CY_RSLT_SUCCESS) return false;

  cyhal_pdm_pcm_cfg_t cfg;
  cfg.sample_rate = static_cast<uint32_t>(sample_rate_hz);
  cfg.decimation_rate = kDecimationRate;
  cfg.mode = CYHAL_PDM_PCM_MODE_LEFT;
  cfg.word_length = 16;
  cfg.left_gain = static_cast<int16_t>(gain_half_db);
  cfg.right_gain = static_cast<int16_t>(gain_half_db);
  if (cyhal_pdm_pcm_init(&g_pdm_pcm, CYBSP_PDM_DATA, CYBSP_PDM_CLK, &g_audio_clock, &cfg) !=
      CY_RSLT_SUCCESS) {
    return false;
  }
  cyhal_pdm_pcm_register_callback(&g_pdm_pcm, PdmEvent, NULL);
  cyhal_pdm_pcm_enable_event(&g_pdm_pcm, CYHAL_PDM_PCM_ASYNC_COMPLETE,
                             CYHAL_ISR_PRIORITY_DEFAULT, true);
  if (cyhal_pdm_pcm_start(&g_pdm_pcm) != CY_RSLT_SUCCESS) return false;
  return cyhal_pdm_pcm_read_async(&g_pdm_pcm, g_frames[g_current], kFrameSamples) ==
         CY_RSLT_SUCCESS;
}
