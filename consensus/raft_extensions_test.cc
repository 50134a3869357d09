// Unit tests of the Raft extensions, one Raft driven by hand-made messages:
// snapshots streamed in chunks, membership changes, leadership transfer,
// leader lease reads. (Whole-cluster behaviour: cluster_test.cc and the
// golden traces in testdata/.)
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "consensus/raft.h"
#include "consensus/raft_test_util.h"
#include "gtest/gtest.h"

namespace blizzard::consensus {
namespace {

const Membership kThree{{1, 2, 3}, {}};

std::string Bytes(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>('a' + i % 26);
  return s;
}

Message Chunk(NodeId from, NodeId to, Term term, const SnapshotMeta& meta,
              uint64_t offset, const std::string& data) {
  Message m = Msg(MessageType::kSnapshot, from, to, term);
  m.index = meta.index;
  m.log_term = meta.term;
  m.snapshot_offset = offset;
  m.snapshot_bytes = meta.bytes;
  m.membership = meta.membership;
  m.data = data;
  return m;
}

Message ChunkAck(NodeId from, NodeId to, Term term, Index index,
                 uint64_t offset, bool gap = false) {
  Message m = Msg(MessageType::kSnapshotResponse, from, to, term);
  m.index = index;
  m.snapshot_offset = offset;
  m.reject = gap;
  return m;
}

Message AppendReject(NodeId from, NodeId to, Term term, Index index,
                     Index hint) {
  Message m = Msg(MessageType::kAppendResponse, from, to, term);
  m.index = index;
  m.reject = true;
  m.reject_hint = hint;
  return m;
}

// ---- Snapshots ----

// A leader (node 1 of {1, 2}) whose log up to 5 is compacted into a
// 100-byte snapshot, elected in term 2; node 2 has nothing.
struct CompactedLeader {
  explicit CompactedLeader(uint64_t chunk_bytes = 30, int inflight = 2)
      : config(MakeConfig(chunk_bytes, inflight)),
        node(config, Log({1, 1, 1, 1, 1}), HardState{1, 0, 5}) {
    node.Drain();  // Applies 1..5.
    EXPECT_TRUE(node.storage
                    .CreateSnapshot(SnapshotMeta{5, 1, Membership{{1, 2}, {}}, 0},
                                    Bytes(100))
                    .ok());
    EXPECT_TRUE(node.storage.Compact(6).ok());
    ElectLeader(node, {1, 2});
  }

  static Config MakeConfig(uint64_t chunk_bytes, int inflight) {
    Config c = TestConfig(1, {1, 2});
    c.snapshot_chunk_bytes = chunk_bytes;
    c.snapshot_inflight_chunks_max = inflight;
    c.snapshot_stall_ticks = 3;
    return c;
  }

  // Node 2 rejects the first append: the leader needs entries below 6.
  std::vector<Message> RejectFirstAppend() {
    EXPECT_TRUE(node.raft->Step(AppendReject(2, 1, 2, 5, 0)).ok());
    return OfType(node.Drain(), MessageType::kSnapshot);
  }

  Config config;
  Node node;
};

TEST(RaftSnapshotTest, LeaderStreamsTheSnapshotWithinItsWindow) {
  CompactedLeader l;
  std::vector<Message> chunks = l.RejectFirstAppend();
  // Two chunks of 30 bytes in flight, no more.
  ASSERT_EQ(chunks.size(), 2u);
  for (size_t k = 0; k < chunks.size(); ++k) {
    EXPECT_EQ(chunks[k].index, 5u);
    EXPECT_EQ(chunks[k].log_term, 1u);
    EXPECT_EQ(chunks[k].term, 2u);
    EXPECT_EQ(chunks[k].snapshot_bytes, 100u);
    EXPECT_EQ(chunks[k].snapshot_offset, 30 * k);
    EXPECT_EQ(chunks[k].data, Bytes(100).substr(30 * k, 30));
    EXPECT_EQ(chunks[k].membership, (Membership{{1, 2}, {}}));
  }
  // Nothing more until an acknowledgement, even on heartbeat answers.
  ASSERT_TRUE(l.node.raft->Step(HeartbeatAck(2, 1, 2, 0)).ok());
  EXPECT_TRUE(OfType(l.node.Drain(), MessageType::kSnapshot).empty());
  ASSERT_TRUE(l.node.raft->Step(ChunkAck(2, 1, 2, 5, 30)).ok());
  chunks = OfType(l.node.Drain(), MessageType::kSnapshot);
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].snapshot_offset, 60u);
  ASSERT_TRUE(l.node.raft->Step(ChunkAck(2, 1, 2, 5, 90)).ok());
  chunks = OfType(l.node.Drain(), MessageType::kSnapshot);
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].snapshot_offset, 90u);
  EXPECT_EQ(chunks[0].data.size(), 10u);  // The last, short chunk.
  ASSERT_TRUE(l.node.raft->Step(ChunkAck(2, 1, 2, 5, 100)).ok());
  EXPECT_TRUE(l.node.Drain().empty());
  // Installed: the follower acknowledges index 5; appends resume from 6.
  ASSERT_TRUE(l.node.raft->Step(AppendOk(2, 1, 2, 5)).ok());
  std::vector<Message> appends = OfType(l.node.Drain(), MessageType::kAppend);
  ASSERT_EQ(appends.size(), 1u);
  EXPECT_EQ(appends[0].index, 5u);
  ASSERT_EQ(appends[0].entries.size(), 1u);
  EXPECT_EQ(appends[0].entries[0].index, 6u);
  EXPECT_EQ(l.node.raft->match_index(2), 5u);
}

