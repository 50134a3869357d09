#include "tools/sim/command.h"

#include <cstring>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace blizzard::sim {
namespace {

constexpr uint8_t kBatchVersion = 1;
constexpr uint8_t kRequestTag = 0x51;  // 'Q'
constexpr uint8_t kReplyTag = 0x52;    // 'R'
constexpr uint8_t kMessageVersion = 1;
constexpr uint8_t kHasExpected = 0x01;
// client, seq, kind, flags, key length, a 1-byte key, value length.
constexpr size_t kCommandBytesMin = 8 + 8 + 1 + 1 + 4 + 1 + 4;

// Little-endian fixed-width writer (the simulator never runs on anything
// else; the static_assert in the reader keeps that honest).
class Writer {
 public:
  void U8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
  void U32(uint32_t v) { Raw(&v, sizeof(v)); }
  void U64(uint64_t v) { Raw(&v, sizeof(v)); }
  void Bytes(absl::string_view s) {
    U32(static_cast<uint32_t>(s.size()));
    out_.append(s.data(), s.size());
  }
  std::string Take() { return std::move(out_); }

 private:
  void Raw(const void* p, size_t n) { out_.append(static_cast<const char*>(p), n); }
  std::string out_;
};

class Reader {
 public:
  explicit Reader(absl::string_view in) : in_(in) {}
  bool U8(uint8_t* v) { return Raw(v, sizeof(*v)); }
  bool U32(uint32_t* v) { return Raw(v, sizeof(*v)); }
  bool U64(uint64_t* v) { return Raw(v, sizeof(*v)); }
  // A length-prefixed string of at most `max` bytes.
  bool Bytes(std::string* s, uint64_t max) {
    uint32_t n = 0;
    if (!U32(&n) || n > max || n > in_.size() - pos_) return false;
    s->assign(in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  size_t remaining() const { return in_.size() - pos_; }
  size_t pos() const { return pos_; }

 private:
  bool Raw(void* p, size_t n) {
    static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "little-endian only");
    if (n > in_.size() - pos_) return false;
    std::memcpy(p, in_.data() + pos_, n);
    pos_ += n;
    return true;
  }
  absl::string_view in_;
  size_t pos_ = 0;
};

absl::string_view AsView(absl::Span<const uint8_t> bytes) {
  return absl::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

void PutCommand(Writer& w, const Command& c) {
  ABSL_RAW_CHECK(ValidateCommand(c).ok(), "encoding an invalid command");
  w.U64(c.client);
  w.U64(c.seq);
  w.U8(static_cast<uint8_t>(c.kind));
  w.U8(c.expected.has_value() ? kHasExpected : 0);
  w.Bytes(c.key);
  w.Bytes(c.value);
  if (c.expected.has_value()) w.Bytes(*c.expected);
}

absl::Status Malformed(absl::string_view what, const Reader& r) {
  return absl::InvalidArgumentError(absl::StrCat(what, " at byte ", r.pos()));
}

absl::Status GetCommand(Reader& r, Command* c) {
  uint8_t kind = 0;
  uint8_t flags = 0;
  if (!r.U64(&c->client) || !r.U64(&c->seq) || !r.U8(&kind) || !r.U8(&flags)) {
    return Malformed("truncated command header", r);
  }
  if (kind < static_cast<uint8_t>(OpKind::kGet) || kind > static_cast<uint8_t>(OpKind::kCas)) {
    return Malformed(absl::StrCat("unknown op kind ", kind), r);
  }
  if ((flags & ~kHasExpected) != 0) return Malformed("unknown flags", r);
  c->kind = static_cast<OpKind>(kind);
  if (!r.Bytes(&c->key, kKeyBytesMax)) return Malformed("bad key", r);
  if (!r.Bytes(&c->value, kValueBytesMax)) return Malformed("bad value", r);
  c->expected.reset();
  if (flags & kHasExpected) {
    std::string expected;
    if (!r.Bytes(&expected, kValueBytesMax)) return Malformed("bad expected value", r);
    c->expected = std::move(expected);
  }
  return ValidateCommand(*c);
}

}  // namespace

const char* OpKindName(OpKind kind) {
  switch (kind) {
    case OpKind::kGet: return "get";
    case OpKind::kPut: return "put";
    case OpKind::kAppend: return "append";
    case OpKind::kDelete: return "delete";
    case OpKind::kCas: return "cas";
  }
  return "?";
}

bool IsWrite(OpKind kind) { return kind != OpKind::kGet; }

const char* ReplyStatusName(ReplyStatus status) {
  switch (status) {
    case ReplyStatus::kOk: return "ok";
    case ReplyStatus::kNotLeader: return "not-leader";
    case ReplyStatus::kUnknown: return "unknown";
    case ReplyStatus::kBusy: return "busy";
    case ReplyStatus::kStale: return "stale";
  }
  return "?";
}

absl::Status ValidateCommand(const Command& c) {
  if (c.client == 0 || c.seq == 0) {
    return absl::InvalidArgumentError("client and seq must be nonzero");
  }
  if (c.kind < OpKind::kGet || c.kind > OpKind::kCas) {
    return absl::InvalidArgumentError("unknown op kind");
  }
  if (c.key.empty() || c.key.size() > kKeyBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrFormat("key must have 1..%d bytes", kKeyBytesMax));
  }
  if (c.value.size() > kValueBytesMax ||
      (c.expected.has_value() && c.expected->size() > kValueBytesMax)) {
    return absl::InvalidArgumentError(
        absl::StrFormat("values are limited to %d bytes", kValueBytesMax));
  }
  if ((c.kind == OpKind::kGet || c.kind == OpKind::kDelete) && !c.value.empty()) {
    return absl::InvalidArgumentError("get and delete carry no value");
  }
  if (c.kind != OpKind::kCas && c.expected.has_value()) {
    return absl::InvalidArgumentError("only cas carries an expected value");
  }
  return absl::OkStatus();
}

std::string DescribeCommand(const Command& c) {
  std::string s = absl::StrFormat("c%d#%d %s %s", c.client, c.seq, OpKindName(c.kind), c.key);
  if (c.kind == OpKind::kCas) {
    absl::StrAppend(&s, " ", c.expected.has_value() ? absl::StrCat("'", *c.expected, "'") : "<absent>",
                    "->");
  }
  if (c.kind == OpKind::kPut || c.kind == OpKind::kAppend || c.kind == OpKind::kCas) {
    absl::StrAppend(&s, " '", c.value, "'");
  }
  return s;
}

std::string EncodeBatch(absl::Span<const Command> commands) {
  ABSL_RAW_CHECK(commands.size() <= kBatchCommandsMax, "batch too large");
  Writer w;
  w.U8(kBatchVersion);
  w.U32(static_cast<uint32_t>(commands.size()));
  for (const Command& c : commands) {
    ABSL_RAW_CHECK(IsWrite(c.kind), "reads never go into the log");
    PutCommand(w, c);
  }
  return w.Take();
}

absl::StatusOr<std::vector<Command>> DecodeBatch(absl::string_view bytes) {
  Reader r(bytes);
  uint8_t version = 0;
  uint32_t count = 0;
  if (!r.U8(&version)) return Malformed("empty batch", r);
  if (version != kBatchVersion) return Malformed(absl::StrCat("batch version ", version), r);
  if (!r.U32(&count)) return Malformed("truncated batch header", r);
  // Never reserve more than the input can justify.
  if (count > kBatchCommandsMax || count > r.remaining() / kCommandBytesMin) {
    return Malformed(absl::StrCat("batch count ", count), r);
  }
  std::vector<Command> out(count);
  for (Command& c : out) {
    if (absl::Status s = GetCommand(r, &c); !s.ok()) return s;
    if (!IsWrite(c.kind)) return Malformed("a read inside a batch", r);
  }
  if (r.remaining() != 0) return Malformed("trailing bytes", r);
  return out;
}

std::string EncodeRequest(const Command& command) {
  Writer w;
  w.U8(kRequestTag);
  w.U8(kMessageVersion);
  PutCommand(w, command);
  return w.Take();
}

std::string EncodeReply(const Reply& reply) {
  Writer w;
  w.U8(kReplyTag);
  w.U8(kMessageVersion);
  w.U64(reply.client);
  w.U64(reply.seq);
  w.U8(static_cast<uint8_t>(reply.status));
  w.U64(reply.leader_hint);
  w.U8(reply.result.ok ? 1 : 0);
  w.Bytes(reply.result.value);
  return w.Take();
}

bool IsRequest(absl::Span<const uint8_t> bytes) {
  return !bytes.empty() && bytes[0] == kRequestTag;
}

absl::StatusOr<Command> DecodeRequest(absl::Span<const uint8_t> bytes) {
  Reader r(AsView(bytes));
  uint8_t tag = 0;
  uint8_t version = 0;
  if (!r.U8(&tag) || tag != kRequestTag) return Malformed("not a request", r);
  if (!r.U8(&version) || version != kMessageVersion) return Malformed("request version", r);
  Command c;
  if (absl::Status s = GetCommand(r, &c); !s.ok()) return s;
  if (r.remaining() != 0) return Malformed("trailing bytes", r);
  return c;
}

absl::StatusOr<Reply> DecodeReply(absl::Span<const uint8_t> bytes) {
  Reader r(AsView(bytes));
  uint8_t tag = 0;
  uint8_t version = 0;
  uint8_t status = 0;
  uint8_t ok = 0;
  Reply reply;
  if (!r.U8(&tag) || tag != kReplyTag) return Malformed("not a reply", r);
  if (!r.U8(&version) || version != kMessageVersion) return Malformed("reply version", r);
  if (!r.U64(&reply.client) || !r.U64(&reply.seq) || !r.U8(&status) ||
      !r.U64(&reply.leader_hint) || !r.U8(&ok) ||
      !r.Bytes(&reply.result.value, kValueBytesMax)) {
    return Malformed("truncated reply", r);
  }
  if (status < static_cast<uint8_t>(ReplyStatus::kOk) ||
      status > static_cast<uint8_t>(ReplyStatus::kStale) || ok > 1) {
    return Malformed("bad reply status", r);
  }
  if (r.remaining() != 0) return Malformed("trailing bytes", r);
  reply.status = static_cast<ReplyStatus>(status);
  reply.result.ok = ok == 1;
  return reply;
}

}  // namespace blizzard::sim
