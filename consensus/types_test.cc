#include "consensus/types.h"

#include <limits>

#include "gtest/gtest.h"

namespace blizzard::consensus {
namespace {

Message Valid() {
  Message m;
  m.type = MessageType::kAppend;
  m.from = 1;
  m.to = 2;
  m.term = 3;
  m.index = 4;
  m.log_term = 2;
  m.entries = {Entry{2, 5, EntryType::kNormal, "a"},
               Entry{3, 6, EntryType::kNoop, ""}};
  return m;
}

TEST(TypesTest, EntrySizeCountsAFixedOverhead) {
  EXPECT_EQ(EntrySizeBytes(Entry{}), kEntryOverheadBytes);
  EXPECT_EQ(EntrySizeBytes(Entry{1, 1, EntryType::kNormal, "abc"}),
            3 + kEntryOverheadBytes);
}

TEST(TypesTest, TypeNamesAndValidity) {
  for (uint8_t t = 0; t < 14; ++t) {
    EXPECT_EQ(IsValidMessageType(t), t >= 1 && t <= 11) << int{t};
    if (IsValidMessageType(t)) {
      EXPECT_STRNE(MessageTypeName(static_cast<MessageType>(t)), "Unknown");
    }
  }
  EXPECT_TRUE(IsValidEntryType(0));
  EXPECT_TRUE(IsValidEntryType(1));
  EXPECT_TRUE(IsValidEntryType(2));
  EXPECT_FALSE(IsValidEntryType(3));
}

TEST(TypesTest, MembershipValidationAndPayload) {
  const Membership m{{1, 3, 5}, {2, 9}};
  EXPECT_TRUE(ValidateMembership(m).ok());
  EXPECT_TRUE(m.IsVoter(3));
  EXPECT_FALSE(m.IsVoter(2));
  EXPECT_TRUE(m.IsLearner(2));
  EXPECT_TRUE(m.IsMember(9));
  EXPECT_FALSE(m.IsMember(4));
  const std::string payload = EncodeMembership(m);
  ASSERT_EQ(payload.size(), 5u + 5 * 8);
  EXPECT_EQ(payload[0], 1);  // Version.
  EXPECT_EQ(payload[1], 3);  // Voters (u16 LE).
  EXPECT_EQ(payload[3], 2);  // Learners.
  absl::StatusOr<Membership> d = DecodeMembership(payload);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, m);

  auto invalid = [](Membership x) { return !ValidateMembership(x).ok(); };
  EXPECT_TRUE(invalid({{}, {1}}));         // No voter.
  EXPECT_TRUE(invalid({{2, 1}, {}}));      // Unsorted.
  EXPECT_TRUE(invalid({{1, 1}, {}}));      // Duplicate.
  EXPECT_TRUE(invalid({{0, 1}, {}}));      // Node 0.
  EXPECT_TRUE(invalid({{1, 2}, {2}}));     // Learner and voter.
  EXPECT_TRUE(ValidateMembership({{}, {}}, /*voters_required=*/false).ok());
  Membership big;
  for (NodeId id = 1; id <= kMembersMax + 1; ++id) big.voters.push_back(id);
  EXPECT_TRUE(invalid(big));

