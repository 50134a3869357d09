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
  for (uint8_t t = 0; t < 12; ++t) {
    EXPECT_EQ(IsValidMessageType(t), t >= 1 && t <= 8) << int{t};
    if (IsValidMessageType(t)) {
      EXPECT_STRNE(MessageTypeName(static_cast<MessageType>(t)), "Unknown");
    }
  }
  EXPECT_TRUE(IsValidEntryType(0));
  EXPECT_TRUE(IsValidEntryType(1));
  EXPECT_FALSE(IsValidEntryType(2));
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
}

}  // namespace
}  // namespace blizzard::consensus
