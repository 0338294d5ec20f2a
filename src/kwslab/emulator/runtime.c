/* The pieces of the C runtime that -nostartfiles leaves out (crti/crtbegin): the emulator
   firmware starts in Reset_Handler (sim_main.cpp), not in newlib's crt0. */
void *__dso_handle = &__dso_handle; /* static destructors' DSO handle */
void _init(void) {}
void _fini(void) {}
