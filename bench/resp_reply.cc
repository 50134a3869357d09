#include "bench/resp_reply.h"

#include <cstring>

#include "bench/sv.h"
#include "absl/base/internal/raw_logging.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace blizzard::bench {

void ReplyParser::Feed(std::string_view bytes) {
  if (!error_.empty()) return;
  Compact();
  buffer_.append(bytes);
}

void ReplyParser::Compact() {
  // Dropping the prefix costs at most what was consumed: amortized O(1)
  // per byte.
  if (consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = 0;
  } else if (consumed_ > 0 && consumed_ >= buffer_.size() / 2) {
    buffer_.erase(0, consumed_);
    consumed_ = 0;
  }
}

absl::Status ReplyParser::Fail(std::string_view what) {
  error_ = absl::StrCat("RESP reply protocol error: ", AV(what));
  return absl::InvalidArgumentError(error_);
}

ReplyParser::Step ReplyParser::FindLine(size_t& end) {
  const size_t begin = consumed_ + 1;
  const size_t available = buffer_.size() - begin;
  const size_t scan = available < limits_.line_bytes_max + 2 ? available
                                                             : limits_.line_bytes_max + 2;
  const void* cr = scan == 0 ? nullptr : std::memchr(buffer_.data() + begin, '\r', scan);
  if (cr == nullptr) {
    return available >= limits_.line_bytes_max + 2 ? Step::kInvalid : Step::kNeedMore;
  }
  end = static_cast<size_t>(static_cast<const char*>(cr) - buffer_.data());
  if (end + 1 >= buffer_.size()) return Step::kNeedMore;
  if (buffer_[end + 1] != '\n') return Step::kInvalid;
  return Step::kDone;
}

ReplyParser::Step ReplyParser::ParseInteger(size_t begin, size_t end, int64_t& value) {
  if (begin == end || end - begin > 20) return Step::kInvalid;
  bool negative = false;
  if (buffer_[begin] == '-') {
    negative = true;
    ++begin;
    if (begin == end) return Step::kInvalid;
  }
  uint64_t v = 0;
  for (size_t i = begin; i < end; ++i) {
    const char c = buffer_[i];
    if (c < '0' || c > '9') return Step::kInvalid;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (v > (UINT64_MAX - digit) / 10) return Step::kInvalid;
    v = v * 10 + digit;
  }
  const uint64_t limit = negative ? uint64_t{1} << 63 : (uint64_t{1} << 63) - 1;
  if (v > limit) return Step::kInvalid;
  value = negative ? static_cast<int64_t>(0 - v) : static_cast<int64_t>(v);
  return Step::kDone;
}

ReplyParser::Step ReplyParser::ParseElement(Reply& out) {
  if (consumed_ >= buffer_.size()) return Step::kNeedMore;
  size_t end = 0;
  const Step line = FindLine(end);
  if (line != Step::kDone) {
    if (line == Step::kInvalid) Fail("line too long or bad line ending").IgnoreError();
    return line;
  }
  const char type = buffer_[consumed_];
  const size_t begin = consumed_ + 1;
  const size_t after_line = end + 2;
  switch (type) {
    case '+':
    case '-':
      out.type = type == '+' ? ReplyType::kSimple : ReplyType::kError;
      out.text.assign(buffer_, begin, end - begin);
      consumed_ = after_line;
      return Step::kDone;
    case ':':
      if (ParseInteger(begin, end, out.integer) != Step::kDone) {
        Fail("bad integer").IgnoreError();
        return Step::kInvalid;
      }
      out.type = ReplyType::kInteger;
      consumed_ = after_line;
      return Step::kDone;
    case '$': {
      int64_t length = 0;
      if (ParseInteger(begin, end, length) != Step::kDone || length < -1) {
        Fail("bad bulk length").IgnoreError();
        return Step::kInvalid;
      }
      if (length == -1) {
        out.type = ReplyType::kNull;
        consumed_ = after_line;
        return Step::kDone;
      }
      if (static_cast<uint64_t>(length) > limits_.bulk_bytes_max) {
        Fail(absl::StrCat("bulk of ", length, " bytes over the limit of ",
                          limits_.bulk_bytes_max))
            .IgnoreError();
        return Step::kInvalid;
      }
      const size_t n = static_cast<size_t>(length);
      if (buffer_.size() - after_line < n + 2) return Step::kNeedMore;
      if (buffer_[after_line + n] != '\r' || buffer_[after_line + n + 1] != '\n') {
        Fail("bulk not followed by CRLF").IgnoreError();
        return Step::kInvalid;
      }
      out.type = ReplyType::kBulk;
      out.integer = length;
      // Nested payloads are dropped (the caller sees only the top level).
      if (open_arrays_.empty()) out.text.assign(buffer_, after_line, n);
      consumed_ = after_line + n + 2;
      return Step::kDone;
    }
    case '*': {
      int64_t count = 0;
      if (ParseInteger(begin, end, count) != Step::kDone || count < -1) {
        Fail("bad array length").IgnoreError();
        return Step::kInvalid;
      }
      if (count > 0 && static_cast<uint64_t>(count) > limits_.array_elements_max) {
        Fail(absl::StrCat("array of ", count, " elements over the limit of ",
                          limits_.array_elements_max))
            .IgnoreError();
        return Step::kInvalid;
      }
      out.type = count == -1 ? ReplyType::kNull : ReplyType::kArray;
      out.integer = count < 0 ? 0 : count;
      consumed_ = after_line;
      return Step::kDone;
    }
    default:
      Fail(absl::StrCat("unexpected reply type byte 0x",
                        absl::Hex(static_cast<unsigned char>(type))))
          .IgnoreError();
      return Step::kInvalid;
  }
}

absl::StatusOr<std::optional<Reply>> ReplyParser::Next() {
  if (!error_.empty()) return absl::InvalidArgumentError(error_);
  for (;;) {
    Reply element;
    const Step step = ParseElement(element);
    if (step == Step::kNeedMore) return std::nullopt;
    if (step == Step::kInvalid) return absl::InvalidArgumentError(error_);
    const bool top_level = open_arrays_.empty();
    if (top_level) top_ = std::move(element);
    if (!top_level) --open_arrays_.back();
    const bool opens = (top_level ? top_.type : element.type) == ReplyType::kArray &&
                       (top_level ? top_.integer : element.integer) > 0;
    if (opens) {
      if (open_arrays_.size() >= limits_.depth_max) {
        return Fail(absl::StrCat("arrays nested deeper than ", limits_.depth_max));
      }
      open_arrays_.push_back(top_level ? top_.integer : element.integer);
    }
    while (!open_arrays_.empty() && open_arrays_.back() == 0) open_arrays_.pop_back();
    if (open_arrays_.empty()) {
      ABSL_RAW_CHECK(consumed_ <= buffer_.size(), "reply parser overran its buffer");
      return std::optional<Reply>(std::move(top_));
    }
  }
}

}  // namespace blizzard::bench
