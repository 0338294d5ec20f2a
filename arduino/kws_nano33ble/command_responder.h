// Shows a detected command on the RGB LED (a colour per keyword); the shared app
// (src/kws_device/kws_app.*) prints the "Heard ..." line. Boot failures blink red.
#ifndef KWS_COMMAND_RESPONDER_H_
#define KWS_COMMAND_RESPONDER_H_

#include <stdint.h>

void ResponderBegin();
// kws::AppHooks::respond: called once per new, non-background command. label_index
// indexes kCategoryLabels (it picks the colour); score is the 0..255 average; time_ms is
// audio time.
void RespondToCommand(int label_index, const char* label, int32_t score, int32_t time_ms);
// Turns the LED off once a detection has been shown for a while; call every loop.
void ResponderTick(uint32_t now_ms);
// kws::AppHooks::fail: prints "ERROR: " + msg, then blinks red forever.
void FailForever(const char* msg);

#endif  // KWS_COMMAND_RESPONDER_H_
