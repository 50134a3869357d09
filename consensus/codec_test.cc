// The wire codec: layout (pinned to WIRE_FORMAT.md), round trips, and a
// property/fuzz test that no input crashes the decoder and every accepted
// input is a valid message in canonical encoding.
#include "consensus/codec.h"

#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace blizzard::consensus {
namespace {

// From WIRE_FORMAT.md.
constexpr uint64_t kChecksumSeed = 0x426c697a7a617264;
constexpr size_t kHeaderBytes = 76;
constexpr size_t kTrailerBytes = 8;

absl::StatusOr<Message> Decode(const std::string& bytes) {
  return DecodeMessage(absl::MakeConstSpan(
      reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

uint64_t ReadLE(const std::string& b, size_t offset, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) {
    v |= static_cast<uint64_t>(static_cast<uint8_t>(b[offset + i])) << (8 * i);
  }
  return v;
}

void WriteLE(std::string& b, size_t offset, size_t n, uint64_t v) {
  for (size_t i = 0; i < n; ++i) b[offset + i] = static_cast<char>(v >> (8 * i));
}

// Recomputes the trailer so that a mutated body reaches the parser.
void FixChecksum(std::string& b) {
  if (b.size() < kTrailerBytes) return;
  const size_t body = b.size() - kTrailerBytes;
  WriteLE(b, body, 8, XXH3_64bits_withSeed(b.data(), body, kChecksumSeed));
}

Message Sample() {
  Message m;
  m.type = MessageType::kAppend;
  m.from = 1;
  m.to = 2;
  m.term = 7;
  m.index = 10;
  m.log_term = 6;
  m.commit = 9;
  m.entries = {Entry{7, 11, EntryType::kNoop, ""},
               Entry{7, 12, EntryType::kNormal, "hello"}};
  return m;
}

Membership RandomMembership(std::mt19937_64& rng) {
  Membership m;
  const size_t n = 1 + rng() % 7;
  NodeId id = 0;
  for (size_t i = 0; i < n; ++i) {
    id += 1 + rng() % 3;
    (i == 0 || rng() % 3 != 0 ? m.voters : m.learners).push_back(id);
  }
  return m;
}

// A random valid message of any type.
Message RandomMessage(std::mt19937_64& rng) {
  auto below = [&](uint64_t n) { return rng() % n; };
  Message m;
  m.type = static_cast<MessageType>(1 + below(11));
  m.from = 1 + below(5);
  m.to = m.from + 1 + below(3);
  m.term = 1 + below(1000);
  m.commit = below(1u << 20);
  m.context = below(2) ? rng() : 0;
  const bool response = m.type == MessageType::kVoteResponse ||
                        m.type == MessageType::kAppendResponse ||
                        m.type == MessageType::kHeartbeatResponse ||
                        m.type == MessageType::kPreVoteResponse ||
                        m.type == MessageType::kSnapshotResponse;
  m.reject = response && below(2);
  if (m.type == MessageType::kVote || m.type == MessageType::kPreVote) {
    m.log_term = below(m.term);
    m.index = m.log_term == 0 ? 0 : below(1u << 30);
    m.transfer = m.type == MessageType::kVote && below(2);
  } else if (m.type == MessageType::kAppend) {
    m.log_term = below(m.term + 1);
    m.index = m.log_term == 0 ? below(2) * below(100) : 1 + below(1u << 30);
    if (m.index == 0) m.log_term = 0;
    const size_t n = below(4) == 0 ? below(50) : below(3);
    Term t = m.log_term;
    for (size_t k = 0; k < n; ++k) {
      t += below(2) * below(m.term - t + 1);
      if (t > m.term) t = m.term;
      Entry e;
      e.term = t;
      e.index = m.index + 1 + k;
      e.type = static_cast<EntryType>(below(3));
      if (e.type == EntryType::kConfig) {
        e.data = EncodeMembership(RandomMembership(rng));
      } else {
        e.data.resize(below(3) == 0 ? below(2000) : below(40));
        for (char& c : e.data) c = static_cast<char>(rng());
      }
      m.entries.push_back(std::move(e));
    }
  } else if (m.type == MessageType::kAppendResponse) {
    m.index = below(1u << 30);
    m.log_term = below(m.term + 1);
    m.reject_hint = m.reject ? below(m.index + 1) : 0;
  } else if (m.type == MessageType::kSnapshot) {
    m.index = 1 + below(1u << 30);
    m.log_term = 1 + below(m.term);
    m.snapshot_bytes = below(5) == 0 ? 0 : 1 + below(1u << 20);
    m.snapshot_offset = m.snapshot_bytes == 0 ? 0 : below(m.snapshot_bytes);
    m.data.resize(std::min<uint64_t>(m.snapshot_bytes - m.snapshot_offset,
                                     1 + below(300)));
    for (char& c : m.data) c = static_cast<char>(rng());
    m.membership = RandomMembership(rng);
  } else if (m.type == MessageType::kSnapshotResponse) {
    m.index = 1 + below(1u << 30);
    m.snapshot_offset = below(1u << 20);
  } else {
    m.index = below(1000);
  }
  EXPECT_TRUE(ValidateMessage(m).ok()) << ValidateMessage(m);
  return m;
}

TEST(CodecTest, LayoutMatchesWireFormatDoc) {
  Message m = Sample();
  const std::string b = EncodeMessage(m);
  ASSERT_EQ(b.size(), kHeaderBytes + 2 * 13 + 5 + kTrailerBytes);
  EXPECT_EQ(b.substr(0, 4), "BLZM");
  EXPECT_EQ(ReadLE(b, 4, 2), 2u);  // Version.
  EXPECT_EQ(ReadLE(b, 6, 1), static_cast<uint64_t>(MessageType::kAppend));
  EXPECT_EQ(ReadLE(b, 7, 1), 0u);  // Flags.
  EXPECT_EQ(ReadLE(b, 8, 8), 1u);  // from
  EXPECT_EQ(ReadLE(b, 16, 8), 2u);  // to
  EXPECT_EQ(ReadLE(b, 24, 8), 7u);  // term
  EXPECT_EQ(ReadLE(b, 32, 8), 10u);  // index
  EXPECT_EQ(ReadLE(b, 40, 8), 6u);  // log_term
  EXPECT_EQ(ReadLE(b, 48, 8), 9u);  // commit
  EXPECT_EQ(ReadLE(b, 56, 8), 0u);  // reject_hint
  EXPECT_EQ(ReadLE(b, 64, 8), 0u);  // context
  EXPECT_EQ(ReadLE(b, 72, 4), 2u);  // entry count
  EXPECT_EQ(ReadLE(b, 76, 8), 7u);  // entry 11: term
  EXPECT_EQ(ReadLE(b, 84, 1), 1u);  //   type kNoop
  EXPECT_EQ(ReadLE(b, 85, 4), 0u);  //   length
  EXPECT_EQ(ReadLE(b, 89, 8), 7u);  // entry 12: term
  EXPECT_EQ(ReadLE(b, 97, 1), 0u);  //   type kNormal
  EXPECT_EQ(ReadLE(b, 98, 4), 5u);  //   length
  EXPECT_EQ(b.substr(102, 5), "hello");
  const size_t body = b.size() - kTrailerBytes;
  EXPECT_EQ(ReadLE(b, body, 8),
            XXH3_64bits_withSeed(b.data(), body, kChecksumSeed));
  Message rejected = m;
  rejected.type = MessageType::kAppendResponse;
  rejected.entries.clear();
  rejected.reject = true;
  EXPECT_EQ(ReadLE(EncodeMessage(rejected), 7, 1), 1u);
  Message vote = m;
  vote.type = MessageType::kVote;
  vote.entries.clear();
  vote.transfer = true;
  EXPECT_EQ(ReadLE(EncodeMessage(vote), 7, 1), 2u);
}

TEST(CodecTest, SnapshotSectionLayout) {
  Message m;
  m.type = MessageType::kSnapshot;
  m.from = 1;
  m.to = 2;
  m.term = 7;
  m.index = 100;
  m.log_term = 6;
  m.snapshot_offset = 10;
  m.snapshot_bytes = 15;
  m.membership = Membership{{1, 2, 3}, {4}};
  m.data = "chunk";
  const std::string b = EncodeMessage(m);
  ASSERT_EQ(b.size(), kHeaderBytes + 24 + 4 * 8 + 5 + kTrailerBytes);
  EXPECT_EQ(ReadLE(b, 6, 1), 9u);    // kSnapshot
  EXPECT_EQ(ReadLE(b, 32, 8), 100u);  // index
  EXPECT_EQ(ReadLE(b, 40, 8), 6u);   // log_term
  EXPECT_EQ(ReadLE(b, 72, 4), 0u);   // no entries
  EXPECT_EQ(ReadLE(b, 76, 8), 10u);  // offset
  EXPECT_EQ(ReadLE(b, 84, 8), 15u);  // total bytes
  EXPECT_EQ(ReadLE(b, 92, 2), 3u);   // voters
  EXPECT_EQ(ReadLE(b, 94, 2), 1u);   // learners
  EXPECT_EQ(ReadLE(b, 96, 8), 1u);
  EXPECT_EQ(ReadLE(b, 104, 8), 2u);
  EXPECT_EQ(ReadLE(b, 112, 8), 3u);
  EXPECT_EQ(ReadLE(b, 120, 8), 4u);
  EXPECT_EQ(ReadLE(b, 128, 4), 5u);  // data length
  EXPECT_EQ(b.substr(132, 5), "chunk");
  absl::StatusOr<Message> d = Decode(b);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, m);

  Message ack;
  ack.type = MessageType::kSnapshotResponse;
  ack.from = 2;
  ack.to = 1;
  ack.term = 7;
  ack.index = 100;
  ack.snapshot_offset = 15;
  const std::string a = EncodeMessage(ack);
  ASSERT_EQ(a.size(), kHeaderBytes + 24 + kTrailerBytes);
  EXPECT_EQ(ReadLE(a, 76, 8), 15u);

  // Structural damage to the section, checksum fixed.
  auto code_of = [](std::string x) {
    FixChecksum(x);
    return Decode(x).status().code();
  };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  std::string x = b;
  WriteLE(x, 92, 2, 300);
  EXPECT_EQ(code_of(x), kInvalid);  // Too many members.
  x = b;
  WriteLE(x, 128, 4, 6);
  EXPECT_EQ(code_of(x), kInvalid);  // Data beyond the message.
  x = b;
  WriteLE(x, 84, 8, 12);
  EXPECT_EQ(code_of(x), kInvalid);  // Chunk beyond the snapshot's end.
  x = b;
  WriteLE(x, 104, 8, 1);
  EXPECT_EQ(code_of(x), kInvalid);  // Duplicate voter.
  x = b;
  WriteLE(x, 120, 8, 2);
  EXPECT_EQ(code_of(x), kInvalid);  // Learner also a voter.
  x = b;
  WriteLE(x, 92, 2, 0);
  WriteLE(x, 94, 2, 4);
  EXPECT_EQ(code_of(x), kInvalid);  // No voter.
}

TEST(CodecTest, RandomMessagesRoundTrip) {
  std::mt19937_64 rng(1);
  for (int i = 0; i < 5000; ++i) {
    Message m = RandomMessage(rng);
    const std::string b = EncodeMessage(m);
    absl::StatusOr<Message> d = Decode(b);
    ASSERT_TRUE(d.ok()) << "i=" << i << " " << d.status();
    ASSERT_EQ(*d, m) << "i=" << i;
  }
}

TEST(CodecTest, EveryTruncationIsRejected) {
  const std::string b = EncodeMessage(Sample());
  for (size_t n = 0; n < b.size(); ++n) {
    EXPECT_FALSE(Decode(b.substr(0, n)).ok()) << "prefix " << n;
  }
  EXPECT_EQ(Decode(b + "x").status().code(), absl::StatusCode::kDataLoss);
}

TEST(CodecTest, EverySingleBitFlipIsRejected) {
  std::mt19937_64 rng(2);
  for (int round = 0; round < 20; ++round) {
    const std::string b = EncodeMessage(RandomMessage(rng));
    for (size_t bit = 0; bit < 8 * b.size(); ++bit) {
      std::string flipped = b;
      flipped[bit / 8] = static_cast<char>(flipped[bit / 8] ^ (1 << (bit % 8)));
      absl::StatusOr<Message> d = Decode(flipped);
      ASSERT_FALSE(d.ok()) << "round " << round << " bit " << bit;
      // Past magic and version, damage is reported as data loss.
      if (bit >= 48) {
        ASSERT_EQ(d.status().code(), absl::StatusCode::kDataLoss) << bit;
      }
    }
  }
}

TEST(CodecTest, SpecificRejections) {
  const std::string good = EncodeMessage(Sample());
  auto code_of = [](std::string b, bool fix) {
    if (fix) FixChecksum(b);
    return Decode(b).status().code();
  };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  std::string b = good;
  b[0] = 'X';
  EXPECT_EQ(code_of(b, true), kInvalid);  // Magic.
  b = good;
  WriteLE(b, 4, 2, 1);
  EXPECT_EQ(code_of(b, true), kInvalid);  // Version 1 is refused.
  b = good;
  b[6] = 12;
  EXPECT_EQ(code_of(b, true), kInvalid);  // Type.
  b = good;
  b[7] = 4;
  EXPECT_EQ(code_of(b, true), kInvalid);  // Unknown flag.
  b = good;
  b[7] = 2;
  EXPECT_EQ(code_of(b, true), kInvalid);  // Transfer flag on an append.
  b = good;
  b[97] = 2;  // Entry 12 becomes a config entry, "hello" is no membership.
  EXPECT_EQ(code_of(b, true), kInvalid);
  b = good;
  b[7] = 1;
  EXPECT_EQ(code_of(b, true), kInvalid);  // Reject on a request.
  b = good;
  WriteLE(b, 72, 4, kWireEntriesMax + 1);
  EXPECT_EQ(code_of(b, true), kInvalid);  // Entry count over the limit.
  b = good;
  WriteLE(b, 72, 4, 3);
  EXPECT_EQ(code_of(b, true), kInvalid);  // More entries than bytes.
  b = good;
  WriteLE(b, 98, 4, kWireEntryBytesMax + 1);
  EXPECT_EQ(code_of(b, true), kInvalid);  // Entry over the size limit.
  b = good;
  WriteLE(b, 98, 4, 1000);
  EXPECT_EQ(code_of(b, true), kInvalid);  // Length beyond the message.
  b = good;
  b[84] = 7;
  EXPECT_EQ(code_of(b, true), kInvalid);  // Entry type.
  b = good;
  b.insert(b.size() - kTrailerBytes, "extra");
  EXPECT_EQ(code_of(b, true), kInvalid);  // Trailing bytes.
  b = good;
  WriteLE(b, 89, 8, 8);
  EXPECT_EQ(code_of(b, true), kInvalid);  // Entry term beyond message term.
  b = good;
  WriteLE(b, 32, 8, UINT64_MAX);
  EXPECT_EQ(code_of(b, true), kInvalid);  // Entry indices overflow.
  b = good;
  WriteLE(b, 16, 8, 1);
  EXPECT_EQ(code_of(b, true), kInvalid);  // Sent to itself.
  b = good;
  b[200 % b.size()] ^= 1;
  EXPECT_EQ(code_of(b, false), absl::StatusCode::kDataLoss);
}

// Property: for any bytes, DecodeMessage returns, and what it accepts is a
// valid message whose encoding is exactly the input.
void CheckAnyInput(const std::string& b) {
  absl::StatusOr<Message> d = Decode(b);
  if (!d.ok()) {
    ASSERT_TRUE(d.status().code() == absl::StatusCode::kInvalidArgument ||
                d.status().code() == absl::StatusCode::kDataLoss)
        << d.status();
    return;
  }
  ASSERT_TRUE(ValidateMessage(*d).ok());
  ASSERT_EQ(EncodeMessage(*d), b);
}

TEST(CodecFuzzTest, RandomBytesNeverCrash) {
  std::mt19937_64 rng(3);
  for (int i = 0; i < 20000; ++i) {
    std::string b(rng() % 300, '\0');
    for (char& c : b) c = static_cast<char>(rng());
    if (i % 2 == 0 && b.size() >= 6) {
      // Often get past the magic and version to reach the checksum.
      std::memcpy(b.data(), "BLZM\x02\x00", 6);
    }
    if (i % 4 == 0) FixChecksum(b);
    ASSERT_NO_FATAL_FAILURE(CheckAnyInput(b)) << "i=" << i;
  }
}

TEST(CodecFuzzTest, MutatedValidEncodingsWithFixedChecksum) {
  // Mutations that keep the checksum valid exercise every structural check.
  std::mt19937_64 rng(4);
  int accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string b = EncodeMessage(RandomMessage(rng));
    const int mutations = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < mutations; ++k) {
      const size_t body = b.size() - kTrailerBytes;
      switch (rng() % 4) {
        case 0:  // Overwrite a byte in the body (past magic/version).
          b[6 + rng() % (body - 6)] = static_cast<char>(rng());
          break;
        case 1:  // Set a field to a small or huge number.
          WriteLE(b, 6 + rng() % (kHeaderBytes - 6 - 4), 4,
                  rng() % 2 ? rng() % 8 : rng());
          break;
        case 2:  // Cut the body short.
          b.erase(6 + rng() % (body - 6), rng() % 16);
          break;
        case 3:  // Insert bytes.
          b.insert(6 + rng() % (body - 6), std::string(rng() % 16, 'z'));
          break;
      }
      if (b.size() < kHeaderBytes + kTrailerBytes) break;
    }
    FixChecksum(b);
    ASSERT_NO_FATAL_FAILURE(CheckAnyInput(b)) << "i=" << i;
    if (Decode(b).ok()) ++accepted;
  }
  // Some mutations (e.g. of commit or context) leave valid messages: the
  // accept path is exercised too.
  EXPECT_GT(accepted, 100);
}

}  // namespace
}  // namespace blizzard::consensus
