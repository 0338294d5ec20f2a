// TFLite Micro's reference int8 kernels for CONV_2D, FULLY_CONNECTED and SOFTMAX, as the
// emulator's "reference" library variant registers them instead of Chirale's CMSIS-NN
// kernels (kwslab.firmware_sim, variant "chirale-reference"): the library's own Prepare
// code (conv_common, fully_connected_common, softmax_common) and reference maths
// (kernels/internal/reference), with an Eval that calls the reference functions. Only the
// int8 types the exported models use; anything else fails at Eval with a log line.
// Chirale_TensorFLowLite 2.0.0 ships neither the reference kernels' registrations nor
// depthwise_conv_common (so DEPTHWISE_CONV_2D, which ds_cnn uses, has no reference variant).
#include "tensorflow/lite/c/builtin_op_data.h"
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/kernels/internal/reference/integer_ops/conv.h"
#include "tensorflow/lite/kernels/internal/reference/integer_ops/fully_connected.h"
#include "tensorflow/lite/kernels/internal/reference/softmax.h"
#include "tensorflow/lite/kernels/kernel_util.h"
#include "tensorflow/lite/micro/kernels/conv.h"
#include "tensorflow/lite/micro/kernels/fully_connected.h"
#include "tensorflow/lite/micro/kernels/kernel_util.h"
#include "tensorflow/lite/micro/kernels/softmax.h"
#include "tensorflow/lite/micro/micro_context.h"
#include "tensorflow/lite/micro/micro_log.h"

namespace tflite {
namespace {

TfLiteStatus Unsupported(const char* op, TfLiteType type) {
  MicroPrintf("reference %s: type %d not supported", op, static_cast<int>(type));
  return kTfLiteError;
}

void* ConvInitRef(TfLiteContext* context, const char*, size_t) {
  return context->AllocatePersistentBuffer(context, sizeof(OpDataConv));
}

TfLiteStatus ConvEvalRef(TfLiteContext* context, TfLiteNode* node) {
  const TfLiteEvalTensor* input = micro::GetEvalInput(context, node, kConvInputTensor);
  const TfLiteEvalTensor* filter = micro::GetEvalInput(context, node, kConvWeightsTensor);
  const TfLiteEvalTensor* bias =
      NumInputs(node) == 3 ? micro::GetEvalInput(context, node, kConvBiasTensor) : nullptr;
  TfLiteEvalTensor* output = micro::GetEvalOutput(context, node, kConvOutputTensor);
  const auto& params = *static_cast<const TfLiteConvParams*>(node->builtin_data);
  const auto& data = *static_cast<const OpDataConv*>(node->user_data);
  if (input->type != kTfLiteInt8 || filter->type != kTfLiteInt8) {
    return Unsupported("CONV_2D", input->type);
  }
  reference_integer_ops::ConvPerChannel(
      ConvParamsQuantized(params, data), data.per_channel_output_multiplier,
      data.per_channel_output_shift, micro::GetTensorShape(input),
      micro::GetTensorData<int8_t>(input), micro::GetTensorShape(filter),
      micro::GetTensorData<int8_t>(filter), micro::GetTensorShape(bias),
      micro::GetOptionalTensorData<int32_t>(bias), micro::GetTensorShape(output),
      micro::GetTensorData<int8_t>(output));
  return kTfLiteOk;
}

void* FullyConnectedInitRef(TfLiteContext* context, const char*, size_t) {
  return context->AllocatePersistentBuffer(context, sizeof(OpDataFullyConnected));
}

TfLiteStatus FullyConnectedPrepareRef(TfLiteContext* context, TfLiteNode* node) {
  MicroContext* micro_context = GetMicroContext(context);
  auto* data = static_cast<OpDataFullyConnected*>(node->user_data);
  const auto* params = static_cast<const TfLiteFullyConnectedParams*>(node->builtin_data);
  TfLiteTensor* input = micro_context->AllocateTempInputTensor(node, kFullyConnectedInputTensor);
  TfLiteTensor* filter =
      micro_context->AllocateTempInputTensor(node, kFullyConnectedWeightsTensor);
  TfLiteTensor* bias = micro_context->AllocateTempInputTensor(node, kFullyConnectedBiasTensor);
  TfLiteTensor* output =
      micro_context->AllocateTempOutputTensor(node, kFullyConnectedOutputTensor);
  TfLiteStatus status = kTfLiteError;
  if (input != nullptr && filter != nullptr && output != nullptr) {
    status = CalculateOpDataFullyConnected(context, params->activation, input->type, input,
                                           filter, bias, output, data);
  }
  if (input != nullptr) micro_context->DeallocateTempTfLiteTensor(input);
  if (filter != nullptr) micro_context->DeallocateTempTfLiteTensor(filter);
  if (bias != nullptr) micro_context->DeallocateTempTfLiteTensor(bias);
  if (output != nullptr) micro_context->DeallocateTempTfLiteTensor(output);
  return status;
}

TfLiteStatus FullyConnectedEvalRef(TfLiteContext* context, TfLiteNode* node) {
  const TfLiteEvalTensor* input = micro::GetEvalInput(context, node, kFullyConnectedInputTensor);
  const TfLiteEvalTensor* filter =
      micro::GetEvalInput(context, node, kFullyConnectedWeightsTensor);
  const TfLiteEvalTensor* bias = micro::GetEvalInput(context, node, kFullyConnectedBiasTensor);
  TfLiteEvalTensor* output = micro::GetEvalOutput(context, node, kFullyConnectedOutputTensor);
  const auto& data = *static_cast<const OpDataFullyConnected*>(node->user_data);
  if (input->type != kTfLiteInt8 || filter->type != kTfLiteInt8) {
    return Unsupported("FULLY_CONNECTED", input->type);
  }
  reference_integer_ops::FullyConnected(
      FullyConnectedParamsQuantized(data), micro::GetTensorShape(input),
      micro::GetTensorData<int8_t>(input), micro::GetTensorShape(filter),
      micro::GetTensorData<int8_t>(filter), micro::GetTensorShape(bias),
      micro::GetOptionalTensorData<int32_t>(bias), micro::GetTensorShape(output),
      micro::GetTensorData<int8_t>(output));
  return kTfLiteOk;
}

TfLiteStatus SoftmaxEvalRef(TfLiteContext* context, TfLiteNode* node) {
  const TfLiteEvalTensor* input = micro::GetEvalInput(context, node, 0);
  TfLiteEvalTensor* output = micro::GetEvalOutput(context, node, 0);
  const auto& params = *static_cast<const SoftmaxParams*>(node->user_data);
  if (input->type != kTfLiteInt8 || output->type != kTfLiteInt8) {
    return Unsupported("SOFTMAX", input->type);
  }
  reference_ops::Softmax(params, micro::GetTensorShape(input), micro::GetTensorData<int8_t>(input),
                         micro::GetTensorShape(output), micro::GetTensorData<int8_t>(output));
  return kTfLiteOk;
}

}  // namespace

TfLiteRegistration Register_CONV_2D() {
  return micro::RegisterOp(ConvInitRef, ConvPrepare, ConvEvalRef);
}
TfLiteRegistration Register_FULLY_CONNECTED() {
  return micro::RegisterOp(FullyConnectedInitRef, FullyConnectedPrepareRef,
                           FullyConnectedEvalRef);
}
TfLiteRegistration Register_SOFTMAX() {
  return micro::RegisterOp(SoftmaxInit, SoftmaxPrepare, SoftmaxEvalRef);
}

}  // namespace tflite