TEST(RaftSnapshotTest, GapsGoBackOnceAndStallsRestart) {
  CompactedLeader l;
  ASSERT_EQ(l.RejectFirstAppend().size(), 2u);
  // The first chunk was lost; the follower reports the gap twice (once
  // per later chunk): the leader goes back once.
  ASSERT_TRUE(l.node.raft->Step(ChunkAck(2, 1, 2, 5, 0, /*gap=*/true)).ok());
  std::vector<Message> chunks = OfType(l.node.Drain(), MessageType::kSnapshot);
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0].snapshot_offset, 0u);
  ASSERT_TRUE(l.node.raft->Step(ChunkAck(2, 1, 2, 5, 0, /*gap=*/true)).ok());
  EXPECT_TRUE(OfType(l.node.Drain(), MessageType::kSnapshot).empty());
  // An acknowledgement of an older transfer (another index) is ignored.
  ASSERT_TRUE(l.node.raft->Step(ChunkAck(2, 1, 2, 4, 60)).ok());
  EXPECT_TRUE(OfType(l.node.Drain(), MessageType::kSnapshot).empty());
  // No answer for snapshot_stall_ticks: resend from the acknowledged 0.
  for (int i = 0; i < 2; ++i) l.node.raft->Tick();
  EXPECT_TRUE(OfType(l.node.Drain(), MessageType::kSnapshot).empty());
  l.node.raft->Tick();
  chunks = OfType(l.node.Drain(), MessageType::kSnapshot);
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0].snapshot_offset, 0u);
}

TEST(RaftSnapshotTest, ReplacedSnapshotRestartsTheTransferWithTheNewest) {
  // A log up to 7; snapshot at 5 first.
  Config c = CompactedLeader::MakeConfig(30, 1);
  Node n(c, Log({1, 1, 1, 1, 1, 1, 1}), HardState{1, 0, 7});
  n.Drain();
  ASSERT_TRUE(n.storage.CreateSnapshot(SnapshotMeta{5, 1, {{1, 2}, {}}, 0},
                                       Bytes(50)).ok());
  ASSERT_TRUE(n.storage.Compact(6).ok());
  ElectLeader(n, {1, 2});
  // Follower 2 holds nothing: the hint takes the leader below 6.
  ASSERT_TRUE(n.raft->Step(AppendReject(2, 1, 2, 7, 0)).ok());
  std::vector<Message> chunks = OfType(n.Drain(), MessageType::kSnapshot);
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].index, 5u);
  // The driver takes a newer snapshot (and drops the old one).
  ASSERT_TRUE(n.storage.CreateSnapshot(SnapshotMeta{7, 1, {{1, 2}, {}}, 0},
                                       Bytes(40)).ok());
  ASSERT_TRUE(n.storage.Compact(8).ok());
  ASSERT_TRUE(n.raft->Step(ChunkAck(2, 1, 2, 5, 30)).ok());
  chunks = OfType(n.Drain(), MessageType::kSnapshot);
  ASSERT_EQ(chunks.size(), 1u);
  EXPECT_EQ(chunks[0].index, 7u);
  EXPECT_EQ(chunks[0].snapshot_offset, 0u);
  EXPECT_EQ(chunks[0].snapshot_bytes, 40u);
  EXPECT_TRUE(n.raft->status().ok());
}

