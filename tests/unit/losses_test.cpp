// Losses against finite differences of an independent double-precision re-implementation.
//
// Every gradient component PositiveLoss / NegativeFeedbackLoss returns (dq, dpos, dpos_bias,
// dnegs, dneg_biases) is compared with a central difference of the loss value computed in
// double on the same inputs; the returned loss value is compared with that re-implementation
// too. Samples whose hinge argument lies within 1e-3 of 0 are skipped (the loss has a kink
// there and the finite difference means nothing).
#include "engine/losses.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

namespace simstream::engine {
namespace {

constexpr double kKinkGuard = 1e-3;

// The parameters of one loss evaluation, flattened:
// [q (dim), pos (dim), pos_bias, negs (m * dim), neg_biases (m)].
struct Sample {
  int dim = 0;
  int m = 0;
  std::vector<double> theta;

  size_t QAt(int i) const { return static_cast<size_t>(i); }
  size_t PosAt(int i) const { return static_cast<size_t>(dim + i); }
  size_t PosBiasAt() const { return static_cast<size_t>(2 * dim); }
  size_t NegAt(int k, int i) const { return static_cast<size_t>(2 * dim + 1 + k * dim + i); }
  size_t NegBiasAt(int k) const { return static_cast<size_t>(2 * dim + 1 + m * dim + k); }
};

// Naive double re-implementation of the pair score.
double NaiveScore(LossKind kind, const Sample& s, const std::vector<double>& th, size_t v_off,
                  double bias) {
  double acc = 0.0;
  for (int i = 0; i < s.dim; ++i) {
    const double q = th[s.QAt(i)];
    const double v = th[v_off + static_cast<size_t>(i)];
    if (IsDistanceLoss(kind)) {
      acc -= (q - v) * (q - v);
    } else {
      acc += q * v;
    }
  }
  return IsDistanceLoss(kind) ? acc : acc + bias;
}

double NaiveSoftplus(double x) {
  return std::log(1.0 + std::exp(x));
}

// Smallest |hinge argument| of the sample (infinity when the loss has no hinge).
struct NaiveValue {
  double loss = 0.0;
  double min_hinge = INFINITY;
  int active_hinges = 0;
  int inactive_hinges = 0;
};

NaiveValue NaivePositive(const LossParams& p, const Sample& s, const std::vector<double>& th) {
  NaiveValue out;
  const double s_pos = NaiveScore(p.kind, s, th, s.PosAt(0), th[s.PosBiasAt()]);
  std::vector<double> s_neg(static_cast<size_t>(s.m));
  for (int k = 0; k < s.m; ++k) {
    s_neg[static_cast<size_t>(k)] = NaiveScore(p.kind, s, th, s.NegAt(k, 0), th[s.NegBiasAt(k)]);
  }
  auto hinge = [&](double h) {
    out.min_hinge = std::min(out.min_hinge, std::abs(h));
    if (h > 0) {
      ++out.active_hinges;
      return h;
    }
    ++out.inactive_hinges;
    return 0.0;
  };
  switch (p.kind) {
    case LossKind::kBpr:
      for (double sn : s_neg) out.loss += NaiveSoftplus(sn - s_pos);
      break;
    case LossKind::kSoftmax: {
      const double t = p.temperature;
      double z = std::exp(s_pos / t);
      for (double sn : s_neg) z += std::exp(sn / t);
      out.loss = std::log(z) - s_pos / t;
      break;
    }
    case LossKind::kContrastive:
      out.loss = -s_pos;  // d_pos
      for (double sn : s_neg) out.loss += hinge(p.margin - (-sn));
      break;
    case LossKind::kTriplet:
      for (double sn : s_neg) out.loss += hinge(p.margin + (-s_pos) - (-sn));
      break;
  }
  return out;
}

NaiveValue NaiveNegative(const LossParams& p, const Sample& s, const std::vector<double>& th) {
  NaiveValue out;
  const double sc = NaiveScore(p.kind, s, th, s.PosAt(0), th[s.PosBiasAt()]);
  if (IsDistanceLoss(p.kind)) {
    const double h = p.margin - (-sc);
    out.min_hinge = std::abs(h);
    if (h > 0) {
      out.loss = h;
      ++out.active_hinges;
    } else {
      ++out.inactive_hinges;
    }
  } else {
    out.loss = NaiveSoftplus(sc);
  }
  return out;
}

// Float buffers handed to the engine, built from the sample.
struct Buffers {
  std::vector<float> q, pos, negs, neg_biases;
  float pos_bias = 0.0f;
  std::vector<const float*> neg_ptrs;
  std::vector<float> dq, dpos, dnegs, dneg_biases;

