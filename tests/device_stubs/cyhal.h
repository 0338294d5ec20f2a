// Stand-in for Infineon's cyhal.h (mtb-hal-cat1, HAL 2.x): what kwslab's PSoC 6 app uses.
#pragma once
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif
typedef uint32_t cy_rslt_t;
#define CY_RSLT_SUCCESS ((cy_rslt_t)0x00000000U)
#define CY_ASSERT(x) do { if (!(x)) { for (;;) { } } } while (0)
void __enable_irq(void);

typedef enum { NC = 0xFF, P10_4 = 0x54, P10_5 = 0x55, P13_7 = 0x6F, P5_0 = 0x28, P5_1 = 0x29 } cyhal_gpio_t;
typedef enum { CYHAL_GPIO_DIR_INPUT, CYHAL_GPIO_DIR_OUTPUT, CYHAL_GPIO_DIR_BIDIRECTIONAL } cyhal_gpio_direction_t;
typedef enum { CYHAL_GPIO_DRIVE_NONE, CYHAL_GPIO_DRIVE_STRONG = 6 } cyhal_gpio_drive_mode_t;
cy_rslt_t cyhal_gpio_init(cyhal_gpio_t pin, cyhal_gpio_direction_t direction,
                          cyhal_gpio_drive_mode_t drive_mode, bool init_val);
void cyhal_gpio_write(cyhal_gpio_t pin, bool value);
void cyhal_system_delay_ms(uint32_t milliseconds);
#define CYHAL_ISR_PRIORITY_DEFAULT (7u)

typedef struct { uint32_t block; uint8_t channel; bool reserved; } cyhal_clock_t;
typedef struct { int type; uint32_t value; } cyhal_clock_tolerance_t;
extern const cyhal_clock_t CYHAL_CLOCK_PLL[];
extern const cyhal_clock_t CYHAL_CLOCK_HF[];
cy_rslt_t cyhal_clock_reserve(cyhal_clock_t* clock, const cyhal_clock_t* clock_);
cy_rslt_t cyhal_clock_set_frequency(cyhal_clock_t* clock, uint32_t hz,
                                    const cyhal_clock_tolerance_t* tolerance);
cy_rslt_t cyhal_clock_set_enabled(cyhal_clock_t* clock, bool enabled, bool wait_for_lock);
cy_rslt_t cyhal_clock_set_source(cyhal_clock_t* clock, const cyhal_clock_t* source);

typedef enum { CYHAL_PDM_PCM_MODE_LEFT, CYHAL_PDM_PCM_MODE_RIGHT, CYHAL_PDM_PCM_MODE_STEREO } cyhal_pdm_pcm_mode_t;
typedef enum { CYHAL_PDM_PCM_RX_HALF_FULL = 1, CYHAL_PDM_PCM_RX_NOT_EMPTY = 2,
               CYHAL_PDM_PCM_RX_OVERFLOW = 4, CYHAL_PDM_PCM_RX_UNDERFLOW = 8,
               CYHAL_PDM_PCM_ASYNC_COMPLETE = 16 } cyhal_pdm_pcm_event_t;
typedef struct {
  uint32_t sample_rate;
  uint8_t decimation_rate;
  cyhal_pdm_pcm_mode_t mode;
  uint8_t word_length;
  int16_t left_gain;
  int16_t right_gain;
} cyhal_pdm_pcm_cfg_t;
typedef struct { void* base; } cyhal_pdm_pcm_t;
typedef void (*cyhal_pdm_pcm_event_callback_t)(void* callback_arg, cyhal_pdm_pcm_event_t event);
cy_rslt_t cyhal_pdm_pcm_init(cyhal_pdm_pcm_t* obj, cyhal_gpio_t pin_data, cyhal_gpio_t pin_clk,
                             const cyhal_clock_t* clk_source, const cyhal_pdm_pcm_cfg_t* cfg);
void cyhal_pdm_pcm_register_callback(cyhal_pdm_pcm_t* obj,
                                     cyhal_pdm_pcm_event_callback_t callback,
                                     void* callback_arg);
void cyhal_pdm_pcm_enable_event(cyhal_pdm_pcm_t* obj, cyhal_pdm_pcm_event_t event,
                                uint8_t intr_priority, bool enable);
cy_rslt_t cyhal_pdm_pcm_start(cyhal_pdm_pcm_t* obj);
cy_rslt_t cyhal_pdm_pcm_read_async(cyhal_pdm_pcm_t* obj, void* data, size_t length);

typedef enum { CYHAL_TIMER_DIR_UP, CYHAL_TIMER_DIR_DOWN, CYHAL_TIMER_DIR_UP_DOWN } cyhal_timer_direction_t;
typedef struct {
  bool is_continuous;
  cyhal_timer_direction_t direction;
  bool is_compare;
  uint32_t period;
  uint32_t compare_value;
  uint32_t value;
} cyhal_timer_cfg_t;
typedef struct { void* base; } cyhal_timer_t;
cy_rslt_t cyhal_timer_init(cyhal_timer_t* obj, cyhal_gpio_t pin, const cyhal_clock_t* clk);
cy_rslt_t cyhal_timer_configure(cyhal_timer_t* obj, const cyhal_timer_cfg_t* cfg);
cy_rslt_t cyhal_timer_set_frequency(cyhal_timer_t* obj, uint32_t hz);
cy_rslt_t cyhal_timer_start(cyhal_timer_t* obj);
uint32_t cyhal_timer_read(const cyhal_timer_t* obj);
#ifdef __cplusplus
}
#endif
