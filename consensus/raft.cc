#include "consensus/raft.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <utility>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_format.h"
#include "consensus/prng.h"
#include "consensus/progress.h"
#include "consensus/raft_log.h"
#include "consensus/read_only.h"

namespace blizzard::consensus {

namespace {

constexpr int kInflightAppendsMax = 1 << 16;
constexpr int kSnapshotInflightChunksMax = 1 << 10;
// Entries read per step when Create scans the log for membership changes.
constexpr Index kScanWindowEntries = 256;
constexpr uint64_t kScanBytesMax = 1u << 20;

enum class VoteResult { kPending, kWon, kLost };

Membership BootstrapMembership(const Config& c) {
  Membership m{c.voters, c.learners};
  std::sort(m.voters.begin(), m.voters.end());
  std::sort(m.learners.begin(), m.learners.end());
  return m;
}

absl::Status ValidateConfig(const Config& c) {
  if (c.id == kNoNode) return absl::InvalidArgumentError("config: id is 0");
  absl::Status members =
      ValidateMembership(BootstrapMembership(c), /*voters_required=*/false);
  if (!members.ok()) {
    return absl::InvalidArgumentError(
        absl::StrFormat("config: %s", members.message()));
  }
  if (c.heartbeat_interval_ticks < 1 ||
      c.election_timeout_ticks <= c.heartbeat_interval_ticks) {
    return absl::InvalidArgumentError(
        "config: need 1 <= heartbeat_interval_ticks < election_timeout_ticks");
  }
  if (c.inflight_appends_max < 1 || c.inflight_appends_max > kInflightAppendsMax) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "config: inflight_appends_max must be in [1, %d]", kInflightAppendsMax));
  }
  if (c.append_entries_max < 1 ||
      static_cast<uint64_t>(c.append_entries_max) > kMessageEntriesMax) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "config: append_entries_max must be in [1, %d]", kMessageEntriesMax));
  }
  if (c.proposal_bytes_max > kEntryDataBytesMax) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "config: proposal_bytes_max above %d", kEntryDataBytesMax));
  }
  if (c.append_bytes_max == 0 || c.committed_bytes_max == 0 ||
      c.uncommitted_bytes_max == 0 || c.pending_reads_max < 1) {
    return absl::InvalidArgumentError("config: a zero limit");
  }
  if (c.snapshot_chunk_bytes == 0 ||
      c.snapshot_chunk_bytes > kSnapshotChunkBytesMax ||
      c.snapshot_inflight_chunks_max < 1 ||
      c.snapshot_inflight_chunks_max > kSnapshotInflightChunksMax ||
      c.snapshot_stall_ticks < 1) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "config: snapshot_chunk_bytes must be in [1, %d], "
        "snapshot_inflight_chunks_max in [1, %d], snapshot_stall_ticks >= 1",
        kSnapshotChunkBytesMax, kSnapshotInflightChunksMax));
  }
  if (c.lease_reads) {
    if (!c.check_quorum) {
      return absl::InvalidArgumentError(
          "config: lease_reads needs check_quorum (followers' promise not to "
          "vote while they hear from a leader)");
    }
    if (c.lease_drift_margin_ticks < 1 ||
        c.lease_drift_margin_ticks >= c.election_timeout_ticks) {
      return absl::InvalidArgumentError(
          "config: lease_drift_margin_ticks must be in [1, "
          "election_timeout_ticks)");
    }
  }
  return absl::OkStatus();
}

// A kConfig entry in the log: the membership in force from `index` on.
struct ConfigRecord {
  Index index = 0;
  Term term = 0;
  Membership membership;
};

struct RecoveredMembership {
  Membership applied;                 // In force at the applied index.
  std::deque<ConfigRecord> history;  // kConfig entries after it.
};

// The membership at `applied` and the changes after it, from the newest
// snapshot and the log. Reads the log backwards from its end until the
// membership at `applied` is known: usually only the unapplied tail.
absl::StatusOr<RecoveredMembership> RecoverMembership(
    const LogStorage& storage, const Membership& bootstrap,
    const SnapshotMeta& snapshot, Index applied) {
  const Index lo = std::max(storage.FirstIndex(), snapshot.index + 1);
  std::vector<ConfigRecord> found;  // Newest first.
  bool applied_known = false;
  for (Index hi = storage.LastIndex() + 1; hi > lo && !applied_known;) {
    const Index window_lo = hi - std::min(hi - lo, kScanWindowEntries);
    std::vector<ConfigRecord> window;
    for (Index i = window_lo; i < hi;) {
      absl::StatusOr<std::vector<Entry>> entries =
          storage.Entries(i, hi, kScanBytesMax);
      if (!entries.ok()) return entries.status();
      if (entries->empty() || entries->front().index != i) {
        return absl::DataLossError("storage returned entries out of order");
      }
      for (Entry& e : *entries) {
        if (e.type != EntryType::kConfig) continue;
        absl::StatusOr<Membership> m = DecodeMembership(e.data);
        if (!m.ok()) {
          return absl::DataLossError(absl::StrFormat(
              "config entry %d does not decode: %s", e.index,
              m.status().message()));
        }
        window.push_back(ConfigRecord{e.index, e.term, *std::move(m)});
      }
      i = entries->back().index + 1;
    }
    for (auto it = window.rbegin(); it != window.rend(); ++it) {
      if (it->index <= applied) applied_known = true;
      found.push_back(std::move(*it));
    }
    hi = window_lo;
  }
  RecoveredMembership out;
  out.applied = snapshot.index > 0 ? snapshot.membership : bootstrap;
  for (auto it = found.rbegin(); it != found.rend(); ++it) {
    if (it->index <= applied) {
      out.applied = it->membership;
    } else {
      out.history.push_back(std::move(*it));
    }
  }
  return out;
}

}  // namespace

const char* RoleName(Role role) {
  switch (role) {
    case Role::kFollower:
      return "follower";
    case Role::kCandidate:
      return "candidate";
    case Role::kLeader:
      return "leader";
    case Role::kPreCandidate:
      return "pre-candidate";
  }
  return "unknown";
}

class Raft::Impl {
 public:
  Impl(const Config& config, const LogStorage* storage, const HardState& hs,
       Index commit, RecoveredMembership recovered)
      : config_(config),
        id_(config.id),
        log_(storage, commit, config.applied),
        // Mix the node id in so that nodes given the same seed still draw
        // different timeouts.
        rng_(config.random_seed ^ (config.id * 0x9e3779b97f4a7c15ull)),
        applied_membership_(std::move(recovered.applied)),
        config_history_(std::move(recovered.history)),
        lease_grace_ticks_(config.lease_reads ? config.election_timeout_ticks
                                              : 0) {
    membership_ = ActiveMembership();
    term_ = hs.term;
    vote_ = hs.vote;
    BecomeFollower(term_, kNoNode);
    prev_hard_ = CurrentHardState();
    prev_soft_ = SoftState{lead_, role_};
    prev_membership_ = membership_;
  }

  // ---- Inputs ----

  void Tick() {
    if (!error_.ok()) return;
    ++ticks_;
    if (lease_grace_ticks_ > 0) --lease_grace_ticks_;
    if (role_ == Role::kLeader) {
      TickLeader();
    } else {
      TickElection();
    }
    Finish();
  }

