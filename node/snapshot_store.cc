#include "node/snapshot_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/internal/raw_logging.h"
#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "xxhash.h"

namespace blizzard::node {
namespace {

// Formats: node/SNAPSHOT.md. Little-endian, fixed-width fields.
constexpr uint64_t kImageMagic = 0x0050414e535a4c42ull;  // "BLZSNAP\0"
constexpr uint64_t kMetaMagic = 0x4154454d535a4c42ull;   // "BLZSMETA"
constexpr uint32_t kFormatVersion = 1;
constexpr uint32_t kBlockBytes = 4096;
constexpr uint64_t kRecordBytesMax = 1u << 20;
constexpr uint64_t kImageHeaderBytes = 40;
constexpr uint64_t kEndOffset = ~0ull;
constexpr uint64_t kMetaBytesMax = 64u << 10;
constexpr uint64_t kPoolBytesMax = 1ull << 40;

int64_t MonotonicUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

absl::Status Errno(absl::string_view what, const std::string& path) {
  return absl::InternalError(absl::StrCat(what, " ", path, ": ", std::strerror(errno)));
}

void Put64(std::string& out, uint64_t v) { out.append(reinterpret_cast<const char*>(&v), 8); }
void Put32(std::string& out, uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }
uint64_t Get64(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
uint32_t Get32(const char* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

absl::Status PwriteAll(int fd, const char* data, size_t n, uint64_t offset,
                       const std::string& path) {
  while (n > 0) {
    ssize_t w = pwrite(fd, data, n, static_cast<off_t>(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      return Errno("pwrite", path);
    }
    data += w;
    n -= static_cast<size_t>(w);
    offset += static_cast<uint64_t>(w);
  }
  return absl::OkStatus();
}

// Reads exactly n bytes at offset; false at end of file.
absl::StatusOr<bool> PreadAll(int fd, char* data, size_t n, uint64_t offset,
                              const std::string& path) {
  while (n > 0) {
    ssize_t r = pread(fd, data, n, static_cast<off_t>(offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      return Errno("pread", path);
    }
    if (r == 0) return false;
    data += r;
    n -= static_cast<size_t>(r);
    offset += static_cast<uint64_t>(r);
  }
  return true;
}

absl::Status SyncDir(const std::string& dir) {
  int fd = open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("open directory", dir);
  int r = fsync(fd);
  close(fd);
  if (r != 0) return Errno("fsync directory", dir);
  return absl::OkStatus();
}

absl::Status SyncClose(int fd, const std::string& path) {
  const int r = fsync(fd);
  close(fd);
  if (r != 0) return Errno("fsync", path);
  return absl::OkStatus();
}

absl::Status Rename(const std::string& from, const std::string& to) {
  if (rename(from.c_str(), to.c_str()) != 0) return Errno("rename to " + to, from);
  return absl::OkStatus();
}

// Walks an image file, checking everything, and calls `record` for each
// record (offset in the pool, its bytes). Returns the pool size and sets
// *checksum to the image's checksum.
absl::StatusOr<uint64_t> ScanImage(
    const std::string& path, uint64_t cluster_id, uint64_t* checksum,
    const std::function<absl::Status(uint64_t, const std::string&)>& record) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("open", path);
  absl::Cleanup close_fd = [fd] { close(fd); };
  auto bad = [&](const std::string& what) {
    return absl::DataLossError(absl::StrCat("snapshot image ", path, ": ", what));
  };
  XXH3_state_t* st = XXH3_createState();
  ABSL_RAW_CHECK(st != nullptr, "XXH3_createState");
  absl::Cleanup free_state = [st] { XXH3_freeState(st); };
  XXH3_64bits_reset(st);
  uint64_t pos = 0;
  auto read = [&](char* buf, size_t n) -> absl::Status {
    absl::StatusOr<bool> ok = PreadAll(fd, buf, n, pos, path);
    if (!ok.ok()) return ok.status();
    if (!*ok) return bad(absl::StrCat("truncated at byte ", pos));
    XXH3_64bits_update(st, buf, n);
    pos += n;
    return absl::OkStatus();
  };
  char h[kImageHeaderBytes];
  if (auto s = read(h, sizeof(h)); !s.ok()) return s;
  if (Get64(h) != kImageMagic) return bad("bad magic: not a Blizzard snapshot image");
  if (Get32(h + 8) != kFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("snapshot image ", path, ": format version ", Get32(h + 8)));
  }
  if (Get32(h + 12) != kBlockBytes) return bad("bad block size");
  if (Get64(h + 16) != cluster_id) {
    return absl::FailedPreconditionError(absl::StrCat(
        "snapshot image ", path, " belongs to cluster ", Get64(h + 16)));
  }
  const uint64_t pool_bytes = Get64(h + 24);
  if (pool_bytes == 0 || pool_bytes > kPoolBytesMax || pool_bytes % kBlockBytes != 0) {
    return bad(absl::StrCat("bad pool size ", pool_bytes));
  }
  uint64_t next_offset = 0;
  uint64_t records = 0;
  std::string data;
  while (true) {
    char rh[16];
    if (auto s = read(rh, sizeof(rh)); !s.ok()) return s;
    const uint64_t offset = Get64(rh);
    const uint64_t length = Get64(rh + 8);
    if (offset == kEndOffset) {
      if (length != records) return bad("record count mismatch");
      const uint64_t sum = XXH3_64bits_digest(st);
      char tail[8];
      absl::StatusOr<bool> ok = PreadAll(fd, tail, 8, pos, path);
      if (!ok.ok()) return ok.status();
      if (!*ok) return bad("truncated checksum");
      if (Get64(tail) != sum) return bad("checksum mismatch");
      char extra;
      absl::StatusOr<bool> more = PreadAll(fd, &extra, 1, pos + 8, path);
      if (!more.ok()) return more.status();
      if (*more) return bad("bytes after the checksum");
      *checksum = sum;
      return pool_bytes;
    }
    if (length == 0 || length > kRecordBytesMax || length % kBlockBytes != 0 ||
        offset % kBlockBytes != 0 || offset < next_offset || offset > pool_bytes ||
        length > pool_bytes - offset) {
      return bad(absl::StrCat("bad record ", records, " (offset ", offset, ", length ",
                              length, ")"));
    }
    data.resize(length);
    if (auto s = read(data.data(), length); !s.ok()) return s;
    if (record) {
      if (auto s = record(offset, data); !s.ok()) return s;
    }
    next_offset = offset + length;
    ++records;
  }
}

std::string EncodeMeta(const consensus::SnapshotMeta& meta, uint64_t cluster_id,
                       uint64_t image_checksum) {
  const std::string membership = consensus::EncodeMembership(meta.membership);
  std::string out;
  Put64(out, kMetaMagic);
  Put32(out, kFormatVersion);
  Put32(out, static_cast<uint32_t>(membership.size()));
  Put64(out, cluster_id);
  Put64(out, meta.index);
  Put64(out, meta.term);
  Put64(out, meta.bytes);
  Put64(out, image_checksum);
  out += membership;
  Put64(out, XXH3_64bits(out.data(), out.size()));
  return out;
}

constexpr size_t kMetaFixedBytes = 56;

absl::StatusOr<consensus::SnapshotMeta> DecodeMeta(const std::string& in, uint64_t cluster_id,
                                                   uint64_t* image_checksum) {
  auto bad = [](const std::string& what) {
    return absl::DataLossError(absl::StrCat("snapshot meta: ", what));
  };
  if (in.size() < kMetaFixedBytes + 8) return bad("truncated");
  if (Get64(in.data()) != kMetaMagic) return bad("bad magic");
  if (XXH3_64bits(in.data(), in.size() - 8) != Get64(in.data() + in.size() - 8)) {
    return bad("checksum mismatch");
  }
  if (Get32(in.data() + 8) != kFormatVersion) {
    return absl::FailedPreconditionError(
        absl::StrCat("snapshot meta: format version ", Get32(in.data() + 8)));
  }
  const uint32_t mbytes = Get32(in.data() + 12);
  if (in.size() != kMetaFixedBytes + mbytes + 8) return bad("size mismatch");
  if (Get64(in.data() + 16) != cluster_id) {
    return absl::FailedPreconditionError(
        absl::StrCat("snapshot meta belongs to cluster ", Get64(in.data() + 16)));
  }
  consensus::SnapshotMeta meta;
  meta.index = Get64(in.data() + 24);
  meta.term = Get64(in.data() + 32);
  meta.bytes = Get64(in.data() + 40);
  *image_checksum = Get64(in.data() + 48);
  absl::StatusOr<consensus::Membership> m =
      consensus::DecodeMembership(absl::string_view(in.data() + kMetaFixedBytes, mbytes));
  if (!m.ok()) return bad(std::string(m.status().message()));
  meta.membership = std::move(*m);
  if (meta.index == 0 || meta.term == 0 || meta.bytes == 0) return bad("empty snapshot");
  return meta;
}

std::string ImagePathFor(const std::string& dir, const consensus::SnapshotMeta& meta) {
  return absl::StrCat(dir, "/snap-", meta.index, "-", meta.term, ".img");
}

bool AllZero(const char* p, size_t n) {
  static const char kZero[kBlockBytes] = {};
  return std::memcmp(p, kZero, n) == 0;
}

}  // namespace

SnapshotStore::SnapshotStore(std::string dir, uint64_t cluster_id)
    : dir_(std::move(dir)), cluster_id_(cluster_id) {}

SnapshotStore::~SnapshotStore() {
  CloseReader();
  if (staging_fd_ >= 0) close(staging_fd_);
}

void SnapshotStore::CloseReader() {
  if (read_fd_ >= 0) close(read_fd_);
  read_fd_ = -1;
}

std::string SnapshotStore::ImagePathIn(const std::string& dir,
                                       const consensus::SnapshotMeta& meta) {
  return ImagePathFor(dir, meta);
}

absl::StatusOr<uint64_t> VerifySnapshotImage(const std::string& path, uint64_t cluster_id) {
  uint64_t sum = 0;
  return ScanImage(path, cluster_id, &sum, nullptr);
}

absl::StatusOr<KeptSnapshot> LoadKeptSnapshot(const std::string& dir, uint64_t cluster_id) {
  KeptSnapshot kept;
  const std::string meta_path = dir + "/meta";
  std::error_code ec;
  if (!std::filesystem::exists(meta_path, ec)) return kept;  // index 0: none.
  int fd = open(meta_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Errno("open", meta_path);
  std::string bytes(kMetaBytesMax + 1, '\0');
  ssize_t n = read(fd, bytes.data(), bytes.size());
  close(fd);
  if (n < 0) return Errno("read", meta_path);
  bytes.resize(static_cast<size_t>(n));
  if (cluster_id == 0 && bytes.size() >= 24) cluster_id = Get64(bytes.data() + 16);
  absl::StatusOr<consensus::SnapshotMeta> meta =
      DecodeMeta(bytes, cluster_id, &kept.image_checksum);
  if (!meta.ok()) {
    return absl::Status(meta.status().code(),
                        absl::StrCat(meta_path, ": ", meta.status().message()));
  }
  kept.cluster_id = cluster_id;
  kept.image_path = ImagePathFor(dir, *meta);
  struct stat st;
  if (stat(kept.image_path.c_str(), &st) != 0 ||
      static_cast<uint64_t>(st.st_size) != meta->bytes) {
    return absl::DataLossError(absl::StrCat("snapshot image ", kept.image_path,
                                            " is missing or not ", meta->bytes, " bytes"));
  }
  uint64_t sum = 0;
  absl::StatusOr<uint64_t> pool_bytes = ScanImage(kept.image_path, cluster_id, &sum, nullptr);
  if (!pool_bytes.ok()) return pool_bytes.status();
  if (sum != kept.image_checksum) {
    return absl::DataLossError(absl::StrCat("snapshot image ", kept.image_path,
                                            " is not the one its meta names"));
  }
  kept.pool_bytes = *pool_bytes;
  kept.meta = std::move(*meta);
  return kept;
}

absl::StatusOr<std::string> DescribeSnapshotDir(const std::string& dir, uint64_t cluster_id) {
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    return absl::NotFoundError(absl::StrCat(dir, " is not a directory"));
  }
  std::string out;
  absl::StatusOr<KeptSnapshot> kept = LoadKeptSnapshot(dir, cluster_id);
  if (!kept.ok()) {
    absl::StrAppend(&out, "status: ", absl::IsDataLoss(kept.status()) ? "CORRUPT" : "REFUSED",
                    ": ", kept.status().message(), "\n");
  } else if (kept->meta.index == 0) {
    absl::StrAppend(&out, "status: OK (no snapshot kept)\n");
  } else {
    const consensus::SnapshotMeta& m = kept->meta;
    absl::StrAppend(&out, "status: OK\n", "cluster_id: ", kept->cluster_id, "\n",
                    "index: ", m.index, "\nterm: ", m.term, "\n", "image: ",
                    kept->image_path, " (", m.bytes, " bytes, checksum ",
                    absl::Hex(kept->image_checksum, absl::kZeroPad16), ", verified)\n",
                    "pool_bytes: ", kept->pool_bytes, "\n", "voters:");
    for (consensus::NodeId v : m.membership.voters) absl::StrAppend(&out, " ", v);
    absl::StrAppend(&out, "\nlearners:");
    for (consensus::NodeId l : m.membership.learners) absl::StrAppend(&out, " ", l);
    absl::StrAppend(&out, "\n");
  }
  // What the next Open would remove (a crash's leftovers), listed in order.
  std::vector<std::string> leftovers;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string p = e.path().string();
    if (p == dir + "/meta" || (kept.ok() && p == kept->image_path)) continue;
    leftovers.push_back(e.path().filename().string());
  }
  std::sort(leftovers.begin(), leftovers.end());
  for (const std::string& l : leftovers) {
    absl::StrAppend(&out, "leftover: ", l, " (removed when the node next opens the store)\n");
  }
  if (!kept.ok()) return absl::Status(kept.status().code(), out);
  return out;
}

absl::StatusOr<std::unique_ptr<SnapshotStore>> SnapshotStore::Open(const std::string& dir,
                                                                   uint64_t cluster_id) {
  ABSL_RAW_CHECK(cluster_id != 0, "cluster ids are positive (config)");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return absl::InternalError(absl::StrCat("create ", dir, ": ", ec.message()));
  std::unique_ptr<SnapshotStore> store(new SnapshotStore(dir, cluster_id));
  const std::string meta_path = dir + "/meta";
  absl::StatusOr<KeptSnapshot> kept = LoadKeptSnapshot(dir, cluster_id);
  if (!kept.ok()) return kept.status();
  store->meta_ = std::move(kept->meta);
  // Leftovers: anything but the meta and the kept image.
  const std::string keep = store->meta_.index > 0 ? store->ImagePath(store->meta_) : "";
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string p = e.path().string();
    if (p == meta_path || p == keep) continue;
    std::filesystem::remove(p, ec);
  }
  return store;
}

absl::StatusOr<std::string> SnapshotStore::ReadChunk(consensus::Index index, uint64_t offset,
                                                     uint64_t bytes_max) {
  if (meta_.index == 0 || index != meta_.index) {
    return absl::NotFoundError(absl::StrCat("snapshot ", index, " is not held"));
  }
  if (offset > meta_.bytes) {
    return absl::OutOfRangeError(absl::StrCat("offset ", offset, " beyond snapshot ", index));
  }
  if (read_fd_ < 0) {
    const std::string path = ImagePath(meta_);
    read_fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (read_fd_ < 0) return absl::DataLossError(absl::StrCat("open ", path, ": ", std::strerror(errno)));
  }
  std::string out(std::min(bytes_max, meta_.bytes - offset), '\0');
  absl::StatusOr<bool> ok = PreadAll(read_fd_, out.data(), out.size(), offset, ImagePath(meta_));
  if (!ok.ok()) return ok.status();
  if (!*ok) return absl::DataLossError(absl::StrCat("snapshot ", index, " shrank"));
  ++stats_.chunks_read;
  stats_.bytes_read += out.size();
  return out;
}

absl::Status SnapshotStore::WriteMeta(const consensus::SnapshotMeta& meta,
                                      uint64_t image_checksum) {
  const std::string tmp = dir_ + "/meta.tmp";
  const std::string bytes = EncodeMeta(meta, cluster_id_, image_checksum);
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("open", tmp);
  if (auto s = PwriteAll(fd, bytes.data(), bytes.size(), 0, tmp); !s.ok()) {
    close(fd);
    return s;
  }
  if (auto s = SyncClose(fd, tmp); !s.ok()) return s;
  if (auto s = Rename(tmp, dir_ + "/meta"); !s.ok()) return s;
  return SyncDir(dir_);
}

absl::Status SnapshotStore::Commit(const consensus::SnapshotMeta& meta,
                                   uint64_t image_checksum) {
  if (auto s = WriteMeta(meta, image_checksum); !s.ok()) return s;
  // The new meta is durable: the old image is garbage from here on.
  const consensus::SnapshotMeta old = meta_;
  CloseReader();
  meta_ = meta;
  if (old.index > 0 && ImagePath(old) != ImagePath(meta)) {
    std::error_code ec;
    std::filesystem::remove(ImagePath(old), ec);
  }
  return absl::OkStatus();
}

absl::StatusOr<consensus::SnapshotMeta> SnapshotStore::Create(const std::string& pool_path,
                                                              consensus::SnapshotMeta meta) {
  if (meta.index <= meta_.index || meta.term == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "snapshot at ", meta.index, " is not above the kept one at ", meta_.index));
  }
  absl::StatusOr<Image> image = WriteImage(dir_, cluster_id_, pool_path, std::move(meta));
  if (!image.ok()) return image.status();
  if (absl::Status s = CommitImage(*image); !s.ok()) return s;
  return image->meta;
}