  explicit Buffers(const Sample& s) {
    const auto dim = static_cast<size_t>(s.dim);
    const auto m = static_cast<size_t>(s.m);
    for (int i = 0; i < s.dim; ++i) {
      q.push_back(static_cast<float>(s.theta[s.QAt(i)]));
      pos.push_back(static_cast<float>(s.theta[s.PosAt(i)]));
    }
    pos_bias = static_cast<float>(s.theta[s.PosBiasAt()]);
    for (int k = 0; k < s.m; ++k) {
      for (int i = 0; i < s.dim; ++i) negs.push_back(static_cast<float>(s.theta[s.NegAt(k, i)]));
      neg_biases.push_back(static_cast<float>(s.theta[s.NegBiasAt(k)]));
    }
    for (size_t k = 0; k < m; ++k) neg_ptrs.push_back(negs.data() + k * dim);
    // Garbage: the loss must overwrite, not accumulate.
    dq.assign(dim, 123.0f);
    dpos.assign(dim, -77.0f);
    dnegs.assign(m * dim, 55.0f);
    dneg_biases.assign(m, 9.0f);
  }
  LossInput Input(int dim) const {
    LossInput in;
    in.dim = dim;
    in.q = q.data();
    in.pos = pos.data();
    in.pos_bias = pos_bias;
    in.negs = std::span<const float* const>(neg_ptrs.data(), neg_ptrs.size());
    in.neg_biases = std::span<const float>(neg_biases.data(), neg_biases.size());
    return in;
  }
  LossGrad Grad() { return LossGrad{dq, dpos, 42.0f, dnegs, dneg_biases}; }
};

// The sample's parameters rounded to float (what the engine sees), kept in double.
Sample Rounded(Sample s) {
  for (double& t : s.theta) t = static_cast<double>(static_cast<float>(t));
  return s;
}

// Random sample. For the distance losses the item vectors are placed around q at random
// distances so that hinges are sometimes active and sometimes not.
Sample RandomSample(std::mt19937_64& rng, LossKind kind, int dim, int m) {
  Sample s;
  s.dim = dim;
  s.m = m;
  s.theta.assign(static_cast<size_t>(2 * dim + 1 + m * dim + m), 0.0);
  std::normal_distribution<double> normal(0.0, 1.0);
  std::uniform_real_distribution<double> spread(0.05, 1.5);
  const double inv_sqrt_dim = 1.0 / std::sqrt(static_cast<double>(dim));
  for (int i = 0; i < dim; ++i) s.theta[s.QAt(i)] = normal(rng) * inv_sqrt_dim;
  auto fill_item = [&](size_t off) {
    const double radius = spread(rng);
    for (int i = 0; i < dim; ++i) {
      const double base = IsDistanceLoss(kind) ? s.theta[s.QAt(i)] : 0.0;
      s.theta[off + static_cast<size_t>(i)] = base + normal(rng) * radius * inv_sqrt_dim;
    }
  };
  fill_item(s.PosAt(0));
  s.theta[s.PosBiasAt()] = normal(rng) * 0.5;
  for (int k = 0; k < m; ++k) {
    fill_item(s.NegAt(k, 0));
    s.theta[s.NegBiasAt(k)] = normal(rng) * 0.5;
  }
  return Rounded(s);
}

// Engine gradient of parameter `idx` (biases of distance losses: 0, as they do not enter).
double EngineGradAt(const Sample& s, const Buffers& b, double dpos_bias, size_t idx) {
  const auto dim = static_cast<size_t>(s.dim);
  const auto m = static_cast<size_t>(s.m);
  if (idx < dim) return b.dq[idx];
  if (idx < 2 * dim) return b.dpos[idx - dim];
  if (idx == 2 * dim) return dpos_bias;
  if (idx < 2 * dim + 1 + m * dim) return b.dnegs[idx - 2 * dim - 1];
  return b.dneg_biases[idx - 2 * dim - 1 - m * dim];
}

std::string Describe(const LossParams& p, int dim, int m) {
  return std::string(LossName(p.kind)) + " dim=" + std::to_string(dim) + " m=" + std::to_string(m) +
         " margin=" + std::to_string(p.margin) + " T=" + std::to_string(p.temperature);
}

struct Coverage {
  int checked = 0;
  int skipped = 0;
  int active = 0;
  int inactive = 0;
};

// Checks one sample; returns false when it was skipped for being near a kink.
template <typename EngineFn, typename NaiveFn>
bool CheckSample(const LossParams& p, const Sample& s, EngineFn engine_fn, NaiveFn naive_fn,
                 Coverage& cov) {
  const NaiveValue base = naive_fn(p, s, s.theta);
  if (base.min_hinge < kKinkGuard) {
    ++cov.skipped;
    return false;
  }
  ++cov.checked;
  cov.active += base.active_hinges;
  cov.inactive += base.inactive_hinges;
  Buffers b(s);
  const LossInput in = b.Input(s.dim);
  LossGrad g = b.Grad();
  const double loss = engine_fn(p, in, g);
  const std::string what = Describe(p, s.dim, s.m);
  EXPECT_NEAR(loss, base.loss, 1e-5 * (1.0 + std::abs(base.loss))) << what;

  constexpr double h = 1e-5;
  for (size_t idx = 0; idx < s.theta.size(); ++idx) {
    std::vector<double> plus = s.theta, minus = s.theta;
    plus[idx] += h;
    minus[idx] -= h;
    const double fd = (naive_fn(p, s, plus).loss - naive_fn(p, s, minus).loss) / (2 * h);
    const double got = EngineGradAt(s, b, g.dpos_bias, idx);
    EXPECT_NEAR(got, fd, 1e-4 * (1.0 + std::abs(fd))) << what << " parameter " << idx;
  }
  return true;
}

const LossKind kAllLosses[] = {LossKind::kBpr, LossKind::kContrastive, LossKind::kTriplet,
                               LossKind::kSoftmax};

TEST(PositiveLossTest, GradientsMatchFiniteDifferencesOfDoubleTwin) {
  std::mt19937_64 rng(20240611);
  for (LossKind kind : kAllLosses) {
    Coverage cov;
    for (float margin : {0.1f, 0.5f, 2.0f}) {
      for (float temperature : {0.25f, 1.0f, 3.0f}) {
        LossParams p;
        p.kind = kind;
        p.margin = margin;
        p.temperature = temperature;
        for (int dim : {1, 5, 16}) {
          for (int m : {0, 1, 4}) {
            for (int rep = 0; rep < 6; ++rep) {
              CheckSample(p, RandomSample(rng, kind, dim, m), PositiveLoss, NaivePositive, cov);
            }
          }
        }
      }
    }
    SCOPED_TRACE(std::string(LossName(kind)));
    EXPECT_GT(cov.checked, 400);
    EXPECT_LT(cov.skipped, cov.checked / 10);
    if (kind == LossKind::kContrastive || kind == LossKind::kTriplet) {
      // Both sides of every hinge were exercised.
      EXPECT_GT(cov.active, 50);
      EXPECT_GT(cov.inactive, 50);
    }
  }
}

TEST(NegativeFeedbackLossTest, GradientsMatchFiniteDifferencesOfDoubleTwin) {
  std::mt19937_64 rng(77);
  for (LossKind kind : kAllLosses) {
    Coverage cov;
    for (float margin : {0.1f, 0.5f, 2.0f}) {
      LossParams p;
      p.kind = kind;
      p.margin = margin;
      for (int dim : {1, 5, 16}) {
        for (int m : {0, 1, 4}) {  // negatives are passed but must be ignored
          for (int rep = 0; rep < 8; ++rep) {
            const Sample s = RandomSample(rng, kind, dim, m);
            if (!CheckSample(p, s, NegativeFeedbackLoss, NaiveNegative, cov)) continue;
            // Gradients of the ignored negatives are zeroed (FD above also gives 0 for them).
            Buffers b(s);
            LossGrad g = b.Grad();
            (void)NegativeFeedbackLoss(p, b.Input(dim), g);
            for (float x : b.dnegs) EXPECT_EQ(x, 0.0f);
            for (float x : b.dneg_biases) EXPECT_EQ(x, 0.0f);
          }
        }
      }
    }
    SCOPED_TRACE(std::string(LossName(kind)));
    EXPECT_GT(cov.checked, 150);
    if (IsDistanceLoss(kind)) {
      EXPECT_GT(cov.active, 20);
      EXPECT_GT(cov.inactive, 20);
    }
  }
}

TEST(PairScoreTest, MatchesDoubleTwin) {
  std::mt19937_64 rng(5);
  for (LossKind kind : kAllLosses) {
    for (int dim : {1, 5, 16, 64}) {
      const Sample s = RandomSample(rng, kind, dim, 0);
      Buffers b(s);
      const double want = NaiveScore(kind, s, s.theta, s.PosAt(0), s.theta[s.PosBiasAt()]);
      const float got = PairScore(kind, b.q.data(), b.pos.data(), b.pos_bias, dim);
      EXPECT_NEAR(got, want, 1e-5 * (1.0 + std::abs(want))) << LossName(kind) << " " << dim;
    }
  }
}

// ---- Hand-computed cases ----

struct Hand {
  std::vector<float> q{}, pos{}, neg{};
  float pos_bias = 0.0f, neg_bias = 0.0f;
  std::vector<float> dq{}, dpos{}, dneg{}, dneg_bias{};
  double loss = 0.0;
  LossGrad grad{};

