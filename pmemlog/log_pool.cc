#include "pmemlog/log_pool.h"

#include <errno.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/match.h"
#include "absl/strings/str_format.h"
#include "pmemlog/log_core.h"

namespace blizzard::pmemlog {
namespace {

// The root object: the ring's PMEMoid, then the meta block at the first
// 64-byte aligned address after it (FORMAT.md section 1).
struct Root {
  PMEMoid ring_oid;
};
static_assert(sizeof(Root) == format::kRootOidBytes);

// libpmemobj's pool signature, the first bytes of every obj pool file.
constexpr char kPmemobjSignature[] = "PMEMOBJ";
// Ring allocations are searched at this granularity.
constexpr uint64_t kRingSearchStepBytes = 64 << 10;

uint64_t MetaOffset(PMEMoid root) {
  return format::RoundUp(root.off + format::kRootOidBytes, format::kMetaAlignBytes);
}

absl::Status ErrnoStatus(int err, const std::string& what) {
  const std::string msg = absl::StrFormat("%s: %s", what, std::strerror(err));
  switch (err) {
    case ENOENT:
      return absl::NotFoundError(msg);
    case EEXIST:
      return absl::AlreadyExistsError(msg);
    case EACCES:
    case EPERM:
      return absl::PermissionDeniedError(msg);
    case ENOSPC:
    case ENOMEM:
      return absl::ResourceExhaustedError(msg);
    default:
      return absl::InternalError(msg);
  }
}

// Largest ring allocation the heap grants, at kRingSearchStepBytes
// granularity: libpmemobj's metadata overhead is not a documented constant.
uint64_t LargestAllocation(PMEMobjpool* pool, uint64_t hi) {
  uint64_t lo = 0;  // Known to fit (trivially).
  hi = format::RoundDown(hi, kRingSearchStepBytes) + kRingSearchStepBytes;  // Known not to.
  while (hi - lo > kRingSearchStepBytes) {
    const uint64_t mid = format::RoundDown(lo + (hi - lo) / 2, kRingSearchStepBytes);
    PMEMoid probe = OID_NULL;  // Volatile: probes are freed at once.
    if (pmemobj_alloc(pool, &probe, mid, format::kRingTypeNum, nullptr, nullptr) == 0) {
      pmemobj_free(&probe);
      lo = mid;
    } else {
      hi = mid;
    }
  }
  return lo;
}

absl::Status FormatNewPool(PMEMobjpool* pool, uint64_t pool_bytes, const Identity& identity) {
  PMEMoid root_oid = pmemobj_root(pool, format::kRootBytes);
  if (OID_IS_NULL(root_oid)) {
    return absl::ResourceExhaustedError(
        absl::StrFormat("cannot allocate the pmemlog root: %s", pmemobj_errormsg()));
  }
  auto* root = static_cast<Root*>(pmemobj_direct(root_oid));
  const uint64_t size = LargestAllocation(
      pool, std::min(pool_bytes, format::kRingBytesMax + format::kRingAlignBytes));
  if (size < format::kRingBytesMin + format::kRingAlignBytes ||
      pmemobj_alloc(pool, &root->ring_oid, size, format::kRingTypeNum, nullptr, nullptr) != 0) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "pool of %d bytes has no room for a pmemlog ring: %s", pool_bytes, pmemobj_errormsg()));
  }
  const uint64_t alloc_bytes = pmemobj_alloc_usable_size(root->ring_oid);
  RegionLayout layout;
  layout.meta_offset = MetaOffset(root_oid);
  layout.ring_offset = format::RoundUp(root->ring_oid.off, format::kRingAlignBytes);
  layout.ring_bytes =
      std::min(format::kRingBytesMax,
               format::RoundDown(alloc_bytes - (layout.ring_offset - root->ring_oid.off),
                                 format::kRingAlignBytes));
  PmemPersistence persistence(static_cast<uint8_t*>(static_cast<void*>(pool)), pool_bytes);
  return LogCore::Format(&persistence, layout, identity);
}

}  // namespace