TEST(RaftSnapshotTest, FollowerStagesChunksInOrderAndInstallsTheLast) {
  Node n(TestConfig(2, {1, 2, 3}));
  const SnapshotMeta meta{5, 1, Membership{{1, 2, 3}, {4}}, 10};
  const std::string data = Bytes(10);
  ASSERT_TRUE(n.raft->Step(Chunk(1, 2, 1, meta, 0, data.substr(0, 4))).ok());
  std::vector<Message> out = n.Drain();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].type, MessageType::kSnapshotResponse);
  EXPECT_EQ(out[0].snapshot_offset, 4u);
  EXPECT_FALSE(out[0].reject);
  EXPECT_EQ(n.staged, data.substr(0, 4));
  // A duplicate is acknowledged, not staged again; a gap is reported.
  ASSERT_TRUE(n.raft->Step(Chunk(1, 2, 1, meta, 0, data.substr(0, 4))).ok());
  ASSERT_TRUE(n.raft->Step(Chunk(1, 2, 1, meta, 8, data.substr(8))).ok());
  Ready rd = n.raft->GetReady();
  EXPECT_TRUE(rd.snapshot_chunks.empty());
  ASSERT_EQ(rd.messages.size(), 2u);
  EXPECT_EQ(rd.messages[0].snapshot_offset, 4u);
  EXPECT_FALSE(rd.messages[0].reject);
  EXPECT_EQ(rd.messages[1].snapshot_offset, 4u);
  EXPECT_TRUE(rd.messages[1].reject);
  n.Persist(rd);
  n.raft->Advance(rd);
  // The rest, then the install with the last chunk, in one Ready, with
  // the acknowledgement of the whole snapshot as an append response.
  ASSERT_TRUE(n.raft->Step(Chunk(1, 2, 1, meta, 4, data.substr(4, 4))).ok());
  ASSERT_TRUE(n.raft->Step(Chunk(1, 2, 1, meta, 8, data.substr(8))).ok());
  rd = n.raft->GetReady();
  ASSERT_EQ(rd.snapshot_chunks.size(), 2u);
  EXPECT_TRUE(rd.snapshot_chunks[1].last());
  ASSERT_TRUE(rd.snapshot.has_value());
  EXPECT_EQ(*rd.snapshot, meta);
  ASSERT_TRUE(rd.hard_state.has_value());
  EXPECT_EQ(rd.hard_state->commit, 5u);
  ASSERT_TRUE(rd.membership.has_value());
  EXPECT_EQ(*rd.membership, meta.membership);
  EXPECT_TRUE(rd.committed.empty());
  ASSERT_FALSE(rd.messages.empty());
  EXPECT_EQ(rd.messages.back().type, MessageType::kAppendResponse);
  EXPECT_EQ(rd.messages.back().index, 5u);
  // Until Advance, Raft answers as if installed.
  EXPECT_EQ(n.raft->last_index(), 5u);
  EXPECT_EQ(*n.raft->TermAt(5), 1u);
  n.Persist(rd);
  n.raft->Advance(rd);
  EXPECT_EQ(n.staged, data);
  EXPECT_EQ(n.storage.FirstIndex(), 6u);
  EXPECT_EQ(n.raft->applied_index(), 5u);
  EXPECT_EQ(n.raft->commit_index(), 5u);
  // Entries after the snapshot append normally.
  ASSERT_TRUE(n.raft->Step(Append(1, 2, 1, 5, 1, 6, {Entry{1, 6, EntryType::kNormal, ""}})).ok());
  n.Drain();
  ASSERT_EQ(n.applied.size(), 1u);
  EXPECT_EQ(n.applied[0].index, 6u);
}

TEST(RaftSnapshotTest, StaleAndForeignChunksAreNeverStaged) {
  Node n(TestConfig(2, {1, 2, 3}), {}, HardState{2, 0, 0});
  const SnapshotMeta meta{5, 1, kThree, 10};
  // A chunk of term 1 at term 2: ignored.
  ASSERT_TRUE(n.raft->Step(Chunk(1, 2, 1, meta, 0, Bytes(4))).ok());
  Ready rd = n.raft->GetReady();
  EXPECT_TRUE(rd.snapshot_chunks.empty());
  n.raft->Advance(rd);
  // Node 3 leads term 2; a chunk from node 1 claiming term 2 is an error.
  ASSERT_TRUE(n.raft->Step(Msg(MessageType::kHeartbeat, 3, 2, 2)).ok());
  EXPECT_EQ(n.raft->Step(Chunk(1, 2, 2, meta, 0, Bytes(4))).code(),
            absl::StatusCode::kInvalidArgument);
  // A transfer that starts past 0 (we restarted, or its start was lost).
  ASSERT_TRUE(n.raft->Step(Chunk(3, 2, 2, meta, 4, Bytes(4))).ok());
  rd = n.raft->GetReady();
  EXPECT_TRUE(rd.snapshot_chunks.empty());
  std::vector<Message> acks = OfType(rd.messages, MessageType::kSnapshotResponse);
  ASSERT_EQ(acks.size(), 1u);
  EXPECT_TRUE(acks[0].reject);
  EXPECT_EQ(acks[0].snapshot_offset, 0u);
  n.raft->Advance(rd);
  // A new leader's transfer replaces a half-received one from offset 0.
  ASSERT_TRUE(n.raft->Step(Chunk(3, 2, 2, meta, 0, Bytes(4))).ok());
  ASSERT_TRUE(n.raft->Step(Msg(MessageType::kHeartbeat, 1, 2, 3)).ok());
  const SnapshotMeta newer{6, 3, kThree, 3};
  ASSERT_TRUE(n.raft->Step(Chunk(1, 2, 3, meta, 4, Bytes(4))).ok());
  ASSERT_TRUE(n.raft->Step(Chunk(1, 2, 3, newer, 0, "xyz")).ok());
  n.Drain();
  ASSERT_EQ(n.installed.size(), 1u);
  EXPECT_EQ(n.installed[0], newer);
  EXPECT_EQ(n.storage.snapshot_data(), "xyz");
}

