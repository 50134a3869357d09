// Physical replication: the Raft entry carries the byte ranges (post-images)
// that executing the batch changes in the arena, allocator metadata
// included, and every replica writes them in one transaction. Entry format
// and design: node/PHYSICAL.md.
//
// The leader's data pool never holds uncommitted state. To build entry N it
// opens ONE arena transaction, writes the write sets of the entries after
// the applied index that precede N (not recorded), executes the batch
// (recorded), keeps the recorded write set and the results, and aborts the
// transaction (KvStore::ExecuteOnTop). When N commits, every replica, the
// leader included, applies the write set (KvStore::ApplyEntryWriteSet). A
// leader that loses leadership has nothing to undo; pipelining costs the
// re-application of the in-flight write sets, bounded by Raft's
// uncommitted-bytes limit.
//
// Client sessions (session_table.h) are shared with logical mode: the
// leader plans the batch against the session table as it stands on top of
// the in-flight entries and records the sessions with the store's
// epilogue, inside the same transaction, so the records travel in the
// write set. The entry names the clients whose records it changes; every
// replica re-reads those from the store when it applies the entry.
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/cleanup/cleanup.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "node/physical_entry.h"
#include "node/replication.h"
#include "node/session_table.h"
#include "structures/kv_store.h"
#include "structures/op.h"
#include "structures/write_set.h"

namespace blizzard::node {
namespace {

constexpr uint64_t kCacheLineBytes = 64;

// Bytes of the distinct cache lines the write set touches.
uint64_t CacheLineBytes(const structures::WriteSet& ws) {
  uint64_t lines = 0;
  uint64_t next_line = 0;  // First line not counted yet (ranges are sorted).
  for (const structures::WriteRange& r : ws.ranges) {
    const uint64_t first = std::max(r.offset / kCacheLineBytes, next_line);
    const uint64_t last = (r.offset + r.post.size() - 1) / kCacheLineBytes;
    if (last >= first) lines += last - first + 1;
    next_line = std::max(next_line, last + 1);
  }
  return lines * kCacheLineBytes;
}

struct Cached {
  uint64_t term = 0;
  bool has_ops = false;
  structures::WriteSet write_set;  // Post-images only.
  std::vector<uint64_t> session_clients;  // Whose records it changes.
};

class PhysicalReplication : public ReplicationMode {
 public:
  PhysicalReplication(structures::KvStore* store, SessionTable* sessions)
      : store_(store), sessions_(sessions) {}

  absl::StatusOr<BuiltEntry> BuildEntry(uint64_t index, uint64_t term,
                                        absl::Span<const structures::Op> ops,
                                        const UnappliedLog& log) override {
    built_.reset();
    const uint64_t applied = store_->AppliedIndex();
    Evict(applied);
    std::vector<structures::KvStore::UnappliedEntry> chain;
    chain.reserve(index > applied ? index - applied - 1 : 0);
    // The sessions the in-flight entries change (ascending, unique).
    std::vector<uint64_t> chain_clients;
    for (uint64_t i = applied + 1; i < index; ++i) {
      absl::StatusOr<const Cached*> c = Lookup(i, term, log);
      if (!c.ok()) return c.status();
      chain.push_back({i, (*c)->has_ops ? &(*c)->write_set : nullptr});
      if ((*c)->has_ops) {
        stats_.reapplied_entries++;
        stats_.reapplied_bytes += (*c)->write_set.bytes();
        chain_clients.insert(chain_clients.end(), (*c)->session_clients.begin(),
                             (*c)->session_clients.end());
      }
    }
    std::sort(chain_clients.begin(), chain_clients.end());
    chain_clients.erase(std::unique(chain_clients.begin(), chain_clients.end()),
                        chain_clients.end());
    Built b;
    b.index = index;
    b.term = term;
    b.cached.term = term;
    b.cached.has_ops = true;
    absl::StatusOr<std::vector<structures::OpResult>> results =
        sessions_ != nullptr && SessionTable::HasSessionOps(ops)
            ? ExecuteSessions(index, chain, chain_clients, ops, &b.cached)
            : store_->ExecuteOnTop(index, chain, ops, &b.cached.write_set);
    if (!results.ok()) return results.status();
    for (structures::WriteRange& r : b.cached.write_set.ranges) r.pre = std::string();
    BuiltEntry out;
    // One result per client op (session tags are not ops of their own).
    out.payload =
        EncodePhysicalEntry(results->size(), b.cached.session_clients, b.cached.write_set);
    out.results = std::move(*results);
    stats_.entries_built++;
    stats_.payload_bytes_built += out.payload.size();
    stats_.cacheline_bytes_built += CacheLineBytes(b.cached.write_set);
    built_ = std::move(b);
    return out;
  }

