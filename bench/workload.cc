#include "bench/workload.h"

#include <cctype>
#include <charconv>

#include "bench/sv.h"
#include "absl/base/internal/raw_logging.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace blizzard::bench {
namespace {

constexpr std::string_view kWorkloadNames[kWorkloadKinds] = {"set", "getset", "zadd", "list",
                                                             "sadd"};
constexpr std::string_view kOpNames[kOpKinds] = {"SET", "GET", "ZADD", "LPUSH", "RPOP", "SADD"};

void AppendDecimal(std::string& out, uint64_t v) {
  char digits[20];
  const auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), v);
  ABSL_RAW_CHECK(ec == std::errc(), "to_chars failed");
  out.append(digits, static_cast<size_t>(end - digits));
}

void AppendArrayHeader(std::string& out, uint64_t count) {
  out.push_back('*');
  AppendDecimal(out, count);
  out.append("\r\n");
}

void AppendBulk(std::string& out, std::string_view s) {
  out.push_back('$');
  AppendDecimal(out, s.size());
  out.append("\r\n");
  out.append(s);
  out.append("\r\n");
}

// Ten digits, zero-padded: every key of a workload has the same length, so
// bytes per op do not depend on which keys were drawn.
void AppendPaddedIndex(std::string& out, uint64_t index) {
  ABSL_RAW_CHECK(index < kKeysMax, "key index has more than 10 digits");
  char digits[10];
  for (int i = 9; i >= 0; --i) {
    digits[i] = static_cast<char>('0' + index % 10);
    index /= 10;
  }
  out.append(digits, sizeof(digits));
}

}  // namespace

std::string_view WorkloadName(WorkloadKind kind) {
  return kWorkloadNames[static_cast<int>(kind)];
}

std::string_view OpName(OpKind kind) { return kOpNames[static_cast<int>(kind)]; }

std::string_view DistributionName(Distribution d) {
  return d == Distribution::kUniform ? "uniform" : "zipf";
}

absl::StatusOr<WorkloadKind> ParseWorkload(std::string_view name) {
  for (int i = 0; i < kWorkloadKinds; ++i) {
    if (name == kWorkloadNames[i]) return static_cast<WorkloadKind>(i);
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown workload '", AV(name), "' (one of: set, getset, zadd, list, sadd)"));
}

absl::StatusOr<Distribution> ParseDistribution(std::string_view name) {
  if (name == "uniform") return Distribution::kUniform;
  if (name == "zipf") return Distribution::kZipf;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown key distribution '", AV(name), "' (uniform or zipf)"));
}

absl::StatusOr<size_t> ParseByteSize(std::string_view text) {
  uint64_t number = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), number);
  if (ec != std::errc() || end == text.data()) {
    return absl::InvalidArgumentError(absl::StrCat("bad byte size '", AV(text), "'"));
  }
  std::string unit = absl::AsciiStrToLower(absl::string_view(end, static_cast<size_t>(text.data() + text.size() - end)));
  uint64_t multiplier = 1;
  if (unit.empty() || unit == "b") {
    multiplier = 1;
  } else if (unit == "k" || unit == "kb" || unit == "kib") {
    multiplier = 1024;
  } else if (unit == "m" || unit == "mb" || unit == "mib") {
    multiplier = 1024 * 1024;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("bad byte size '", AV(text), "' (a number, optionally K or M)"));
  }
  if (number > kValueBytesMax / multiplier) {
    return absl::InvalidArgumentError(
        absl::StrCat("byte size '", AV(text), "' over the limit of ", kValueBytesMax));
  }
  return static_cast<size_t>(number * multiplier);
}

absl::Status ValidateWorkload(const WorkloadOptions& o) {
  if (o.keys < 1 || o.keys > kKeysMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("key space of ", o.keys, " outside [1, ", kKeysMax, "]"));
  }
  if (o.value_bytes < 1 || o.value_bytes > kValueBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("value size ", o.value_bytes, " outside [1, ", kValueBytesMax, "]"));
  }
  if (o.distribution == Distribution::kZipf) {
    absl::StatusOr<Zipf> zipf = Zipf::Create(o.keys, o.zipf_s);
    if (!zipf.ok()) return zipf.status();
  }
  return absl::OkStatus();
}

ValuePool::ValuePool(size_t value_bytes, uint64_t seed) : value_bytes_(value_bytes) {
  ABSL_RAW_CHECK(value_bytes >= 1 && value_bytes <= kValueBytesMax, "value size out of range");
  Rng rng(Rng::StreamSeed(seed, UINT64_MAX));
  bytes_.resize(kWindowBytes + value_bytes);
  // Printable letters, so values read back in redis-cli are legible.
  for (char& c : bytes_) c = static_cast<char>('a' + rng.Below(26));
}

