#include "tools/sim/command.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "transport/sim/splitmix64.h"

namespace blizzard::sim {
namespace {

absl::Span<const uint8_t> Bytes(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

std::vector<Command> SampleWrites() {
  return {
      Command{1001, 1, OpKind::kPut, "k0", "v", std::nullopt},
      Command{1001, 2, OpKind::kAppend, "k1", "a;", std::nullopt},
      Command{1002, 7, OpKind::kDelete, "k0", "", std::nullopt},
      Command{1003, 9, OpKind::kCas, "k2", "new", std::string("old")},
      Command{1003, 10, OpKind::kCas, "k2", "new", std::nullopt},
      Command{1004, 1, OpKind::kCas, "k2", "x", std::string("")},
  };
}

TEST(CommandTest, BatchRoundTrips) {
  const std::vector<Command> writes = SampleWrites();
  const std::string bytes = EncodeBatch(writes);
  absl::StatusOr<std::vector<Command>> decoded = DecodeBatch(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(*decoded, writes);
  // The empty-but-present expected value stays distinct from "absent".
  EXPECT_EQ((*decoded)[5].expected, std::optional<std::string>(""));
  EXPECT_EQ((*decoded)[4].expected, std::nullopt);

  absl::StatusOr<std::vector<Command>> empty = DecodeBatch(EncodeBatch({}));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(CommandTest, EveryTruncationAndTrailingByteIsRejected) {
  const std::string bytes = EncodeBatch(SampleWrites());
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(DecodeBatch(bytes.substr(0, n)).ok()) << "prefix " << n;
  }
  EXPECT_FALSE(DecodeBatch(bytes + "x").ok());
}

TEST(CommandTest, MalformedBatchesAreRejected) {
  std::string bytes = EncodeBatch(SampleWrites());
  bytes[0] = 2;  // Another version.
  EXPECT_FALSE(DecodeBatch(bytes).ok());

  // A read inside a batch: built by hand from a request's command bytes.
  const Command get{5, 1, OpKind::kGet, "k", "", std::nullopt};
  const std::string request = EncodeRequest(get);
  std::string batch = EncodeBatch({});
  batch[1] = 1;  // count = 1
  batch += request.substr(2);
  EXPECT_FALSE(DecodeBatch(batch).ok());

  // A huge count does not allocate beyond the input.
  std::string huge = EncodeBatch({});
  huge[1] = huge[2] = huge[3] = huge[4] = '\xff';
  EXPECT_FALSE(DecodeBatch(huge).ok());
}

TEST(CommandTest, ValidateCommand) {
  EXPECT_TRUE(ValidateCommand(Command{1, 1, OpKind::kGet, "k", "", std::nullopt}).ok());
  EXPECT_FALSE(ValidateCommand(Command{0, 1, OpKind::kGet, "k", "", std::nullopt}).ok());
  EXPECT_FALSE(ValidateCommand(Command{1, 0, OpKind::kGet, "k", "", std::nullopt}).ok());
  EXPECT_FALSE(ValidateCommand(Command{1, 1, OpKind::kGet, "", "", std::nullopt}).ok());
  EXPECT_FALSE(ValidateCommand(Command{1, 1, OpKind::kGet, "k", "v", std::nullopt}).ok());
  EXPECT_FALSE(ValidateCommand(Command{1, 1, OpKind::kDelete, "k", "v", std::nullopt}).ok());
  EXPECT_FALSE(ValidateCommand(Command{1, 1, OpKind::kPut, "k", "v", std::string("e")}).ok());
  EXPECT_FALSE(
      ValidateCommand(Command{1, 1, OpKind::kPut, std::string(kKeyBytesMax + 1, 'k'), "v", {}})
          .ok());
  EXPECT_FALSE(ValidateCommand(
                   Command{1, 1, OpKind::kPut, "k", std::string(kValueBytesMax + 1, 'v'), {}})
                   .ok());
  EXPECT_FALSE(ValidateCommand(Command{1, 1, static_cast<OpKind>(9), "k", "", std::nullopt}).ok());
}

TEST(CommandTest, RequestsAndRepliesRoundTrip) {
  for (const Command& c : SampleWrites()) {
    const std::string bytes = EncodeRequest(c);
    EXPECT_TRUE(IsRequest(Bytes(bytes)));
    absl::StatusOr<Command> d = DecodeRequest(Bytes(bytes));
    ASSERT_TRUE(d.ok()) << d.status();
    EXPECT_EQ(*d, c);
    EXPECT_FALSE(DecodeReply(Bytes(bytes)).ok());
  }
  const Reply reply{1001, 3, ReplyStatus::kNotLeader, 2, CommandResult{false, "value"}};
  const std::string bytes = EncodeReply(reply);
  EXPECT_FALSE(IsRequest(Bytes(bytes)));
  absl::StatusOr<Reply> d = DecodeReply(Bytes(bytes));
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, reply);
  for (size_t n = 0; n < bytes.size(); ++n) {
    EXPECT_FALSE(DecodeReply(Bytes(bytes.substr(0, n))).ok());
  }
  std::string bad_status = bytes;
  bad_status[18] = 9;  // tag, version, client, seq, then the status byte.
  EXPECT_FALSE(DecodeReply(Bytes(bad_status)).ok());
}

// Random corruption never crashes the decoders, and whatever decodes is
// valid.
TEST(CommandTest, BitFlipsNeverCrash) {
  transport::SplitMix64 random(7);
  const std::string batch = EncodeBatch(SampleWrites());
  const std::string request = EncodeRequest(SampleWrites()[3]);
  const std::string reply = EncodeReply(Reply{1, 2, ReplyStatus::kOk, 0, CommandResult{true, "v"}});
  for (int i = 0; i < 20000; ++i) {
    std::string b = batch;
    std::string q = request;
    std::string r = reply;
    for (int flips = 0; flips < 3; ++flips) {
      b[random.Uniform(0, b.size() - 1)] ^= static_cast<char>(1u << random.Uniform(0, 7));
      q[random.Uniform(0, q.size() - 1)] ^= static_cast<char>(1u << random.Uniform(0, 7));
      r[random.Uniform(0, r.size() - 1)] ^= static_cast<char>(1u << random.Uniform(0, 7));
    }
    absl::StatusOr<std::vector<Command>> db = DecodeBatch(b);
    if (db.ok()) {
      for (const Command& c : *db) {
        EXPECT_TRUE(ValidateCommand(c).ok());
      }
    }
    absl::StatusOr<Command> dq = DecodeRequest(Bytes(q));
    if (dq.ok()) {
      EXPECT_TRUE(ValidateCommand(*dq).ok());
    }
    (void)DecodeReply(Bytes(r));
  }
}

}  // namespace
}  // namespace blizzard::sim
