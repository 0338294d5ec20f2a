#include "recognize_commands.h"

namespace kws {

RecognizeCommands::RecognizeCommands(int category_count, int32_t average_window_ms,
                                     int32_t detection_threshold, int32_t suppression_ms,
                                     int32_t minimum_count)
    : category_count_(category_count),
      average_window_ms_(average_window_ms),
      detection_threshold_(detection_threshold),
      suppression_ms_(suppression_ms),
      minimum_count_(minimum_count),
      oldest_(0),
      size_(0),
      previous_top_index_(0),
      previous_top_time_ms_(0),
      has_previous_top_(false) {}

RecognizeStatus RecognizeCommands::ProcessLatestResults(const int8_t* scores,
                                                        int32_t current_time_ms,
                                                        RecognizeResult* result) {
  if (category_count_ < 1 || category_count_ > kMaxCategories) {
    return RecognizeStatus::kBadCategoryCount;
  }
  if (size_ > 0) {
    const int newest = (oldest_ + size_ - 1) % kMaxResults;
    if (current_time_ms < times_ms_[newest]) return RecognizeStatus::kTimeWentBackwards;
  }

  // Append the latest result, dropping the oldest if the ring is full.
  if (size_ == kMaxResults) {
    oldest_ = (oldest_ + 1) % kMaxResults;
    --size_;
  }
  const int slot = (oldest_ + size_) % kMaxResults;
  for (int c = 0; c < category_count_; ++c) scores_[slot][c] = scores[c];
  times_ms_[slot] = current_time_ms;
  ++size_;

  // Forget results older than the averaging window (the latest one always stays).
  const int64_t time_limit = static_cast<int64_t>(current_time_ms) - average_window_ms_;
  while (size_ > 0 && times_ms_[oldest_] < time_limit) {
    oldest_ = (oldest_ + 1) % kMaxResults;
    --size_;
  }

  // Too few results, or too short a span, to trust an average: no decision.
  const int64_t span_ms = static_cast<int64_t>(current_time_ms) - times_ms_[oldest_];
  if (size_ < minimum_count_ || span_ms < average_window_ms_ / 4) {
    result->label_index = previous_top_index_;
    result->score = 0;
    result->is_new_command = false;
    return RecognizeStatus::kOk;
  }

  // Average of (score + 128) per class, integer division (sums are non-negative).
  int32_t top_score = 0;
  int top_index = 0;
  for (int c = 0; c < category_count_; ++c) {
    int32_t sum = 0;
    for (int i = 0; i < size_; ++i) {
      sum += static_cast<int32_t>(scores_[(oldest_ + i) % kMaxResults][c]) + 128;
    }
    const int32_t average = sum / size_;
    if (average > top_score) {
      top_score = average;
      top_index = c;
    }
  }

  // A repeat of the previous command within suppression_ms is not new; nothing is
  // suppressed after the background class (index 0) or before the first command.
  bool suppressed = false;
  if (has_previous_top_ && previous_top_index_ != 0 && top_index == previous_top_index_) {
    const int64_t since_ms = static_cast<int64_t>(current_time_ms) - previous_top_time_ms_;
    suppressed = since_ms <= suppression_ms_;
  }
  const bool is_new = top_score > detection_threshold_ && !suppressed;
  if (is_new) {
    previous_top_index_ = top_index;
    previous_top_time_ms_ = current_time_ms;
    has_previous_top_ = true;
  }
  result->label_index = top_index;
  result->score = top_score;
  result->is_new_command = is_new;
  return RecognizeStatus::kOk;
}

}  // namespace kws