  absl::Status Step(const Message& m) {
    if (!error_.ok()) return error_;
    absl::Status valid = ValidateMessage(m);
    if (!valid.ok()) return valid;
    if (m.to != id_) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "message for node %d delivered to node %d", m.to, id_));
    }
    absl::Status status = StepChecked(m);
    Finish();
    CheckInvariants();
    if (!error_.ok()) return error_;
    return status;
  }

  absl::StatusOr<Index> Propose(std::string data) {
    if (!error_.ok()) return error_;
    absl::Status can = CanAppendAsLeader();
    if (!can.ok()) return can;
    if (data.size() > config_.proposal_bytes_max) {
      return absl::InvalidArgumentError(
          absl::StrFormat("proposal of %d bytes exceeds proposal_bytes_max %d",
                          data.size(), config_.proposal_bytes_max));
    }
    return ProposeEntry(EntryType::kNormal, std::move(data));
  }

  absl::StatusOr<Index> ProposeMembershipChange(const MembershipChange& c) {
    if (!error_.ok()) return error_;
    absl::Status can = CanAppendAsLeader();
    if (!can.ok()) return can;
    if (!CommittedInCurrentTerm()) {
      // Ongaro's fix for single-server changes: a change must not race a
      // change of an earlier leader that this leader has not committed.
      return absl::FailedPreconditionError(
          "membership change before this leader committed an entry of its "
          "term");
    }
    if (HasPendingMembershipChange()) {
      return absl::FailedPreconditionError(
          "an earlier membership change is not committed yet");
    }
    if (c.node == kNoNode) {
      return absl::InvalidArgumentError("membership change of node 0");
    }
    Membership next = membership_;
    auto insert = [](std::vector<NodeId>& ids, NodeId id) {
      ids.insert(std::lower_bound(ids.begin(), ids.end(), id), id);
    };
    auto erase = [](std::vector<NodeId>& ids, NodeId id) {
      ids.erase(std::lower_bound(ids.begin(), ids.end(), id));
    };
    switch (c.type) {
      case MembershipChangeType::kAddLearner:
        if (next.IsMember(c.node)) {
          return absl::InvalidArgumentError(
              absl::StrFormat("node %d is already a member", c.node));
        }
        insert(next.learners, c.node);
        break;
      case MembershipChangeType::kAddVoter:
        if (next.IsVoter(c.node)) {
          return absl::InvalidArgumentError(
              absl::StrFormat("node %d is already a voter", c.node));
        }
        if (next.IsLearner(c.node)) erase(next.learners, c.node);
        insert(next.voters, c.node);
        break;
      case MembershipChangeType::kRemoveNode:
        if (!next.IsMember(c.node)) {
          return absl::InvalidArgumentError(
              absl::StrFormat("node %d is not a member", c.node));
        }
        if (next.IsVoter(c.node)) {
          if (next.voters.size() == 1) {
            return absl::FailedPreconditionError("cannot remove the last voter");
          }
          erase(next.voters, c.node);
        } else {
          erase(next.learners, c.node);
        }
        break;
    }
    if (next.voters.size() + next.learners.size() > kMembersMax) {
      return absl::ResourceExhaustedError(
          absl::StrFormat("a group has at most %d members", kMembersMax));
    }
    return ProposeEntry(EntryType::kConfig, EncodeMembership(next));
  }

  absl::Status TransferLeadership(NodeId target) {
    if (!error_.ok()) return error_;
    if (role_ != Role::kLeader) {
      return absl::FailedPreconditionError("not leader");
    }
    if (target == id_ || target == transfer_target_) return absl::OkStatus();
    if (!membership_.IsVoter(target)) {
      return absl::InvalidArgumentError(
          absl::StrFormat("transfer target %d is not a voter", target));
    }
    transfer_target_ = target;
    transfer_elapsed_ = 0;
    timeout_now_sent_ = false;
    if (!MaybeSendTimeoutNow()) SendAppend(target, /*send_if_empty=*/true);
    Finish();
    return error_;
  }

  absl::Status ReadIndex(uint64_t context) {
    if (!error_.ok()) return error_;
    if (role_ != Role::kLeader) {
      return absl::FailedPreconditionError("not leader");
    }
    if (context == 0) {
      return absl::InvalidArgumentError("read context 0 is reserved");
    }
    if (read_only_.Contains(context) ||
        std::find(deferred_reads_.begin(), deferred_reads_.end(), context) !=
            deferred_reads_.end()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("read context %d already pending", context));
    }
    if (read_only_.size() + deferred_reads_.size() >=
        static_cast<size_t>(config_.pending_reads_max)) {
      return absl::ResourceExhaustedError("too many pending reads");
    }
    if (!CommittedInCurrentTerm()) {
      deferred_reads_.push_back(context);
    } else {
      StartRead(context);
    }
    Finish();
    return error_;
  }

  void Campaign() {
    if (!error_.ok()) return;
    Hup(/*transfer=*/false);
    Finish();
  }

  // ---- Outputs ----

  bool HasReady() const {
    if (!error_.ok()) return false;
    return SoftState{lead_, role_} != prev_soft_ ||
           CurrentHardState() != prev_hard_ || membership_ != prev_membership_ ||
           log_.HasEntriesToPersist() || !msgs_.empty() ||
           log_.HasEntriesToApply() || !read_states_.empty() ||
           !chunks_.empty() || log_.HasSnapshotToInstall();
  }

  Ready GetReady() {
    ABSL_RAW_CHECK(!ready_outstanding_,
                   "GetReady called again before Advance");
    Ready rd;
    ready_outstanding_ = true;
    outstanding_ = {};
    if (!error_.ok()) return rd;
    const SoftState soft{lead_, role_};
    if (soft != prev_soft_) {
      rd.soft_state = soft;
      prev_soft_ = soft;
    }
    const HardState hard = CurrentHardState();
    if (hard != prev_hard_) {
      rd.hard_state = hard;
      prev_hard_ = hard;
    }
    if (membership_ != prev_membership_) {
      rd.membership = membership_;
      prev_membership_ = membership_;
    }
    // Chunks up to the one that completed the snapshot to install; later
    // chunks (a newer transfer's) wait for the next Ready, or the driver
    // would stage them over the snapshot before installing it.
    const size_t chunks_out =
        log_.HasSnapshotToInstall() ? chunks_before_install_ : chunks_.size();
    ABSL_RAW_CHECK(chunks_out <= chunks_.size(), "chunk bookkeeping");
    rd.snapshot_chunks.assign(
        std::make_move_iterator(chunks_.begin()),
        std::make_move_iterator(chunks_.begin() + static_cast<ptrdiff_t>(chunks_out)));
    chunks_.erase(chunks_.begin(), chunks_.begin() + static_cast<ptrdiff_t>(chunks_out));
    // Before the committed entries: those follow the snapshot.
    if (log_.HasSnapshotToInstall()) rd.snapshot = log_.TakeSnapshotToInstall();
    rd.entries = log_.TakeEntriesToPersist();
    rd.messages = std::move(msgs_);
    msgs_.clear();
    rd.committed = log_.TakeEntriesToApply(config_.committed_bytes_max);
    rd.read_states = std::move(read_states_);
    read_states_.clear();
    CheckStorage();
    if (!error_.ok()) return Ready{};
    if (!rd.entries.empty()) {
      outstanding_.last_entry_index = rd.entries.back().index;
      outstanding_.last_entry_term = rd.entries.back().term;
    }
    if (!rd.committed.empty()) {
      outstanding_.last_committed_index = rd.committed.back().index;
    }
    if (rd.snapshot.has_value()) outstanding_.snapshot_index = rd.snapshot->index;
    return rd;
  }

  void Advance(const Ready& rd) {
    ABSL_RAW_CHECK(ready_outstanding_, "Advance without GetReady");
    ready_outstanding_ = false;
    // Paired with GetReady: the driver must hand back what it was given.
    const Index entry_index = rd.entries.empty() ? 0 : rd.entries.back().index;
    const Term entry_term = rd.entries.empty() ? 0 : rd.entries.back().term;
    const Index committed_index =
        rd.committed.empty() ? 0 : rd.committed.back().index;
    const Index snapshot_index = rd.snapshot.has_value() ? rd.snapshot->index : 0;
    ABSL_RAW_CHECK(entry_index == outstanding_.last_entry_index &&
                       entry_term == outstanding_.last_entry_term &&
                       committed_index == outstanding_.last_committed_index &&
                       snapshot_index == outstanding_.snapshot_index,
                   "Advance given a Ready other than the last GetReady's");
    if (!error_.ok()) return;
    // The snapshot first: the entries of this Ready follow it.
    if (snapshot_index != 0) log_.SnapshotInstalled(snapshot_index);
    if (entry_index != 0) log_.StableTo(entry_index, entry_term);
    if (committed_index != 0) log_.AppliedTo(committed_index);
    // Changes at or below the applied index are history now.
    while (!config_history_.empty() &&
           config_history_.front().index <= log_.applied()) {
      applied_membership_ = std::move(config_history_.front().membership);
      config_history_.pop_front();
    }
    ABSL_RAW_CHECK(membership_ == ActiveMembership(),
                   "collapsing applied changes moved the membership");
  }

  // ---- Observers ----

  NodeId id() const { return id_; }
  Role role() const { return role_; }
  NodeId leader() const { return lead_; }
  Term term() const { return term_; }
  Index commit_index() const { return log_.committed(); }
  Index applied_index() const { return log_.applied(); }
  Index last_index() const { return log_.LastIndex(); }
  absl::StatusOr<Term> TermAt(Index i) const {
    if (!error_.ok()) return error_;
    return log_.TermAt(i);
  }
  const Membership& membership() const { return membership_; }
  NodeId transfer_target() const { return transfer_target_; }
  Index match_index(NodeId peer) const {
    if (role_ != Role::kLeader) return 0;
    auto it = progress_.find(peer);
    return it == progress_.end() ? 0 : it->second.match();
  }
  absl::StatusOr<SnapshotMeta> SnapshotMetaForApplied() const {
    if (!error_.ok()) return error_;
    if (ready_outstanding_) {
      return absl::FailedPreconditionError(
          "a Ready is outstanding: the applied index is in flux");
    }
    const Index applied = log_.applied();
    if (applied == 0) return absl::FailedPreconditionError("nothing applied");
    if (applied_membership_.voters.empty()) {
      return absl::FailedPreconditionError(
          "the membership at the applied index is unknown");
    }
    absl::StatusOr<Term> term = log_.TermAt(applied);
    if (!term.ok()) return term.status();
    return SnapshotMeta{applied, *term, applied_membership_, 0};
  }
  absl::Status status() const { return error_; }

  std::string DebugString() const {
    return absl::StrFormat(
        "node=%d role=%s term=%d vote=%d leader=%d first=%d last=%d commit=%d "
        "applied=%d %s%s",
        id_, RoleName(role_), term_, vote_, lead_, log_.FirstIndex(),
        log_.LastIndex(), log_.committed(), log_.applied(),
        consensus::DebugString(membership_),
        error_.ok() ? "" : " error=" + error_.ToString());
  }

 private:
  struct Outstanding {
    Index last_entry_index = 0;
    Term last_entry_term = 0;
    Index last_committed_index = 0;
    Index snapshot_index = 0;
  };

  // A snapshot being received (follower).
  struct Incoming {
    NodeId from = kNoNode;
    Term term = 0;
    SnapshotMeta meta;
    uint64_t next_offset = 0;  // Bytes accepted so far.
  };

  HardState CurrentHardState() const {
    return HardState{term_, vote_, log_.committed()};
  }

  // ---- Membership ----

  const Membership& ActiveMembership() const {
    return config_history_.empty() ? applied_membership_
                                   : config_history_.back().membership;
  }

  bool IsVoter() const { return membership_.IsVoter(id_); }

  // The membership of the latest committed change (or the applied one).
  const Membership& CommittedMembership() const {
    for (auto it = config_history_.rbegin(); it != config_history_.rend(); ++it) {
      if (it->index <= log_.committed()) return it->membership;
    }
    return applied_membership_;
  }

  // Voters campaign; so does a node that a change it has not seen commit
  // removes, if it votes in the committed membership. It may hold the only
  // log that can finish the change: a leader that appended its own removal
  // and lost leadership before committing it has the longest log, and the
  // other voters of the old membership may need its vote, which it gives
  // no one with a shorter log. (It counts votes in the new membership.)
  bool CanCampaign() const {
    return IsVoter() || (HasPendingMembershipChange() &&
                         CommittedMembership().IsVoter(id_));
  }

  size_t Quorum() const { return membership_.voters.size() / 2 + 1; }

  bool HasPendingMembershipChange() const {
    return !config_history_.empty() &&
           config_history_.back().index > log_.committed();
  }

  // After entries were appended (and maybe a suffix truncated) while the
  // commit index was `commit_before`: the membership is the latest kConfig
  // entry in the log (Raft thesis 4.1).
  void TrackAppended(absl::Span<const Entry> appended, Index commit_before) {
    while (!config_history_.empty() &&
           !log_.MatchTerm(config_history_.back().index,
                           config_history_.back().term)) {
      // Truncated away: only changes above the commit index before the
      // append can have been.
      ABSL_RAW_CHECK(config_history_.back().index > commit_before,
                     "a committed membership change was truncated");
      config_history_.pop_back();
    }
    const Index known = config_history_.empty()
                            ? log_.applied()
                            : config_history_.back().index;
    for (const Entry& e : appended) {
      if (e.type != EntryType::kConfig || e.index <= known) continue;
      if (!log_.MatchTerm(e.index, e.term)) continue;
      absl::StatusOr<Membership> m = DecodeMembership(e.data);
      // Validated on the way in (ValidateMessage) or encoded by us.
      ABSL_RAW_CHECK(m.ok(), "config entry in the log does not decode");
      config_history_.push_back(ConfigRecord{e.index, e.term, *std::move(m)});
    }
    UpdateMembership();
  }

  void UpdateMembership() {
    const Membership& next = ActiveMembership();
    if (next == membership_) return;
    membership_ = next;
    if (role_ == Role::kLeader) SyncProgress();
    if (transfer_target_ != kNoNode && !membership_.IsVoter(transfer_target_)) {
      AbortTransfer();
    }
  }

  // Leader: one Progress per member, plus itself (it may be leaving).
  void SyncProgress() {
    const Index last = log_.LastIndex();
    for (auto it = progress_.begin(); it != progress_.end();) {
      if (it->first != id_ && !membership_.IsMember(it->first)) {
        it = progress_.erase(it);
      } else {
        ++it;
      }
    }
    auto add = [&](NodeId id) {
      auto [it, inserted] = progress_.try_emplace(id, config_.inflight_appends_max);
      if (!inserted) return;
      if (id == id_) {
        it->second.ResetAsSelf(last);
      } else {
        it->second.Reset(last);
        // New members count as active until the next check-quorum round.
        it->second.set_recent_active(true);
      }
    };
    add(id_);
    for (NodeId id : membership_.voters) add(id);
    for (NodeId id : membership_.learners) add(id);
  }

  Progress* FindProgress(NodeId id) {
    auto it = progress_.find(id);
    return it == progress_.end() ? nullptr : &it->second;
  }

  Progress& ProgressOf(NodeId id) {
    Progress* pr = FindProgress(id);
    ABSL_RAW_CHECK(pr != nullptr, "progress of a non-member");
    return *pr;
  }

  template <typename Fn>
  void ForEachPeer(Fn&& fn) {
    // Collect first: fn may change progress_ (never while iterating).
    std::vector<NodeId> peers;
    peers.reserve(progress_.size());
    for (const auto& [id, pr] : progress_) {
      if (id != id_) peers.push_back(id);
    }
    for (NodeId peer : peers) {
      if (role_ != Role::kLeader) return;
      if (progress_.count(peer) != 0) fn(peer);
    }
  }

  size_t VotersAmong(const std::vector<NodeId>& ids) const {
    size_t n = 0;
    for (NodeId id : ids) {
      if (membership_.IsVoter(id)) ++n;
    }
    return n;
  }

  // ---- Bookkeeping after every input ----

  void Finish() {
    if (error_.ok() && role_ == Role::kLeader && !IsVoter() &&
        !HasPendingMembershipChange()) {
      StepDownRemoved();
    }
    CheckStorage();
  }

  void CheckStorage() {
    if (error_.ok() && !log_.storage_error().ok()) {
      error_ = log_.storage_error();
      // Nothing computed from unreadable data may leave.
      msgs_.clear();
      read_states_.clear();
      chunks_.clear();
    }
  }

  void CheckInvariants() const {
    ABSL_RAW_CHECK(log_.committed() <= log_.LastIndex(),
                   "commit beyond last index");
    ABSL_RAW_CHECK(role_ != Role::kLeader || lead_ == id_,
                   "a leader must know itself as leader");
    ABSL_RAW_CHECK(role_ != Role::kCandidate || vote_ == id_,
                   "a candidate votes for itself");
    ABSL_RAW_CHECK(log_.LastTerm() <= term_ || !error_.ok(),
                   "log holds an entry from a future term");
    ABSL_RAW_CHECK(role_ == Role::kFollower || role_ == Role::kLeader ||
                       CanCampaign(),
                   "a non-voter campaigns");
    ABSL_RAW_CHECK(role_ != Role::kLeader || progress_.count(id_) == 1,
                   "a leader tracks its own progress");
    ABSL_RAW_CHECK(role_ == Role::kLeader || transfer_target_ == kNoNode,
                   "a transfer outside leadership");
  }

  // ---- Role changes ----

  void Reset(Term term) {
    if (term_ != term) {
      ABSL_RAW_CHECK(term > term_, "term must not decrease");
      term_ = term;
      vote_ = kNoNode;
    }
    lead_ = kNoNode;
    election_elapsed_ = 0;
    heartbeat_elapsed_ = 0;
    randomized_election_timeout_ =
        config_.election_timeout_ticks +
        static_cast<int>(rng_.Uniform(
            static_cast<uint64_t>(config_.election_timeout_ticks)));
    votes_.clear();
    progress_.clear();
    read_only_.Reset();
    deferred_reads_.clear();
    uncommitted_.clear();
    uncommitted_bytes_ = 0;
    transfer_target_ = kNoNode;
    transfer_elapsed_ = 0;
    timeout_now_sent_ = false;
    incoming_.reset();
  }

  void BecomeFollower(Term term, NodeId lead) {
    Reset(term);
    lead_ = lead;
    role_ = Role::kFollower;
  }

  void BecomePreCandidate() {
    ABSL_RAW_CHECK(role_ != Role::kLeader, "leader cannot pre-campaign");
    // Unlike Reset: term and vote stay, the node is only asking.
    votes_.clear();
    lead_ = kNoNode;
    role_ = Role::kPreCandidate;
  }

  void BecomeCandidate() {
    ABSL_RAW_CHECK(role_ != Role::kLeader, "leader cannot campaign");
    Reset(term_ + 1);
    vote_ = id_;
    role_ = Role::kCandidate;
  }

  void BecomeLeader() {
    ABSL_RAW_CHECK(role_ == Role::kCandidate, "only a candidate becomes leader");
    Reset(term_);
    lead_ = id_;
    role_ = Role::kLeader;
    lease_revoked_ = false;
    SyncProgress();
    // Entries of earlier terms commit only under an entry of this term
    // (Raft 5.4.2); the no-op provides one without waiting for a client.
    AppendAsLeader(Entry{term_, log_.LastIndex() + 1, EntryType::kNoop, {}});
  }

  // The leader's removal committed: it leaves, handing leadership to the
  // most up-to-date voter so the group need not wait for a timeout.
  void StepDownRemoved() {
    NodeId best = kNoNode;
    Index best_match = 0;
    for (NodeId v : membership_.voters) {
      const Progress* pr = FindProgress(v);
      if (pr != nullptr && pr->match() > best_match) {
        best = v;
        best_match = pr->match();
      }
    }
    if (best != kNoNode && best_match == log_.LastIndex()) SendTimeoutNow(best);
    BecomeFollower(term_, kNoNode);
  }

  // ---- Elections ----

  void TickElection() {
    if (!CanCampaign()) {
      // Never campaigns; the count only feeds leader stickiness.
      election_elapsed_ =
          std::min(election_elapsed_ + 1, config_.election_timeout_ticks);
      return;
    }
    ++election_elapsed_;
    if (election_elapsed_ >= randomized_election_timeout_) {
      election_elapsed_ = 0;
      Hup(/*transfer=*/false);
    }
  }

  void TickLeader() {
    ++heartbeat_elapsed_;
    ++election_elapsed_;
    if (election_elapsed_ >= config_.election_timeout_ticks) {
      election_elapsed_ = 0;
      if (config_.check_quorum) {
        if (!QuorumActive()) {
          BecomeFollower(term_, kNoNode);
          return;
        }
        for (auto& [id, pr] : progress_) pr.set_recent_active(id == id_);
      }
    }
    if (transfer_target_ != kNoNode &&
        ++transfer_elapsed_ >= config_.election_timeout_ticks) {
      AbortTransfer();
    }
    ForEachPeer([&](NodeId peer) {
      Progress& pr = ProgressOf(peer);
      if (pr.state() != ProgressState::kSnapshot) return;
      if (pr.snapshot().Tick(config_.snapshot_stall_ticks)) {
        // Stalled: restart, with a newer snapshot if storage has one.
        const SnapshotMeta newest = log_.StorageSnapshot();
        if (newest.index > pr.snapshot().meta().index) {
          pr.BecomeSnapshot(newest, SnapshotWindowBytes());
        }
        SendSnapshotChunks(peer);
      }
    });
    if (heartbeat_elapsed_ >= config_.heartbeat_interval_ticks) {
      heartbeat_elapsed_ = 0;
      BcastHeartbeat(read_only_.LastPendingContext());
    }
  }

  bool QuorumActive() const {
    size_t active = 0;
    for (NodeId v : membership_.voters) {
      auto it = progress_.find(v);
      if (v == id_ || (it != progress_.end() && it->second.recent_active())) {
        ++active;
      }
    }
    return active >= Quorum();
  }

  void Hup(bool transfer) {
    if (role_ == Role::kLeader || !CanCampaign()) return;
    if (config_.pre_vote && !transfer) {
      StartCampaign(/*pre=*/true, /*transfer=*/false);
    } else {
      StartCampaign(/*pre=*/false, transfer);
    }
  }

  void StartCampaign(bool pre, bool transfer) {
    Term campaign_term;
    MessageType type;
    if (pre) {
      BecomePreCandidate();
      type = MessageType::kPreVote;
      campaign_term = term_ + 1;  // Asked about, not adopted.
    } else {
      BecomeCandidate();
      type = MessageType::kVote;
      campaign_term = term_;
    }
    if (Poll(id_, true) == VoteResult::kWon) {
      // A single voter wins on its own vote.
      OnElectionWon(pre);
      return;
    }
    const Index last_index = log_.LastIndex();
    const Term last_term = log_.LastTerm();
    for (NodeId voter : membership_.voters) {
      if (voter == id_) continue;
      Message m;
      m.type = type;
      m.to = voter;
      m.term = campaign_term;
      m.index = last_index;
      m.log_term = last_term;
      m.transfer = transfer && !pre;
      Send(std::move(m));
    }
  }

  void OnElectionWon(bool pre) {
    if (pre) {
      StartCampaign(/*pre=*/false, /*transfer=*/false);
    } else {
      BecomeLeader();
      BcastAppend();
    }
  }

  // Records `from`'s answer (the first one counts) and tallies the voters.
  VoteResult Poll(NodeId from, bool granted) {
    if (membership_.IsVoter(from)) votes_.emplace(from, granted);
    size_t yes = 0;
    size_t no = 0;
    for (const auto& [voter, vote] : votes_) (vote ? yes : no) += 1;
    const size_t quorum = Quorum();
    if (yes >= quorum) return VoteResult::kWon;
    if (no > membership_.voters.size() - quorum) return VoteResult::kLost;
    return VoteResult::kPending;
  }

  // Check-quorum stickiness: this node heard from a live leader within the
  // minimum election timeout (or, with leases, has just started and may
  // have promised one before a crash), so it ignores candidates.
  bool IgnoresCandidates() const {
    if (!config_.check_quorum) return false;
    if (lease_grace_ticks_ > 0) return true;
    return lead_ != kNoNode &&
           election_elapsed_ < config_.election_timeout_ticks;
  }

  // ---- Message handling ----

  static bool FromLeader(MessageType type) {
    return type == MessageType::kAppend || type == MessageType::kHeartbeat ||
           type == MessageType::kSnapshot;
  }

  absl::Status StepChecked(const Message& m) {
    if (m.term > term_) {
      const bool is_vote_request =
          m.type == MessageType::kVote || m.type == MessageType::kPreVote;
      if (is_vote_request && !m.transfer && IgnoresCandidates()) {
        // Disruptive candidate: ignore it without adopting its term.
        return absl::OkStatus();
      }
      if (m.type == MessageType::kPreVote) {
        // Pre-votes do not change anyone's term.
      } else if (m.type == MessageType::kPreVoteResponse && !m.reject) {
        // Granted pre-votes carry the term we asked about, term + 1.
      } else if (FromLeader(m.type)) {
        BecomeFollower(m.term, m.from);
      } else {
        BecomeFollower(m.term, kNoNode);
      }
    } else if (m.term < term_) {
      if (FromLeader(m.type)) {
        // A leader of an older term: tell it our term (the Raft paper's
        // rule). etcd does this only with check_quorum/pre_vote, trusting
        // our vote requests to reach it otherwise; but during membership
        // changes views differ, and a node may campaign only among nodes
        // that are not that leader (found by a 20000-seed soak), so the
        // leader would never learn the term and the two never talk again.
        Message reply;
        reply.type = MessageType::kAppendResponse;
        reply.to = m.from;
        Send(std::move(reply));
      } else if (m.type == MessageType::kPreVote ||
                 m.type == MessageType::kVote) {
        // Reject so the candidate learns our term (the Raft paper's rule;
        // etcd ignores stale votes). Members' views of the membership can
        // differ during a change: a candidate may ask only nodes that never
        // ask it, and without this its term would never catch up with
        // theirs (found by the membership churn run).
        Message reply;
        reply.type = m.type == MessageType::kPreVote
                         ? MessageType::kPreVoteResponse
                         : MessageType::kVoteResponse;
        reply.to = m.from;
        reply.term = term_;
        reply.reject = true;
        Send(std::move(reply));
      }
      return absl::OkStatus();  // Stale: ignored.
    }

    if (m.type == MessageType::kVote || m.type == MessageType::kPreVote) {
      HandleVoteRequest(m);
      return absl::OkStatus();
    }
    switch (role_) {
      case Role::kLeader:
        return StepLeader(m);
      case Role::kCandidate:
      case Role::kPreCandidate:
        return StepCandidate(m);
      case Role::kFollower:
        return StepFollower(m);
    }
    return absl::OkStatus();
  }

  void HandleVoteRequest(const Message& m) {
    const bool pre = m.type == MessageType::kPreVote;
    // We can vote for m.from if we already did in this term, or have voted
    // for nobody and know no leader; a pre-vote for a future term commits
    // us to nothing.
    const bool can_vote = vote_ == m.from ||
                          (vote_ == kNoNode && lead_ == kNoNode) ||
                          (pre && m.term > term_);
    Message reply;
    reply.type = pre ? MessageType::kPreVoteResponse : MessageType::kVoteResponse;
    reply.to = m.from;
    if (can_vote && log_.IsUpToDate(m.index, m.log_term)) {
      // Granted responses carry the term asked about, so a pre-candidate
      // can tell them apart from stale ones.
      reply.term = m.term;
      if (!pre) {
        ABSL_RAW_CHECK(m.term == term_, "vote granted outside our term");
        ABSL_RAW_CHECK(vote_ == kNoNode || vote_ == m.from,
                       "second vote in one term");
        election_elapsed_ = 0;
        vote_ = m.from;
      }
    } else {
      reply.term = term_;
      reply.reject = true;
    }
    Send(std::move(reply));
  }

  absl::Status StepLeader(const Message& m) {
    switch (m.type) {
      case MessageType::kAppendResponse:
        return HandleAppendResponse(m);
      case MessageType::kHeartbeatResponse:
        HandleHeartbeatResponse(m);
        return absl::OkStatus();
      case MessageType::kSnapshotResponse:
        HandleSnapshotResponse(m);
        return absl::OkStatus();
      case MessageType::kAppend:
      case MessageType::kHeartbeat:
      case MessageType::kSnapshot:
      case MessageType::kTimeoutNow:
        return absl::InvalidArgumentError(absl::StrFormat(
            "node %d claims leadership of term %d, which node %d holds",
            m.from, m.term, id_));
      default:
        return absl::OkStatus();  // Late vote responses.
    }
  }

  absl::Status StepCandidate(const Message& m) {
    const MessageType response_type = role_ == Role::kPreCandidate
                                          ? MessageType::kPreVoteResponse
                                          : MessageType::kVoteResponse;
    if (FromLeader(m.type)) {
      // A leader of our term (or, pre-candidate, of the term we are in)
      // exists: stop campaigning.
      BecomeFollower(m.term, m.from);
      return StepFollower(m);
    }
    if (m.type != response_type) return absl::OkStatus();
    switch (Poll(m.from, !m.reject)) {
      case VoteResult::kWon:
        OnElectionWon(role_ == Role::kPreCandidate);
        break;
      case VoteResult::kLost:
        // Term stays (a pre-candidate never changed it).
        BecomeFollower(term_, kNoNode);
        break;
      case VoteResult::kPending:
        break;
    }
    return absl::OkStatus();
  }

  absl::Status StepFollower(const Message& m) {
    if (!FromLeader(m.type) && m.type != MessageType::kTimeoutNow) {
      return absl::OkStatus();
    }
    if (lead_ != kNoNode && lead_ != m.from) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "node %d claims leadership of term %d, which node %d holds", m.from,
          m.term, lead_));
    }
    lead_ = m.from;
    if (m.type == MessageType::kTimeoutNow) {
      // Our leader hands over (TransferLeadership): campaign at once.
      Hup(/*transfer=*/true);
      return absl::OkStatus();
    }
    election_elapsed_ = 0;
    switch (m.type) {
      case MessageType::kAppend:
        HandleAppend(m);
        return absl::OkStatus();
      case MessageType::kSnapshot:
        HandleSnapshotChunk(m);
        return absl::OkStatus();
      default:
        return HandleHeartbeat(m);
    }
  }

  void HandleAppend(const Message& m) {
    Message reply;
    reply.type = MessageType::kAppendResponse;
    reply.to = m.from;
    if (m.index < log_.committed()) {
      // Everything up to our commit matches every leader's log.
      reply.index = log_.committed();
      Send(std::move(reply));
      return;
    }
    const Index commit_before = log_.committed();
    Index replaced_from = 0;
    std::optional<Index> last_new =
        log_.MaybeAppend(m.index, m.log_term, m.commit, m.entries, &replaced_from);
    if (replaced_from != 0) DropAcksFrom(replaced_from);  // Before this reply is queued.
    if (last_new.has_value()) {
      TrackAppended(m.entries, commit_before);
      reply.index = *last_new;
      Send(std::move(reply));
      return;
    }
    // Mismatch at m.index: hint where the logs may match so that the leader
    // skips every entry of a term we cannot share in one round trip.
    const Index probe = std::min(m.index, log_.LastIndex());
    auto [hint_index, hint_term] = log_.FindConflictByTerm(probe, m.log_term);
    reply.index = m.index;
    reply.reject = true;
    reply.reject_hint = hint_index;
    reply.log_term = hint_term;
    Send(std::move(reply));
  }

  absl::Status HandleHeartbeat(const Message& m) {
    // The leader sends min(match, commit), which we hold: a larger value
    // means our log lost acknowledged entries or the message is forged.
    if (m.commit > log_.LastIndex()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "heartbeat commit %d beyond our last index %d", m.commit,
          log_.LastIndex()));
    }
    log_.CommitTo(m.commit);
    Message reply;
    reply.type = MessageType::kHeartbeatResponse;
    reply.to = m.from;
    reply.context = m.context;
    reply.index = m.index;  // The leader's send tick (lease).
    Send(std::move(reply));
    return absl::OkStatus();
  }

  // Follower side of a snapshot transfer: accept chunks in order from this
  // term's leader, hand them out, install on the last one.
  void HandleSnapshotChunk(const Message& m) {
    const SnapshotMeta meta{m.index, m.log_term, m.membership, m.snapshot_bytes};
    auto answer_append = [&](Index index) {
      Message reply;
      reply.type = MessageType::kAppendResponse;
      reply.to = m.from;
      reply.index = index;
      Send(std::move(reply));
    };
    auto answer_chunk = [&](uint64_t offset, bool gap) {
      Message reply;
      reply.type = MessageType::kSnapshotResponse;
      reply.to = m.from;
      reply.index = meta.index;
      reply.snapshot_offset = offset;
      reply.reject = gap;
      Send(std::move(reply));
    };
    if (meta.index <= log_.committed()) {
      // We hold all of it already (and the leader thinks otherwise).
      incoming_.reset();
      answer_append(log_.committed());
      return;
    }
    if (log_.MatchTerm(meta.index, meta.term)) {
      // Our log holds the snapshot's last entry, so it matches the leader's
      // up to there, and that entry is committed: no transfer needed.
      incoming_.reset();
      log_.CommitTo(meta.index);
      answer_append(meta.index);
      return;
    }
    const bool same = incoming_.has_value() && incoming_->from == m.from &&
                      incoming_->term == m.term && incoming_->meta == meta;
    if (!same) {
      if (m.snapshot_offset != 0) {
        // A transfer we know nothing of (we restarted, or its first chunk
        // was lost): start over.
        answer_chunk(0, /*gap=*/true);
        return;
      }
      incoming_ = Incoming{m.from, m.term, meta, 0};
    }
    Incoming& in = *incoming_;
    if (m.snapshot_offset > in.next_offset) {
      answer_chunk(in.next_offset, /*gap=*/true);
      return;
    }
    const uint64_t end = m.snapshot_offset + m.data.size();
    // (A new transfer always takes its first chunk, even the empty one of
    // an empty snapshot.)
    if (same && end <= in.next_offset) {
      answer_chunk(in.next_offset, /*gap=*/false);  // A duplicate.
      return;
    }
    if (chunks_.size() >= ChunksPendingMax()) {
      return;  // The driver lags; the leader resends after a stall.
    }
    SnapshotChunk chunk;
    chunk.meta = meta;
    chunk.offset = in.next_offset;
    chunk.data = m.data.substr(in.next_offset - m.snapshot_offset);
    in.next_offset = end;
    chunks_.push_back(std::move(chunk));
    if (in.next_offset < meta.bytes) {
      answer_chunk(in.next_offset, /*gap=*/false);
      return;
    }
    // Complete: install (Ready.snapshot), then acknowledge like an append,
    // in the same Ready, so the answer leaves after the install.
    incoming_.reset();
    chunks_before_install_ = chunks_.size();
    RestoreSnapshot(meta);
    answer_append(meta.index);
  }

  size_t ChunksPendingMax() const {
    return 2 * static_cast<size_t>(config_.snapshot_inflight_chunks_max) + 2;
  }

  void RestoreSnapshot(const SnapshotMeta& meta) {
    DropAcksFrom(meta.index + 1);
    log_.Restore(meta);
    // The log now starts at the snapshot: its membership is the base.
    config_history_.clear();
    config_history_.push_back(ConfigRecord{meta.index, meta.term, meta.membership});
    UpdateMembership();
  }

  absl::Status HandleAppendResponse(const Message& m) {
    Progress* found = FindProgress(m.from);
    if (found == nullptr) return absl::OkStatus();  // Not a member (any more).
    Progress& pr = *found;
    pr.set_recent_active(true);
    if (m.reject) {
      Index next_probe = m.reject_hint;
      if (m.log_term > 0) {
        // Skip our entries of terms the follower cannot hold.
        next_probe = log_.FindConflictByTerm(m.reject_hint, m.log_term).first;
      }
      if (pr.MaybeDecrTo(m.index, next_probe)) {
        if (pr.state() == ProgressState::kReplicate) pr.BecomeProbe();
        SendAppend(m.from, /*send_if_empty=*/true);
      }
      return absl::OkStatus();
    }
    if (m.index > log_.LastIndex()) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "node %d acknowledges index %d beyond our last index %d", m.from,
          m.index, log_.LastIndex()));
    }
    const bool was_paused = pr.IsPaused();
    if (!pr.MaybeUpdate(m.index)) return absl::OkStatus();
    switch (pr.state()) {
      case ProgressState::kProbe:
        pr.BecomeReplicate();
        break;
      case ProgressState::kReplicate:
        pr.FreeInflightsUpTo(m.index);
        break;
      case ProgressState::kSnapshot:
        // Installed (or the follower had the entries after all).
        if (pr.match() >= pr.snapshot().meta().index) pr.BecomeReplicate();
        break;
    }
    if (MaybeCommit() && config_.broadcast_commit) {
      // Tell every follower the new commit index now (see Config).
      BcastAppend();
    } else if (was_paused) {
      SendAppend(m.from, /*send_if_empty=*/true);
    }
    if (role_ != Role::kLeader || FindProgress(m.from) == nullptr) {
      return absl::OkStatus();
    }
    if (m.from == transfer_target_) MaybeSendTimeoutNow();
    // Pipelining: keep the window full.
    while (SendAppend(m.from, /*send_if_empty=*/false)) {
    }
    return absl::OkStatus();
  }

  void HandleHeartbeatResponse(const Message& m) {
    Progress* pr = FindProgress(m.from);
    if (pr == nullptr) return;
    pr->OnHeartbeatResponse();
    if (config_.lease_reads && m.index != 0 && m.index <= ticks_) {
      pr->OnLeaseAck(m.index);
    }
    if (pr->match() < log_.LastIndex()) SendAppend(m.from, true);
    if (m.context == 0) return;
    const std::vector<NodeId>* acks = read_only_.RecvAck(m.from, m.context);
    if (acks == nullptr || VotersAmong(*acks) < Quorum()) return;
    for (ReadOnly::Request& r : read_only_.Advance(m.context)) {
      read_states_.push_back(ReadState{r.index, r.context});
    }
  }

  void HandleSnapshotResponse(const Message& m) {
    Progress* pr = FindProgress(m.from);
    if (pr == nullptr || pr->state() != ProgressState::kSnapshot) return;
    SnapshotTransfer& transfer = pr->snapshot();
    if (m.index != transfer.meta().index) return;  // An older transfer.
    pr->set_recent_active(true);
    if (m.reject) {
      transfer.OnGap(m.snapshot_offset);
    } else {
      transfer.OnAck(m.snapshot_offset);
    }
    SendSnapshotChunks(m.from);
  }

  // ---- Leader helpers ----

  absl::Status CanAppendAsLeader() const {
    if (role_ != Role::kLeader) {
      return absl::FailedPreconditionError("not leader");
    }
    if (transfer_target_ != kNoNode) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "not leader: leadership transfer to %d in progress",
          transfer_target_));
    }
    return absl::OkStatus();
  }

  absl::StatusOr<Index> ProposeEntry(EntryType type, std::string data) {
    Entry entry{term_, log_.LastIndex() + 1, type, std::move(data)};
    const uint64_t size = EntrySizeBytes(entry);
    if (uncommitted_bytes_ > 0 &&
        uncommitted_bytes_ + size > config_.uncommitted_bytes_max) {
      return absl::ResourceExhaustedError(
          "too many uncommitted proposals (uncommitted_bytes_max)");
    }
    uncommitted_.push_back({entry.index, size});
    uncommitted_bytes_ += size;
    const Index index = entry.index;
    AppendAsLeader(std::move(entry));
    BcastAppend();
    Finish();
    CheckInvariants();
    if (!error_.ok()) return error_;
    return index;
  }

  void AppendAsLeader(Entry entry) {
    ABSL_RAW_CHECK(role_ == Role::kLeader, "append as a non-leader");
    ABSL_RAW_CHECK(entry.term == term_ && entry.index == log_.LastIndex() + 1,
                   "leader entry must extend the log in the current term");
    const Index last = log_.Append(absl::MakeConstSpan(&entry, 1));
    // See raft.h: the leader counts itself once it hands out the entry.
    ProgressOf(id_).MaybeUpdate(last);
    // The membership takes effect on append, before counting the quorum.
    if (entry.type == EntryType::kConfig) {
      TrackAppended(absl::MakeConstSpan(&entry, 1), log_.committed());
    }
    MaybeCommit();
  }

  // Advances commit to the highest index held by a quorum of voters, if
  // that entry is of the current term. Returns whether commit moved.
  bool MaybeCommit() {
    std::vector<Index> matches;
    matches.reserve(membership_.voters.size());
    for (NodeId v : membership_.voters) {
      const Progress* pr = FindProgress(v);
      matches.push_back(pr == nullptr ? 0 : pr->match());
    }
    if (matches.empty()) return false;
    std::sort(matches.begin(), matches.end(), std::greater<Index>());
    const Index quorum_index = matches[Quorum() - 1];
    if (!log_.MaybeCommit(quorum_index, term_)) return false;
    OnLeaderCommit();
    return true;
  }

  void OnLeaderCommit() {
    const Index committed = log_.committed();
    while (!uncommitted_.empty() && uncommitted_.front().index <= committed) {
      uncommitted_bytes_ -= uncommitted_.front().bytes;
      uncommitted_.pop_front();
    }
    if (!deferred_reads_.empty() && CommittedInCurrentTerm()) {
      std::vector<uint64_t> reads = std::move(deferred_reads_);
      deferred_reads_.clear();
      for (uint64_t context : reads) StartRead(context);
    }
  }

  bool CommittedInCurrentTerm() const {
    return log_.TermOrZero(log_.committed()) == term_;
  }

  void StartRead(uint64_t context) {
    const Index index = log_.committed();
    const bool alone = membership_.voters.size() == 1 && IsVoter();
    if (alone || LeaseValid()) {
      read_states_.push_back(ReadState{index, context});
      return;
    }
    read_only_.Add(index, context, id_);
    BcastHeartbeat(context);
  }

  // See raft.h, "Leader lease reads".
  bool LeaseValid() const {
    if (!config_.lease_reads || lease_revoked_ || transfer_target_ != kNoNode) {
      return false;
    }
    std::vector<uint64_t> sent_ticks;
    for (NodeId v : membership_.voters) {
      if (v == id_) {
        sent_ticks.push_back(ticks_);  // A leader ignores candidates.
        continue;
      }
      auto it = progress_.find(v);
      if (it != progress_.end() && it->second.lease_ack_tick().has_value()) {
        sent_ticks.push_back(*it->second.lease_ack_tick());
      }
    }
    const size_t quorum = Quorum();
    if (sent_ticks.size() < quorum) return false;
    std::sort(sent_ticks.begin(), sent_ticks.end(), std::greater<uint64_t>());
    const uint64_t quorum_tick = sent_ticks[quorum - 1];
    return ticks_ - quorum_tick <
           static_cast<uint64_t>(config_.election_timeout_ticks -
                                 config_.lease_drift_margin_ticks);
  }

  void BcastAppend() {
    ForEachPeer([&](NodeId peer) { SendAppend(peer, true); });
  }

  void BcastHeartbeat(uint64_t context) {
    ForEachPeer([&](NodeId peer) {
      Message m;
      m.type = MessageType::kHeartbeat;
      m.to = peer;
      // Never more than the follower holds (see HandleHeartbeat).
      m.commit = std::min(ProgressOf(peer).match(), log_.committed());
      m.context = context;
      m.index = config_.lease_reads ? ticks_ : 0;
      Send(std::move(m));
    });
  }

  // Sends the follower's next entries (or an empty append carrying the
  // commit index, if send_if_empty), or snapshot chunks if it needs
  // compacted entries. Returns whether a message was sent.
  bool SendAppend(NodeId to, bool send_if_empty) {
    Progress& pr = ProgressOf(to);
    if (pr.state() == ProgressState::kSnapshot) return SendSnapshotChunks(to);
    if (pr.IsPaused()) return false;
    const Index prev_index = pr.next() - 1;
    absl::StatusOr<Term> prev_term = log_.TermAt(prev_index);
    if (!prev_term.ok()) {
      // Compacted below the follower's next index: only a snapshot helps.
      // (Storage errors are recorded by the log.)
      return absl::IsOutOfRange(prev_term.status()) && StartSnapshot(to);
    }
    std::vector<Entry> entries;
    const Index last = log_.LastIndex();
    if (pr.next() <= last) {
      const Index hi = std::min(
          last + 1, pr.next() + static_cast<Index>(config_.append_entries_max));
      entries = log_.Slice(pr.next(), hi, config_.append_bytes_max);
      if (entries.empty()) return false;  // Storage error.
    }
    if (entries.empty() && !send_if_empty) return false;
    Message m;
    m.type = MessageType::kAppend;
    m.to = to;
    m.index = prev_index;
    m.log_term = *prev_term;
    m.commit = log_.committed();
    const Index sent_last = entries.empty() ? prev_index : entries.back().index;
    pr.SentAppend(sent_last, !entries.empty());
    m.entries = std::move(entries);
    Send(std::move(m));
    return true;
  }

  uint64_t SnapshotWindowBytes() const {
    return config_.snapshot_chunk_bytes *
           static_cast<uint64_t>(config_.snapshot_inflight_chunks_max);
  }

  bool StartSnapshot(NodeId to) {
    const SnapshotMeta snapshot = log_.StorageSnapshot();
    // Without a snapshot covering the compacted entries (a storage without
    // snapshot support) the follower cannot be caught up.
    if (snapshot.index == 0 || snapshot.index + 1 < log_.FirstIndex()) {
      return false;
    }
    ProgressOf(to).BecomeSnapshot(snapshot, SnapshotWindowBytes());
    return SendSnapshotChunks(to);
  }

  // Sends the chunks the transfer's window allows. Returns whether any.
  bool SendSnapshotChunks(NodeId to) {
    Progress& pr = ProgressOf(to);
    bool sent = false;
    bool restarted = false;
    while (pr.state() == ProgressState::kSnapshot && pr.snapshot().CanSend()) {
      SnapshotTransfer& transfer = pr.snapshot();
      const SnapshotMeta& meta = transfer.meta();
      const uint64_t offset = transfer.next_offset();
      const uint64_t bytes =
          std::min(config_.snapshot_chunk_bytes, meta.bytes - offset);
      std::string data;
      if (bytes > 0) {
        absl::StatusOr<std::string> chunk =
            log_.SnapshotChunk(meta.index, offset, bytes);
        if (!chunk.ok()) {
          if (!absl::IsNotFound(chunk.status())) return sent;  // Recorded.
          // Replaced by a newer snapshot: stream that one instead.
          const SnapshotMeta newest = log_.StorageSnapshot();
          if (restarted || newest.index <= meta.index) return sent;
          pr.BecomeSnapshot(newest, SnapshotWindowBytes());
          restarted = true;
          continue;
        }
        ABSL_RAW_CHECK(chunk->size() == bytes,
                       "storage returned a snapshot chunk of the wrong size");
        data = *std::move(chunk);
      }
      Message m;
      m.type = MessageType::kSnapshot;
      m.to = to;
      m.index = meta.index;
      m.log_term = meta.term;
      m.snapshot_offset = offset;
      m.snapshot_bytes = meta.bytes;
      m.membership = meta.membership;
      m.data = std::move(data);
      transfer.Sent(bytes);
      Send(std::move(m));
      sent = true;
    }
    return sent;
  }

  // ---- Leadership transfer ----

  // Sends kTimeoutNow once the target holds the leader's whole log.
  bool MaybeSendTimeoutNow() {
    if (transfer_target_ == kNoNode || timeout_now_sent_) return false;
    const Progress* pr = FindProgress(transfer_target_);
    if (pr == nullptr || pr->match() != log_.LastIndex()) return false;
    SendTimeoutNow(transfer_target_);
    timeout_now_sent_ = true;
    return true;
  }

  void SendTimeoutNow(NodeId to) {
    // The target's campaign bypasses stickiness: our lease means nothing
    // from now on in this term.
    lease_revoked_ = true;
    Message m;
    m.type = MessageType::kTimeoutNow;
    m.to = to;
    Send(std::move(m));
  }

  void AbortTransfer() {
    transfer_target_ = kNoNode;
    transfer_elapsed_ = 0;
    timeout_now_sent_ = false;
  }

  // Our entries from `first_gone` on were just replaced (a conflicting
  // append from a newer leader) or are about to be discarded (a snapshot).
  // Acknowledgements of them queued earlier in this Ready cycle, when they
  // were appended but not yet durable, must not leave: they never will be
  // durable, and the leader of the older term that sent them may still be
  // leading and would count them towards a commit (found by the tools/sim
  // soak: persist-before-send, seed 208319). Dropping an ack is always
  // safe; the leader probes again.
  void DropAcksFrom(Index first_gone) {
    std::erase_if(msgs_, [first_gone](const Message& q) {
      return q.type == MessageType::kAppendResponse && !q.reject && q.index >= first_gone;
    });
  }

  void Send(Message m) {
    m.from = id_;
    const bool carries_own_term =
        m.type == MessageType::kVote || m.type == MessageType::kPreVote ||
        m.type == MessageType::kVoteResponse ||
        m.type == MessageType::kPreVoteResponse;
    if (carries_own_term) {
      ABSL_RAW_CHECK(m.term != 0, "vote message without a term");
    } else {
      m.term = term_;
    }
    ABSL_RAW_CHECK(ValidateMessage(m).ok(), "sending an invalid message");
    msgs_.push_back(std::move(m));
  }

  struct Uncommitted {
    Index index;
    uint64_t bytes;
  };

  const Config config_;
  const NodeId id_;
  RaftLog log_;
  SplitMix64 rng_;

  Term term_ = 0;
  NodeId vote_ = kNoNode;
  NodeId lead_ = kNoNode;
  Role role_ = Role::kFollower;
  int election_elapsed_ = 0;
  int heartbeat_elapsed_ = 0;
  int randomized_election_timeout_ = 0;
  uint64_t ticks_ = 0;  // Every Tick() since Create: the lease clock.

  // Membership: in force at the applied index, the kConfig entries after
  // it in log order, and the active one (the latest).
  Membership applied_membership_;
  std::deque<ConfigRecord> config_history_;
  Membership membership_;

  std::map<NodeId, Progress> progress_;  // Leader: members and itself.
  std::map<NodeId, bool> votes_;         // Candidate: answers of voters.
  ReadOnly read_only_;
  std::vector<uint64_t> deferred_reads_;  // Waiting for a commit this term.
  std::deque<Uncommitted> uncommitted_;   // Own proposals, oldest first.
  uint64_t uncommitted_bytes_ = 0;

  NodeId transfer_target_ = kNoNode;
  int transfer_elapsed_ = 0;
  bool timeout_now_sent_ = false;
  bool lease_revoked_ = false;  // kTimeoutNow sent in this term.
  int lease_grace_ticks_;       // After start: ignore candidates.

  std::optional<Incoming> incoming_;   // Follower: snapshot being received.
  std::vector<SnapshotChunk> chunks_;  // For the next Readys.
  // With a snapshot to install: how many of chunks_ lead up to it.
  size_t chunks_before_install_ = 0;

  std::vector<Message> msgs_;
  std::vector<ReadState> read_states_;
  SoftState prev_soft_;
  HardState prev_hard_;
  Membership prev_membership_;
  bool ready_outstanding_ = false;
  Outstanding outstanding_;
  absl::Status error_;
};

