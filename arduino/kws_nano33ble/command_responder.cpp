// The Nano 33 BLE (Sense, Rev1 and Rev2) RGB LED pins LEDR/LEDG/LEDB are active-low.
#include "command_responder.h"

#include <Arduino.h>

namespace {

constexpr uint32_t kLedOnMs = 1000;
uint32_t g_led_off_at_ms = 0;
bool g_led_on = false;

// Colour per class index (bit 0 red, bit 1 green, bit 2 blue): index 2 (the first word)
// green, 3 red, 4 blue, 5 yellow, 6 magenta, 7 cyan, 8 white, then repeating.
uint8_t ColourFor(int label_index) {
  static const uint8_t kColours[] = {0b010, 0b001, 0b100, 0b011, 0b101, 0b110, 0b111};
  const int n = static_cast<int>(sizeof(kColours));
  return kColours[((label_index - 2) % n + n) % n];
}

void SetRgb(uint8_t colour) {
  digitalWrite(LEDR, (colour & 0b001) ? LOW : HIGH);
  digitalWrite(LEDG, (colour & 0b010) ? LOW : HIGH);
  digitalWrite(LEDB, (colour & 0b100) ? LOW : HIGH);
}

}  // namespace

void ResponderBegin() {
  pinMode(LEDR, OUTPUT);
  pinMode(LEDG, OUTPUT);
  pinMode(LEDB, OUTPUT);
  pinMode(LED_BUILTIN, OUTPUT);
  SetRgb(0);
  digitalWrite(LED_BUILTIN, LOW);
}

void RespondToCommand(int label_index, const char* /*label*/, int32_t /*score*/,
                      int32_t /*time_ms*/) {
  SetRgb(ColourFor(label_index));
  g_led_on = true;
  g_led_off_at_ms = millis() + kLedOnMs;
}

void ResponderTick(uint32_t now_ms) {
  if (g_led_on && static_cast<int32_t>(now_ms - g_led_off_at_ms) >= 0) {
    SetRgb(0);
    g_led_on = false;
  }
}

void FailForever(const char* msg) {
  Serial.print("ERROR: ");
  Serial.println(msg);
  for (;;) {
    SetRgb(0b001);
    delay(200);
    SetRgb(0);
    delay(200);
  }
}
