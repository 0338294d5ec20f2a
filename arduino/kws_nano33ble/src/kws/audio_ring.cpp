#include "audio_ring.h"

namespace kws {

AudioRing::AudioRing(int16_t* storage, uint32_t capacity)
    : storage_(storage), capacity_(capacity), total_written_(0) {}

void AudioRing::Write(const int16_t* samples, uint32_t n) {
  uint32_t index = total_written_ % capacity_;
  for (uint32_t i = 0; i < n; ++i) {
    storage_[index] = samples[i];
    if (++index == capacity_) index = 0;
  }
  total_written_ = total_written_ + n;  // publish after the data
}

bool AudioRing::Read(uint32_t start, uint32_t n, int16_t* dst, uint32_t guard) const {
  const uint32_t written = total_written_;
  // Unsigned differences stay correct across the 2^32 wrap.
  const uint32_t ahead = written - start;  // samples written at or after start
  if (n > ahead || ahead > capacity_ - guard || n > capacity_) return false;
  uint32_t index = start % capacity_;
  for (uint32_t i = 0; i < n; ++i) {
    dst[i] = storage_[index];
    if (++index == capacity_) index = 0;
  }
  // The writer may have lapped us during the copy.
  return (total_written_ - start) <= capacity_ - guard;
}

}  // namespace kws
