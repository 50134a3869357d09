#include "tools/sim/trace.h"

#include <vector>

#include <xxhash.h>

namespace blizzard::sim {

void Trace::Event(int64_t now_us, absl::string_view kind, std::initializer_list<uint64_t> fields,
                  absl::FunctionRef<std::string()> describe) {
  ++events_;
  uint64_t words[16];
  size_t n = 0;
  words[n++] = static_cast<uint64_t>(now_us);
  words[n++] = XXH3_64bits(kind.data(), kind.size());
  for (uint64_t f : fields) {
    if (n == sizeof(words) / sizeof(words[0])) break;
    words[n++] = f;
  }
  hash_ = XXH3_64bits_withSeed(words, n * sizeof(uint64_t), hash_);
  if (out_ != nullptr) {
    const std::string text = describe();
    std::fprintf(out_, "%6lld.%03lld ms  %-9.*s %s\n", static_cast<long long>(now_us / 1000),
                 static_cast<long long>(now_us % 1000), static_cast<int>(kind.size()), kind.data(),
                 text.c_str());
  }
}

void Trace::Note(absl::string_view text) {
  if (out_ != nullptr) {
    std::fprintf(out_, "%.*s\n", static_cast<int>(text.size()), text.data());
  }
}

}  // namespace blizzard::sim
