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
#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "node/physical_entry.h"
#include "node/replication.h"
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
};

class PhysicalReplication : public ReplicationMode {
 public:
  explicit PhysicalReplication(structures::KvStore* store) : store_(store) {}

  absl::StatusOr<BuiltEntry> BuildEntry(uint64_t index, uint64_t term,
                                        absl::Span<const structures::Op> ops,
                                        const UnappliedLog& log) override {
    built_.reset();
    const uint64_t applied = store_->AppliedIndex();
    Evict(applied);
    std::vector<structures::KvStore::UnappliedEntry> chain;
    chain.reserve(index > applied ? index - applied - 1 : 0);
    for (uint64_t i = applied + 1; i < index; ++i) {
      absl::StatusOr<const Cached*> c = Lookup(i, term, log);
      if (!c.ok()) return c.status();
      chain.push_back({i, (*c)->has_ops ? &(*c)->write_set : nullptr});
      if ((*c)->has_ops) {
        stats_.reapplied_entries++;
        stats_.reapplied_bytes += (*c)->write_set.bytes();
      }
    }
    Built b;
    b.index = index;
    b.term = term;
    b.cached.term = term;
    b.cached.has_ops = true;
    absl::StatusOr<std::vector<structures::OpResult>> results =
        store_->ExecuteOnTop(index, chain, ops, &b.cached.write_set);
    if (!results.ok()) return results.status();
    for (structures::WriteRange& r : b.cached.write_set.ranges) r.pre = std::string();
    BuiltEntry out;
    out.payload = EncodePhysicalEntry(ops.size(), b.cached.write_set);
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
    }
    auto [pos, inserted] = cache_.insert_or_assign(index, std::move(c));
    (void)inserted;
    return &pos->second;
  }

  structures::KvStore* store_;
  // Decoded entries after the applied index (bounded by Raft's
  // uncommitted-bytes limit), by index.
  std::map<uint64_t, Cached> cache_;
  std::optional<Built> built_;
  Stats stats_;
};

}  // namespace

// Client sessions (exactly-once retries) are not recorded by physical mode
// yet: a retried request is executed again (node/PHYSICAL.md).
absl::StatusOr<std::unique_ptr<ReplicationMode>> CreateReplicationMode(
    structures::KvStore* store, SessionTable* sessions) {
  (void)sessions;
  return std::make_unique<PhysicalReplication>(store);
}

const char* ReplicationModeName() { return "physical"; }

}  // namespace blizzard::node
