// Transactions use libpmemobj's function API with a NULL jmp_buf and the
// *_NO_ABORT flags, not the TX_BEGIN/TX_END macros: those longjmp on
// failure, which skips C++ destructors. Every failure is an error code.
#include "structures/pmem_arena.h"

#include <fcntl.h>
#include <libpmemobj.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/base/internal/raw_logging.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "xxhash.h"

namespace blizzard::structures {
namespace {

constexpr char kLayoutName[] = "blizzard.arena";
constexpr uint64_t kMagic = 0x31414e5241544c42ull;  // "BLTARNA1" (LE)
constexpr uint32_t kLayoutVersion = 3;              // 1, 2: the old kv pool.
constexpr uint64_t kHeaderSeed = 0x426c697a7a686472ull;
constexpr uint64_t kPoolBytesMin = 16ull << 20;
constexpr uint64_t kPoolBytesMax = 1ull << 40;
constexpr uint64_t kArenaType = 1;

struct Root {
  uint64_t magic;
  uint32_t layout_version;
  uint32_t reserved;
  uint64_t cluster_id;
  uint64_t node_id;
  uint64_t checksum;  // XXH3(kHeaderSeed) of the 32 bytes above.
  PMEMoid arena;
  uint64_t arena_bytes;
};
static_assert(sizeof(Root) == 64);

uint64_t RootChecksum(const Root& r) {
  return XXH3_64bits_withSeed(&r, offsetof(Root, checksum), kHeaderSeed);
}

absl::Status PmemError(int err, const std::string& what) {
  const std::string msg = absl::StrCat(what, ": ", pmemobj_errormsg());
  if (err == ENOMEM) return absl::ResourceExhaustedError(absl::StrCat("pool full: ", msg));
  return absl::ErrnoToStatus(err, msg);
}

absl::Status OpenError(const std::string& path, int err) {
  const std::string msg = pmemobj_errormsg();
  const std::string where = absl::StrCat("pool ", path, ": ");
  if (err == ENOENT) return absl::NotFoundError(absl::StrCat(where, msg));
  if (err == EAGAIN || err == EWOULDBLOCK) {
    return absl::FailedPreconditionError(
        absl::StrCat(where, "in use by another process or handle (", msg, ")"));
  }
  if (err == EINVAL) {
    if (msg.find("wrong layout") != std::string::npos ||
        msg.find("wrong pool type") != std::string::npos) {
      return absl::FailedPreconditionError(
          absl::StrCat(where, "not a Blizzard arena pool (", msg, ")"));
    }
    return absl::DataLossError(absl::StrCat(where, "damaged pmemobj pool (", msg, ")"));
  }
  return absl::ErrnoToStatus(err, absl::StrCat(where, msg));
}

absl::Status SyncDirectoryOf(const std::string& path) {
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return absl::ErrnoToStatus(errno, absl::StrCat("open ", dir));
  const int rc = fsync(fd);
  const int err = errno;
  close(fd);
  if (rc != 0) return absl::ErrnoToStatus(err, absl::StrCat("fsync ", dir));
  return absl::OkStatus();
}

}  // namespace

absl::Status PmemArenaPool::Create(const PoolOptions& options) {
  if (options.pool_bytes < kPoolBytesMin || options.pool_bytes > kPoolBytesMax) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "pool_bytes %d outside [%d, %d]", options.pool_bytes, kPoolBytesMin, kPoolBytesMax));
  }
  const std::string tmp = options.path + ".creating";
  if (unlink(tmp.c_str()) != 0 && errno != ENOENT) {
    return absl::ErrnoToStatus(errno, absl::StrCat("unlink ", tmp));
  }
  PMEMobjpool* pop = pmemobj_create(tmp.c_str(), kLayoutName, options.pool_bytes, 0600);
  if (pop == nullptr) return PmemError(errno, absl::StrCat("create ", tmp));
  const uint64_t arena_bytes = ArenaBytesForPool(options.pool_bytes);
  const PMEMoid root_oid = pmemobj_root(pop, sizeof(Root));
  int err = OID_IS_NULL(root_oid) ? errno : 0;
  if (err == 0) err = pmemobj_tx_begin(pop, nullptr, TX_PARAM_NONE);
  if (err == 0) {
    auto* root = static_cast<Root*>(pmemobj_direct(root_oid));
    err = pmemobj_tx_xadd_range_direct(root, sizeof(Root), POBJ_XADD_NO_ABORT);
    // The arena is NOT zeroed by libpmemobj (hundreds of MiB): a new pool
    // file reads as zeros, and Arena::Format writes the header; the heap
    // is only read where it has been written.
    PMEMoid arena = OID_NULL;
    if (err == 0) {
      arena = pmemobj_tx_xalloc(arena_bytes, kArenaType, POBJ_XALLOC_NO_ABORT);
      if (OID_IS_NULL(arena)) err = errno != 0 ? errno : ENOMEM;
    }
    if (err == 0) {
      Root r{};
      r.magic = kMagic;
      r.layout_version = kLayoutVersion;
      r.cluster_id = options.cluster_id;
      r.node_id = options.node_id;
      r.checksum = RootChecksum(r);
      r.arena = arena;
      r.arena_bytes = arena_bytes;
      *root = r;
      pmemobj_tx_commit();
    } else if (pmemobj_tx_stage() == TX_STAGE_WORK) {
      pmemobj_tx_abort(err);
    }
    const int end = pmemobj_tx_end();
    if (err == 0) err = end;
  }
  if (err != 0) {
    pmemobj_close(pop);
    unlink(tmp.c_str());
    return PmemError(err, absl::StrCat("initialize ", tmp));
  }
  {
    // Format the arena through the pool's own backend; closing it closes
    // the pool.
    const auto* root = static_cast<const Root*>(pmemobj_direct(root_oid));
    PmemArenaPool pool(pop, static_cast<uint8_t*>(pmemobj_direct(root->arena)),
                       root->arena_bytes, PoolIdentity{});
    if (auto s = Arena::Format(&pool); !s.ok()) {
      unlink(tmp.c_str());
      return s;
    }
  }
  if (rename(tmp.c_str(), options.path.c_str()) != 0) {
    return absl::ErrnoToStatus(errno, absl::StrCat("rename ", tmp, " to ", options.path));
  }
  return SyncDirectoryOf(options.path);
}

