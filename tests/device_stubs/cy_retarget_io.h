// Stand-in for Infineon retarget-io v1.x.
#pragma once
#include "cyhal.h"
#ifdef __cplusplus
extern "C" {
#endif
#define CY_RETARGET_IO_BAUDRATE (115200)
cy_rslt_t cy_retarget_io_init(cyhal_gpio_t tx, cyhal_gpio_t rx, uint32_t baudrate);
#ifdef __cplusplus
}
#endif
