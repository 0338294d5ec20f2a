#include "feature_quant.h"

namespace kws {

int8_t QuantizeFeature(uint16_t raw) {
  // raw * 256 <= 65535 * 256 < 2^31: no overflow in int32.
  int32_t value = (static_cast<int32_t>(raw) * kFeatureValueScale + kFeatureValueDiv / 2) /
                  kFeatureValueDiv;
  value += kFeatureZeroPoint;
  if (value < -128) value = -128;
  if (value > 127) value = 127;
  return static_cast<int8_t>(value);
}

void QuantizeFeatures(const uint16_t* raw, size_t n, int8_t* out) {
  for (size_t i = 0; i < n; ++i) out[i] = QuantizeFeature(raw[i]);
}

bool InputQuantizationMatches(float scale, int32_t zero_point, float rel_tolerance) {
  if (zero_point != kFeatureZeroPoint) return false;
  float diff = scale - kFeatureInputScale;
  if (diff < 0) diff = -diff;
  return diff <= rel_tolerance * kFeatureInputScale;
}

}  // namespace kws
