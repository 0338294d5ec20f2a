// Stand-in for TFLM's MicroMutableOpResolver (Add* methods used by the op list).
#pragma once
#include <stddef.h>
#include "tensorflow/lite/c/common.h"
namespace tflite {
class MicroOpResolver {};
template <unsigned int tOpCount>
class MicroMutableOpResolver : public MicroOpResolver {
 public:
  TfLiteStatus AddAdd();
  TfLiteStatus AddAveragePool2D();
  TfLiteStatus AddConcatenation();
  TfLiteStatus AddConv2D();
  TfLiteStatus AddDepthwiseConv2D();
  TfLiteStatus AddDequantize();
  TfLiteStatus AddFullyConnected();
  TfLiteStatus AddLogistic();
  TfLiteStatus AddMaxPool2D();
  TfLiteStatus AddMean();
  TfLiteStatus AddMul();
  TfLiteStatus AddPack();
  TfLiteStatus AddPad();
  TfLiteStatus AddQuantize();
  TfLiteStatus AddRelu();
  TfLiteStatus AddRelu6();
  TfLiteStatus AddReshape();
  TfLiteStatus AddShape();
  TfLiteStatus AddSoftmax();
  TfLiteStatus AddStridedSlice();
};
}  // namespace tflite
