// Incremental parser of RESP2 replies (what a Redis-protocol server sends
// back), for the load generator and its INFO probes. Replies are untrusted
// input: every length is bounded before anything is reserved, and a
// malformed stream is a Status, never a crash.
#ifndef BLIZZARD_BENCH_RESP_REPLY_H_
#define BLIZZARD_BENCH_RESP_REPLY_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace blizzard::bench {

enum class ReplyType : uint8_t {
  kSimple,   // +OK
  kError,    // -ERR unknown command ...
  kInteger,  // :42
  kBulk,     // $3\r\nfoo
  kNull,     // $-1 or *-1
  kArray,    // *N followed by N replies (nested elements are skipped)
};

struct Reply {
  ReplyType type = ReplyType::kNull;
  // kSimple / kError: the line without its type byte. kBulk: the payload.
  std::string text;
  // kInteger: the value. kArray: the element count.
  int64_t integer = 0;
};

struct ReplyLimits {
  size_t line_bytes_max = 64u << 10;    // A simple string, error or length line.
  size_t bulk_bytes_max = 512u << 20;   // Redis' proto-max-bulk-len.
  size_t array_elements_max = 1u << 20;
  size_t depth_max = 8;                 // Arrays nested in arrays.
};

class ReplyParser {
 public:
  explicit ReplyParser(ReplyLimits limits = {}) : limits_(limits) {}

  void Feed(std::string_view bytes);

  // The next complete top-level reply; std::nullopt if more bytes are
  // needed; InvalidArgument on a protocol violation, after which the parser
  // answers the same error forever (the connection must be closed). The
  // result depends only on the bytes, not on how Feed split them: parsing
  // resumes element by element, so a large array arriving in pieces is not
  // rescanned. Elements inside arrays are validated and dropped; only the
  // top-level reply's type, text and integer are returned.
  absl::StatusOr<std::optional<Reply>> Next();

  // Bytes received and not yet consumed.
  size_t buffered_bytes() const { return buffer_.size() - consumed_; }

 private:
  enum class Step : uint8_t { kNeedMore, kDone, kInvalid };
  // Parses one element (a scalar, or an array header) at consumed_.
  Step ParseElement(Reply& out);
  // Finds "\r\n" after consumed_ + 1; the line is [consumed_ + 1, end).
  Step FindLine(size_t& end);
  Step ParseInteger(size_t begin, size_t end, int64_t& value);
  absl::Status Fail(std::string_view what);
  void Compact();

  ReplyLimits limits_;
  std::string buffer_;
  size_t consumed_ = 0;
  // Elements still expected by each open array, outermost first.
  std::vector<int64_t> open_arrays_;
  Reply top_;  // The top-level reply being assembled (while arrays are open).
  std::string error_;  // Non-empty after a protocol error.
};

}  // namespace blizzard::bench

#endif  // BLIZZARD_BENCH_RESP_REPLY_H_
