// int8 input features from the micro frontend's uint16 output.
//
// The model is trained on float features f = raw * 10 / 256 (raw = the frontend's uint16
// output). The device maps raw to int8 in fixed point, as TFLite Micro's micro_speech does:
//   q = clamp(((raw * 256) + 333) / 666 - 128, -128, 127)      (666 = round(25.6 * 26))
// so f = (q + 128) * 666 * 10 / 65536, i.e. the model input must have
//   scale = 6660 / 65536 = 0.10162353515625 and zero_point = -128.
// Plain C++ with no Arduino or TFLM dependency: the host tests compile it with g++.
#ifndef KWS_FEATURE_QUANT_H_
#define KWS_FEATURE_QUANT_H_

#include <stddef.h>
#include <stdint.h>

namespace kws {

constexpr int32_t kFeatureValueScale = 256;
constexpr int32_t kFeatureValueDiv = 666;
constexpr int32_t kFeatureZeroPoint = -128;
// The input scale the fixed-point mapping implies: 666 * 10 / 65536.
constexpr float kFeatureInputScale = 6660.0f / 65536.0f;

// One raw frontend value to int8 (round half up, then clamp).
int8_t QuantizeFeature(uint16_t raw);

// n raw values to n int8 values.
void QuantizeFeatures(const uint16_t* raw, size_t n, int8_t* out);

// True if a model input tensor's (scale, zero_point) equals the mapping above within a
// relative scale tolerance (1e-3 by default): the device code refuses to run otherwise.
bool InputQuantizationMatches(float scale, int32_t zero_point, float rel_tolerance = 1e-3f);

}  // namespace kws

#endif  // KWS_FEATURE_QUANT_H_
