// Label lookup and arg-max over int8 scores.
// Plain C++ with no Arduino or TFLM dependency: the host tests compile it with g++.
#ifndef KWS_LABELS_H_
#define KWS_LABELS_H_

#include <stdint.h>

namespace kws {

// labels[index], or "?" if index is outside [0, count).
const char* LabelFor(int index, const char* const* labels, int count);

// Index of the largest of n scores (the first one on ties), -1 if n <= 0.
int ArgMax(const int8_t* scores, int n);

// True if label names a class that should not trigger a response (names starting '_',
// as _silence_ and _unknown_).
bool IsBackgroundLabel(const char* label);

}  // namespace kws

#endif  // KWS_LABELS_H_
