#include "engine/losses.hpp"

#include <algorithm>
#include <cmath>
#include <vector>

namespace simstream::engine {
namespace {

inline float DotN(const float* __restrict a, const float* __restrict b, int dim) {
  // Four partial sums let the compiler vectorise without reassociating IEEE additions.
  float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
  int i = 0;
  for (; i + 4 <= dim; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < dim; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

inline float Dist2(const float* __restrict a, const float* __restrict b, int dim) {
  float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
  int i = 0;
  for (; i + 4 <= dim; i += 4) {
    const float t0 = a[i] - b[i], t1 = a[i + 1] - b[i + 1];
    const float t2 = a[i + 2] - b[i + 2], t3 = a[i + 3] - b[i + 3];
    s0 += t0 * t0;
    s1 += t1 * t1;
    s2 += t2 * t2;
    s3 += t3 * t3;
  }
  for (; i < dim; ++i) {
    const float t = a[i] - b[i];
    s0 += t * t;
  }
  return (s0 + s1) + (s2 + s3);
}

inline double Sigmoid(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}
inline double Softplus(double x) {
  return x > 30 ? x : std::log1p(std::exp(x));
}

// Adds the gradient of a pair score s(q, v) scaled by `ds` to dq and dv.
void AccumulatePair(bool distance, const float* q, const float* v, int dim, float ds, float* dq,
                    float* dv) {
  if (distance) {
    // s = -||q - v||^2: ds/dq = -2(q - v), ds/dv = 2(q - v).
    for (int i = 0; i < dim; ++i) {
      const float t = 2.0f * ds * (q[i] - v[i]);
      dq[i] -= t;
      dv[i] += t;
    }
  } else {
    for (int i = 0; i < dim; ++i) {
      dq[i] += ds * v[i];
      dv[i] += ds * q[i];
    }
  }
}

void Zero(LossGrad& g) {
  std::fill(g.dq.begin(), g.dq.end(), 0.0f);
  std::fill(g.dpos.begin(), g.dpos.end(), 0.0f);
  std::fill(g.dnegs.begin(), g.dnegs.end(), 0.0f);
  std::fill(g.dneg_biases.begin(), g.dneg_biases.end(), 0.0f);
  g.dpos_bias = 0.0f;
}

}  // namespace

std::optional<LossKind> ParseLoss(std::string_view name) {
  if (name == "bpr") return LossKind::kBpr;
  if (name == "contrastive") return LossKind::kContrastive;
  if (name == "triplet") return LossKind::kTriplet;
  if (name == "softmax") return LossKind::kSoftmax;
  return std::nullopt;
}

std::string_view LossName(LossKind kind) {
  switch (kind) {
    case LossKind::kBpr:
      return "bpr";
    case LossKind::kContrastive:
      return "contrastive";
    case LossKind::kTriplet:
      return "triplet";
    case LossKind::kSoftmax:
      return "softmax";
  }
  return "?";
}

float PairScore(LossKind kind, const float* q, const float* v, float bias, int dim) {
  return IsDistanceLoss(kind) ? -Dist2(q, v, dim) : DotN(q, v, dim) + bias;
}

double PositiveLoss(const LossParams& p, const LossInput& in, LossGrad& g) {
  Zero(g);
  const int dim = in.dim;
  const size_t m = in.negs.size();
  const bool distance = IsDistanceLoss(p.kind);
  const float s_pos = PairScore(p.kind, in.q, in.pos, in.pos_bias, dim);
  // d(loss)/d(score) for the positive and each negative; then chain rule to the vectors.
  float ds_pos = 0.0f;
  double loss = 0.0;
  // Small fixed-size scratch: m is bounded by the options (<= 256).
  float ds_neg[256];
  float s_neg[256];
  const size_t mm = std::min<size_t>(m, 256);
  for (size_t k = 0; k < mm; ++k) {
    s_neg[k] = PairScore(p.kind, in.q, in.negs[k], distance ? 0.0f : in.neg_biases[k], dim);
    ds_neg[k] = 0.0f;
  }
  switch (p.kind) {
    case LossKind::kBpr:
      // sum_k softplus(s_k - s_pos)
      for (size_t k = 0; k < mm; ++k) {
        const double x = static_cast<double>(s_neg[k]) - s_pos;
        loss += Softplus(x);
        const auto sg = static_cast<float>(Sigmoid(x));
        ds_neg[k] = sg;
        ds_pos -= sg;
      }
      break;
    case LossKind::kSoftmax: {
      // -log softmax over {pos, negs} of s / T.
      const double t = p.temperature;
      double mx = s_pos / t;
      for (size_t k = 0; k < mm; ++k) mx = std::max(mx, s_neg[k] / t);
      double z = std::exp(s_pos / t - mx);
      for (size_t k = 0; k < mm; ++k) z += std::exp(s_neg[k] / t - mx);
      const double p_pos = std::exp(s_pos / t - mx) / z;
      loss = -std::log(p_pos);
      ds_pos = static_cast<float>((p_pos - 1.0) / t);
      for (size_t k = 0; k < mm; ++k) {
        ds_neg[k] = static_cast<float>(std::exp(s_neg[k] / t - mx) / z / t);
      }
      break;
    }
    case LossKind::kContrastive: {
      // d_pos + sum_k max(0, margin - d_k), with s = -d.
      loss = -s_pos;
      ds_pos = -1.0f;
      for (size_t k = 0; k < mm; ++k) {
        const float d = -s_neg[k];
        if (d < p.margin) {
          loss += p.margin - d;
          ds_neg[k] = 1.0f;  // d(margin + s_k)/ds_k
        }
      }
      break;
    }
    case LossKind::kTriplet:
      // sum_k max(0, margin + d_pos - d_k)  (LMNN's large-margin term).
      for (size_t k = 0; k < mm; ++k) {
        const double h = p.margin - s_pos + s_neg[k];
        if (h > 0) {
          loss += h;
          ds_pos -= 1.0f;
          ds_neg[k] = 1.0f;
        }
      }
      break;
  }
  AccumulatePair(distance, in.q, in.pos, dim, ds_pos, g.dq.data(), g.dpos.data());
  if (!distance) g.dpos_bias = ds_pos;
  for (size_t k = 0; k < mm; ++k) {
    if (ds_neg[k] == 0.0f) continue;
    AccumulatePair(distance, in.q, in.negs[k], dim, ds_neg[k], g.dq.data(),
                   g.dnegs.data() + k * dim);
    if (!distance) g.dneg_biases[k] = ds_neg[k];
  }
  return loss;
}

double NegativeFeedbackLoss(const LossParams& p, const LossInput& in, LossGrad& g) {
  Zero(g);
  const bool distance = IsDistanceLoss(p.kind);
  const float s = PairScore(p.kind, in.q, in.pos, in.pos_bias, in.dim);
  double loss = 0.0;
  float ds = 0.0f;
  if (distance) {
    const float d = -s;
    if (d < p.margin) {
      loss = p.margin - d;
      ds = 1.0f;
    }
  } else {
    loss = Softplus(s);
    ds = static_cast<float>(Sigmoid(s));
  }
  AccumulatePair(distance, in.q, in.pos, in.dim, ds, g.dq.data(), g.dpos.data());
  if (!distance) g.dpos_bias = ds;
  return loss;
}

}  // namespace simstream::engine
