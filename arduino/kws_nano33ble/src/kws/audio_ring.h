// Audio ring buffer filled from an interrupt (PDM callback) and read by the main loop.
// Samples are addressed by their absolute index since capture start, so the reader asks
// for "samples [start, start + n)" and learns if they were overwritten (reader too slow).
// One writer (the ISR) and one reader; 32-bit loads and stores of the counter are atomic
// on Cortex-M. Plain C++ with no Arduino or HAL dependency: host tests compile it.
#ifndef KWS_AUDIO_RING_H_
#define KWS_AUDIO_RING_H_

#include <stdint.h>

namespace kws {

class AudioRing {
 public:
  // storage holds capacity samples (caller-owned).
  AudioRing(int16_t* storage, uint32_t capacity);

  // Writer side (ISR): appends n samples.
  void Write(const int16_t* samples, uint32_t n);

  // Samples written since the start (wraps after 2^32, ~74 hours at 16 kHz).
  uint32_t total_written() const { return total_written_; }
  uint32_t capacity() const { return capacity_; }

  // Reader side: copies samples [start, start + n) to dst. Returns false (dst untouched)
  // if some were not written yet or were already overwritten. guard samples at the old
  // end are treated as overwritten, as the writer may be filling them during the copy.
  bool Read(uint32_t start, uint32_t n, int16_t* dst, uint32_t guard = 0) const;

 private:
  int16_t* storage_;
  uint32_t capacity_;
  volatile uint32_t total_written_;
};

}  // namespace kws

#endif  // KWS_AUDIO_RING_H_