absl::Status SnapshotStore::CommitImage(const Image& image) {
  if (image.meta.index <= meta_.index) {
    // A snapshot installed from the leader overtook this one.
    std::error_code ec;
    if (ImagePath(image.meta) != ImagePath(meta_)) std::filesystem::remove(ImagePath(image.meta), ec);
    return absl::FailedPreconditionError(absl::StrCat(
        "snapshot at ", image.meta.index, " is not above the kept one at ", meta_.index));
  }
  if (absl::Status s = Commit(image.meta, image.checksum); !s.ok()) return s;
  ++stats_.created;
  stats_.last_create_us = image.took_us;
  stats_.create_us_max = std::max(stats_.create_us_max, image.took_us);
  return absl::OkStatus();
}

absl::StatusOr<SnapshotStore::Image> SnapshotStore::WriteImage(const std::string& dir,
                                                               uint64_t cluster_id,
                                                               const std::string& pool_path,
                                                               consensus::SnapshotMeta meta) {
  const int64_t start_us = MonotonicUs();
  int in = open(pool_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) return Errno("open", pool_path);
  struct stat st;
  if (fstat(in, &st) != 0) {
    close(in);
    return Errno("stat", pool_path);
  }
  const uint64_t pool_bytes = static_cast<uint64_t>(st.st_size);
  if (pool_bytes == 0 || pool_bytes % kBlockBytes != 0 || pool_bytes > kPoolBytesMax) {
    close(in);
    return absl::FailedPreconditionError(
        absl::StrCat("pool ", pool_path, " of ", pool_bytes, " bytes cannot be snapshotted"));
  }
  const std::string image = ImagePathIn(dir, meta);
  const std::string tmp = image + ".tmp";
  int out = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) {
    close(in);
    return Errno("open", tmp);
  }
  // Buffered writer with a running checksum.
  XXH3_state_t* xs = XXH3_createState();
  XXH3_64bits_reset(xs);
  std::string buf;
  uint64_t written = 0;  // Bytes emitted; those not in buf are in the file.
  absl::Status status;
  auto flush = [&] {
    if (status.ok()) status = PwriteAll(out, buf.data(), buf.size(), written - buf.size(), tmp);
    buf.clear();
  };
  auto emit = [&](const char* p, size_t n) {
    XXH3_64bits_update(xs, p, n);
    buf.append(p, n);
    written += n;
    if (buf.size() >= (4u << 20)) flush();
  };
  std::string header;
  Put64(header, kImageMagic);
  Put32(header, kFormatVersion);
  Put32(header, kBlockBytes);
  Put64(header, cluster_id);
  Put64(header, pool_bytes);
  Put64(header, 0);
  emit(header.data(), header.size());
  // Records: runs of non-zero blocks, at most kRecordBytesMax each. An
  // unused pool is mostly zeros, so the image is about the used bytes.
  std::string chunk(kRecordBytesMax, '\0');
  uint64_t records = 0;
  for (uint64_t base = 0; base < pool_bytes && status.ok(); base += kRecordBytesMax) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(kRecordBytesMax, pool_bytes - base));
    absl::StatusOr<bool> ok = PreadAll(in, chunk.data(), n, base, pool_path);
    if (!ok.ok() || !*ok) {
      status = ok.ok() ? absl::DataLossError(absl::StrCat(pool_path, " shrank")) : ok.status();
      break;
    }
    size_t run_start = 0;
    bool in_run = false;
    for (size_t b = 0; b <= n; b += kBlockBytes) {
      const bool nonzero = b < n && !AllZero(chunk.data() + b, kBlockBytes);
      if (nonzero && !in_run) {
        in_run = true;
        run_start = b;
      } else if (!nonzero && in_run) {
        in_run = false;
        std::string rh;
        Put64(rh, base + run_start);
        Put64(rh, b - run_start);
        emit(rh.data(), rh.size());
        emit(chunk.data() + run_start, b - run_start);
        ++records;
      }
    }
  }
  close(in);
  std::string end;
  Put64(end, kEndOffset);
  Put64(end, records);
  emit(end.data(), end.size());
  const uint64_t sum = XXH3_64bits_digest(xs);
  XXH3_freeState(xs);
  Put64(buf, sum);
  written += 8;
  flush();
  if (!status.ok()) {
    close(out);
    unlink(tmp.c_str());
    return status;
  }
  if (auto s = SyncClose(out, tmp); !s.ok()) return s;
  if (auto s = Rename(tmp, image); !s.ok()) return s;
  if (auto s = SyncDir(dir); !s.ok()) return s;
  meta.bytes = written;
  return Image{std::move(meta), sum, MonotonicUs() - start_us};
}

