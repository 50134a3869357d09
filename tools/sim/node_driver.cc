#include "tools/sim/node_driver.h"

#include <algorithm>
#include <utility>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_cat.h"
#include "consensus/codec.h"

namespace blizzard::sim {
namespace {

absl::Span<const uint8_t> AsBytes(const std::string& s) {
  return absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}

// What a write costs in an entry (for batch_bytes_max): its encoding.
uint64_t CommandBytes(const Command& c) {
  return 30 + c.key.size() + c.value.size() + (c.expected ? c.expected->size() + 4 : 0);
}

}  // namespace

NodeDriver::NodeDriver(const DriverOptions& options, SimLogStorage* log, KvStateMachine* sm,
                       SnapshotStore* snapshots, transport::Transport* transport,
                       NodeObserver* observer)
    : options_(options),
      log_(log),
      sm_(sm),
      snapshots_(snapshots),
      transport_(transport),
      observer_(observer) {}

NodeDriver::~NodeDriver() { log_->set_event_hook(nullptr); }

absl::StatusOr<std::unique_ptr<NodeDriver>> NodeDriver::Start(const DriverOptions& options,
                                                              SimLogStorage* log,
                                                              KvStateMachine* sm,
                                                              SnapshotStore* snapshots,
                                                              transport::Transport* transport,
                                                              NodeObserver* observer) {
  if (log == nullptr || sm == nullptr || transport == nullptr || observer == nullptr) {
    return absl::InvalidArgumentError("null dependency");
  }
  if (options.batch_commands_max == 0 || options.batch_commands_max > kBatchCommandsMax ||
      options.pending_requests_max == 0 || options.ready_rounds_max <= 0) {
    return absl::InvalidArgumentError("driver limits must be positive (and batches <= 4096)");
  }
  consensus::Config config = options.raft;
  config.id = options.id;
  config.voters = options.members;
  config.applied = sm->applied_index();
  absl::StatusOr<std::unique_ptr<consensus::Raft>> raft = consensus::Raft::Create(config, log);
  const consensus::SnapshotMeta snapshot = log->LastSnapshot();
  if (absl::IsFailedPrecondition(raft.status()) && snapshot.index > 0) {
    // A crash between making the snapshot the state machine and resetting
    // the log to it: finish the install (consensus/raft.h, "Snapshots").
    absl::StatusOr<consensus::Term> t = log->TermAt(snapshot.index);
    if (!t.ok() || *t != snapshot.term) {
      if (absl::Status s = log->ResetTo(snapshot.index, snapshot.term); !s.ok()) return s;
      raft = consensus::Raft::Create(config, log);
    }
  }
  if (!raft.ok()) return raft.status();
  auto driver =
      std::unique_ptr<NodeDriver>(new NodeDriver(options, log, sm, snapshots, transport, observer));
  driver->raft_ = std::move(*raft);
  NodeDriver* d = driver.get();
  log->set_event_hook([d](uint64_t) { d->CrashEvent(); });
  return driver;
}

void NodeDriver::ArmCrash(uint64_t events, pmemlog::CrashMode mode) {
  ABSL_RAW_CHECK(events >= 1, "a crash point needs at least one event");
  ABSL_RAW_CHECK(!crash_.fired, "the node already crashed");
  crash_.armed = true;
  crash_.remaining = events;
  crash_.mode = mode;
}

bool NodeDriver::CrashEvent() {
  if (!crash_.armed || crash_.fired) return crash_.fired;
  if (--crash_.remaining > 0) return false;
  crash_.fired = true;
  crash_.image = log_->CrashImage(crash_.mode);
  return true;
}

std::vector<uint8_t> NodeDriver::TakeCrashImage() {
  ABSL_RAW_CHECK(crash_.fired, "no crash happened");
  return std::move(crash_.image);
}

absl::Status NodeDriver::Fatal(absl::Status status) {
  if (fatal_.ok()) fatal_ = std::move(status);
  return fatal_;
}

absl::Status NodeDriver::Iterate(int ticks) {
  ABSL_RAW_CHECK(!crash_.fired, "a crashed node must not run");
  if (!fatal_.ok()) return fatal_;
  if (options_.tick_before_poll) {
    for (int t = 0; t < ticks; ++t) raft_->Tick();
  }
  for (int round = 0; round < options_.ready_rounds_max; ++round) {
    if (absl::Status s = transport_->Poll(
            [this](transport::NodeId from, absl::Span<const uint8_t> bytes) {
              if (!crash_.fired) OnMessage(from, bytes);
            });
        !s.ok()) {
      return Fatal(s);
    }
    if (crash_.fired) return absl::AbortedError("crashed");
    if (round == 0 && !options_.tick_before_poll) {
      // As the server: time advances only after what peers sent was taken in.
      for (int t = 0; t < ticks; ++t) raft_->Tick();
    }
    FlushWriteBatch();
    IssueReads();
    if (crash_.fired) return absl::AbortedError("crashed");
    if (!raft_->status().ok()) {
      return Fatal(absl::Status(raft_->status().code(),
                                absl::StrCat("consensus stopped: ", raft_->status().message())));
    }
    if (!raft_->HasReady()) break;
    if (absl::Status s = ProcessReady(); !s.ok()) return s;
  }
  ServeReads();
  if (crash_.fired) return absl::AbortedError("crashed");
  return absl::OkStatus();
}

void NodeDriver::OnMessage(transport::NodeId from, absl::Span<const uint8_t> bytes) {
  if (from < options_.client_id_min) {
    absl::StatusOr<consensus::Message> m = consensus::DecodeMessage(bytes);
    // The transport names the sender; a message claiming another is forged.
    if (!m.ok() || m->from != from || m->to != options_.id) {
      ++stats_.malformed_messages;
      return;
    }
    observer_->OnReceive(options_.id, *m);
    if (!raft_->Step(*m).ok()) ++stats_.malformed_messages;
    return;
  }
  absl::StatusOr<Command> c = DecodeRequest(bytes);
  if (!c.ok() || c->client != from) {
    ++stats_.malformed_messages;
    return;
  }
  observer_->OnClientRequest(options_.id, *c);
  HandleRequest(from, std::move(*c));
}

uint64_t NodeDriver::LeaderHint() const {
  const consensus::NodeId leader = raft_->leader();
  return leader == options_.id ? 0 : leader;
}

void NodeDriver::HandleRequest(uint64_t from, Command command) {
  if (pending_ >= options_.pending_requests_max) {
    Reject(from, command.seq, ReplyStatus::kBusy);
    return;
  }
  if (raft_->role() != consensus::Role::kLeader) {
    Reject(from, command.seq, ReplyStatus::kNotLeader);
    return;
  }
  const Waiter waiter{from, command.seq};
  if (command.kind == OpKind::kGet) {
    ++pending_;
    if (options_.bugs.reads_without_read_index) {
      ++stats_.reads_served;
      Answer(waiter, ReplyStatus::kOk, sm_->Read(command.key));
      return;
    }
    new_reads_.push_back(PendingRead{waiter, std::move(command.key)});
    return;
  }
  // The session table answers retries of requests already applied here.
  if (const SessionRecord* s = sm_->FindSession(command.client);
      s != nullptr && command.seq <= s->last_seq) {
    ++stats_.commands_deduplicated;
    if (command.seq == s->last_seq) {
      ++pending_;
      Answer(waiter, ReplyStatus::kOk, s->result);
    } else {
      Reject(from, command.seq, ReplyStatus::kStale);
    }
    return;
  }
  const uint64_t bytes = CommandBytes(command);
  if (!batch_.empty() && (batch_.size() >= options_.batch_commands_max ||
                          batch_bytes_ + bytes > options_.batch_bytes_max)) {
    FlushWriteBatch();
  }
  ++pending_;
  batch_.push_back(std::move(command));
  batch_waiters_.push_back(waiter);
  batch_bytes_ += bytes;
}

void NodeDriver::FlushWriteBatch() {
  if (batch_.empty()) return;
  std::vector<Command> commands = std::move(batch_);
  std::vector<Waiter> waiters = std::move(batch_waiters_);
  batch_.clear();
  batch_waiters_.clear();
  batch_bytes_ = 0;
  absl::StatusOr<consensus::Index> index = absl::FailedPreconditionError("not leader");
  if (raft_->role() == consensus::Role::kLeader) index = raft_->Propose(EncodeBatch(commands));
  if (!index.ok()) {
    const ReplyStatus status = absl::IsFailedPrecondition(index.status()) ? ReplyStatus::kNotLeader
                                                                          : ReplyStatus::kBusy;
    for (const Waiter& w : waiters) Answer(w, status);
    return;
  }
  ++stats_.proposals;
  // Within one leadership indices only grow; losing it clears proposals_.
  ABSL_RAW_CHECK(proposals_.empty() || proposals_.rbegin()->first < *index,
                 "a proposal at or below a pending one");
  last_proposed_index_ = *index;
  Proposal& p = proposals_[*index];
  p.term = raft_->term();
  p.waiters = std::move(waiters);
}

void NodeDriver::IssueReads() {
  if (new_reads_.empty()) return;
  const uint64_t context = next_read_context_++;
  const absl::Status s = raft_->role() == consensus::Role::kLeader
                             ? raft_->ReadIndex(context)
                             : absl::FailedPreconditionError("not leader");
  if (!s.ok()) {
    const ReplyStatus status =
        absl::IsFailedPrecondition(s) ? ReplyStatus::kNotLeader : ReplyStatus::kBusy;
    for (const PendingRead& r : new_reads_) Answer(r.waiter, status);
    new_reads_.clear();
    return;
  }
  // As the server: a read also waits for every write proposed before it.
  ReadGroup& group = reads_by_context_[context];
  group.index = last_proposed_index_;
  group.reads = std::move(new_reads_);
  new_reads_.clear();
}

absl::Status NodeDriver::ProcessReady() {
  consensus::Ready ready = raft_->GetReady();
  if (ready.soft_state.has_value()) {
    const bool was_leader = soft_state_.role == consensus::Role::kLeader;
    soft_state_ = *ready.soft_state;
    observer_->OnSoftState(options_.id, soft_state_, raft_->term());
    // Pending writes may or may not commit under the next leader: their
    // clients must not take them as acknowledged (nor as failed).
    if (was_leader && soft_state_.role != consensus::Role::kLeader) FailAllPending();
    if (crash_.fired) return absl::AbortedError("crashed");
  }
  if (options_.bugs.send_before_persist && !SendMessages(ready.messages)) {
    return absl::AbortedError("crashed");
  }
  // 1-2. Snapshot chunks, then the install, durable before the rest. A new
  // term goes first: the snapshot's last entry may be of that term.
  StageChunks(ready.snapshot_chunks);
  if (ready.snapshot.has_value()) {
    if (ready.hard_state.has_value()) {
      if (absl::Status s = log_->PersistTermAndVote(*ready.hard_state); !s.ok()) return Fatal(s);
      if (crash_.fired) return absl::AbortedError("crashed");
    }
    if (absl::Status s = InstallSnapshot(*ready.snapshot); !s.ok()) return s;
  }
  // 3. Entries and hard state.
  observer_->OnPersist(options_.id, ready.entries, ready.hard_state, *log_);
  // Persist BEFORE sending: a vote or an acknowledgement must be durable.
  const absl::Status persisted = log_->Persist(ready.entries, ready.hard_state);
  if (crash_.fired) return absl::AbortedError("crashed");
  if (!persisted.ok()) {
    return Fatal(absl::Status(persisted.code(), absl::StrCat("persisting the Raft log failed: ",
                                                             persisted.message())));
  }
  if (!options_.bugs.send_before_persist && !SendMessages(ready.messages)) {
    return absl::AbortedError("crashed");
  }
  for (const consensus::Entry& e : ready.committed) {
    if (CrashEvent()) return absl::AbortedError("crashed");
    if (absl::Status s = ApplyCommitted(e); !s.ok()) return Fatal(s);
  }
  for (const consensus::ReadState& rs : ready.read_states) {
    auto it = reads_by_context_.find(rs.context);
    if (it == reads_by_context_.end()) continue;
    ReadGroup group = std::move(it->second);
    reads_by_context_.erase(it);
    group.index = std::max(group.index, rs.index);
    confirmed_reads_.push_back(std::move(group));
  }
  raft_->Advance(ready);
  return MaybeCompact();
}

void NodeDriver::StageChunks(const std::vector<consensus::SnapshotChunk>& chunks) {
  for (const consensus::SnapshotChunk& c : chunks) {
    if (c.offset == 0) {
      staging_ = true;
      staged_meta_ = c.meta;
      staged_ = c.data;
      continue;
    }
    // Raft hands chunks out in order, each once (consensus/raft.h).
    ABSL_RAW_CHECK(staging_ && staged_meta_ == c.meta && staged_.size() == c.offset,
                   "a snapshot chunk that does not follow the staged bytes");
    staged_ += c.data;
  }
}

absl::Status NodeDriver::InstallSnapshot(const consensus::SnapshotMeta& meta) {
  if (snapshots_ == nullptr) {
    return Fatal(absl::FailedPreconditionError("a snapshot arrived at a node without a store"));
  }
  ABSL_RAW_CHECK(staging_ && staged_meta_ == meta && staged_.size() == meta.bytes,
                 "installing a snapshot that was not fully staged");
  // The state machine and the store change together (one durable step, as
  // a rename would), then the log is reset to the snapshot.
  if (CrashEvent()) return absl::AbortedError("crashed");
  if (absl::Status s = sm_->Restore(staged_); !s.ok()) {
    return Fatal(absl::DataLossError(absl::StrCat("snapshot ", meta.index, ": ", s.message())));
  }
  if (sm_->applied_index() != meta.index) {
    return Fatal(absl::DataLossError(absl::StrCat("snapshot ", meta.index, " holds applied index ",
                                                  sm_->applied_index())));
  }
  snapshots_->meta = meta;
  snapshots_->data = std::move(staged_);
  staged_.clear();
  staging_ = false;
  ++stats_.snapshots_installed;
  observer_->OnSnapshotInstalled(options_.id, meta, *sm_);
  const absl::Status reset = log_->ResetTo(meta.index, meta.term);
  if (crash_.fired) return absl::AbortedError("crashed");
  if (!reset.ok()) return Fatal(reset);
  return absl::OkStatus();
}

absl::Status NodeDriver::MaybeCompact() {
  if (snapshots_ == nullptr || options_.compact_every_entries == 0 ||
      sm_->applied_index() < snapshots_->meta.index + options_.compact_every_entries) {
    return absl::OkStatus();
  }
  absl::StatusOr<consensus::SnapshotMeta> meta = raft_->SnapshotMetaForApplied();
  if (!meta.ok()) return absl::OkStatus();  // E.g. a joining node: later.
  ABSL_RAW_CHECK(meta->index == sm_->applied_index(), "snapshot and state machine disagree");
  if (CrashEvent()) return absl::AbortedError("crashed");
  snapshots_->data = sm_->Serialize();
  meta->bytes = snapshots_->data.size();
  snapshots_->meta = *meta;
  const consensus::Index keep = std::min(options_.compact_keep_entries, meta->index);
  const consensus::Index upto = meta->index + 1 - keep;
  if (upto > log_->FirstIndex()) {
    const absl::Status s = log_->Compact(upto);
    if (crash_.fired) return absl::AbortedError("crashed");
    if (!s.ok()) return Fatal(s);
  }
  ++stats_.compactions;
  observer_->OnCompacted(options_.id, *meta, log_->FirstIndex());
  return absl::OkStatus();
}

bool NodeDriver::SendMessages(const std::vector<consensus::Message>& messages) {
  for (const consensus::Message& m : messages) {
    if (CrashEvent()) return false;
    observer_->OnSend(options_.id, m, *log_);
    const std::string bytes = consensus::EncodeMessage(m);
    // A full link or a dead peer is a lost message; Raft retries.
    (void)transport_->Send(m.to, AsBytes(bytes));
  }
  return true;
}

absl::Status NodeDriver::ApplyCommitted(const consensus::Entry& entry) {
  if (entry.index <= sm_->applied_index()) return absl::OkStatus();
  absl::StatusOr<std::vector<AppliedCommand>> applied = sm_->Apply(entry);
  if (!applied.ok()) {
    return absl::Status(applied.status().code(),
                        absl::StrCat("applying entry ", entry.index, ": ",
                                     applied.status().message()));
  }
  ++stats_.entries_applied;
  for (const AppliedCommand& a : *applied) {
    if (a.outcome == ApplyOutcome::kExecuted) ++stats_.commands_executed;
  }
  observer_->OnApplied(options_.id, entry, *applied, *sm_);

  // Answer the clients of our proposal at this index, if it is still ours;
  // a proposal at this index from another term was overwritten.
  while (!proposals_.empty() && proposals_.begin()->first <= entry.index) {
    auto it = proposals_.begin();
    Proposal p = std::move(it->second);
    const bool ours = it->first == entry.index && p.term == entry.term &&
                      p.waiters.size() == applied->size();
    proposals_.erase(it);
    for (size_t i = 0; i < p.waiters.size(); ++i) {
      if (!ours) {
        Answer(p.waiters[i], ReplyStatus::kUnknown);
        continue;
      }
      const AppliedCommand& a = (*applied)[i];
      ABSL_RAW_CHECK(a.command.client == p.waiters[i].client && a.command.seq == p.waiters[i].seq,
                     "proposal and entry disagree on a command");
      if (a.outcome == ApplyOutcome::kStale) {
        Answer(p.waiters[i], ReplyStatus::kStale);
      } else {
        Answer(p.waiters[i], ReplyStatus::kOk, a.result);
      }
    }
  }
  return absl::OkStatus();
}

void NodeDriver::ServeReads() {
  if (crash_.fired) return;
  while (!confirmed_reads_.empty() && confirmed_reads_.front().index <= sm_->applied_index()) {
    ReadGroup group = std::move(confirmed_reads_.front());
    confirmed_reads_.pop_front();
    for (const PendingRead& r : group.reads) {
      ++stats_.reads_served;
      Answer(r.waiter, ReplyStatus::kOk, sm_->Read(r.key));
    }
  }
}

void NodeDriver::FailAllPending() {
  ++stats_.leadership_losses;
  for (auto& [index, p] : proposals_) {
    for (const Waiter& w : p.waiters) Answer(w, ReplyStatus::kUnknown);
  }
  proposals_.clear();
  for (auto& [context, group] : reads_by_context_) {
    for (const PendingRead& r : group.reads) Answer(r.waiter, ReplyStatus::kUnknown);
  }
  reads_by_context_.clear();
  for (ReadGroup& group : confirmed_reads_) {
    for (const PendingRead& r : group.reads) Answer(r.waiter, ReplyStatus::kUnknown);
  }
  confirmed_reads_.clear();
  last_proposed_index_ = 0;
}

void NodeDriver::Answer(const Waiter& w, ReplyStatus status, const CommandResult& result) {
  ABSL_RAW_CHECK(pending_ > 0, "an answer without a pending request");
  --pending_;
  SendReply(Reply{w.client, w.seq, status, status == ReplyStatus::kNotLeader ? LeaderHint() : 0,
                  result});
}

void NodeDriver::Reject(uint64_t client, uint64_t seq, ReplyStatus status) {
  SendReply(Reply{client, seq, status, status == ReplyStatus::kNotLeader ? LeaderHint() : 0, {}});
}

void NodeDriver::SendReply(const Reply& reply) {
  if (CrashEvent()) return;
  ++stats_.replies;
  observer_->OnClientReply(options_.id, reply);
  (void)transport_->Send(reply.client, AsBytes(EncodeReply(reply)));
}

}  // namespace blizzard::sim