  void Proposed(uint64_t index, uint64_t term) override {
    ABSL_RAW_CHECK(built_.has_value() && built_->index == index && built_->term == term,
                   "Proposed() does not match the entry just built");
    cache_[index] = std::move(built_->cached);
    built_.reset();
  }

  absl::StatusOr<AppliedEntry> ApplyEntry(uint64_t index,
                                          absl::Span<const uint8_t> payload) override {
    absl::StatusOr<PhysicalEntry> entry = DecodePhysicalEntry(payload, store_->ArenaBytes());
    if (!entry.ok()) {
      return absl::DataLossError(absl::StrCat("committed entry ", index,
                                              " is not a valid physical entry: ",
                                              entry.status().message()));
    }
    if (absl::Status s = store_->ApplyEntryWriteSet(index, entry->write_set, entry->ops);
        !s.ok()) {
      return s;
    }
    Evict(index);
    // The session records the write set changed: the table follows them
    // (on the leader too: it kept the committed table while building).
    if (sessions_ != nullptr) {
      if (absl::Status s = sessions_->Refresh(*store_, entry->session_clients); !s.ok()) {
        return absl::DataLossError(absl::StrCat("committed entry ", index, ": ", s.message()));
      }
    }
    return AppliedEntry{entry->ops, std::nullopt};
  }

  absl::Status ApplyEmpty(uint64_t index) override {
    absl::Status s = store_->ApplyBatch(index, {}).status();
    if (s.ok()) Evict(index);
    return s;
  }

  void AppendInfo(std::string* out) const override {
    absl::StrAppend(out, "physical_entries_built:", stats_.entries_built, "\r\n",
                    "physical_payload_bytes_built:", stats_.payload_bytes_built, "\r\n",
                    "physical_cacheline_bytes_built:", stats_.cacheline_bytes_built, "\r\n",
                    "physical_reapplied_entries:", stats_.reapplied_entries, "\r\n",
                    "physical_reapplied_bytes:", stats_.reapplied_bytes, "\r\n",
                    "physical_cached_entries:", cache_.size(), "\r\n");
  }

 private:
  struct Built {
    uint64_t index = 0;
    uint64_t term = 0;
    Cached cached;
  };
  struct Stats {
    uint64_t entries_built = 0;
    uint64_t payload_bytes_built = 0;
    // The write sets rounded out to 64-byte cache lines: what a system that
    // ships flushed cache lines (RDMA to remote NVM, as Mojim/Hyperloop)
    // would send for the same change. For comparison only.
    uint64_t cacheline_bytes_built = 0;
    // The price of pipelining: in-flight write sets written again (and
    // rolled back) under each new entry.
    uint64_t reapplied_entries = 0;
    uint64_t reapplied_bytes = 0;
  };