absl::Status LogPool::Create(const std::string& path, uint64_t pool_bytes,
                             const Identity& identity) {
  if (access(path.c_str(), F_OK) == 0) {
    return absl::AlreadyExistsError(absl::StrFormat("%s already exists", path));
  }
  const std::string tmp = path + ".creating";
  if (unlink(tmp.c_str()) != 0 && errno != ENOENT) {
    return ErrnoStatus(errno, absl::StrFormat("cannot remove stale %s", tmp));
  }
  PMEMobjpool* pool = pmemobj_create(tmp.c_str(), format::kPoolLayout, pool_bytes, 0600);
  if (pool == nullptr) {
    return ErrnoStatus(errno,
                       absl::StrFormat("cannot create pool %s (%s)", tmp, pmemobj_errormsg()));
  }
  absl::Status formatted = FormatNewPool(pool, pool_bytes, identity);
  pmemobj_close(pool);
  if (!formatted.ok()) {
    unlink(tmp.c_str());
    return formatted;
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    unlink(tmp.c_str());
    return ErrnoStatus(err, absl::StrFormat("cannot rename %s to %s", tmp, path));
  }
  // The rename is durable once the directory is.
  const size_t slash = path.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : path.substr(0, slash + 1);
  const int dir_fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (dir_fd >= 0) {
    fsync(dir_fd);
    close(dir_fd);
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<LogPool>> LogPool::Open(const std::string& path) {
  const int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return ErrnoStatus(errno, absl::StrFormat("cannot open %s", path));
  char signature[sizeof(kPmemobjSignature)] = {};
  const ssize_t got = pread(fd, signature, sizeof(signature), 0);
  struct stat st;
  const int stat_rc = fstat(fd, &st);
  close(fd);
  if (stat_rc != 0) return ErrnoStatus(errno, absl::StrFormat("cannot stat %s", path));
  if (got != static_cast<ssize_t>(sizeof(signature)) ||
      std::memcmp(signature, kPmemobjSignature, sizeof(signature)) != 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("%s is not a libpmemobj pool (no PMEMOBJ signature)", path));
  }
  PMEMobjpool* pool = pmemobj_open(path.c_str(), format::kPoolLayout);
  if (pool == nullptr) {
    const int err = errno;
    const std::string msg = pmemobj_errormsg();
    if (absl::StrContains(msg, "layout")) {
      return absl::FailedPreconditionError(
          absl::StrFormat("%s is not a pmemlog pool: %s", path, msg));
    }
    if (err == EWOULDBLOCK) {
      return absl::FailedPreconditionError(
          absl::StrFormat("%s is open in another process: %s", path, msg));
    }
    if (err == EACCES || err == EPERM || err == ENOMEM) return ErrnoStatus(err, msg);
    return absl::DataLossError(
        absl::StrFormat("libpmemobj cannot open %s (damaged or truncated pool?): %s", path, msg));
  }
  if (pmemobj_root_size(pool) < format::kRootBytes) {
    pmemobj_close(pool);
    return absl::DataLossError(absl::StrFormat("%s holds no pmemlog root object", path));
  }
  const PMEMoid root = pmemobj_root(pool, format::kRootBytes);
  return std::unique_ptr<LogPool>(
      new LogPool(pool, static_cast<uint64_t>(st.st_size), MetaOffset(root)));
}

LogPool::LogPool(PMEMobjpool* pool, uint64_t pool_bytes, uint64_t meta_offset)
    : pool_(pool),
      persistence_(static_cast<uint8_t*>(static_cast<void*>(pool)), pool_bytes),
      meta_offset_(meta_offset) {}

LogPool::~LogPool() { pmemobj_close(pool_); }

absl::Status LogPool::CheckRing(const format::Header& header) const {
  const PMEMoid root_oid = pmemobj_root(pool_, format::kRootBytes);
  const auto* root = static_cast<const Root*>(pmemobj_direct(root_oid));
  const PMEMoid ring = root->ring_oid;
  const void* direct = pmemobj_direct(ring);
  const uint8_t* base = persistence_.base();
  if (direct == nullptr || ring.off < format::kRootOidBytes ||
      ring.off >= persistence_.size_bytes() ||
      static_cast<const uint8_t*>(direct) != base + ring.off ||
      pmemobj_type_num(ring) != format::kRingTypeNum) {
    return absl::DataLossError("pmemlog root names no ring allocation of this pool");
  }
  const uint64_t usable = pmemobj_alloc_usable_size(ring);
  if (header.ring_offset < ring.off || header.ring_offset - ring.off > usable ||
      header.ring_bytes > usable - (header.ring_offset - ring.off)) {
    return absl::DataLossError(
        absl::StrFormat("pmemlog ring [%d, +%d) lies outside its allocation [%d, +%d)",
                        header.ring_offset, header.ring_bytes, ring.off, usable));
  }
  return absl::OkStatus();
}

void LogPool::PrefaultRing(const format::Header& header) {
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  uint8_t* base = persistence_.base();
  const uint64_t begin = format::RoundDown(header.ring_offset, page);
  const uint64_t end = header.ring_offset + header.ring_bytes;
  if (madvise(base + begin, end - begin, MADV_POPULATE_WRITE) == 0) return;
  // Older kernels: a read maps each page (tmpfs and DAX map shared pages
  // writable on a read fault when the mapping is writable).
  for (uint64_t off = header.ring_offset; off < end; off += page) {
    (void)*static_cast<volatile uint8_t*>(base + off);
  }
}

}  // namespace blizzard::pmemlog