uint64_t ArenaBytesForPool(uint64_t pool_bytes) {
  const uint64_t reserve = pool_bytes / 4 + (8ull << 20);
  return pool_bytes > reserve ? ((pool_bytes - reserve) & ~uint64_t{4095}) : 0;
}

absl::StatusOr<std::unique_ptr<PmemArenaPool>> PmemArenaPool::Open(const PoolOptions& options) {
  if (options.path.empty()) return absl::InvalidArgumentError("empty pool path");
  struct stat st;
  if (stat(options.path.c_str(), &st) != 0) {
    if (errno != ENOENT) return absl::ErrnoToStatus(errno, absl::StrCat("stat ", options.path));
    if (!options.create_if_missing) {
      return absl::NotFoundError(absl::StrCat("pool ", options.path, " does not exist"));
    }
    if (auto s = Create(options); !s.ok()) return s;
    if (stat(options.path.c_str(), &st) != 0) {
      return absl::ErrnoToStatus(errno, absl::StrCat("stat ", options.path));
    }
  }
  PMEMobjpool* pop = pmemobj_open(options.path.c_str(), kLayoutName);
  if (pop == nullptr) return OpenError(options.path, errno);
  const std::string where = absl::StrCat("pool ", options.path, ": ");
  auto fail = [&](absl::Status s) {
    pmemobj_close(pop);
    return s;
  };
  const size_t root_bytes = pmemobj_root_size(pop);
  if (root_bytes < offsetof(Root, arena)) {
    return fail(absl::FailedPreconditionError(
        absl::StrCat(where, "no Blizzard header (root object of ", root_bytes, " bytes)")));
  }
  const PMEMoid root_oid = pmemobj_root(pop, root_bytes);
  ABSL_RAW_CHECK(!OID_IS_NULL(root_oid), "pmemobj_root of an existing root failed");
  const Root r = *static_cast<const Root*>(pmemobj_direct(root_oid));
  if (r.magic != kMagic) {
    return fail(absl::FailedPreconditionError(
        absl::StrFormat("%sbad magic %#x: not a Blizzard arena pool", where, r.magic)));
  }
  if (const uint64_t sum = RootChecksum(r); sum != r.checksum) {
    return fail(absl::DataLossError(absl::StrFormat(
        "%sheader checksum mismatch (stored %#x, computed %#x)", where, r.checksum, sum)));
  }
  if (r.layout_version != kLayoutVersion) {
    return fail(absl::FailedPreconditionError(absl::StrFormat(
        "%slayout version %d, this build reads version %d", where, r.layout_version,
        kLayoutVersion)));
  }
  const bool adopt = options.check_identity && options.adopt_node_id &&
                     r.cluster_id == options.cluster_id && r.node_id != options.node_id;
  if (options.check_identity && !adopt &&
      (r.cluster_id != options.cluster_id || r.node_id != options.node_id)) {
    return fail(absl::FailedPreconditionError(absl::StrFormat(
        "%sbelongs to cluster %d node %d, expected cluster %d node %d", where, r.cluster_id,
        r.node_id, options.cluster_id, options.node_id)));
  }
  const uint64_t file_bytes = static_cast<uint64_t>(st.st_size);
  if (root_bytes != sizeof(Root) || r.arena.pool_uuid_lo != root_oid.pool_uuid_lo ||
      r.arena.off == 0 || r.arena.off > file_bytes || r.arena_bytes > file_bytes - r.arena.off ||
      pmemobj_alloc_usable_size(r.arena) < r.arena_bytes) {
    return fail(absl::DataLossError(absl::StrFormat(
        "%sbad root: arena {%#x, %#x} of %d bytes", where, r.arena.pool_uuid_lo, r.arena.off,
        r.arena_bytes)));
  }
  uint64_t node_id = r.node_id;
  if (adopt) {
    // Node id and checksum change together or not at all.
    int err = pmemobj_tx_begin(pop, nullptr, TX_PARAM_NONE);
    if (err == 0) {
      auto* root = static_cast<Root*>(pmemobj_direct(root_oid));
      err = pmemobj_tx_xadd_range_direct(root, sizeof(Root), POBJ_XADD_NO_ABORT);
      if (err == 0) {
        root->node_id = options.node_id;
        root->checksum = RootChecksum(*root);
        pmemobj_tx_commit();
      } else if (pmemobj_tx_stage() == TX_STAGE_WORK) {
        pmemobj_tx_abort(err);
      }
      const int end = pmemobj_tx_end();
      if (err == 0) err = end;
    }
    if (err != 0) return fail(PmemError(err, absl::StrCat(where, "re-stamping the node id")));
    node_id = options.node_id;
  }
  PoolIdentity id{r.layout_version, r.cluster_id, node_id, file_bytes};
  return std::unique_ptr<PmemArenaPool>(new PmemArenaPool(
      pop, static_cast<uint8_t*>(pmemobj_direct(r.arena)), r.arena_bytes, id));
}

