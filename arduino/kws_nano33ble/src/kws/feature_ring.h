// A ring of the last num_slices feature slices (one slice = one 20 ms frame of
// slice_size int8 values). The device computes only each new slice; the model's input
// window (oldest slice first) is copied out with CopyWindow. Storage is caller-owned so
// nothing is allocated at run time.
// Plain C++ with no Arduino or TFLM dependency: the host tests compile it with g++.
#ifndef KWS_FEATURE_RING_H_
#define KWS_FEATURE_RING_H_

#include <stddef.h>
#include <stdint.h>

namespace kws {

class FeatureRing {
 public:
  // storage must hold num_slices * slice_size bytes.
  FeatureRing(int8_t* storage, int num_slices, int slice_size);

  // Appends one slice (slice_size values), overwriting the oldest once full.
  void PushSlice(const int8_t* slice);

  // Writes the window, oldest slice first, to dst (num_slices * slice_size bytes).
  // Slices not yet pushed read as fill_value (the zero point: "no energy").
  void CopyWindow(int8_t* dst, int8_t fill_value = -128) const;

  // Slices pushed so far (saturates at num_slices) and in total.
  int size() const { return size_; }
  int num_slices() const { return num_slices_; }
  bool full() const { return size_ == num_slices_; }
  uint32_t total_pushed() const { return total_pushed_; }
  void Reset();

 private:
  int8_t* storage_;
  int num_slices_;
  int slice_size_;
  int head_;  // index of the slot the next slice goes to
  int size_;
  uint32_t total_pushed_;
};

}  // namespace kws

#endif  // KWS_FEATURE_RING_H_
