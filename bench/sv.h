// Debian's Abseil has its own absl::string_view (not std::string_view), and
// StrCat / StrSplit / StartsWith take only that one: AV() converts.
#ifndef BLIZZARD_BENCH_SV_H_
#define BLIZZARD_BENCH_SV_H_

#include <string_view>

#include "absl/strings/string_view.h"

namespace blizzard::bench {

inline absl::string_view AV(std::string_view s) { return absl::string_view(s.data(), s.size()); }

}  // namespace blizzard::bench

#endif  // BLIZZARD_BENCH_SV_H_
