#include "labels.h"

namespace kws {

const char* LabelFor(int index, const char* const* labels, int count) {
  if (labels == nullptr || index < 0 || index >= count) return "?";
  return labels[index];
}

int ArgMax(const int8_t* scores, int n) {
  if (n <= 0) return -1;
  int best = 0;
  for (int i = 1; i < n; ++i) {
    if (scores[i] > scores[best]) best = i;
  }
  return best;
}

bool IsBackgroundLabel(const char* label) { return label != nullptr && label[0] == '_'; }

}  // namespace kws