// Found by a 10000-seed soak: the last chunk of one snapshot and the
// first chunk of a newer transfer arrive before the driver asks for a
// Ready. The Ready that installs the first must not carry the second, or
// the driver would stage it over the snapshot it is about to install.
TEST(RaftSnapshotTest, ChunksOfANewerTransferWaitForTheNextReady) {
  Node n(TestConfig(2, {1, 2, 3}));
  const SnapshotMeta first{5, 1, kThree, 4};
  const SnapshotMeta newer{9, 2, kThree, 8};
  ASSERT_TRUE(n.raft->Step(Chunk(1, 2, 1, first, 0, "abcd")).ok());
  ASSERT_TRUE(n.raft->Step(Chunk(3, 2, 2, newer, 0, "wxyz")).ok());
  Ready rd = n.raft->GetReady();
  ASSERT_EQ(rd.snapshot_chunks.size(), 1u);
  EXPECT_EQ(rd.snapshot_chunks[0].meta, first);
  ASSERT_TRUE(rd.snapshot.has_value());
  EXPECT_EQ(*rd.snapshot, first);
  n.Persist(rd);
  n.raft->Advance(rd);
  ASSERT_TRUE(n.raft->HasReady());
  rd = n.raft->GetReady();
  ASSERT_EQ(rd.snapshot_chunks.size(), 1u);
  EXPECT_EQ(rd.snapshot_chunks[0].meta, newer);
  EXPECT_FALSE(rd.snapshot.has_value());
  n.Persist(rd);
  n.raft->Advance(rd);
  ASSERT_TRUE(n.raft->Step(Chunk(3, 2, 2, newer, 4, "1234")).ok());
  n.Drain();
  ASSERT_EQ(n.installed.size(), 2u);
  EXPECT_EQ(n.storage.snapshot_data(), "wxyz1234");
  EXPECT_EQ(n.raft->applied_index(), 9u);
}

TEST(RaftSnapshotTest, SnapshotTheFollowerHoldsNeedsNoTransfer) {
  Node n(TestConfig(2, {1, 2, 3}), Log({1, 1, 1, 1, 1}), HardState{1, 0, 3});
  n.Drain();
  // Below commit: answered with the commit index.
  ASSERT_TRUE(n.raft->Step(Chunk(1, 2, 1, SnapshotMeta{2, 1, kThree, 9}, 0,
                                 Bytes(9))).ok());
  Ready rd = n.raft->GetReady();
  EXPECT_TRUE(rd.snapshot_chunks.empty());
  ASSERT_EQ(rd.messages.size(), 1u);
  EXPECT_EQ(rd.messages[0].type, MessageType::kAppendResponse);
  EXPECT_EQ(rd.messages[0].index, 3u);
  n.Persist(rd);
  n.raft->Advance(rd);
  // Our log holds its last entry: commit it, no transfer.
  ASSERT_TRUE(n.raft->Step(Chunk(1, 2, 1, SnapshotMeta{5, 1, kThree, 9}, 0,
                                 Bytes(9))).ok());
  rd = n.raft->GetReady();
  EXPECT_TRUE(rd.snapshot_chunks.empty());
  EXPECT_FALSE(rd.snapshot.has_value());
  EXPECT_EQ(rd.messages.back().index, 5u);
  EXPECT_EQ(n.raft->commit_index(), 5u);
  n.Persist(rd);
  n.raft->Advance(rd);
}

TEST(RaftSnapshotTest, EmptySnapshotIsOneEmptyChunk) {
  Node n(TestConfig(2, {1, 2, 3}));
  const SnapshotMeta meta{4, 1, kThree, 0};
  ASSERT_TRUE(n.raft->Step(Chunk(1, 2, 1, meta, 0, "")).ok());
  n.Drain();
  ASSERT_EQ(n.installed.size(), 1u);
  EXPECT_EQ(n.raft->applied_index(), 4u);
}

// A storage whose LastSnapshot() can claim anything (a driver that crashed
// half way through an install, or a corrupt one).
class ClaimingStorage : public MemoryStorage {
 public:
  SnapshotMeta LastSnapshot() const override { return claim; }
  SnapshotMeta claim;
};

