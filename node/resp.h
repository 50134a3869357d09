// RESP (REdis Serialization Protocol) request parsing and reply encoding, so
// that redis-cli, redis-benchmark and any Redis client library can talk to a
// Blizzard node. Client input is untrusted: every length is bounded and
// checked before anything is allocated.
#ifndef BLIZZARD_NODE_RESP_H_
#define BLIZZARD_NODE_RESP_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace blizzard::node {

struct RespLimits {
  size_t args_max = 1u << 20;            // Elements of one multibulk request.
  size_t bulk_bytes_max = 512u << 20;    // One argument (Redis' proto-max-bulk-len).
  size_t inline_bytes_max = 64u << 10;   // One inline command line.
  size_t request_bytes_max = 1u << 30;   // All arguments of one request.
};

// Incremental request parser for one connection. Accepts multibulk requests
// (`*<n>\r\n$<len>\r\n<bytes>\r\n...`, what clients send) and inline commands
// (`SET k v\r\n`, what telnet sends, with Redis' quoting rules).
class RespParser {
 public:
  explicit RespParser(RespLimits limits = {});

  // Appends received bytes to the internal buffer.
  void Feed(absl::Span<const uint8_t> bytes);
  void Feed(std::string_view bytes);

  // The next complete request, std::nullopt if more bytes are needed, or
  // InvalidArgument with a Redis-style message ("Protocol error: ...") on
  // malformed input; after an error the connection must be closed (the
  // parser stays in the error state, returns the same error again and
  // ignores further Feed calls). As in Redis, a request with no arguments
  // is skipped: an empty inline line and "*0\r\n" / "*-1\r\n".
  //
  // Every declared length is checked against the limits before anything is
  // reserved; bulk bytes are copied into the argument as they arrive, so a
  // declared-but-unsent bulk costs nothing. The outcome depends only on the
  // bytes, never on how they were split between Feed calls.
  absl::StatusOr<std::optional<std::vector<std::string>>> Next();

  // Bytes buffered but not yet parsed (for limits and tests). Bytes of a
  // partially received request that were already copied into its arguments
  // are not counted (they are bounded by RespLimits::request_bytes_max).
  size_t buffered_bytes() const;

 private:
  // Where the parser is inside the request being read. Every state remembers
  // how far it got, so a request that arrives in many small pieces is
  // scanned once (no quadratic re-scanning).
  enum class State : uint8_t {
    kIdle,        // Between requests.
    kInline,      // Looking for the '\n' that ends an inline line.
    kCount,       // Reading "*<n>\r\n".
    kBulkHeader,  // Reading "$<len>\r\n".
    kBulkData,    // Copying <len> bytes into the last argument.
    kBulkEnd,     // Expecting the "\r\n" after a bulk.
  };
  enum class LineResult : uint8_t { kNeedMore, kDone, kInvalid };

  // Scans "<prefix char><decimal>\r\n" at consumed_, Redis' string2ll rules.
  LineResult ScanLengthLine(int64_t& value);
  // Records the first error; the parser answers it forever after.
  absl::Status Fail(std::string_view what);
  // Drops the consumed prefix when that costs no more than what was consumed
  // (amortized O(1) per byte); frees a grown buffer once it is drained.
  void Compact();

  RespLimits limits_;
  std::string buffer_;
  size_t consumed_ = 0;       // Prefix of buffer_ already parsed.
  size_t line_scanned_ = 0;   // Bytes after consumed_ known to hold no terminator.
  State state_ = State::kIdle;
  size_t args_remaining_ = 0;   // Bulks still expected in this multibulk.
  size_t bulk_remaining_ = 0;   // Bytes still expected in this bulk.
  size_t request_bytes_ = 0;    // Declared argument bytes of this request.
  std::vector<std::string> args_;
  absl::Status error_;          // OK until the first protocol error.
};

// Reply encoders: append one RESP2 value to `out`. Simple strings and
// errors cannot carry CR or LF; those bytes are replaced with spaces (as
// Redis does) so a reply can never break the framing.
void AppendSimpleString(std::string& out, std::string_view s);  // +OK
// "-<message>": the message starts with its error code, as Redis clients
// expect ("ERR unknown command ...", "MOVED 0 host:port", "BUSY ...").
void AppendError(std::string& out, std::string_view message);   // -ERR ...
void AppendInteger(std::string& out, int64_t value);            // :42
void AppendBulk(std::string& out, std::string_view value);      // $3 foo
void AppendNull(std::string& out);                              // $-1
void AppendArrayHeader(std::string& out, size_t count);         // *3

}  // namespace blizzard::node

#endif  // BLIZZARD_NODE_RESP_H_
