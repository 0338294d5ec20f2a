// RecognizeCommands: turns a stream of per-window int8 class scores into discrete
// "command heard" events, the post-processing of TFLite Micro's micro_speech example
// (recognize_commands.h): average each class's score over the last average_window_ms,
// take the top class, and report it as a new command when its average exceeds
// detection_threshold and it differs from the previous command or suppression_ms have
// passed since it. Too few results in the window (fewer than minimum_count, or spanning
// less than a quarter of the window) give no decision.
//
// Scores are the model's int8 outputs; averages are taken over (score + 128), so they lie
// in 0..255 (a softmax output with scale 1/256 and zero point -128 maps 1.0 to 255).
// Class index 0 is the background class (_silence_): after it, nothing is suppressed.
// Fixed-size storage, no allocation; plain C++ (host tests compile it with g++). The
// Python twin kwslab.detect.RecognizeCommands gives the same decisions.
#ifndef KWS_RECOGNIZE_COMMANDS_H_
#define KWS_RECOGNIZE_COMMANDS_H_

#include <stdint.h>

namespace kws {

struct RecognizeResult {
  int label_index;      // top class of the averaged scores (previous top if no decision)
  int32_t score;        // its average of (score + 128), 0..255; 0 if no decision
  bool is_new_command;  // true once per detected command
};

enum class RecognizeStatus : int {
  kOk = 0,
  kBadCategoryCount = 1,   // category_count outside 1..kMaxCategories
  kTimeWentBackwards = 2,  // current_time_ms earlier than the previous call's
};

class RecognizeCommands {
 public:
  static constexpr int kMaxCategories = 16;
  // Results kept for averaging; at one result per 20 ms a 1000 ms window holds 51.
  // When full, the oldest result is dropped.
  static constexpr int kMaxResults = 64;

  explicit RecognizeCommands(int category_count, int32_t average_window_ms = 1000,
                             int32_t detection_threshold = 200, int32_t suppression_ms = 1500,
                             int32_t minimum_count = 3);

  // scores: category_count int8 values of one inference; current_time_ms: when its window
  // ended (non-decreasing across calls). On kOk, *result holds the decision.
  RecognizeStatus ProcessLatestResults(const int8_t* scores, int32_t current_time_ms,
                                       RecognizeResult* result);

  int category_count() const { return category_count_; }

 private:
  int category_count_;
  int32_t average_window_ms_;
  int32_t detection_threshold_;
  int32_t suppression_ms_;
  int32_t minimum_count_;

  int8_t scores_[kMaxResults][kMaxCategories];
  int32_t times_ms_[kMaxResults];
  int oldest_;  // ring index of the oldest kept result
  int size_;

  int previous_top_index_;
  int32_t previous_top_time_ms_;
  bool has_previous_top_;
};

}  // namespace kws

#endif  // KWS_RECOGNIZE_COMMANDS_H_