absl::StatusOr<std::unique_ptr<Raft>> Raft::Create(const Config& config,
                                                   const LogStorage* storage) {
  absl::Status valid = ValidateConfig(config);
  if (!valid.ok()) return valid;
  if (storage == nullptr) return absl::InvalidArgumentError("null storage");
  const HardState hs = storage->InitialHardState();
  const Index first = storage->FirstIndex();
  const Index last = storage->LastIndex();
  if (first == 0 || last + 1 < first) {
    return absl::DataLossError(absl::StrFormat(
        "storage reports an impossible log [%d, %d]", first, last));
  }
  if (hs.commit > last) {
    return absl::DataLossError(absl::StrFormat(
        "hard state commit %d beyond the stored log's last index %d",
        hs.commit, last));
  }
  const SnapshotMeta snapshot = storage->LastSnapshot();
  if (snapshot.index > 0) {
    if (snapshot.index + 1 < first) {
      return absl::DataLossError(absl::StrFormat(
          "log compacted up to %d, beyond the snapshot at %d", first - 1,
          snapshot.index));
    }
    absl::StatusOr<Term> term =
        snapshot.index <= last ? storage->TermAt(snapshot.index)
                               : absl::OutOfRangeError("beyond the log");
    if (!term.ok() && !absl::IsOutOfRange(term.status())) return term.status();
    if (!term.ok() || *term != snapshot.term) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "snapshot %d@t%d is not installed in the log [%d, %d]: finish "
          "installing it (reset the log to it) before Create",
          snapshot.index, snapshot.term, first, last));
    }
    absl::Status members = ValidateMembership(snapshot.membership);
    if (!members.ok()) {
      return absl::DataLossError(absl::StrFormat(
          "snapshot membership: %s", members.message()));
    }
  }
  absl::StatusOr<Term> last_term = storage->TermAt(last);
  if (!last_term.ok()) return last_term.status();
  if (*last_term > hs.term) {
    return absl::DataLossError(absl::StrFormat(
        "stored entry of term %d beyond the hard state's term %d", *last_term,
        hs.term));
  }
  // A snapshot holds committed entries only.
  const Index commit = std::max(hs.commit, snapshot.index);
  if (config.applied > commit) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "applied %d beyond the persisted commit %d", config.applied, commit));
  }
  if (config.applied + 1 < first) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "entries (%d, %d) were compacted but are not in the state machine "
        "(install the snapshot's state first)",
        config.applied, first));
  }
  if (config.applied < snapshot.index) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "applied %d below the kept snapshot's index %d: the state machine is "
        "older than the snapshot",
        config.applied, snapshot.index));
  }
  absl::StatusOr<RecoveredMembership> recovered = RecoverMembership(
      *storage, BootstrapMembership(config), snapshot, config.applied);
  if (!recovered.ok()) return recovered.status();
  auto impl = std::make_unique<Impl>(config, storage, hs, commit,
                                     *std::move(recovered));
  return std::unique_ptr<Raft>(new Raft(std::move(impl)));
}

