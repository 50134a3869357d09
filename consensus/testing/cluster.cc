#include "consensus/testing/cluster.h"

#include <algorithm>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "consensus/codec.h"
#include "consensus/testing/trace.h"

namespace blizzard::consensus::testing {

namespace {

// A run that delivers more than this within one tick (or one Stabilize) is
// livelocked: a bug, reported as a violation rather than a hang. Healthy
// clusters of a few nodes deliver at most a few thousand per tick.
constexpr uint64_t kDeliveriesPerRoundMax = 100000;

}  // namespace

Cluster::Cluster(const ClusterOptions& options)
    : options_(options), rng_(options.seed) {
  ABSL_RAW_CHECK(options.nodes >= 1, "a cluster needs a node");
  for (int i = 1; i <= options.nodes + options.spare_nodes; ++i) {
    ids_.push_back(static_cast<NodeId>(i));
  }
  for (NodeId id : ids_) {
    Node& node = nodes_[id];
    node.id = id;
    node.storage = std::make_unique<MemoryStorage>();
    if (auto it = options.initial_entries.find(id);
        it != options.initial_entries.end()) {
      absl::Status s = node.storage->Append(it->second);
      ABSL_RAW_CHECK(s.ok(), "bad initial entries");
    }
    if (auto it = options.initial_hard_states.find(id);
        it != options.initial_hard_states.end()) {
      node.storage->SetHardState(it->second);
    }
    absl::StatusOr<std::unique_ptr<Raft>> raft =
        Raft::Create(NodeConfig(id, 0), node.storage.get());
    ABSL_RAW_CHECK(raft.ok(), "Raft::Create failed in the test cluster");
    node.raft = std::move(*raft);
  }
}

Cluster::~Cluster() = default;

NodeId Cluster::AddNode() {
  const NodeId id = ids_.back() + 1;
  ids_.push_back(id);
  Node& node = nodes_[id];
  node.id = id;
  node.storage = std::make_unique<MemoryStorage>();
  absl::StatusOr<std::unique_ptr<Raft>> raft =
      Raft::Create(NodeConfig(id, 0), node.storage.get());
  ABSL_RAW_CHECK(raft.ok(), "Raft::Create failed in the test cluster");
  node.raft = std::move(*raft);
  return id;
}

void Cluster::Trace(const std::string& line) {
  if (trace_ != nullptr) absl::StrAppend(trace_, line, "\n");
}

Config Cluster::NodeConfig(NodeId id, Index applied) const {
  Config c = options_.config;
  c.id = id;
  // Everyone bootstraps with the founders (spare nodes are not among them).
  c.voters.clear();
  for (int i = 1; i <= options_.nodes; ++i) c.voters.push_back(static_cast<NodeId>(i));
  c.learners.clear();
  c.random_seed = options_.seed * 0x100000001b3ull + id;
  c.applied = applied;
  return c;
}

Cluster::Node& Cluster::NodeRef(NodeId id) {
  auto it = nodes_.find(id);
  ABSL_RAW_CHECK(it != nodes_.end(), "unknown node id");
  return it->second;
}

const Cluster::Node& Cluster::NodeRef(NodeId id) const {
  auto it = nodes_.find(id);
  ABSL_RAW_CHECK(it != nodes_.end(), "unknown node id");
  return it->second;
}

bool Cluster::IsUp(NodeId id) const { return NodeRef(id).raft != nullptr; }

Raft& Cluster::node(NodeId id) {
  Node& n = NodeRef(id);
  ABSL_RAW_CHECK(n.raft != nullptr, "node is down");
  return *n.raft;
}

MemoryStorage& Cluster::storage(NodeId id) { return *NodeRef(id).storage; }

const std::vector<Entry>& Cluster::applied(NodeId id) const {
  return NodeRef(id).applied;
}

const std::vector<ReadState>& Cluster::read_states(NodeId id) const {
  return NodeRef(id).read_states;
}

bool Cluster::Chance(double p) {
  if (p <= 0) return false;
  // 53 random bits -> [0, 1): exact and platform independent.
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53 < p;
}

bool Cluster::LinkUp(NodeId from, NodeId to) const {
  return cut_links_.count({from, to}) == 0;
}

void Cluster::Violation(std::string what) {
  violations_.push_back(absl::StrFormat("seed=%d tick=%d: %s", options_.seed,
                                        now_, what));
}

// ---- Time ----

void Cluster::Tick() {
  ++now_;
  for (NodeId id : ids_) {
    Node& n = NodeRef(id);
    if (n.raft == nullptr) continue;
    n.raft->Tick();
    AfterInput(id);
  }
  DeliverDue(now_);
}

void Cluster::TickNode(NodeId id) {
  node(id).Tick();
  AfterInput(id);
}

void Cluster::DeliverPending(
    const std::function<bool(const Message&)>& filter) {
  std::vector<uint64_t> sequences;
  for (const InFlight& msg : in_flight_) {
    if (filter(DecodeInFlight(msg))) sequences.push_back(msg.sequence);
  }
  for (uint64_t sequence : sequences) {
    auto it = std::find_if(in_flight_.begin(), in_flight_.end(),
                           [&](const InFlight& m) { return m.sequence == sequence; });
    if (it == in_flight_.end()) continue;
    InFlight msg = *it;
    in_flight_.erase(it);
    Deliver(msg);
  }
}

void Cluster::RunTicks(int ticks) {
  for (int i = 0; i < ticks; ++i) Tick();
}

void Cluster::Stabilize() { DeliverDue(UINT64_MAX); }

void Cluster::DeliverDue(uint64_t until) {
  uint64_t delivered = 0;
  while (!in_flight_.empty() && in_flight_.begin()->deliver_at <= until) {
    InFlight msg = *in_flight_.begin();
    in_flight_.erase(in_flight_.begin());
    Deliver(msg);
    if (++delivered > kDeliveriesPerRoundMax) {
      Violation("message storm: deliveries do not converge");
      in_flight_.clear();
    }
  }
}

Message Cluster::DecodeInFlight(const InFlight& msg) const {
  absl::StatusOr<Message> m = DecodeMessage(absl::MakeConstSpan(
      reinterpret_cast<const uint8_t*>(msg.bytes.data()), msg.bytes.size()));
  ABSL_RAW_CHECK(m.ok(), "in-flight message does not decode");
  return *std::move(m);
}

void Cluster::DeliverIf(const std::function<bool(const Message&)>& filter) {
  uint64_t delivered = 0;
  for (bool progress = true; progress;) {
    progress = false;
    for (auto it = in_flight_.begin(); it != in_flight_.end(); ++it) {
      if (!filter(DecodeInFlight(*it))) continue;
      InFlight msg = *it;
      in_flight_.erase(it);
      Deliver(msg);
      progress = true;
      break;  // Delivery may have added messages: rescan in order.
    }
    if (++delivered > kDeliveriesPerRoundMax) {
      Violation("message storm: DeliverIf does not converge");
      return;
    }
  }
}

void Cluster::DropIf(const std::function<bool(const Message&)>& filter) {
  for (auto it = in_flight_.begin(); it != in_flight_.end();) {
    const Message m = DecodeInFlight(*it);
    if (filter(m)) {
      if (trace_ != nullptr) Trace("> dropped " + FormatMessage(m));
      it = in_flight_.erase(it);
      ++messages_dropped_;
    } else {
      ++it;
    }
  }
}

std::optional<NodeId> Cluster::WaitForLeader(int ticks_max) {
  for (int i = 0; i < ticks_max; ++i) {
    std::optional<NodeId> leader = Leader();
    if (leader.has_value()) return leader;
    Tick();
  }
  return Leader();
}

bool Cluster::WaitForApplied(Index index, int ticks_max) {
  auto done = [&] {
    for (NodeId id : ids_) {
      if (IsUp(id) && NodeRef(id).applied.size() < index) return false;
    }
    return true;
  };
  for (int i = 0; i < ticks_max && !done(); ++i) Tick();
  return done();
}

// ---- Client actions ----

absl::StatusOr<Index> Cluster::Propose(NodeId id, std::string data) {
  absl::StatusOr<Index> index = node(id).Propose(std::move(data));
  AfterInput(id);
  return index;
}

absl::Status Cluster::ReadIndex(NodeId id, uint64_t context) {
  // Every entry known committed now must be covered by the read.
  read_floor_[{id, context}] = max_commit_;
  absl::Status status = node(id).ReadIndex(context);
  AfterInput(id);
  return status;
}

void Cluster::Campaign(NodeId id) {
  node(id).Campaign();
  AfterInput(id);
}

absl::StatusOr<Index> Cluster::ChangeMembership(NodeId id,
                                                MembershipChange change) {
  absl::StatusOr<Index> index = node(id).ProposeMembershipChange(change);
  AfterInput(id);
  return index;
}

absl::Status Cluster::TransferLeadership(NodeId id, NodeId target) {
  absl::Status status = node(id).TransferLeadership(target);
  AfterInput(id);
  return status;
}

// ---- Snapshots ----

namespace {

void PutLE(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

bool GetLE(const std::string& in, size_t& pos, int bytes, uint64_t& v) {
  if (in.size() - pos < static_cast<size_t>(bytes)) return false;
  v = 0;
  for (int i = 0; i < bytes; ++i) {
    v |= static_cast<uint64_t>(static_cast<uint8_t>(in[pos + i])) << (8 * i);
  }
  pos += bytes;
  return true;
}

}  // namespace

std::string Cluster::SerializeApplied(const std::vector<Entry>& applied) {
  std::string out;
  for (const Entry& e : applied) {
    PutLE(out, e.index, 8);
    PutLE(out, e.term, 8);
    PutLE(out, static_cast<uint8_t>(e.type), 1);
    PutLE(out, e.data.size(), 4);
    out += e.data;
  }
  return out;
}

absl::StatusOr<std::vector<Entry>> Cluster::DeserializeApplied(
    const std::string& bytes) {
  std::vector<Entry> out;
  size_t pos = 0;
  while (pos < bytes.size()) {
    Entry e;
    uint64_t type = 0;
    uint64_t length = 0;
    if (!GetLE(bytes, pos, 8, e.index) || !GetLE(bytes, pos, 8, e.term) ||
        !GetLE(bytes, pos, 1, type) || !GetLE(bytes, pos, 4, length) ||
        bytes.size() - pos < length) {
      return absl::DataLossError("truncated snapshot");
    }
    e.type = static_cast<EntryType>(type);
    e.data = bytes.substr(pos, length);
    pos += length;
    if (e.index != out.size() + 1) {
      return absl::DataLossError("snapshot entries out of order");
    }
    out.push_back(std::move(e));
  }
  return out;
}

absl::Status Cluster::Compact(NodeId id, Index keep_entries) {
  Node& n = NodeRef(id);
  ABSL_RAW_CHECK(n.raft != nullptr && !n.in_ready, "compacting a busy node");
  absl::StatusOr<SnapshotMeta> meta = n.raft->SnapshotMetaForApplied();
  if (!meta.ok()) return meta.status();
  ABSL_RAW_CHECK(meta->index == n.applied.size(),
                 "Raft's applied index differs from the state machine's");
  if (meta->index > n.storage->LastSnapshot().index) {
    absl::Status s =
        n.storage->CreateSnapshot(*meta, SerializeApplied(n.applied));
    if (!s.ok()) return s;
  }
  const Index snapshot_index = n.storage->LastSnapshot().index;
  if (snapshot_index + 1 <= keep_entries) return absl::OkStatus();
  return n.storage->Compact(snapshot_index + 1 - keep_entries);
}

std::optional<NodeId> Cluster::Leader() const {
  std::optional<NodeId> best;
  Term best_term = 0;
  for (NodeId id : ids_) {
    const Node& n = NodeRef(id);
    if (n.raft == nullptr || n.raft->role() != Role::kLeader) continue;
    if (!best.has_value() || n.raft->term() > best_term) {
      best = id;
      best_term = n.raft->term();
    }
  }
  return best;
}

// ---- Faults ----

void Cluster::Crash(NodeId id) {
  Node& n = NodeRef(id);
  n.raft.reset();
  n.staging = false;  // Staged chunks are volatile.
  n.staged.clear();
}

absl::Status Cluster::Restart(NodeId id) {
  Node& n = NodeRef(id);
  ABSL_RAW_CHECK(n.raft == nullptr, "restart of a running node");
  absl::StatusOr<std::unique_ptr<Raft>> raft =
      Raft::Create(NodeConfig(id, n.applied.size()), n.storage.get());
  if (!raft.ok()) return raft.status();
  n.raft = std::move(*raft);
  AfterInput(id);
  return absl::OkStatus();
}

void Cluster::Partition(const std::vector<std::vector<NodeId>>& groups) {
  std::map<NodeId, size_t> group_of;
  for (size_t g = 0; g < groups.size(); ++g) {
    for (NodeId id : groups[g]) group_of[id] = g;
  }
  for (NodeId a : ids_) {
    for (NodeId b : ids_) {
      if (a == b) continue;
      auto ga = group_of.find(a);
      auto gb = group_of.find(b);
      // Nodes in no group are cut off from everyone.
      if (ga == group_of.end() || gb == group_of.end() ||
          ga->second != gb->second) {
        cut_links_.insert({a, b});
      }
    }
  }
}

void Cluster::Isolate(NodeId id) {
  for (NodeId other : ids_) {
    if (other == id) continue;
    cut_links_.insert({id, other});
    cut_links_.insert({other, id});
  }
}

void Cluster::CutLink(NodeId a, NodeId b) {
  cut_links_.insert({a, b});
  cut_links_.insert({b, a});
}

void Cluster::CutOneWay(NodeId from, NodeId to) {
  cut_links_.insert({from, to});
}

void Cluster::Heal() { cut_links_.clear(); }

// ---- Message flow ----

void Cluster::Send(const Message& m) {
  std::string bytes = EncodeMessage(m);
  const int copies = Chance(options_.network.duplicate_probability) ? 2 : 1;
  for (int i = 0; i < copies; ++i) {
    if (!LinkUp(m.from, m.to) || Chance(options_.network.drop_probability)) {
      ++messages_dropped_;
      if (trace_ != nullptr) Trace("> dropped " + FormatMessage(m));
      continue;
    }
    const uint64_t delay =
        Random(static_cast<uint64_t>(options_.network.delay_ticks_max) + 1);
    in_flight_.insert(InFlight{now_ + delay, sequence_++, m.from, m.to, bytes});
  }
}

void Cluster::Deliver(const InFlight& msg) {
  if (StepMessage(msg)) AfterInput(msg.to);
}

bool Cluster::StepMessage(const InFlight& msg) {
  Node& to = NodeRef(msg.to);
  absl::StatusOr<Message> m = DecodeMessage(absl::MakeConstSpan(
      reinterpret_cast<const uint8_t*>(msg.bytes.data()), msg.bytes.size()));
  if (!m.ok()) {
    Violation("codec rejected its own encoding: " + m.status().ToString());
    return false;
  }
  if (to.raft == nullptr || !LinkUp(msg.from, msg.to)) {
    ++messages_dropped_;
    if (trace_ != nullptr) Trace("> dropped " + FormatMessage(*m));
    return false;
  }
  if (trace_ != nullptr) Trace("> deliver " + FormatMessage(*m));
  ++messages_delivered_;
  ++delivered_by_type_[m->type];
  if (m->type == MessageType::kAppendResponse && m->reject) {
    ++append_rejections_;
  }
  absl::Status status = to.raft->Step(*m);
  if (!status.ok() && trace_ != nullptr) Trace("  error: " + status.ToString());
  if (!status.ok()) {
    step_errors_.push_back(absl::StrFormat("seed=%d tick=%d node=%d: %s",
                                           options_.seed, now_, msg.to,
                                           status.ToString()));
  }
  return true;
}

void Cluster::InterleaveInputs(NodeId id, int count) {
  for (auto it = in_flight_.begin(); it != in_flight_.end() && count > 0;) {
    if (it->to != id) {
      ++it;
      continue;
    }
    InFlight msg = *it;
    it = in_flight_.erase(it);
    --count;
    if (StepMessage(msg)) CheckLeader(NodeRef(id));
  }
}

void Cluster::AfterInput(NodeId id) {
  Node& n = NodeRef(id);
  if (n.raft == nullptr) return;
  CheckLeader(n);
  ABSL_RAW_CHECK(!n.in_ready, "input processing re-entered");
  ProcessReady(n);
}

void Cluster::CheckLeader(Node& n) {
  if (n.raft->role() != Role::kLeader) return;
  const Term term = n.raft->term();
  auto [it, inserted] = leaders_.emplace(term, n.id);
  if (!inserted) {
    if (it->second != n.id) {
      Violation(absl::StrFormat("two leaders in term %d: %d and %d", term,
                                it->second, n.id));
    }
    return;
  }
  // A new leader: its log must hold every entry any node has applied
  // (leader completeness).
  for (const Entry& e : applied_anywhere_) {
    absl::StatusOr<Term> t = n.raft->TermAt(e.index);
    if (!t.ok() && absl::IsOutOfRange(t.status()) &&
        e.index < n.storage->FirstIndex()) {
      // Compacted: then the leader's state machine holds it.
      if (e.index <= n.applied.size() && n.applied[e.index - 1] == e) continue;
    }
    if (!t.ok() || *t != e.term) {
      Violation(absl::StrFormat(
          "leader %d of term %d lacks applied entry %d (term %d)", n.id, term,
          e.index, e.term));
      return;
    }
  }
}

void Cluster::ProcessReady(Node& n) {
  while (n.raft->HasReady()) {
    Ready rd = n.raft->GetReady();
    if (trace_ != nullptr) {
      Trace(absl::StrFormat("> %d handling Ready", n.id));
      const std::string ready = FormatReady(rd);
      if (!ready.empty()) Trace(ready);
    }
    if (Chance(options_.interleave_probability)) {
      n.in_ready = true;
      InterleaveInputs(n.id, 1 + static_cast<int>(Random(3)));
      n.in_ready = false;
    }
    // 1. Stage snapshot chunks, install a complete snapshot.
    StageChunks(n, rd);
    if (rd.snapshot.has_value()) InstallSnapshot(n, *rd.snapshot);
    // 2. Persist: hard state and entries, before anything leaves.
    if (rd.hard_state.has_value()) {
      n.storage->SetHardState(*rd.hard_state);
      max_commit_ = std::max(max_commit_, rd.hard_state->commit);
    }
    if (!rd.entries.empty()) {
      absl::Status s = n.storage->Append(rd.entries);
      if (!s.ok()) Violation("storage append failed: " + s.ToString());
    }
    // 3. Send.
    for (const Message& m : rd.messages) Send(m);
    // 4. Apply.
    for (const Entry& e : rd.committed) {
      if (e.index != n.applied.size() + 1) {
        Violation(absl::StrFormat("node %d applies %d after %d", n.id, e.index,
                                  n.applied.size()));
      }
      if (e.index > n.storage->InitialHardState().commit) {
        Violation(absl::StrFormat(
            "node %d applies %d beyond its persisted commit %d", n.id,
            e.index, n.storage->InitialHardState().commit));
      }
      absl::StatusOr<Term> stored = n.storage->TermAt(e.index);
      if (!stored.ok() || *stored != e.term) {
        Violation(absl::StrFormat("node %d applies %d, not durable", n.id,
                                  e.index));
      }
      if (e.index <= applied_anywhere_.size()) {
        if (!(applied_anywhere_[e.index - 1] == e)) {
          Violation(absl::StrFormat(
              "state machine safety: node %d applies a different entry at %d "
              "(term %d vs %d)",
              n.id, e.index, e.term, applied_anywhere_[e.index - 1].term));
        }
      } else if (e.index == applied_anywhere_.size() + 1) {
        applied_anywhere_.push_back(e);
      } else {
        Violation(absl::StrFormat("node %d applies %d past a gap", n.id,
                                  e.index));
      }
      n.applied.push_back(e);
    }
    // 5. Reads.
    for (const ReadState& rs : rd.read_states) {
      auto floor = read_floor_.find({n.id, rs.context});
      if (floor == read_floor_.end()) {
        Violation(absl::StrFormat("node %d: read state for unknown context %d",
                                  n.id, rs.context));
      } else {
        if (rs.index < floor->second) {
          Violation(absl::StrFormat(
              "stale read on node %d: index %d below commit %d known at "
              "request time",
              n.id, rs.index, floor->second));
        }
        read_floor_.erase(floor);
      }
      n.read_states.push_back(rs);
    }
    n.raft->Advance(rd);
  }
}

void Cluster::StageChunks(Node& n, const Ready& rd) {
  for (const SnapshotChunk& c : rd.snapshot_chunks) {
    if (c.offset == 0) {
      n.staging = true;
      n.staged_meta = c.meta;
      n.staged = c.data;
      continue;
    }
    if (!n.staging || !(n.staged_meta == c.meta) || n.staged.size() != c.offset) {
      Violation(absl::StrFormat(
          "node %d: snapshot chunk %d@%d does not follow the %d staged bytes",
          n.id, c.meta.index, c.offset, n.staged.size()));
      continue;
    }
    n.staged += c.data;
  }
}

void Cluster::InstallSnapshot(Node& n, const SnapshotMeta& meta) {
  if (!n.staging || !(n.staged_meta == meta) || n.staged.size() != meta.bytes) {
    Violation(absl::StrFormat("node %d installs snapshot %d, staged %d of %d",
                              n.id, meta.index, n.staged.size(), meta.bytes));
    return;
  }
  absl::StatusOr<std::vector<Entry>> entries = DeserializeApplied(n.staged);
  if (!entries.ok() || entries->size() != meta.index) {
    Violation(absl::StrFormat("node %d: snapshot %d does not decode", n.id,
                              meta.index));
    return;
  }
  // State machine safety through snapshots: the snapshot agrees with every
  // entry applied anywhere and extends what this node applied.
  for (const Entry& e : *entries) {
    if (e.index <= applied_anywhere_.size() &&
        !(applied_anywhere_[e.index - 1] == e)) {
      Violation(absl::StrFormat(
          "state machine safety: node %d installs a snapshot differing at %d",
          n.id, e.index));
      return;
    }
    if (e.index <= n.applied.size() && !(n.applied[e.index - 1] == e)) {
      Violation(absl::StrFormat(
          "node %d installs a snapshot contradicting its own entry %d", n.id,
          e.index));
      return;
    }
  }
  if (meta.index > applied_anywhere_.size()) {
    Violation(absl::StrFormat(
        "node %d installs snapshot %d beyond every applied entry (%d)", n.id,
        meta.index, applied_anywhere_.size()));
  }
  if (meta.index <= n.applied.size()) {
    Violation(absl::StrFormat("node %d installs snapshot %d at applied %d",
                              n.id, meta.index, n.applied.size()));
  }
  absl::Status s = n.storage->InstallSnapshot(meta, std::move(n.staged));
  if (!s.ok()) Violation("installing a snapshot failed: " + s.ToString());
  n.applied = *std::move(entries);
  n.staging = false;
  n.staged.clear();
  ++snapshots_installed_;
}

// ---- Checks ----

void Cluster::CheckLogMatching() {
  for (size_t i = 0; i < ids_.size(); ++i) {
    for (size_t j = i + 1; j < ids_.size(); ++j) {
      const MemoryStorage& a = *NodeRef(ids_[i]).storage;
      const MemoryStorage& b = *NodeRef(ids_[j]).storage;
      const Index lo = std::max(a.FirstIndex(), b.FirstIndex());
      const Index hi = std::min(a.LastIndex(), b.LastIndex());
      if (lo > hi) continue;
      std::vector<Entry> ea = *a.Entries(lo, hi + 1, UINT64_MAX);
      std::vector<Entry> eb = *b.Entries(lo, hi + 1, UINT64_MAX);
      // Matching prefix, then no index may agree on the term again.
      size_t k = 0;
      while (k < ea.size() && ea[k] == eb[k]) ++k;
      for (; k < ea.size(); ++k) {
        if (ea[k].term == eb[k].term) {
          Violation(absl::StrFormat(
              "log matching: nodes %d and %d agree on (index %d, term %d) "
              "but differ before",
              ids_[i], ids_[j], ea[k].index, ea[k].term));
          break;
        }
      }
    }
  }
}

uint64_t Cluster::delivered(MessageType type) const {
  auto it = delivered_by_type_.find(type);
  return it == delivered_by_type_.end() ? 0 : it->second;
}

std::string Cluster::Describe() const {
  std::vector<std::string> lines;
  lines.push_back(absl::StrFormat("seed=%d tick=%d in_flight=%d cut_links=%d",
                                  options_.seed, now_, in_flight_.size(),
                                  cut_links_.size()));
  for (NodeId id : ids_) {
    const Node& n = NodeRef(id);
    lines.push_back(n.raft == nullptr
                        ? absl::StrFormat("node=%d down applied=%d", id,
                                          n.applied.size())
                        : n.raft->DebugString());
  }
  return absl::StrJoin(lines, "\n");
}

}  // namespace blizzard::consensus::testing
