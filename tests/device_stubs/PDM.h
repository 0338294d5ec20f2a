// Stand-in for the Arduino mbed core's PDM library (libraries/PDM/src/PDM.h).
#pragma once
#include <stddef.h>

class PDMClass {
 public:
  int begin(int channels, int sampleRate);
  void end();
  int available();
  int read(void* buffer, size_t size);
  void onReceive(void (*)(void));
  void setGain(int gain);
  void setBufferSize(int bufferSize);
};
extern PDMClass PDM;