Raft::Raft(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Raft::~Raft() = default;

void Raft::Tick() { impl_->Tick(); }
absl::Status Raft::Step(const Message& message) { return impl_->Step(message); }
absl::StatusOr<Index> Raft::Propose(std::string data) {
  return impl_->Propose(std::move(data));
}
absl::Status Raft::ReadIndex(uint64_t context) {
  return impl_->ReadIndex(context);
}
void Raft::Campaign() { impl_->Campaign(); }
absl::StatusOr<Index> Raft::ProposeMembershipChange(
    const MembershipChange& change) {
  return impl_->ProposeMembershipChange(change);
}
absl::Status Raft::TransferLeadership(NodeId target) {
  return impl_->TransferLeadership(target);
}
bool Raft::HasReady() const { return impl_->HasReady(); }
Ready Raft::GetReady() { return impl_->GetReady(); }
void Raft::Advance(const Ready& ready) { impl_->Advance(ready); }
NodeId Raft::id() const { return impl_->id(); }
Role Raft::role() const { return impl_->role(); }
NodeId Raft::leader() const { return impl_->leader(); }
Term Raft::term() const { return impl_->term(); }
Index Raft::commit_index() const { return impl_->commit_index(); }
Index Raft::applied_index() const { return impl_->applied_index(); }
Index Raft::last_index() const { return impl_->last_index(); }
absl::StatusOr<Term> Raft::TermAt(Index i) const { return impl_->TermAt(i); }
const Membership& Raft::membership() const { return impl_->membership(); }
NodeId Raft::transfer_target() const { return impl_->transfer_target(); }
Index Raft::match_index(NodeId peer) const { return impl_->match_index(peer); }
absl::StatusOr<SnapshotMeta> Raft::SnapshotMetaForApplied() const {
  return impl_->SnapshotMetaForApplied();
}
absl::Status Raft::status() const { return impl_->status(); }
std::string Raft::DebugString() const { return impl_->DebugString(); }

}  // namespace blizzard::consensus