absl::Status SnapshotStore::Stage(const consensus::SnapshotChunk& chunk) {
  const std::string path = dir_ + "/staging.img";
  if (chunk.offset == 0) {
    if (staging_fd_ >= 0) close(staging_fd_);
    staging_fd_ = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (staging_fd_ < 0) return Errno("open", path);
    staging_ = true;
    staged_meta_ = chunk.meta;
    staged_bytes_ = 0;
  } else if (!staging_ || !(staged_meta_ == chunk.meta) || staged_bytes_ != chunk.offset) {
    return absl::InvalidArgumentError(absl::StrCat(
        "snapshot chunk at ", chunk.offset, " of snapshot ", chunk.meta.index,
        " does not continue the staged bytes"));
  }
  if (chunk.meta.bytes > kPoolBytesMax * 2 || chunk.offset + chunk.data.size() > chunk.meta.bytes) {
    return absl::InvalidArgumentError("snapshot chunk beyond the snapshot's size");
  }
  if (auto s = PwriteAll(staging_fd_, chunk.data.data(), chunk.data.size(), chunk.offset, path);
      !s.ok()) {
    return s;
  }
  staged_bytes_ += chunk.data.size();
  ++stats_.chunks_staged;
  stats_.bytes_staged += chunk.data.size();
  return absl::OkStatus();
}

