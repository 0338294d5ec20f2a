// Shows a detected command: RGB LED colour per keyword and a Serial line.
#ifndef KWS_COMMAND_RESPONDER_H_
#define KWS_COMMAND_RESPONDER_H_

#include <stdint.h>

void ResponderBegin();
// Called after every RecognizeCommands decision; acts only on new, non-background labels.
// label_index indexes kCategoryLabels; score is the 0..255 average; time_ms is audio time.
void RespondToCommand(int label_index, const char* label, int32_t score, bool is_new_command,
                      int32_t time_ms);
// Turns the LED off once a detection has been shown for a while; call every loop.
void ResponderTick(uint32_t now_ms);
// Blinks red forever after printing msg: a boot check failed.
void FailForever(const char* msg);

#endif  // KWS_COMMAND_RESPONDER_H_