std::string_view ValuePool::Slice(Rng& rng) const {
  return std::string_view(bytes_).substr(rng.Below(kWindowBytes), value_bytes_);
}

OpGenerator::OpGenerator(const WorkloadOptions& options, const ValuePool* pool, uint64_t stream)
    : options_(options), pool_(pool), stream_(stream), rng_(Rng::StreamSeed(options.seed, stream)) {
  ABSL_RAW_CHECK(ValidateWorkload(options).ok(), "OpGenerator: invalid workload options");
  ABSL_RAW_CHECK(pool != nullptr && pool->value_bytes() == options.value_bytes,
                 "OpGenerator: value pool of another size");
  if (options.distribution == Distribution::kZipf) {
    zipf_.emplace(*Zipf::Create(options.keys, options.zipf_s));
  }
}

uint64_t OpGenerator::DrawKey() {
  return zipf_ ? zipf_->Sample(rng_) : rng_.Below(options_.keys);
}

void OpGenerator::AppendKey(std::string& out, std::string_view prefix, uint64_t index) {
  out.push_back('$');
  AppendDecimal(out, prefix.size() + 10);
  out.append("\r\n");
  out.append(prefix);
  AppendPaddedIndex(out, index);
  out.append("\r\n");
}

OpKind OpGenerator::Append(std::string& out) {
  const uint64_t seq = sequence_++;
  switch (options_.kind) {
    case WorkloadKind::kSet:
    case WorkloadKind::kGetSet: {
      const bool get = options_.kind == WorkloadKind::kGetSet && (rng_.Next() & 1) != 0;
      const uint64_t key = DrawKey();
      if (get) {
        AppendArrayHeader(out, 2);
        AppendBulk(out, "GET");
        AppendKey(out, "key:", key);
        return OpKind::kGet;
      }
      AppendArrayHeader(out, 3);
      AppendBulk(out, "SET");
      AppendKey(out, "key:", key);
      AppendBulk(out, pool_->Slice(rng_));
      return OpKind::kSet;
    }
    case WorkloadKind::kZadd: {
      const uint64_t key = DrawKey();
      const uint64_t score = rng_.Below(uint64_t{1} << 31);
      // A member no other request uses (seed, stream and sequence number),
      // padded with value bytes to value_bytes: every ZADD inserts, also in
      // a later run on the same cluster provided it has another seed (the
      // same seed repeats the same members with the same scores: no-ops).
      std::string member = absl::StrCat(options_.seed, ":", stream_, ":", seq, ":");
      if (member.size() < options_.value_bytes) {
        member.append(pool_->Slice(rng_).substr(0, options_.value_bytes - member.size()));
      }
      AppendArrayHeader(out, 4);
      AppendBulk(out, "ZADD");
      AppendKey(out, "zset:", key);
      char digits[20];
      const auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), score);
      ABSL_RAW_CHECK(ec == std::errc(), "to_chars failed");
      AppendBulk(out, std::string_view(digits, static_cast<size_t>(end - digits)));
      AppendBulk(out, member);
      return OpKind::kZadd;
    }
    case WorkloadKind::kList: {
      // Pushes and pops draw their keys from the same distribution, so each
      // list is pushed and popped at the same rate and stays short.
      const uint64_t key = DrawKey();
      if (seq % 2 == 0) {
        AppendArrayHeader(out, 3);
        AppendBulk(out, "LPUSH");
        AppendKey(out, "list:", key);
        AppendBulk(out, pool_->Slice(rng_));
        return OpKind::kLpush;
      }
      AppendArrayHeader(out, 2);
      AppendBulk(out, "RPOP");
      AppendKey(out, "list:", key);
      return OpKind::kRpop;
    }
    case WorkloadKind::kSadd: {
      // user:<k> gains follower <f>: with Zipf, a few users are celebrities
      // with many followers. Followers are uniform user ids.
      const uint64_t user = DrawKey();
      const uint64_t follower = rng_.Below(options_.keys);
      AppendArrayHeader(out, 3);
      AppendBulk(out, "SADD");
      AppendKey(out, "user:", user);
      std::string id;
      AppendPaddedIndex(id, follower);
      AppendBulk(out, id);
      return OpKind::kSadd;
    }
  }
  ABSL_RAW_CHECK(false, "unknown workload kind");
  return OpKind::kSet;
}

}  // namespace blizzard::bench
