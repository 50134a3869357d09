#include "node/resp.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_cat.h"

namespace blizzard::node {
namespace {

// A length line holds at most 20 characters ("-9223372036854775808"), as
// Redis' string2ll (LONG_STR_SIZE) allows; anything longer is invalid at once
// instead of being buffered up to 64 KiB first.
constexpr size_t kLengthCharsMax = 20;
// Redis reserves at most this many argument slots up front; more only as
// arguments actually arrive.
constexpr size_t kArgsReserveMax = 1024;
// Compaction moves at most as many bytes as were consumed (amortized O(1)
// per byte) and is skipped for small prefixes.
constexpr size_t kCompactBytesMin = 4096;
// A buffer that grew for a burst is released once drained.
constexpr size_t kIdleCapacityBytesMax = 1u << 20;

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// C locale isspace(), what Redis' sdssplitargs skips between arguments.
bool IsSpace(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' ||
         c == '\r';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Redis' string2ll: optional '-', no '+', no leading zeros, no spaces, fits
// in int64.
bool ParseLength(std::string_view s, int64_t& value) {
  if (s.empty() || s.size() > kLengthCharsMax) return false;
  if (s == "0") {
    value = 0;
    return true;
  }
  size_t i = 0;
  const bool negative = s[0] == '-';
  if (negative) i = 1;
  if (i == s.size() || s[i] < '1' || s[i] > '9') return false;
  uint64_t magnitude = 0;
  for (; i < s.size(); ++i) {
    if (!IsDigit(s[i])) return false;
    const uint64_t digit = static_cast<uint64_t>(s[i] - '0');
    if (magnitude > (std::numeric_limits<uint64_t>::max() - digit) / 10) {
      return false;
    }
    magnitude = magnitude * 10 + digit;
  }
  constexpr uint64_t kPositiveMax = std::numeric_limits<int64_t>::max();
  if (negative) {
    if (magnitude > kPositiveMax + 1) return false;
    value = magnitude == kPositiveMax + 1
                ? std::numeric_limits<int64_t>::min()
                : -static_cast<int64_t>(magnitude);
  } else {
    if (magnitude > kPositiveMax) return false;
    value = static_cast<int64_t>(magnitude);
  }
  return true;
}

// Redis' sdssplitargs on one inline line (without its line ending). Bytes
// are binary-safe here, where Redis would stop at a NUL. Returns false on
// unbalanced quotes or a closing quote not followed by a space.
bool SplitInlineArgs(std::string_view line, std::vector<std::string>& args) {
  const size_t n = line.size();
  size_t i = 0;
  for (;;) {
    while (i < n && IsSpace(line[i])) ++i;
    if (i == n) return true;
    std::string current;
    bool in_double = false;
    bool in_single = false;
    for (bool done = false; !done;) {
      if (in_double) {
        if (i == n) return false;
        const char c = line[i];
        if (c == '\\' && i + 3 < n && line[i + 1] == 'x' &&
            HexValue(line[i + 2]) >= 0 && HexValue(line[i + 3]) >= 0) {
          current.push_back(static_cast<char>(HexValue(line[i + 2]) * 16 +
                                              HexValue(line[i + 3])));
          i += 3;
        } else if (c == '\\' && i + 1 < n) {
          ++i;
          switch (line[i]) {
            case 'n': current.push_back('\n'); break;
            case 'r': current.push_back('\r'); break;
            case 't': current.push_back('\t'); break;
            case 'b': current.push_back('\b'); break;
            case 'a': current.push_back('\a'); break;
            default: current.push_back(line[i]); break;
          }
        } else if (c == '"') {
          // A closing quote must be followed by a space or the end.
          if (i + 1 < n && !IsSpace(line[i + 1])) return false;
          done = true;
        } else {
          current.push_back(c);
        }
        ++i;
      } else if (in_single) {
        if (i == n) return false;
        const char c = line[i];
        if (c == '\\' && i + 1 < n && line[i + 1] == '\'') {
          ++i;
          current.push_back('\'');
        } else if (c == '\'') {
          if (i + 1 < n && !IsSpace(line[i + 1])) return false;
          done = true;
        } else {
          current.push_back(c);
        }
        ++i;
      } else {
        if (i == n) break;
        const char c = line[i];
        switch (c) {
          case ' ':
          case '\n':
          case '\r':
          case '\t':
            done = true;
            break;
          case '"':
            in_double = true;
            break;
          case '\'':
            in_single = true;
            break;
          default:
            current.push_back(c);
            break;
        }
        ++i;
      }
    }
    args.push_back(std::move(current));
  }
}

// Appends `s` with CR and LF replaced by spaces.
void AppendLine(std::string& out, std::string_view s) {
  const size_t start = out.size();
  out.append(s);
  for (size_t i = start; i < out.size(); ++i) {
    if (out[i] == '\r' || out[i] == '\n') out[i] = ' ';
  }
  out.append("\r\n");
}

}  // namespace

RespParser::RespParser(RespLimits limits) : limits_(limits) {}

void RespParser::Feed(absl::Span<const uint8_t> bytes) {
  Feed(std::string_view(reinterpret_cast<const char*>(bytes.data()),
                        bytes.size()));
}

void RespParser::Feed(std::string_view bytes) {
  // A failed connection is about to be closed; keep nothing more from it.
  if (!error_.ok()) return;
  // The buffer grows only here, so compacting here bounds it.
  Compact();
  buffer_.append(bytes);
}

size_t RespParser::buffered_bytes() const {
  ABSL_RAW_CHECK(consumed_ <= buffer_.size(), "consumed past the buffer");
  return buffer_.size() - consumed_;
}

void RespParser::Compact() {
  ABSL_RAW_CHECK(consumed_ <= buffer_.size(), "consumed past the buffer");
  if (consumed_ == buffer_.size()) {
    if (buffer_.capacity() > kIdleCapacityBytesMax) {
      std::string().swap(buffer_);
    } else {
      buffer_.clear();
    }
    consumed_ = 0;
  } else if (consumed_ >= kCompactBytesMin &&
             consumed_ >= buffer_.size() - consumed_) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
}

absl::Status RespParser::Fail(std::string_view what) {
  error_ = absl::InvalidArgumentError(
      std::string("Protocol error: ").append(what));
  // Nothing of a broken stream is worth keeping.
  std::string().swap(buffer_);
  consumed_ = 0;
  std::vector<std::string>().swap(args_);
  return error_;
}

RespParser::LineResult RespParser::ScanLengthLine(int64_t& value) {
  const char* line = buffer_.data() + consumed_;
  const size_t available = buffer_.size() - consumed_;
  // Byte 0 is the '*' or '$' the caller already checked.
  size_t i = std::max<size_t>(line_scanned_, 1);
  for (; i < available; ++i) {
    const char c = line[i];
    if (c == '\r') break;
    // Reject at the first byte that cannot belong to a length, so garbage
    // is reported as soon as it arrives rather than after 64 KiB.
    if ((!IsDigit(c) && c != '-') || i > kLengthCharsMax) {
      return LineResult::kInvalid;
    }
  }
  if (i + 1 >= available) {
    line_scanned_ = i;  // Resume at the '\r' (or the first unseen byte).
    return LineResult::kNeedMore;
  }
  if (line[i + 1] != '\n') return LineResult::kInvalid;
  if (!ParseLength(std::string_view(line + 1, i - 1), value)) {
    return LineResult::kInvalid;
  }
  consumed_ += i + 2;
  line_scanned_ = 0;
  return LineResult::kDone;
}

absl::StatusOr<std::optional<std::vector<std::string>>> RespParser::Next() {
  if (!error_.ok()) return error_;
  for (;;) {
    const char* p = buffer_.data() + consumed_;
    const size_t available = buffer_.size() - consumed_;
    switch (state_) {
      case State::kIdle: {
        if (available == 0) {
          Compact();  // Drained: release what a burst grew.
          return std::nullopt;
        }
        ABSL_RAW_CHECK(args_.empty() && line_scanned_ == 0,
                       "state leaked from the previous request");
        state_ = p[0] == '*' ? State::kCount : State::kInline;
        break;
      }

      case State::kInline: {
        // Look at no more than one byte past the limit: a longer line is an
        // error whether or not its '\n' has arrived.
        const size_t window = available > limits_.inline_bytes_max
                                  ? limits_.inline_bytes_max + 1
                                  : available;
        const void* newline =
            line_scanned_ < window
                ? std::memchr(p + line_scanned_, '\n', window - line_scanned_)
                : nullptr;
        if (newline == nullptr) {
          line_scanned_ = window;
          if (available > limits_.inline_bytes_max) {
            return Fail("too big inline request");
          }
          return std::nullopt;
        }
        const size_t newline_at = static_cast<const char*>(newline) - p;
        size_t length = newline_at;
        if (length > 0 && p[length - 1] == '\r') --length;
        std::vector<std::string> args;
        if (!SplitInlineArgs(std::string_view(p, length), args)) {
          return Fail("unbalanced quotes in request");
        }
        consumed_ += newline_at + 1;
        line_scanned_ = 0;
        state_ = State::kIdle;
        if (args.empty()) break;  // Empty line: skipped, as in Redis.
        if (args.size() > limits_.args_max) {
          return Fail("too many arguments in inline request");
        }
        // The multibulk limits hold for inline requests too, so a caller
        // can rely on them whatever the form (they only bite when set below
        // inline_bytes_max).
        size_t request_bytes = 0;
        for (const std::string& arg : args) {
          if (arg.size() > limits_.bulk_bytes_max) {
            return Fail("too big inline request");
          }
          request_bytes += arg.size();
        }
        if (request_bytes > limits_.request_bytes_max) {
          return Fail("too big inline request");
        }
        return args;
      }

      case State::kCount: {
        int64_t count = 0;
        switch (ScanLengthLine(count)) {
          case LineResult::kNeedMore:
            return std::nullopt;
          case LineResult::kInvalid:
            return Fail("invalid multibulk length");
          case LineResult::kDone:
            break;
        }
        if (count <= 0) {  // "*0" and "*-1": nothing to run, as in Redis.
          state_ = State::kIdle;
          break;
        }
        if (static_cast<uint64_t>(count) > limits_.args_max ||
            count > std::numeric_limits<int32_t>::max()) {
          return Fail("invalid multibulk length");
        }
        args_remaining_ = static_cast<size_t>(count);
        request_bytes_ = 0;
        args_.reserve(std::min(args_remaining_, kArgsReserveMax));
        state_ = State::kBulkHeader;
        break;
      }

      case State::kBulkHeader: {
        if (available == 0) return std::nullopt;
        if (p[0] != '$') {
          const char got = (p[0] == '\r' || p[0] == '\n') ? ' ' : p[0];
          return Fail(std::string("expected '$', got '") + got + "'");
        }
        int64_t length = 0;
        switch (ScanLengthLine(length)) {
          case LineResult::kNeedMore:
            return std::nullopt;
          case LineResult::kInvalid:
            return Fail("invalid bulk length");
          case LineResult::kDone:
            break;
        }
        if (length < 0 ||
            static_cast<uint64_t>(length) > limits_.bulk_bytes_max) {
          return Fail("invalid bulk length");
        }
        const size_t bulk_bytes = static_cast<size_t>(length);
        if (bulk_bytes > limits_.request_bytes_max - request_bytes_) {
          return Fail("too big request");
        }
        request_bytes_ += bulk_bytes;
        bulk_remaining_ = bulk_bytes;
        // Reserve only what has arrived; the rest grows as it comes.
        args_.emplace_back().reserve(
            std::min(bulk_bytes, buffer_.size() - consumed_));
        state_ = State::kBulkData;
        break;
      }

      case State::kBulkData: {
        const size_t take = std::min(available, bulk_remaining_);
        args_.back().append(p, take);
        consumed_ += take;
        bulk_remaining_ -= take;
        if (bulk_remaining_ > 0) return std::nullopt;
        state_ = State::kBulkEnd;
        break;
      }

      case State::kBulkEnd: {
        // Redis skips these two bytes unchecked; checking them catches a
        // client whose lengths disagree with its data before it desyncs.
        if ((available >= 1 && p[0] != '\r') ||
            (available >= 2 && p[1] != '\n')) {
          return Fail("expected CRLF after bulk data");
        }
        if (available < 2) return std::nullopt;
        consumed_ += 2;
        ABSL_RAW_CHECK(args_remaining_ > 0, "bulk without a pending argument");
        if (--args_remaining_ > 0) {
          state_ = State::kBulkHeader;
          break;
        }
        state_ = State::kIdle;
        std::vector<std::string> request = std::move(args_);
        args_.clear();
        ABSL_RAW_CHECK(!request.empty(), "multibulk request without arguments");
        return request;
      }
    }
  }
}

void AppendSimpleString(std::string& out, std::string_view s) {
  out.push_back('+');
  AppendLine(out, s);
}

void AppendError(std::string& out, std::string_view message) {
  out.push_back('-');
  AppendLine(out, message);
}

void AppendInteger(std::string& out, int64_t value) {
  absl::StrAppend(&out, ":", value, "\r\n");
}

void AppendBulk(std::string& out, std::string_view value) {
  absl::StrAppend(&out, "$", value.size(), "\r\n");
  out.append(value);
  out.append("\r\n");
}

void AppendNull(std::string& out) { out.append("$-1\r\n"); }

void AppendArrayHeader(std::string& out, size_t count) {
  absl::StrAppend(&out, "*", count, "\r\n");
}

}  // namespace blizzard::node
