#include "feature_ring.h"

#include <string.h>

namespace kws {

FeatureRing::FeatureRing(int8_t* storage, int num_slices, int slice_size)
    : storage_(storage), num_slices_(num_slices), slice_size_(slice_size) {
  Reset();
}

void FeatureRing::Reset() {
  head_ = 0;
  size_ = 0;
  total_pushed_ = 0;
}

void FeatureRing::PushSlice(const int8_t* slice) {
  memcpy(storage_ + head_ * slice_size_, slice, static_cast<size_t>(slice_size_));
  head_ = (head_ + 1) % num_slices_;
  if (size_ < num_slices_) ++size_;
  ++total_pushed_;
}

void FeatureRing::CopyWindow(int8_t* dst, int8_t fill_value) const {
  const int missing = num_slices_ - size_;
  memset(dst, fill_value, static_cast<size_t>(missing * slice_size_));
  // The oldest stored slice sits at head_ once the ring is full, at 0 before.
  int index = (size_ == num_slices_) ? head_ : 0;
  for (int i = 0; i < size_; ++i) {
    memcpy(dst + (missing + i) * slice_size_, storage_ + index * slice_size_,
           static_cast<size_t>(slice_size_));
    index = (index + 1) % num_slices_;
  }
}

}  // namespace kws