  // The session path of BuildEntry: as logical mode applies a batch
  // (PlanBatch, the store's epilogue recording the sessions, Results), but
  // planned inside ExecuteOnTop's transaction against the session table as
  // it stands on top of the in-flight entries: the table is refreshed from
  // the store for the clients they change, and restored afterwards (the
  // transaction is aborted; the table follows committed state only).
  // Returns one reply per client op; `out->session_clients` gets the
  // clients whose records the entry changes.
  absl::StatusOr<std::vector<structures::OpResult>> ExecuteSessions(
      uint64_t index, absl::Span<const structures::KvStore::UnappliedEntry> chain,
      absl::Span<const uint64_t> chain_clients, absl::Span<const structures::Op> ops,
      Cached* out) {
    std::vector<SessionTable::Saved> undo;
    absl::Cleanup restore = [&] { sessions_->Restore(std::move(undo)); };
    SessionTable::Plan plan;
    auto prologue = [&]() -> absl::StatusOr<absl::Span<const structures::Op>> {
      if (absl::Status s = sessions_->Refresh(*store_, chain_clients, &undo); !s.ok()) {
        return s;
      }
      absl::StatusOr<SessionTable::Plan> p =
          sessions_->PlanBatch(std::vector<structures::Op>(ops.begin(), ops.end()));
      if (!p.ok()) return p.status();
      plan = std::move(*p);
      return absl::MakeConstSpan(plan.execute);
    };
    auto record = [&](absl::Span<const structures::OpResult> results) {
      return sessions_->RecordOps(plan, results, index);
    };
    // False when the records did not fit even with every op undone
    // (KvStore::ApplyBatch): the entry then changes no session.
    bool recorded = true;
    absl::StatusOr<std::vector<structures::OpResult>> results =
        store_->ExecuteOnTop(index, chain, prologue, record, &out->write_set, &recorded);
    if (!results.ok()) return results.status();
    if (recorded) out->session_clients = sessions_->PendingClients();
    return sessions_->Results(plan, *results);
  }

  void Evict(uint64_t applied) {
    cache_.erase(cache_.begin(), cache_.upper_bound(applied));
  }

  // Entry `index` of the leader's log, from the cache when the cached
  // entry has the log's term there (index and term name one entry), else
  // from durable storage.
  absl::StatusOr<const Cached*> Lookup(uint64_t index, uint64_t term, const UnappliedLog& log) {
    absl::StatusOr<uint64_t> t = log.TermAt(index);
    if (!t.ok()) return t.status();
    auto it = cache_.find(index);
    if (it != cache_.end() && it->second.term == *t) return &it->second;
    Cached c;
    c.term = *t;
    absl::StatusOr<std::optional<std::string>> payload = log.OpsPayload(index);
    if (absl::IsUnavailable(payload.status()) && *t == term) {
      // Not durable yet and of this leader's term: every operations entry
      // of this term was built here and is cached, so this one is a no-op
      // or configuration entry.
      c.has_ops = false;
    } else if (!payload.ok()) {
      return payload.status();
    } else if (payload->has_value()) {
      const std::string& p = **payload;
      absl::StatusOr<PhysicalEntry> e = DecodePhysicalEntry(
          absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(p.data()), p.size()),
          store_->ArenaBytes());
      if (!e.ok()) {
        return absl::DataLossError(absl::StrCat("log entry ", index,
                                                " is not a valid physical entry: ",
                                                e.status().message()));
      }
      c.has_ops = true;
      c.write_set = std::move(e->write_set);
      c.session_clients = std::move(e->session_clients);
    }
    auto [pos, inserted] = cache_.insert_or_assign(index, std::move(c));
    (void)inserted;
    return &pos->second;
  }

  structures::KvStore* store_;
  SessionTable* sessions_;  // May be null (no client sessions).
  // Decoded entries after the applied index (bounded by Raft's
  // uncommitted-bytes limit), by index.
  std::map<uint64_t, Cached> cache_;
  std::optional<Built> built_;
  Stats stats_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<ReplicationMode>> CreateReplicationMode(
    structures::KvStore* store, SessionTable* sessions) {
  return std::make_unique<PhysicalReplication>(store, sessions);
}

const char* ReplicationModeName() { return "physical"; }

}  // namespace blizzard::node
