// The node's durable snapshot: a sparse image of the data pool as of an
// applied index, plus a small checksummed metadata file naming it. Formats:
// node/SNAPSHOT.md. This is what PmemLogStorage reports as LastSnapshot()
// and reads SnapshotChunk() from, what a leader streams to a follower that
// needs compacted entries, and what a follower installs.
//
// Files, all in one directory (the data pool's path + ".snapshots"):
//   meta             the commit point: names the kept snapshot (written to
//                    meta.tmp, fsynced, renamed, directory fsynced)
//   snap-I-T.img     the kept snapshot's image (index I, term T)
//   staging.img      a snapshot being received from a leader (volatile:
//                    removed on open; a restarted node is sent it again)
//   *.tmp            leftovers of an interrupted write, removed on open
//
// Not thread-safe: one owner (the node's event loop).
#ifndef BLIZZARD_NODE_SNAPSHOT_STORE_H_
#define BLIZZARD_NODE_SNAPSHOT_STORE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "consensus/raft.h"
#include "consensus/types.h"

namespace blizzard::node {

struct SnapshotStats {
  uint64_t created = 0;            // Snapshots taken of this node's pool.
  uint64_t installed = 0;          // Snapshots received and committed.
  uint64_t chunks_staged = 0;
  uint64_t bytes_staged = 0;
  uint64_t chunks_read = 0;        // SnapshotChunk reads (leader streaming).
  uint64_t bytes_read = 0;
  int64_t last_create_us = 0;      // Wall time of the last Create.
  int64_t create_us_max = 0;
};

class SnapshotStore {
 public:
  // Opens (creating) `dir`, removes leftovers (staging, *.tmp, images other
  // than the kept one) and loads the kept snapshot, verifying the metadata
  // checksum, the image's size and its checksum (a full read). Errors:
  // DataLoss (a damaged meta or image: refuse to serve), FailedPrecondition
  // (a snapshot of another cluster or format version), Internal (I/O).
  static absl::StatusOr<std::unique_ptr<SnapshotStore>> Open(const std::string& dir,
                                                             uint64_t cluster_id);
  ~SnapshotStore();

  // The kept snapshot (index 0: none). meta().bytes is the image's size.
  const consensus::SnapshotMeta& meta() const { return meta_; }

  // consensus::LogStorage::SnapshotChunk's contract: NotFound unless
  // `index` is the kept snapshot; OutOfRange past its end.
  absl::StatusOr<std::string> ReadChunk(consensus::Index index, uint64_t offset,
                                        uint64_t bytes_max);

  // Takes a snapshot of the pool file at `pool_path` (no transaction may be
  // running on it) described by `meta` (index, term, membership; bytes is
  // filled in) and makes it the kept one: WriteImage then CommitImage.
  // InvalidArgument if meta.index is not above the kept snapshot's.
  absl::StatusOr<consensus::SnapshotMeta> Create(const std::string& pool_path,
                                                 consensus::SnapshotMeta meta);

  // The two halves of Create, so that the copy can run on another thread
  // while the owner keeps using the store (the event loop keeps running
  // Raft and holds back applying: the pool must not change under the
  // copy). WriteImage touches no member: it writes the image of
  // `pool_path` to its final name in `dir` (durably) and returns what
  // CommitImage needs; CommitImage (owner's thread) makes it the kept
  // snapshot, or removes it if a newer one is kept by then
  // (FailedPrecondition).
  struct Image {
    consensus::SnapshotMeta meta;  // bytes filled in.
    uint64_t checksum = 0;
    int64_t took_us = 0;
  };
  static absl::StatusOr<Image> WriteImage(const std::string& dir, uint64_t cluster_id,
                                          const std::string& pool_path,
                                          consensus::SnapshotMeta meta);
  absl::Status CommitImage(const Image& image);

  // Follower: writes one received chunk to the staging file (a chunk at
  // offset 0 starts a new staged snapshot). InvalidArgument for a chunk
  // that does not continue the staged bytes of the same snapshot.
  absl::Status Stage(const consensus::SnapshotChunk& chunk);
  // Makes the fully staged snapshot `meta` the kept one: fsyncs and
  // verifies the staged image, renames it, commits the metadata. Afterwards
  // meta() == meta. FailedPrecondition if it is not fully staged; DataLoss
  // if the staged image fails its checks.
  absl::Status CommitStaged(const consensus::SnapshotMeta& meta);

  // Writes the kept snapshot's pool image to `pool_path` atomically (a
  // temporary file, fsynced, renamed over it). FailedPrecondition if no
  // snapshot is kept. The pool must not be open.
  absl::Status RestorePool(const std::string& pool_path) const;

  const SnapshotStats& stats() const { return stats_; }
  const std::string& dir() const { return dir_; }

 private:
  SnapshotStore(std::string dir, uint64_t cluster_id);
  std::string ImagePath(const consensus::SnapshotMeta& meta) const {
    return ImagePathIn(dir_, meta);
  }
  static std::string ImagePathIn(const std::string& dir, const consensus::SnapshotMeta& meta);
  absl::Status WriteMeta(const consensus::SnapshotMeta& meta, uint64_t image_checksum);
  // Makes `meta` (image at ImagePath(meta), already durable) the kept one.
  absl::Status Commit(const consensus::SnapshotMeta& meta, uint64_t image_checksum);
  void CloseReader();

  const std::string dir_;
  const uint64_t cluster_id_;
  consensus::SnapshotMeta meta_;
  int read_fd_ = -1;  // The kept image, opened lazily for ReadChunk.
  // Staging.
  int staging_fd_ = -1;
  bool staging_ = false;
  consensus::SnapshotMeta staged_meta_;
  uint64_t staged_bytes_ = 0;
  SnapshotStats stats_;
};

// Exposed for tests and the inspector: checks a snapshot image file
// (structure, bounds, checksum, cluster). Returns the pool size it
// describes; DataLoss naming the first problem.
absl::StatusOr<uint64_t> VerifySnapshotImage(const std::string& path, uint64_t cluster_id);

// The kept snapshot of the store in `dir`, read and fully verified (meta
// checksum, version, cluster, the image's size, structure and checksum)
// without changing anything in `dir`: SnapshotStore::Open's first half.
// meta.index == 0 when no snapshot is kept. `cluster_id` 0 accepts the
// cluster the meta names (the inspector without a cluster file). Errors as
// Open.
struct KeptSnapshot {
  consensus::SnapshotMeta meta;
  uint64_t cluster_id = 0;
  uint64_t image_checksum = 0;
  uint64_t pool_bytes = 0;  // What the image restores to.
  std::string image_path;
};
absl::StatusOr<KeptSnapshot> LoadKeptSnapshot(const std::string& dir, uint64_t cluster_id);

// The inspector's report of a snapshot directory (read-only): "status: OK"
// or "status: CORRUPT: ..." / "REFUSED: ...", the kept snapshot's index,
// term, image, pool size and membership, and the leftovers (staging,
// temporary, stale images) the next Open would remove. On a damaged or
// foreign store the Status carries the whole report as its message.
absl::StatusOr<std::string> DescribeSnapshotDir(const std::string& dir, uint64_t cluster_id);

}  // namespace blizzard::node

#endif  // BLIZZARD_NODE_SNAPSHOT_STORE_H_