  // Decoding accepts exactly the canonical encodings.
  EXPECT_FALSE(DecodeMembership("").ok());
  EXPECT_FALSE(DecodeMembership(payload.substr(0, payload.size() - 1)).ok());
  EXPECT_FALSE(DecodeMembership(payload + "x").ok());
  std::string bad = payload;
  bad[0] = 2;
  EXPECT_FALSE(DecodeMembership(bad).ok());  // Version.
  bad = payload;
  bad[5] = 7;  // First voter 7 > 3: unsorted.
  EXPECT_FALSE(DecodeMembership(bad).ok());
}

TEST(TypesTest, ValidateMessage) {
  EXPECT_TRUE(ValidateMessage(Valid()).ok());
  auto invalid = [](auto mutate) {
    Message m = Valid();
    mutate(m);
    return ValidateMessage(m).code() == absl::StatusCode::kInvalidArgument;
  };
  EXPECT_TRUE(invalid([](Message& m) { m.type = static_cast<MessageType>(0); }));
  EXPECT_TRUE(invalid([](Message& m) { m.from = 0; }));
  EXPECT_TRUE(invalid([](Message& m) { m.to = 0; }));
  EXPECT_TRUE(invalid([](Message& m) { m.to = m.from; }));
  EXPECT_TRUE(invalid([](Message& m) { m.term = 0; }));
  EXPECT_TRUE(invalid([](Message& m) { m.reject = true; }));
  EXPECT_TRUE(invalid([](Message& m) { m.log_term = 4; }));
  EXPECT_TRUE(invalid([](Message& m) { m.entries[1].index = 7; }));
  EXPECT_TRUE(invalid([](Message& m) { m.entries[0].term = 1; }));
  EXPECT_TRUE(invalid([](Message& m) { m.entries[1].term = 2; m.entries[0].term = 3; }));
  EXPECT_TRUE(invalid([](Message& m) { m.entries[1].term = 4; }));
  EXPECT_TRUE(invalid([](Message& m) {
    m.entries[0].type = static_cast<EntryType>(5);
  }));
  EXPECT_TRUE(invalid([](Message& m) {
    m.index = std::numeric_limits<Index>::max() - 1;
    m.entries[0].index = m.index + 1;
    m.entries[1].index = m.index + 2;  // Wraps to 0.
  }));
  EXPECT_TRUE(invalid([](Message& m) {
    m.entries.resize(kMessageEntriesMax + 1);
  }));
  EXPECT_TRUE(invalid([](Message& m) {
    m.entries.resize(1);
    m.entries[0].data.resize(kEntryDataBytesMax + 1);
  }));
  EXPECT_TRUE(invalid([](Message& m) { m.type = MessageType::kHeartbeat; }));
  EXPECT_TRUE(invalid([](Message& m) {
    m.index = 0;
    m.log_term = 1;
    m.entries.clear();
  }));
  // Votes: the candidate's last log term is below the campaign term.
  EXPECT_TRUE(invalid([](Message& m) {
    m.type = MessageType::kVote;
    m.entries.clear();
    m.log_term = m.term;
  }));
  Message vote = Valid();
  vote.type = MessageType::kPreVote;
  vote.entries.clear();
  EXPECT_TRUE(ValidateMessage(vote).ok());
  // Rejected appends hint at or below the rejected index.
  Message resp = Valid();
  resp.type = MessageType::kAppendResponse;
  resp.entries.clear();
  resp.reject = true;
  resp.reject_hint = 4;
  EXPECT_TRUE(ValidateMessage(resp).ok());
  resp.reject_hint = 5;
  EXPECT_FALSE(ValidateMessage(resp).ok());
  // Config entries must carry a membership.
  EXPECT_TRUE(invalid([](Message& m) { m.entries[0].type = EntryType::kConfig; }));
  Message config = Valid();
  config.entries[0].type = EntryType::kConfig;
  config.entries[0].data = EncodeMembership(Membership{{1, 2}, {}});
  EXPECT_TRUE(ValidateMessage(config).ok());
  // The transfer flag only on votes; snapshot fields only on snapshots.
  EXPECT_TRUE(invalid([](Message& m) { m.transfer = true; }));
  Message transfer_vote = vote;
  transfer_vote.type = MessageType::kVote;
  transfer_vote.transfer = true;
  EXPECT_TRUE(ValidateMessage(transfer_vote).ok());
  EXPECT_TRUE(invalid([](Message& m) { m.snapshot_offset = 1; }));
  EXPECT_TRUE(invalid([](Message& m) { m.data = "x"; }));
  EXPECT_TRUE(invalid([](Message& m) { m.membership.voters = {1}; }));
}

Message ValidChunk() {
  Message m;
  m.type = MessageType::kSnapshot;
  m.from = 1;
  m.to = 2;
  m.term = 3;
  m.index = 10;
  m.log_term = 2;
  m.snapshot_offset = 4;
  m.snapshot_bytes = 6;
  m.data = "ab";
  m.membership = Membership{{1, 2}, {3}};
  return m;
}

TEST(TypesTest, ValidateSnapshotMessages) {
  EXPECT_TRUE(ValidateMessage(ValidChunk()).ok());
  auto invalid = [](auto mutate) {
    Message m = ValidChunk();
    mutate(m);
    return ValidateMessage(m).code() == absl::StatusCode::kInvalidArgument;
  };
  EXPECT_TRUE(invalid([](Message& m) { m.index = 0; }));
  EXPECT_TRUE(invalid([](Message& m) { m.log_term = 0; }));
  EXPECT_TRUE(invalid([](Message& m) { m.log_term = 4; }));
  EXPECT_TRUE(invalid([](Message& m) { m.data = "abc"; }));  // Past the end.
  EXPECT_TRUE(invalid([](Message& m) { m.snapshot_offset = 7; }));
  EXPECT_TRUE(invalid([](Message& m) {
    m.snapshot_offset = UINT64_MAX;
    m.snapshot_bytes = UINT64_MAX;
  }));
  EXPECT_TRUE(invalid([](Message& m) { m.data.clear(); }));  // No progress.
  EXPECT_TRUE(invalid([](Message& m) { m.membership.voters.clear(); }));
  EXPECT_TRUE(invalid([](Message& m) { m.entries = {Entry{1, 11, EntryType::kNormal, ""}}; }));
  Message empty_snapshot = ValidChunk();
  empty_snapshot.snapshot_offset = 0;
  empty_snapshot.snapshot_bytes = 0;
  empty_snapshot.data.clear();
  EXPECT_TRUE(ValidateMessage(empty_snapshot).ok());

  Message ack = ValidChunk();
  ack.type = MessageType::kSnapshotResponse;
  ack.data.clear();
  ack.membership = {};
  ack.snapshot_bytes = 0;
  ack.reject = true;
  EXPECT_TRUE(ValidateMessage(ack).ok());
  ack.snapshot_bytes = 1;
  EXPECT_FALSE(ValidateMessage(ack).ok());
}

}  // namespace
}  // namespace blizzard::consensus