TEST(RaftSnapshotTest, CreateChecksTheSnapshotAgainstTheLog) {
  auto create = [](Index compact_to, SnapshotMeta claim, HardState hs,
                   Index applied) {
    ClaimingStorage s;
    EXPECT_TRUE(s.Append(Log({1, 1, 1, 2, 2})).ok());
    EXPECT_TRUE(s.Compact(compact_to).ok());
    s.SetHardState(hs);
    s.claim = claim;
    Config c = TestConfig(1, {1, 2, 3});
    c.applied = applied;
    return Raft::Create(c, &s).status().code();
  };
  const HardState hs{2, 0, 5};
  EXPECT_EQ(create(4, SnapshotMeta{3, 1, kThree, 0}, hs, 3),
            absl::StatusCode::kOk);
  // The state machine was replaced but the log not reset yet.
  EXPECT_EQ(create(1, SnapshotMeta{7, 2, kThree, 0}, hs, 7),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(create(1, SnapshotMeta{4, 1, kThree, 0}, hs, 4),
            absl::StatusCode::kFailedPrecondition);  // Term differs.
  // Compacted beyond the snapshot.
  EXPECT_EQ(create(5, SnapshotMeta{3, 1, kThree, 0}, hs, 4),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(create(4, SnapshotMeta{3, 1, Membership{}, 0}, hs, 3),
            absl::StatusCode::kDataLoss);
  // The state machine is older than the kept snapshot.
  EXPECT_EQ(create(1, SnapshotMeta{3, 1, kThree, 0}, hs, 2),
            absl::StatusCode::kInvalidArgument);
  // The snapshot raises a lagging commit index.
  EXPECT_EQ(create(4, SnapshotMeta{3, 1, kThree, 0}, HardState{2, 0, 1}, 3),
            absl::StatusCode::kOk);
}

TEST(RaftSnapshotTest, RestartResumesFromTheSnapshotAndTheLog) {
  MemoryStorage s;
  const SnapshotMeta meta{5, 1, Membership{{1, 2, 3, 4}, {}}, 3};
  ASSERT_TRUE(s.InstallSnapshot(meta, "abc").ok());
  ASSERT_TRUE(s.Append({Entry{1, 6, EntryType::kNormal, ""},
                        Entry{2, 7, EntryType::kNormal, ""}})
                  .ok());
  s.SetHardState(HardState{2, 0, 5});  // Commit not yet past the snapshot.
  Config c = TestConfig(1, {1});  // Bootstrap membership is overridden.
  c.applied = 5;
  auto r = Raft::Create(c, &s);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->commit_index(), 5u);
  EXPECT_EQ((*r)->membership(), meta.membership);
  absl::StatusOr<SnapshotMeta> now = (*r)->SnapshotMetaForApplied();
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->index, 5u);
  EXPECT_EQ(now->membership, meta.membership);
}

// ---- Membership changes ----

MembershipChange Change(MembershipChangeType type, NodeId node) {
  return MembershipChange{type, node};
}

// Leader 1 of {1, 2, 3} in term 1 with its no-op committed.
std::unique_ptr<Node> ThreeNodeLeader(Config c = TestConfig(1, {1, 2, 3})) {
  auto n = std::make_unique<Node>(c);
  ElectLeader(*n, {1, 2, 3});
  EXPECT_TRUE(n->raft->Step(AppendOk(2, 1, 1, 1)).ok());
  n->Drain();
  EXPECT_EQ(n->raft->commit_index(), 1u);
  return n;
}

