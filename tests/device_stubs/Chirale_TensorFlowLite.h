// Stand-in for the Chirale_TensorFLowLite library's main header (adds the library's
// include path in the Arduino builder; the TFLM headers are included separately).
#pragma once
