// C runtime start of the emulator firmwares (QEMU mps2-an386, Cortex-M4F): vector table,
// FPU on, .bss zeroed (QEMU loads .data at its RAM address, the linker script keeps load
// and run addresses equal), semihosting stdio, constructors, then RunSimulation().
#include <stdint.h>
#include <stdlib.h>

int RunSimulation();

extern "C" {
void Reset_Handler(void);
void initialise_monitor_handles(void);  // newlib rdimon: stdio over semihosting
void __libc_init_array(void);
extern uint32_t __stack, __bss_start__, __bss_end__;
}

// Vector table: initial stack pointer and reset entry (QEMU starts the M-profile core
// from address 0).
__attribute__((section(".isr_vector"), used)) const void* const kVectors[2] = {
    &__stack, reinterpret_cast<const void*>(&Reset_Handler)};

extern "C" __attribute__((noreturn)) void Reset_Handler(void) {
  volatile uint32_t* cpacr = reinterpret_cast<volatile uint32_t*>(0xE000ED88u);
  *cpacr |= 0xFu << 20;  // CP10/CP11 full access: the FPU
  __asm volatile("dsb\n\tisb");
  for (uint32_t* p = &__bss_start__; p < &__bss_end__; ++p) *p = 0;
  initialise_monitor_handles();
  __libc_init_array();
  exit(RunSimulation());
}