  double Run(const LossParams& p, bool negative_feedback, bool with_neg = true) {
    const auto dim = q.size();
    dq.assign(dim, 1.0f);
    dpos.assign(dim, 1.0f);
    dneg.assign(with_neg ? dim : 0, 1.0f);
    dneg_bias.assign(with_neg ? 1 : 0, 1.0f);
    const float* neg_ptr = neg.data();
    LossInput in;
    in.dim = static_cast<int>(dim);
    in.q = q.data();
    in.pos = pos.data();
    in.pos_bias = pos_bias;
    if (with_neg) {
      in.negs = std::span<const float* const>(&neg_ptr, 1);
      in.neg_biases = std::span<const float>(&neg_bias, 1);
    }
    grad = LossGrad{dq, dpos, 1.0f, dneg, dneg_bias};
    loss = negative_feedback ? NegativeFeedbackLoss(p, in, grad) : PositiveLoss(p, in, grad);
    return loss;
  }
};

double Sig(double x) {
  return 1.0 / (1.0 + std::exp(-x));
}

TEST(LossHandTest, BprUnitVectors) {
  Hand h{.q = {1, 0}, .pos = {1, 0}, .neg = {0, 1}};
  LossParams p;
  p.kind = LossKind::kBpr;
  EXPECT_NEAR(h.Run(p, false), std::log(1.0 + std::exp(-1.0)), 1e-7);
  const double s = Sig(-1.0);  // d softplus(s_neg - s_pos) / d s_neg
  EXPECT_NEAR(h.dq[0], -s, 1e-6);
  EXPECT_NEAR(h.dq[1], s, 1e-6);
  EXPECT_NEAR(h.dpos[0], -s, 1e-6);
  EXPECT_NEAR(h.dpos[1], 0.0, 1e-7);
  EXPECT_NEAR(h.dneg[0], s, 1e-6);
  EXPECT_NEAR(h.dneg[1], 0.0, 1e-7);
  EXPECT_NEAR(h.grad.dpos_bias, -s, 1e-6);
  EXPECT_NEAR(h.dneg_bias[0], s, 1e-6);
}

TEST(LossHandTest, BprBiasesShiftTheMargin) {
  // s_pos = 1 + 0.5, s_neg = 0 + 2: loss softplus(0.5).
  Hand h{.q = {1, 0}, .pos = {1, 0}, .neg = {0, 1}, .pos_bias = 0.5f, .neg_bias = 2.0f};
  LossParams p;
  p.kind = LossKind::kBpr;
  EXPECT_NEAR(h.Run(p, false), std::log(1.0 + std::exp(0.5)), 1e-6);
}

TEST(LossHandTest, SoftmaxWithOneNegativeIsBprScaledByTemperature) {
  Hand h{.q = {1, 0}, .pos = {1, 0}, .neg = {0, 1}};
  LossParams p;
  p.kind = LossKind::kSoftmax;
  p.temperature = 1.0f;
  EXPECT_NEAR(h.Run(p, false), std::log(1.0 + std::exp(-1.0)), 1e-7);
  p.temperature = 0.5f;
  EXPECT_NEAR(h.Run(p, false), std::log(1.0 + std::exp(-2.0)), 1e-7);
  // d/ds_pos = (p_pos - 1) / T with p_pos = 1 / (1 + e^-2).
  EXPECT_NEAR(h.grad.dpos_bias, (Sig(2.0) - 1.0) / 0.5, 1e-6);
  // Without negatives the positive is certain: loss 0, no gradient.
  EXPECT_NEAR(h.Run(p, false, /*with_neg=*/false), 0.0, 1e-12);
  EXPECT_EQ(h.dq[0], 0.0f);
  EXPECT_EQ(h.grad.dpos_bias, 0.0f);
}

TEST(LossHandTest, ContrastivePullsPositiveAndPushesCloseNegative) {
  // d_pos = 1, d_neg = 0.25 < margin 0.5: loss 1 + 0.25.
  Hand h{.q = {0, 0}, .pos = {1, 0}, .neg = {0.5f, 0}};
  LossParams p;
  p.kind = LossKind::kContrastive;
  p.margin = 0.5f;
  EXPECT_NEAR(h.Run(p, false), 1.25, 1e-6);
  EXPECT_NEAR(h.dq[0], -1.0, 1e-6);  // 2(q - pos) - 2(q - neg) = -2 + 1
  EXPECT_NEAR(h.dq[1], 0.0, 1e-7);
  EXPECT_NEAR(h.dpos[0], 2.0, 1e-6);
  EXPECT_NEAR(h.dneg[0], -1.0, 1e-6);
  EXPECT_EQ(h.grad.dpos_bias, 0.0f);  // biases take no part in distance losses
  EXPECT_EQ(h.dneg_bias[0], 0.0f);
  // A far negative contributes nothing: loss is d_pos alone.
  h.neg = {3, 0};
  EXPECT_NEAR(h.Run(p, false), 1.0, 1e-6);
  EXPECT_EQ(h.dneg[0], 0.0f);
}

TEST(LossHandTest, TripletActiveAndInactive) {
  // h = margin + d_pos - d_neg = 0.5 + 1 - 0.25.
  Hand h{.q = {0, 0}, .pos = {1, 0}, .neg = {0, 0.5f}};
  LossParams p;
  p.kind = LossKind::kTriplet;
  p.margin = 0.5f;
  EXPECT_NEAR(h.Run(p, false), 1.25, 1e-6);
  EXPECT_NEAR(h.dq[0], -2.0, 1e-6);
  EXPECT_NEAR(h.dq[1], 1.0, 1e-6);
  EXPECT_NEAR(h.dpos[0], 2.0, 1e-6);
  EXPECT_NEAR(h.dpos[1], 0.0, 1e-7);
  EXPECT_NEAR(h.dneg[0], 0.0, 1e-7);
  EXPECT_NEAR(h.dneg[1], -1.0, 1e-6);
  // h = 0.5 + 0.01 - 4 < 0: nothing.
  h.pos = {0.1f, 0};
  h.neg = {2, 0};
  EXPECT_NEAR(h.Run(p, false), 0.0, 1e-12);
  for (float x : h.dq) EXPECT_EQ(x, 0.0f);
  for (float x : h.dpos) EXPECT_EQ(x, 0.0f);
  for (float x : h.dneg) EXPECT_EQ(x, 0.0f);
}

TEST(LossHandTest, NegativeFeedbackInnerProduct) {
  // s = <(1,2),(3,-1)> + 0.5 = 1.5: softplus(1.5), gradient sigmoid(1.5) * (v, q, 1).
  Hand h{.q = {1, 2}, .pos = {3, -1}, .neg = {0, 0}, .pos_bias = 0.5f};
  LossParams p;
  p.kind = LossKind::kBpr;
  EXPECT_NEAR(h.Run(p, true), std::log(1.0 + std::exp(1.5)), 1e-6);
  const double s = Sig(1.5);
  EXPECT_NEAR(h.dq[0], 3 * s, 1e-6);
  EXPECT_NEAR(h.dq[1], -s, 1e-6);
  EXPECT_NEAR(h.dpos[0], s, 1e-6);
  EXPECT_NEAR(h.dpos[1], 2 * s, 1e-6);
  EXPECT_NEAR(h.grad.dpos_bias, s, 1e-6);
  EXPECT_EQ(h.dneg[0], 0.0f);
  EXPECT_EQ(h.dneg_bias[0], 0.0f);
}

TEST(LossHandTest, NegativeFeedbackDistance) {
  // d = 0.25 < margin 1: loss 0.75, gradient pushes q and v apart.
  Hand h{.q = {0, 0}, .pos = {0.3f, 0.4f}, .neg = {0, 0}};
  LossParams p;
  p.kind = LossKind::kTriplet;
  p.margin = 1.0f;
  EXPECT_NEAR(h.Run(p, true), 0.75, 1e-6);
  EXPECT_NEAR(h.dq[0], 0.6, 1e-6);
  EXPECT_NEAR(h.dq[1], 0.8, 1e-6);
  EXPECT_NEAR(h.dpos[0], -0.6, 1e-6);
  EXPECT_NEAR(h.dpos[1], -0.8, 1e-6);
  // Already farther than the margin: nothing to do.
  h.pos = {3, 4};
  EXPECT_NEAR(h.Run(p, true), 0.0, 1e-12);
  EXPECT_EQ(h.dq[0], 0.0f);
  EXPECT_EQ(h.dpos[1], 0.0f);
}

TEST(LossNameTest, RoundTrip) {
  for (LossKind kind : kAllLosses) EXPECT_EQ(ParseLoss(LossName(kind)), kind);
  EXPECT_FALSE(ParseLoss("hinge").has_value());
  EXPECT_FALSE(ParseLoss("BPR").has_value());
}

}  // namespace
}  // namespace simstream::engine
