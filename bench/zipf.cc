#include "bench/zipf.h"

#include <cmath>

#include "absl/base/internal/raw_logging.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace blizzard::bench {
namespace {

// log1p(x) / x, accurate near 0.
double Helper1(double x) {
  if (std::fabs(x) > 1e-8) return std::log1p(x) / x;
  return 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x));
}

// expm1(x) / x, accurate near 0.
double Helper2(double x) {
  if (std::fabs(x) > 1e-8) return std::expm1(x) / x;
  return 1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x));
}

}  // namespace

absl::StatusOr<Zipf> Zipf::Create(uint64_t n, double s) {
  if (n < 1 || n > kElementsMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("zipf: element count ", n, " outside [1, ", kElementsMax, "]"));
  }
  if (!(s > 0.0) || !(s <= kExponentMax)) {
    return absl::InvalidArgumentError(
        absl::StrCat("zipf: exponent ", s, " outside (0, ", kExponentMax, "]"));
  }
  return Zipf(n, s);
}

Zipf::Zipf(uint64_t n, double s) : n_(n), s_(s) {
  // The sampler works on ranks 1..n; Sample() shifts to 0..n-1.
  h_integral_x1_ = HIntegral(1.5) - 1.0;
  h_integral_n_ = HIntegral(static_cast<double>(n_) + 0.5);
  squeeze_ = 2.0 - HIntegralInverse(HIntegral(2.5) - H(2.0));
  ABSL_RAW_CHECK(h_integral_n_ > h_integral_x1_ || n_ == 1, "zipf: bad integral bounds");
}

// h(x) = 1 / x^s.
double Zipf::H(double x) const { return std::exp(-s_ * std::log(x)); }

// The integral of h, up to a constant: (x^(1-s) - 1) / (1 - s), continuous
// through s = 1 (where it is log x).
double Zipf::HIntegral(double x) const {
  const double log_x = std::log(x);
  return Helper2((1.0 - s_) * log_x) * log_x;
}

double Zipf::HIntegralInverse(double x) const {
  double t = x * (1.0 - s_);
  if (t < -1.0) t = -1.0;  // Rounding; the exact value is >= -1.
  return std::exp(Helper1(t) * x);
}

uint64_t Zipf::Sample(Rng& rng) const {
  if (n_ == 1) return 0;
  const double n = static_cast<double>(n_);
  for (;;) {
    const double u = h_integral_n_ + rng.Unit() * (h_integral_x1_ - h_integral_n_);
    const double x = HIntegralInverse(u);
    double k = std::floor(x + 0.5);
    if (k < 1.0) k = 1.0;
    if (k > n) k = n;
    // Accept at once inside the squeeze; otherwise compare against the
    // exact area (rare: the expected number of rounds is below 1.1).
    if (k - x <= squeeze_ || u >= HIntegral(k + 0.5) - H(k)) {
      const uint64_t rank = static_cast<uint64_t>(k) - 1;
      ABSL_RAW_CHECK(rank < n_, "zipf rank out of range");
      return rank;
    }
  }
}

}  // namespace blizzard::bench
