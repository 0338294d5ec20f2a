// Stand-in for the Arduino mbed core's Arduino.h (declarations only).
#pragma once
#include <stddef.h>
#include <stdint.h>

#define HIGH 0x1
#define LOW 0x0
#define OUTPUT 0x1
#define LED_BUILTIN 13
#define LEDR 22
#define LEDG 23
#define LEDB 24

void pinMode(uint8_t pin, uint8_t mode);
void digitalWrite(uint8_t pin, uint8_t val);
unsigned long millis(void);
unsigned long micros(void);
void delay(unsigned long ms);

class Stream {
 public:
  void begin(unsigned long baudrate);
  explicit operator bool();
  size_t print(const char* s);
  size_t print(char c);
  size_t print(int n, int base = 10);
  size_t println(const char* s);
  size_t println(void);
};
extern Stream Serial;