PmemArenaPool::~PmemArenaPool() { pmemobj_close(pop_); }

absl::Status PmemArenaPool::Begin() {
  const int e = pmemobj_tx_begin(pop_, nullptr, TX_PARAM_NONE);
  return e == 0 ? absl::OkStatus() : PmemError(e, "tx begin");
}

absl::Status PmemArenaPool::Snapshot(uint64_t offset, uint64_t bytes) {
  const int e = pmemobj_tx_xadd_range_direct(base_ + offset, bytes, POBJ_XADD_NO_ABORT);
  return e == 0 ? absl::OkStatus() : PmemError(e, "tx snapshot");
}

void PmemArenaPool::Store(uint64_t offset, const void* src, uint64_t bytes) {
  // Flushed by libpmemobj at commit (the range is in the transaction).
  std::memcpy(base_ + offset, src, bytes);
}

absl::Status PmemArenaPool::Commit() {
  pmemobj_tx_commit();
  const int e = pmemobj_tx_end();
  return e == 0 ? absl::OkStatus() : PmemError(e, "tx commit");
}

void PmemArenaPool::Abort() {
  if (pmemobj_tx_stage() == TX_STAGE_WORK) pmemobj_tx_abort(ECANCELED);
  pmemobj_tx_end();
}

}  // namespace blizzard::structures
