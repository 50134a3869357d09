#include "consensus/raft.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <utility>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_format.h"
#include "consensus/prng.h"
#include "consensus/progress.h"
#include "consensus/raft_log.h"
#include "consensus/read_only.h"

namespace blizzard::consensus {

namespace {

// Far beyond any sensible Raft group; keeps per-voter vectors small.
constexpr size_t kVotersMax = 255;
constexpr int kInflightAppendsMax = 1 << 16;

enum class VoteResult { kPending, kWon, kLost };

absl::Status ValidateConfig(const Config& c) {
  if (c.id == kNoNode) return absl::InvalidArgumentError("config: id is 0");
  if (c.voters.empty() || c.voters.size() > kVotersMax) {
    return absl::InvalidArgumentError(
        absl::StrFormat("config: %d voters, need 1..%d", c.voters.size(),
                        kVotersMax));
  }
  std::vector<NodeId> sorted = c.voters;
  std::sort(sorted.begin(), sorted.end());
  if (sorted.front() == kNoNode) {
    return absl::InvalidArgumentError("config: voter id 0");
  }
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    return absl::InvalidArgumentError("config: duplicate voter");
  }
  if (!std::binary_search(sorted.begin(), sorted.end(), c.id)) {
    return absl::InvalidArgumentError("config: id is not among the voters");
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
  return absl::OkStatus();
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
  Impl(const Config& config, const LogStorage* storage, const HardState& hs)
      : config_(config),
        id_(config.id),
        voters_(config.voters),
        quorum_(config.voters.size() / 2 + 1),
        log_(storage, hs.commit, config.applied),
        // Mix the node id in so that nodes given the same seed still draw
        // different timeouts.
        rng_(config.random_seed ^ (config.id * 0x9e3779b97f4a7c15ull)) {
    std::sort(voters_.begin(), voters_.end());
    progress_.reserve(voters_.size());
    for (size_t i = 0; i < voters_.size(); ++i) {
      progress_.emplace_back(config.inflight_appends_max);
    }
    votes_.assign(voters_.size(), kNotVoted);
    term_ = hs.term;
    vote_ = hs.vote;
    BecomeFollower(term_, kNoNode);
    prev_hard_ = CurrentHardState();
    prev_soft_ = SoftState{lead_, role_};
  }

  // ---- Inputs ----

  void Tick() {
    if (!error_.ok()) return;
    if (role_ == Role::kLeader) {
      TickLeader();
    } else {
      TickElection();
    }
    CheckStorage();
  }

  absl::Status Step(const Message& m) {
    if (!error_.ok()) return error_;
    absl::Status valid = ValidateMessage(m);
    if (!valid.ok()) return valid;
    if (m.to != id_) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "message for node %d delivered to node %d", m.to, id_));
    }
    if (VoterSlot(m.from) < 0) {
      return absl::InvalidArgumentError(
          absl::StrFormat("message from unknown node %d", m.from));
    }
    absl::Status status = StepChecked(m);
    CheckStorage();
    CheckInvariants();
    if (!error_.ok()) return error_;
    return status;
  }

  absl::StatusOr<Index> Propose(std::string data) {
    if (!error_.ok()) return error_;
    if (role_ != Role::kLeader) {
      return absl::FailedPreconditionError("not leader");
    }
    if (data.size() > config_.proposal_bytes_max) {
      return absl::InvalidArgumentError(
          absl::StrFormat("proposal of %d bytes exceeds proposal_bytes_max %d",
                          data.size(), config_.proposal_bytes_max));
    }
    Entry entry{term_, log_.LastIndex() + 1, EntryType::kNormal,
                std::move(data)};
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
    CheckStorage();
    CheckInvariants();
    if (!error_.ok()) return error_;
    return index;
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
    CheckStorage();
    return error_;
  }

  void Campaign() {
    if (!error_.ok()) return;
    Hup();
    CheckStorage();
  }

  // ---- Outputs ----

  bool HasReady() const {
    if (!error_.ok()) return false;
    return SoftState{lead_, role_} != prev_soft_ ||
           CurrentHardState() != prev_hard_ || log_.HasEntriesToPersist() ||
           !msgs_.empty() || log_.HasEntriesToApply() ||
           !read_states_.empty();
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
    ABSL_RAW_CHECK(entry_index == outstanding_.last_entry_index &&
                       entry_term == outstanding_.last_entry_term &&
                       committed_index == outstanding_.last_committed_index,
                   "Advance given a Ready other than the last GetReady's");
    if (entry_index != 0) log_.StableTo(entry_index, entry_term);
    if (committed_index != 0) log_.AppliedTo(committed_index);
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
  absl::Status status() const { return error_; }

  std::string DebugString() const {
    return absl::StrFormat(
        "node=%d role=%s term=%d vote=%d leader=%d last=%d commit=%d "
        "applied=%d%s",
        id_, RoleName(role_), term_, vote_, lead_, log_.LastIndex(),
        log_.committed(), log_.applied(),
        error_.ok() ? "" : " error=" + error_.ToString());
  }

 private:
  static constexpr int8_t kNotVoted = -1;

  struct Outstanding {
    Index last_entry_index = 0;
    Term last_entry_term = 0;
    Index last_committed_index = 0;
  };

  HardState CurrentHardState() const {
    return HardState{term_, vote_, log_.committed()};
  }

  int VoterSlot(NodeId id) const {
    auto it = std::lower_bound(voters_.begin(), voters_.end(), id);
    if (it == voters_.end() || *it != id) return -1;
    return static_cast<int>(it - voters_.begin());
  }

  Progress& ProgressOf(NodeId id) {
    const int slot = VoterSlot(id);
    ABSL_RAW_CHECK(slot >= 0, "progress of a non-voter");
    return progress_[static_cast<size_t>(slot)];
  }

  template <typename Fn>
  void ForEachPeer(Fn&& fn) {
    for (NodeId peer : voters_) {
      if (peer != id_) fn(peer);
    }
  }

  void CheckStorage() {
    if (error_.ok() && !log_.storage_error().ok()) {
      error_ = log_.storage_error();
      // Nothing computed from unreadable data may leave.
      msgs_.clear();
      read_states_.clear();
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
    std::fill(votes_.begin(), votes_.end(), kNotVoted);
    const Index last = log_.LastIndex();
    for (size_t i = 0; i < voters_.size(); ++i) {
      if (voters_[i] == id_) {
        progress_[i].ResetAsSelf(last);
      } else {
        progress_[i].Reset(last);
      }
    }
    read_only_.Reset();
    deferred_reads_.clear();
    uncommitted_.clear();
    uncommitted_bytes_ = 0;
  }

  void BecomeFollower(Term term, NodeId lead) {
    Reset(term);
    lead_ = lead;
    role_ = Role::kFollower;
  }

  void BecomePreCandidate() {
    ABSL_RAW_CHECK(role_ != Role::kLeader, "leader cannot pre-campaign");
    // Unlike Reset: term and vote stay, the node is only asking.
    std::fill(votes_.begin(), votes_.end(), kNotVoted);
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
    // Entries of earlier terms commit only under an entry of this term
    // (Raft 5.4.2); the no-op provides one without waiting for a client.
    AppendAsLeader(Entry{term_, log_.LastIndex() + 1, EntryType::kNoop, {}});
  }

  // ---- Elections ----

  void TickElection() {
    ++election_elapsed_;
    if (election_elapsed_ >= randomized_election_timeout_) {
      election_elapsed_ = 0;
      Hup();
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
        for (size_t i = 0; i < voters_.size(); ++i) {
          progress_[i].set_recent_active(voters_[i] == id_);
        }
      }
    }
    if (heartbeat_elapsed_ >= config_.heartbeat_interval_ticks) {
      heartbeat_elapsed_ = 0;
      BcastHeartbeat(read_only_.LastPendingContext());
    }
  }

  bool QuorumActive() const {
    size_t active = 0;
    for (size_t i = 0; i < voters_.size(); ++i) {
      if (voters_[i] == id_ || progress_[i].recent_active()) ++active;
    }
    return active >= quorum_;
  }

  void Hup() {
    if (role_ == Role::kLeader) return;
    if (config_.pre_vote) {
      StartCampaign(/*pre=*/true);
    } else {
      StartCampaign(/*pre=*/false);
    }
  }

  void StartCampaign(bool pre) {
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
    ForEachPeer([&](NodeId peer) {
      Message m;
      m.type = type;
      m.to = peer;
      m.term = campaign_term;
      m.index = last_index;
      m.log_term = last_term;
      Send(std::move(m));
    });
  }

  void OnElectionWon(bool pre) {
    if (pre) {
      StartCampaign(/*pre=*/false);
    } else {
      BecomeLeader();
      BcastAppend();
    }
  }

  VoteResult Poll(NodeId from, bool granted) {
    const size_t slot = static_cast<size_t>(VoterSlot(from));
    if (votes_[slot] == kNotVoted) votes_[slot] = granted ? 1 : 0;
    size_t yes = 0;
    size_t no = 0;
    for (int8_t v : votes_) {
      if (v == 1) ++yes;
      if (v == 0) ++no;
    }
    if (yes >= quorum_) return VoteResult::kWon;
    if (no > voters_.size() - quorum_) return VoteResult::kLost;
    return VoteResult::kPending;
  }

  // ---- Message handling ----

  absl::Status StepChecked(const Message& m) {
    if (m.term > term_) {
      const bool is_vote_request =
          m.type == MessageType::kVote || m.type == MessageType::kPreVote;
      if (is_vote_request && config_.check_quorum && lead_ != kNoNode &&
          election_elapsed_ < config_.election_timeout_ticks) {
        // Leader stickiness: we heard from a live leader within the minimum
        // election timeout, so this candidate is disruptive; ignore it
        // without adopting its term.
        return absl::OkStatus();
      }
      if (m.type == MessageType::kPreVote) {
        // Pre-votes do not change anyone's term.
      } else if (m.type == MessageType::kPreVoteResponse && !m.reject) {
        // Granted pre-votes carry the term we asked about, term + 1.
      } else if (m.type == MessageType::kAppend ||
                 m.type == MessageType::kHeartbeat) {
        BecomeFollower(m.term, m.from);
      } else {
        BecomeFollower(m.term, kNoNode);
      }
    } else if (m.term < term_) {
      if ((config_.check_quorum || config_.pre_vote) &&
          (m.type == MessageType::kAppend ||
           m.type == MessageType::kHeartbeat)) {
        // A leader of an older term. With check_quorum/pre_vote we may never
        // send it a vote request of our term, so tell it our term now or it
        // would stay a leader forever (etcd does the same).
        Message reply;
        reply.type = MessageType::kAppendResponse;
        reply.to = m.from;
        Send(std::move(reply));
      } else if (m.type == MessageType::kPreVote) {
        // Reject so the pre-candidate learns our term and stops waiting.
        Message reply;
        reply.type = MessageType::kPreVoteResponse;
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
      case MessageType::kAppend:
      case MessageType::kHeartbeat:
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
    switch (m.type) {
      case MessageType::kAppend:
      case MessageType::kHeartbeat:
        // A leader of our term (or, pre-candidate, of the term we are in)
        // exists: stop campaigning.
        BecomeFollower(m.term, m.from);
        return StepFollower(m);
      default:
        break;
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
    if (m.type != MessageType::kAppend && m.type != MessageType::kHeartbeat) {
      return absl::OkStatus();
    }
    if (lead_ != kNoNode && lead_ != m.from) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "node %d claims leadership of term %d, which node %d holds", m.from,
          m.term, lead_));
    }
    election_elapsed_ = 0;
    lead_ = m.from;
    if (m.type == MessageType::kAppend) {
      HandleAppend(m);
      return absl::OkStatus();
    }
    return HandleHeartbeat(m);
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
    std::optional<Index> last_new =
        log_.MaybeAppend(m.index, m.log_term, m.commit, m.entries);
    if (last_new.has_value()) {
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
    Send(std::move(reply));
    return absl::OkStatus();
  }

  absl::Status HandleAppendResponse(const Message& m) {
    Progress& pr = ProgressOf(m.from);
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
    if (pr.state() == ProgressState::kProbe) {
      pr.BecomeReplicate();
    } else {
      pr.FreeInflightsUpTo(m.index);
    }
    if (MaybeCommit() && config_.broadcast_commit) {
      // Tell every follower the new commit index now (see Config).
      BcastAppend();
    } else if (was_paused) {
      SendAppend(m.from, /*send_if_empty=*/true);
    }
    // Pipelining: keep the window full.
    while (SendAppend(m.from, /*send_if_empty=*/false)) {
    }
    return absl::OkStatus();
  }

  void HandleHeartbeatResponse(const Message& m) {
    Progress& pr = ProgressOf(m.from);
    pr.OnHeartbeatResponse();
    if (pr.match() < log_.LastIndex()) SendAppend(m.from, true);
    if (m.context == 0) return;
    if (read_only_.RecvAck(m.from, m.context) < quorum_) return;
    for (ReadOnly::Request& r : read_only_.Advance(m.context)) {
      read_states_.push_back(ReadState{r.index, r.context});
    }
  }

  // ---- Leader helpers ----

  void AppendAsLeader(Entry entry) {
    ABSL_RAW_CHECK(role_ == Role::kLeader, "append as a non-leader");
    ABSL_RAW_CHECK(entry.term == term_ && entry.index == log_.LastIndex() + 1,
                   "leader entry must extend the log in the current term");
    const Index last = log_.Append(absl::MakeConstSpan(&entry, 1));
    // See raft.h: the leader counts itself once it hands out the entry.
    ProgressOf(id_).MaybeUpdate(last);
    MaybeCommit();
  }

  // Advances commit to the highest index held by a quorum, if that entry is
  // of the current term. Returns whether commit moved.
  bool MaybeCommit() {
    std::vector<Index> matches;
    matches.reserve(voters_.size());
    for (const Progress& pr : progress_) matches.push_back(pr.match());
    std::sort(matches.begin(), matches.end(), std::greater<Index>());
    const Index quorum_index = matches[quorum_ - 1];
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
    if (voters_.size() == 1) {
      read_states_.push_back(ReadState{index, context});
      return;
    }
    read_only_.Add(index, context, id_);
    BcastHeartbeat(context);
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
      Send(std::move(m));
    });
  }

  // Sends the follower's next entries (or an empty append carrying the
  // commit index, if send_if_empty). Returns whether a message was sent.
  bool SendAppend(NodeId to, bool send_if_empty) {
    Progress& pr = ProgressOf(to);
    if (pr.IsPaused()) return false;
    const Index prev_index = pr.next() - 1;
    absl::StatusOr<Term> prev_term = log_.TermAt(prev_index);
    if (!prev_term.ok()) {
      // Compacted below the follower's next index: only a snapshot could
      // help, and this version has none (see README). Storage errors are
      // recorded by the log.
      return false;
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
  std::vector<NodeId> voters_;  // Sorted; slots index progress_/votes_.
  const size_t quorum_;
  RaftLog log_;
  SplitMix64 rng_;

  Term term_ = 0;
  NodeId vote_ = kNoNode;
  NodeId lead_ = kNoNode;
  Role role_ = Role::kFollower;
  int election_elapsed_ = 0;
  int heartbeat_elapsed_ = 0;
  int randomized_election_timeout_ = 0;

  std::vector<Progress> progress_;
  std::vector<int8_t> votes_;  // kNotVoted, 0 (rejected), 1 (granted).
  ReadOnly read_only_;
  std::vector<uint64_t> deferred_reads_;  // Waiting for a commit this term.
  std::deque<Uncommitted> uncommitted_;   // Own proposals, oldest first.
  uint64_t uncommitted_bytes_ = 0;

  std::vector<Message> msgs_;
  std::vector<ReadState> read_states_;
  SoftState prev_soft_;
  HardState prev_hard_;
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
  if (hs.vote != kNoNode &&
      std::find(config.voters.begin(), config.voters.end(), hs.vote) ==
          config.voters.end()) {
    return absl::DataLossError(
        absl::StrFormat("hard state votes for unknown node %d", hs.vote));
  }
  absl::StatusOr<Term> last_term = storage->TermAt(last);
  if (!last_term.ok()) return last_term.status();
  if (*last_term > hs.term) {
    return absl::DataLossError(absl::StrFormat(
        "stored entry of term %d beyond the hard state's term %d", *last_term,
        hs.term));
  }
  if (config.applied > hs.commit) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "applied %d beyond the persisted commit %d", config.applied,
        hs.commit));
  }
  if (config.applied + 1 < first) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "entries (%d, %d) were compacted but not applied (no snapshots)",
        config.applied, first));
  }
  auto impl = std::make_unique<Impl>(config, storage, hs);
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
absl::Status Raft::status() const { return impl_->status(); }
std::string Raft::DebugString() const { return impl_->DebugString(); }

}  // namespace blizzard::consensus
