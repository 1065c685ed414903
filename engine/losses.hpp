// Losses of the online metric learner, with their exact gradients.
//
// Two geometries: `bpr` and `softmax` score a (user, item) pair by the inner product
// s = <q, v> + b; `contrastive` and `triplet` are distance losses on the squared Euclidean
// distance d = ||q - v||^2 and score by s = -d. Each loss is a pure function of the vectors so
// it can be checked against finite differences (tests/unit/losses_test.cpp).
#pragma once

#include <optional>
#include <span>
#include <string_view>

namespace simstream::engine {

enum class LossKind { kBpr, kContrastive, kTriplet, kSoftmax };

std::optional<LossKind> ParseLoss(std::string_view name);
std::string_view LossName(LossKind kind);
// True for the losses whose score is the negated squared Euclidean distance.
inline bool IsDistanceLoss(LossKind k) {
  return k == LossKind::kContrastive || k == LossKind::kTriplet;
}

struct LossParams {
  LossKind kind = LossKind::kBpr;
  float margin = 0.5f;       // contrastive and triplet
  float temperature = 1.0f;  // softmax
};

// One positive item and m negatives for a query vector q (all of dimension `dim`).
// Biases are used by the inner-product losses only (pass zeros otherwise).
struct LossInput {
  int dim = 0;
  const float* q = nullptr;
  const float* pos = nullptr;
  float pos_bias = 0.0f;
  std::span<const float* const> negs;
  std::span<const float> neg_biases;
};

// Gradient buffers, sized by the caller: dq and dpos of `dim`, dnegs of m*dim (row-major),
// dneg_biases of m. They are overwritten, not accumulated.
struct LossGrad {
  std::span<float> dq;
  std::span<float> dpos;
  float dpos_bias = 0.0f;
  std::span<float> dnegs;
  std::span<float> dneg_biases;
};

// The score of one pair in the loss's geometry.
float PairScore(LossKind kind, const float* q, const float* v, float bias, int dim);

// Loss value of a positive interaction, gradients into `grad`.
double PositiveLoss(const LossParams& p, const LossInput& in, LossGrad& grad);

// Loss of negative feedback on `pos` (the disliked item): pushes the pair apart.
// Inner product: softplus(s); distance: max(0, margin - d). Negatives in `in` are ignored.
double NegativeFeedbackLoss(const LossParams& p, const LossInput& in, LossGrad& grad);

}  // namespace simstream::engine