TEST(RaftMembershipTest, ChangeRules) {
  using T = MembershipChangeType;
  Node follower(TestConfig(2, {1, 2, 3}));
  EXPECT_EQ(follower.raft->ProposeMembershipChange(Change(T::kAddLearner, 4))
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  // A leader that has not committed its no-op yet.
  Node fresh(TestConfig(1, {1, 2, 3}));
  ElectLeader(fresh, {1, 2, 3});
  EXPECT_EQ(fresh.raft->ProposeMembershipChange(Change(T::kAddLearner, 4))
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);

  std::unique_ptr<Node> n = ThreeNodeLeader();
  Raft& r = *n->raft;
  auto code = [&](MembershipChangeType t, NodeId id) {
    return r.ProposeMembershipChange(Change(t, id)).status().code();
  };
  const auto kInvalid = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(code(T::kAddLearner, 0), kInvalid);
  EXPECT_EQ(code(T::kAddLearner, 2), kInvalid);  // Already a voter.
  EXPECT_EQ(code(T::kAddVoter, 3), kInvalid);
  EXPECT_EQ(code(T::kRemoveNode, 9), kInvalid);  // Not a member.
  absl::StatusOr<Index> index = r.ProposeMembershipChange(Change(T::kAddLearner, 4));
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(*index, 2u);
  // Effective at once on the leader; the next change waits for a commit.
  EXPECT_EQ(r.membership(), (Membership{{1, 2, 3}, {4}}));
  EXPECT_EQ(code(T::kAddVoter, 4), absl::StatusCode::kFailedPrecondition);
  std::vector<Message> out = n->Drain();
  ASSERT_EQ(n->memberships.size(), 1u);
  EXPECT_EQ(n->memberships[0], r.membership());
  // The learner gets appends too.
  EXPECT_EQ(OfType(out, MessageType::kAppend, 4).size(), 1u);
  ASSERT_TRUE(r.Step(AppendOk(2, 1, 1, 2)).ok());
  n->Drain();
  ASSERT_EQ(r.commit_index(), 2u);
  EXPECT_EQ(code(T::kAddLearner, 4), kInvalid);  // Already a learner.
  ASSERT_TRUE(r.ProposeMembershipChange(Change(T::kAddVoter, 4)).ok());
  EXPECT_EQ(r.membership(), (Membership{{1, 2, 3, 4}, {}}));

  // The last voter cannot leave.
  Node single(TestConfig(1, {1}));
  single.raft->Campaign();
  single.Drain();
  EXPECT_EQ(single.raft->ProposeMembershipChange(Change(T::kRemoveNode, 1))
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  // A single voter commits its own changes at once.
  ASSERT_TRUE(single.raft->ProposeMembershipChange(Change(T::kAddLearner, 2)).ok());
  single.Drain();
  EXPECT_EQ(single.raft->commit_index(), 2u);
  ASSERT_TRUE(single.raft->ProposeMembershipChange(Change(T::kRemoveNode, 2)).ok());
}

TEST(RaftMembershipTest, LearnersAreNotCountedAndNeverCampaign) {
  Config c = TestConfig(4, {1, 2, 3});
  c.learners = {4};
  Node learner(c);
  for (int i = 0; i < 100; ++i) learner.raft->Tick();
  learner.raft->Campaign();
  EXPECT_EQ(learner.raft->role(), Role::kFollower);
  EXPECT_EQ(learner.raft->term(), 0u);
  EXPECT_TRUE(learner.Drain().empty());
  // A TimeoutNow does not make it campaign either.
  ASSERT_TRUE(learner.raft->Step(Msg(MessageType::kTimeoutNow, 1, 4, 1)).ok());
  EXPECT_EQ(learner.raft->role(), Role::kFollower);

  Config lc = TestConfig(1, {1, 2, 3});
  lc.learners = {4};
  std::unique_ptr<Node> n = ThreeNodeLeader(lc);
  ASSERT_TRUE(n->raft->Propose("x").ok());
  n->Drain();
  ASSERT_TRUE(n->raft->Step(AppendOk(4, 1, 1, 2)).ok());
  EXPECT_EQ(n->raft->commit_index(), 1u) << "a learner's ack counted";
  ASSERT_TRUE(n->raft->Step(AppendOk(3, 1, 1, 2)).ok());
  EXPECT_EQ(n->raft->commit_index(), 2u);
}

TEST(RaftMembershipTest, TakesEffectOnAppendAndRevertsOnTruncation) {
  Node n(TestConfig(2, {1, 2, 3}));
  const Membership four{{1, 2, 3, 4}, {}};
  ASSERT_TRUE(n.raft->Step(Append(1, 2, 1, 0, 0, 0,
                                  {Entry{1, 1, EntryType::kNoop, ""},
                                   Entry{1, 2, EntryType::kConfig,
                                         EncodeMembership(four)}}))
                  .ok());
  EXPECT_EQ(n.raft->membership(), four);
  n.Drain();
  // Leader 3 of term 2 never had that change: its log replaces it.
  ASSERT_TRUE(n.raft->Step(Append(3, 2, 2, 1, 1, 1,
                                  {Entry{2, 2, EntryType::kNoop, ""}}))
                  .ok());
  EXPECT_EQ(n.raft->membership(), kThree);
  n.Drain();
  ASSERT_EQ(n.memberships.size(), 2u);
  EXPECT_EQ(n.memberships[0], four);
  EXPECT_EQ(n.memberships[1], kThree);
}

TEST(RaftMembershipTest, RestartRecoversTheMembershipFromTheLog) {
  const Membership four{{1, 2, 3, 4}, {}};
  const Membership five{{1, 2, 3, 4}, {5}};
  std::vector<Entry> log = {Entry{1, 1, EntryType::kNoop, ""},
                            Entry{1, 2, EntryType::kConfig, EncodeMembership(four)},
                            Entry{1, 3, EntryType::kNormal, "x"},
                            Entry{1, 4, EntryType::kConfig, EncodeMembership(five)}};
  Config c = TestConfig(1, {1, 2, 3});
  c.applied = 3;
  Node n(c, log, HardState{1, 0, 3});
  EXPECT_EQ(n.raft->membership(), five);  // The latest, uncommitted.
  absl::StatusOr<SnapshotMeta> meta = n.raft->SnapshotMetaForApplied();
  ASSERT_TRUE(meta.ok()) << meta.status();
  EXPECT_EQ(meta->index, 3u);
  EXPECT_EQ(meta->membership, four);  // In force at the applied index.
  // A joining node knows no membership until it applies one.
  Config joiner = TestConfig(5, {});
  Node j(joiner, {Entry{1, 1, EntryType::kNoop, ""}}, HardState{1, 0, 1});
  j.Drain();
  EXPECT_EQ(j.raft->SnapshotMetaForApplied().status().code(),
            absl::StatusCode::kFailedPrecondition);
  // A corrupt config entry in the log is data loss.
  MemoryStorage bad;
  ASSERT_TRUE(bad.Append({Entry{1, 1, EntryType::kConfig, "junk"}}).ok());
  bad.SetHardState(HardState{1, 0, 0});
  EXPECT_EQ(Raft::Create(TestConfig(1, {1}), &bad).status().code(),
            absl::StatusCode::kDataLoss);
}

TEST(RaftMembershipTest, RemovedLeaderStepsDownOnceTheRemovalCommits) {
  std::unique_ptr<Node> n = ThreeNodeLeader();
  Raft& r = *n->raft;
  ASSERT_TRUE(r.ProposeMembershipChange(
                   Change(MembershipChangeType::kRemoveNode, 1)).ok());
  n->Drain();
  EXPECT_EQ(r.role(), Role::kLeader);
  // Its own copy no longer counts: one of {2, 3} is not a quorum.
  ASSERT_TRUE(r.Step(AppendOk(2, 1, 1, 2)).ok());
  EXPECT_EQ(r.commit_index(), 1u);
  EXPECT_EQ(r.role(), Role::kLeader);
  ASSERT_TRUE(r.Step(AppendOk(3, 1, 1, 2)).ok());
  EXPECT_EQ(r.commit_index(), 2u);
  EXPECT_EQ(r.role(), Role::kFollower);
  std::vector<Message> out = n->Drain();
  ASSERT_EQ(OfType(out, MessageType::kTimeoutNow).size(), 1u);
  // It never campaigns again.
  for (int i = 0; i < 50; ++i) r.Tick();
  EXPECT_EQ(r.role(), Role::kFollower);
}

TEST(RaftMembershipTest, MessagesFromNodesOutsideTheMembershipAreAccepted) {
  Node n(TestConfig(1, {1, 2, 3}));
  // Node 5 leads a group our log does not know it joined yet.
  ASSERT_TRUE(n.raft->Step(Msg(MessageType::kHeartbeat, 5, 1, 1)).ok());
  EXPECT_EQ(n.raft->leader(), 5u);
  // A leader ignores answers from non-members.
  std::unique_ptr<Node> l = ThreeNodeLeader();
  ASSERT_TRUE(l->raft->Step(AppendOk(7, 1, 1, 1)).ok());
  ASSERT_TRUE(l->raft->Step(HeartbeatAck(7, 1, 1, 0)).ok());
}

// ---- Leadership transfer ----

TEST(RaftTransferTest, RulesRefusedProposalsAndAbort) {
  Node follower(TestConfig(2, {1, 2, 3}));
  EXPECT_EQ(follower.raft->TransferLeadership(1).code(),
            absl::StatusCode::kFailedPrecondition);
  Config c = TestConfig(1, {1, 2, 3});
  c.learners = {4};
  std::unique_ptr<Node> n = ThreeNodeLeader(c);
  Raft& r = *n->raft;
  EXPECT_EQ(r.TransferLeadership(4).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(r.TransferLeadership(9).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(r.TransferLeadership(1).ok());  // Itself: nothing to do.
  EXPECT_EQ(r.transfer_target(), kNoNode);
  // Node 3 lags (match 0; its probe is unanswered): no TimeoutNow until
  // it has caught up.
  ASSERT_TRUE(r.TransferLeadership(3).ok());
  EXPECT_EQ(r.transfer_target(), 3u);
  std::vector<Message> out = n->Drain();
  EXPECT_TRUE(OfType(out, MessageType::kTimeoutNow).empty());
  EXPECT_EQ(r.Propose("x").status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(r.ProposeMembershipChange(Change(MembershipChangeType::kRemoveNode, 2))
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  ASSERT_TRUE(r.Step(AppendOk(3, 1, 1, 1)).ok());
  out = n->Drain();
  ASSERT_EQ(OfType(out, MessageType::kTimeoutNow, 3).size(), 1u);
  // The target never campaigns (message lost): abandoned after an
  // election timeout, proposals are accepted again.
  for (int i = 0; i < c.election_timeout_ticks; ++i) r.Tick();
  EXPECT_EQ(r.transfer_target(), kNoNode);
  EXPECT_EQ(r.role(), Role::kLeader);
  EXPECT_TRUE(r.Propose("x").ok());
}

TEST(RaftTransferTest, TimeoutNowCampaignsPastPreVoteAndStickiness) {
  Config c = TestConfig(2, {1, 2, 3});
  c.pre_vote = true;
  c.check_quorum = true;
  Node target(c, Log({1}), HardState{1, 0, 1});
  ASSERT_TRUE(target.raft->Step(Msg(MessageType::kHeartbeat, 1, 2, 1)).ok());
  target.Drain();
  ASSERT_TRUE(target.raft->Step(Msg(MessageType::kTimeoutNow, 1, 2, 1)).ok());
  EXPECT_EQ(target.raft->role(), Role::kCandidate);  // No pre-vote.
  EXPECT_EQ(target.raft->term(), 2u);
  std::vector<Message> votes = OfType(target.Drain(), MessageType::kVote);
  ASSERT_EQ(votes.size(), 2u);
  EXPECT_TRUE(votes[0].transfer);

  // A voter that just heard from its leader ignores plain campaigns but
  // not the transfer's.
  Config vc = c;
  vc.id = 3;
  Node voter(vc, Log({1}), HardState{1, 0, 1});
  ASSERT_TRUE(voter.raft->Step(Msg(MessageType::kHeartbeat, 1, 3, 1)).ok());
  voter.Drain();
  Message plain = votes[1];
  plain.transfer = false;
  ASSERT_TRUE(voter.raft->Step(plain).ok());
  EXPECT_EQ(voter.raft->term(), 1u);
  EXPECT_TRUE(voter.Drain().empty());
  ASSERT_TRUE(voter.raft->Step(votes[1]).ok());
  EXPECT_EQ(voter.raft->term(), 2u);
  std::vector<Message> answer = voter.Drain();
  ASSERT_EQ(answer.size(), 1u);
  EXPECT_FALSE(answer[0].reject);
}

// ---- Leader lease reads ----

Config LeaseConfig(NodeId id) {
  Config c = TestConfig(id, {1, 2, 3});
  c.check_quorum = true;
  c.lease_reads = true;
  c.election_timeout_ticks = 10;
  c.lease_drift_margin_ticks = 2;
  return c;
}

Message LeaseAck(NodeId from, Term term, uint64_t sent_tick,
                 uint64_t context = 0) {
  Message m = HeartbeatAck(from, 1, term, context);
  m.index = sent_tick;
  return m;
}

TEST(RaftLeaseTest, ReadsAreImmediateWhileAQuorumAnsweredRecently) {
  Config c = LeaseConfig(1);
  c.learners = {4};
  std::unique_ptr<Node> n = ThreeNodeLeader(c);
  Raft& r = *n->raft;
  for (int i = 0; i < 3; ++i) r.Tick();  // Heartbeats sent at ticks 1..3.
  std::vector<Message> hb = OfType(n->Drain(), MessageType::kHeartbeat, 2);
  ASSERT_EQ(hb.size(), 3u);
  EXPECT_EQ(hb[2].index, 3u);
  // Without answers: the read takes a heartbeat round.
  ASSERT_TRUE(r.ReadIndex(1).ok());
  n->Drain();
  EXPECT_TRUE(n->reads.empty());
  // A learner's answer is no promise that matters.
  ASSERT_TRUE(r.Step(LeaseAck(4, 1, 3)).ok());
  ASSERT_TRUE(r.ReadIndex(2).ok());
  n->Drain();
  EXPECT_TRUE(n->reads.empty());
  // Node 2 answered the heartbeat of tick 3: lease until 3 + 10 - 2.
  ASSERT_TRUE(r.Step(LeaseAck(2, 1, 3)).ok());
  ASSERT_TRUE(r.ReadIndex(3).ok());
  n->Drain();
  ASSERT_EQ(n->reads.size(), 1u);
  EXPECT_EQ(n->reads[0].context, 3u);
  EXPECT_EQ(n->reads[0].index, 1u);
  for (int i = 0; i < 7; ++i) r.Tick();  // Tick 10: 7 < 8, still valid.
  ASSERT_TRUE(r.ReadIndex(4).ok());
  n->Drain();
  EXPECT_EQ(n->reads.size(), 2u);
  r.Tick();  // Tick 11: expired.
  ASSERT_TRUE(r.ReadIndex(5).ok());
  n->Drain();
  EXPECT_EQ(n->reads.size(), 2u);
  // A forged answer from the future does not extend it.
  ASSERT_TRUE(r.Step(LeaseAck(3, 1, 1000)).ok());
  ASSERT_TRUE(r.ReadIndex(6).ok());
  n->Drain();
  EXPECT_EQ(n->reads.size(), 2u);
}

TEST(RaftLeaseTest, TransferRevokesTheLease) {
  std::unique_ptr<Node> n = ThreeNodeLeader(LeaseConfig(1));
  Raft& r = *n->raft;
  r.Tick();
  n->Drain();
  ASSERT_TRUE(r.Step(LeaseAck(2, 1, 1)).ok());
  ASSERT_TRUE(r.ReadIndex(1).ok());
  n->Drain();
  ASSERT_EQ(n->reads.size(), 1u);
  ASSERT_TRUE(r.TransferLeadership(2).ok());  // Up to date: TimeoutNow.
  ASSERT_EQ(OfType(n->Drain(), MessageType::kTimeoutNow).size(), 1u);
  ASSERT_TRUE(r.ReadIndex(2).ok());
  n->Drain();
  EXPECT_EQ(n->reads.size(), 1u);
}

TEST(RaftLeaseTest, StartedNodesIgnoreCandidatesForAnElectionTimeout) {
  Node n(LeaseConfig(3));
  ASSERT_TRUE(n.raft->Step(VoteRequest(2, 3, 1, 0, 0)).ok());
  EXPECT_EQ(n.raft->term(), 0u);
  EXPECT_TRUE(n.Drain().empty());
  for (int i = 0; i < 10; ++i) n.raft->Tick();
  ASSERT_TRUE(n.raft->Step(VoteRequest(2, 3, 1, 0, 0)).ok());
  EXPECT_EQ(n.raft->term(), 1u);
  std::vector<Message> out = n.Drain();
  ASSERT_EQ(out.size(), 1u);
  EXPECT_FALSE(out[0].reject);
}

}  // namespace
}  // namespace blizzard::consensus
