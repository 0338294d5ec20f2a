// Stand-in for a PSoC 6 BSP's cybsp.h (CY8CPROTO-062-4343W pin names).
#pragma once
#include "cyhal.h"
#ifdef __cplusplus
extern "C" {
#endif
cy_rslt_t cybsp_init(void);
#define CYBSP_PDM_CLK P10_4
#define CYBSP_PDM_DATA P10_5
#define CYBSP_USER_LED P13_7
#define CYBSP_LED_STATE_ON (0U)
#define CYBSP_LED_STATE_OFF (1U)
#define CYBSP_DEBUG_UART_TX P5_1
#define CYBSP_DEBUG_UART_RX P5_0
#ifdef __cplusplus
}
#endif
