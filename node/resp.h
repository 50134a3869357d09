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
  // parser stays in the error state). An empty inline line is skipped.
  absl::StatusOr<std::optional<std::vector<std::string>>> Next();

  // Bytes buffered but not yet parsed (for limits and tests).
  size_t buffered_bytes() const;

 private:
  RespLimits limits_;
  std::string buffer_;
  size_t consumed_ = 0;   // Prefix of buffer_ already parsed.
  bool failed_ = false;
};

// Reply encoders: append one RESP2 value to `out`.
void AppendSimpleString(std::string& out, std::string_view s);  // +OK
void AppendError(std::string& out, std::string_view message);   // -ERR ...
void AppendInteger(std::string& out, int64_t value);            // :42
void AppendBulk(std::string& out, std::string_view value);      // $3 foo
void AppendNull(std::string& out);                              // $-1
void AppendArrayHeader(std::string& out, size_t count);         // *3

}  // namespace blizzard::node

#endif  // BLIZZARD_NODE_RESP_H_