absl::Status SnapshotStore::CommitStaged(const consensus::SnapshotMeta& meta) {
  if (!staging_ || !(staged_meta_ == meta) || staged_bytes_ != meta.bytes) {
    return absl::FailedPreconditionError(
        absl::StrCat("snapshot ", meta.index, " is not fully staged"));
  }
  const std::string path = dir_ + "/staging.img";
  const int fd = staging_fd_;
  staging_fd_ = -1;
  staging_ = false;
  if (auto s = SyncClose(fd, path); !s.ok()) return s;
  uint64_t sum = 0;
  if (absl::StatusOr<uint64_t> v = ScanImage(path, cluster_id_, &sum, nullptr); !v.ok()) {
    return v.status();
  }
  if (meta.index <= meta_.index) {
    // Raft installs only snapshots beyond the applied index, and the kept
    // snapshot is never beyond that.
    return absl::FailedPreconditionError(absl::StrCat(
        "installing snapshot ", meta.index, " at or below the kept one ", meta_.index));
  }
  if (auto s = Rename(path, ImagePath(meta)); !s.ok()) return s;
  if (auto s = Commit(meta, sum); !s.ok()) return s;
  ++stats_.installed;
  return absl::OkStatus();
}

absl::Status SnapshotStore::RestorePool(const std::string& pool_path) const {
  if (meta_.index == 0) return absl::FailedPreconditionError("no snapshot kept");
  const std::string tmp = pool_path + ".install.tmp";
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return Errno("open", tmp);
  bool sized = false;
  uint64_t sum = 0;
  absl::StatusOr<uint64_t> pool_bytes = ScanImage(
      ImagePath(meta_), cluster_id_, &sum, [&](uint64_t offset, const std::string& data) {
        return PwriteAll(fd, data.data(), data.size(), offset, tmp);
      });
  if (pool_bytes.ok()) {
    // Allocate every block (tmpfs would otherwise fault in the mapped pool
    // later and SIGBUS when /dev/shm is full), zeros included.
    const int r = posix_fallocate(fd, 0, static_cast<off_t>(*pool_bytes));
    sized = r == 0;
    if (!sized) errno = r;
  }
  if (!pool_bytes.ok() || !sized) {
    close(fd);
    unlink(tmp.c_str());
    return pool_bytes.ok() ? Errno("posix_fallocate", tmp) : pool_bytes.status();
  }
  if (auto s = SyncClose(fd, tmp); !s.ok()) return s;
  if (auto s = Rename(tmp, pool_path); !s.ok()) return s;
  return SyncDir(std::filesystem::path(pool_path).parent_path().string());
}

}  // namespace blizzard::node
