#include "node/server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/internal/raw_logging.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "consensus/codec.h"
#include "consensus/raft.h"
#include "node/commands.h"
#include "node/log_storage.h"
#include "node/replication.h"
#include "node/resp.h"
#include "node/session_table.h"
#include "node/snapshot_store.h"
#include "node/transport_setup.h"
#include "pmemlog/pmem_log.h"
#include "structures/kv_store.h"
#include "transport/transport.h"

namespace blizzard::node {
namespace {

// epoll user data for the fixed descriptors; client connections use their
// connection id, which starts above these.
constexpr uint64_t kListenTag = 1;
constexpr uint64_t kTimerTag = 2;
constexpr uint64_t kTransportTag = 3;
constexpr uint64_t kFirstConnectionId = 16;
constexpr int kEventsMax = 256;
constexpr uint64_t kTicksPerWakeupMax = 16;

int64_t MonotonicUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000000 + ts.tv_nsec / 1000;
}

absl::Status ErrnoStatus(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

absl::Status EnsureParentDir(const std::string& path) {
  std::error_code ec;
  std::filesystem::path parent = std::filesystem::path(path).parent_path();
  if (parent.empty()) return absl::OkStatus();
  std::filesystem::create_directories(parent, ec);
  if (ec) {
    return absl::InternalError(
        absl::StrCat("cannot create directory ", parent.string(), ": ", ec.message()));
  }
  return absl::OkStatus();
}

// One reply position in a connection's in-order reply stream.
struct Slot {
  bool ready = false;
  std::string reply;
};

struct Connection {
  int fd = -1;
  RespParser parser;
  std::deque<Slot> slots;
  uint64_t first_seq = 0;  // Sequence number of slots.front().
  uint64_t next_seq = 0;
  std::string out;
  size_t out_offset = 0;
  bool close_after_flush = false;  // QUIT or protocol error.
  bool paused = false;             // Not polled for input (back-pressure).
  uint32_t epoll_events = 0;       // What epoll has registered for fd.
  bool stale_reads = false;        // READONLY: reads served locally.
};

// Where a reply goes once known.
struct Waiter {
  uint64_t conn = 0;
  uint64_t seq = 0;
};

struct PendingRead {
  Waiter waiter;
  std::vector<std::string> args;
};

struct Proposal {
  consensus::Term term = 0;
  std::vector<Waiter> waiters;  // One per op, in op order.
  // Results known when the entry was built (physical mode).
  std::optional<std::vector<structures::OpResult>> results;
  bool membership = false;      // A CLUSTER change: one waiter, "+OK" on commit.
};

// Reads confirmed by a ReadIndex round, waiting for applied >= index.
struct ReadGroup {
  consensus::Index index = 0;
  std::vector<PendingRead> reads;
};

}  // namespace

// The leader's log beyond the applied index, for a replication mode that
// builds entries on top of it (physical): terms from Raft, payloads from
// the durable log.
class ServerUnappliedLog : public UnappliedLog {
 public:
  ServerUnappliedLog(const consensus::Raft& raft, const PmemLogStorage& storage)
      : raft_(raft), storage_(storage) {}
  absl::StatusOr<uint64_t> TermAt(uint64_t index) const override {
    return raft_.TermAt(index);
  }
  absl::StatusOr<std::optional<std::string>> OpsPayload(uint64_t index) const override {
    if (index > storage_.LastIndex()) {
      return absl::UnavailableError(absl::StrCat("entry ", index, " is not persisted yet"));
    }
    absl::StatusOr<std::vector<consensus::Entry>> e =
        storage_.Entries(index, index + 1, UINT64_MAX);
    if (!e.ok()) return e.status();
    if (e->size() != 1) return absl::InternalError(absl::StrCat("log entry ", index, " missing"));
    consensus::Entry& entry = e->front();
    // Storage may still hold an entry that Raft's log already replaced
    // (the replacement is not persisted yet).
    absl::StatusOr<consensus::Term> term = raft_.TermAt(index);
    if (!term.ok()) return term.status();
    if (entry.term != *term) {
      return absl::UnavailableError(absl::StrCat("entry ", index, " of term ", *term,
                                                 " is not persisted yet"));
    }
    if (entry.type != consensus::EntryType::kNormal || entry.data.empty()) {
      return std::optional<std::string>();
    }
    return std::optional<std::string>(std::move(entry.data));
  }

 private:
  const consensus::Raft& raft_;
  const PmemLogStorage& storage_;
};

class Server::Impl {
 public:
  Impl(const ClusterConfig& cluster, const ServerOptions& options)
      : cluster_(cluster), options_(options) {}

  ~Impl() {
    if (snapshot_thread_.joinable()) snapshot_thread_.join();
    for (auto& [id, conn] : connections_) close(conn.fd);
    if (listen_fd_ >= 0) close(listen_fd_);
    if (timer_fd_ >= 0) close(timer_fd_);
    if (epoll_fd_ >= 0) close(epoll_fd_);
  }

  absl::Status Init();
  absl::Status Run(const std::atomic<bool>& stop);

 private:
  // Set-up.
  absl::Status OpenPools();
  // adopt: accept the pool of another node of this cluster (a snapshot
  // installed from it) and re-stamp it with this node's id.
  absl::Status OpenStore(bool adopt);
  // Makes the kept snapshot the data pool (install, or finishing one a
  // crash interrupted) and resets the log to it when needed.
  absl::Status RestoreFromSnapshot();
  absl::Status ResetLogToSnapshot();
  absl::Status StartRaft();
  absl::Status StartTransport();
  absl::Status Listen();
  absl::Status StartTimer();
  absl::Status EpollAdd(int fd, uint32_t events, uint64_t tag);

  // Client side.
  void Accept();
  void OnClientEvent(uint64_t id, uint32_t events);
  void ReadClient(uint64_t id, Connection& conn);
  void HandleRequest(uint64_t id, Connection& conn, std::vector<std::string> args);
  uint64_t AddSlot(Connection& conn);
  void FillSlot(const Waiter& w, std::string reply);
  void FlushConnection(uint64_t id, Connection& conn);
  void CloseConnection(uint64_t id);
  void UpdateInterest(uint64_t id, Connection& conn);
  void ResumePausedClients();
  std::string RedirectError() const;
  void HandleCluster(const Waiter& waiter, const std::vector<std::string>& args);
  // "voters:..\r\nlearners:..\r\n" (INFO); plus leader_id (CLUSTER MEMBERS).
  std::string MembershipLines() const;
  std::string MembersText() const;
  std::string ExecuteClientRead(const std::vector<std::string>& args) const;
  std::string InfoText() const;

  // Replication side.
  void OnTransportMessage(transport::NodeId from, absl::Span<const uint8_t> bytes);
  void FlushWriteBatch();
  void IssueReads();
  absl::Status ProcessReady();
  absl::Status ApplyCommitted(const consensus::Entry& entry);
  absl::Status InstallSnapshot(const consensus::SnapshotMeta& meta);
  absl::Status MaybeCompact();
  // Background snapshots: when the copy is done, commit it, compact the
  // log and apply the entries held back meanwhile.
  absl::Status FinishSnapshot();
  absl::Status CompactToSnapshot();
  void WaitForSnapshotThread();
  void ServeReads();
  void FailAllPending(const std::string& reply);

  const ClusterConfig cluster_;
  const ServerOptions options_;
  const NodeConfig* self_ = nullptr;

  std::unique_ptr<pmemlog::PmemLog> log_;
  std::unique_ptr<SnapshotStore> snapshots_;
  std::unique_ptr<PmemLogStorage> storage_;
  std::unique_ptr<structures::KvStore> store_;
  std::unique_ptr<SessionTable> sessions_;
  std::unique_ptr<ReplicationMode> replication_;
  std::unique_ptr<transport::Transport> transport_;
  std::unique_ptr<consensus::Raft> raft_;
  consensus::SoftState soft_state_;

  int epoll_fd_ = -1;
  int listen_fd_ = -1;
  int timer_fd_ = -1;

  absl::flat_hash_map<uint64_t, Connection> connections_;
  absl::flat_hash_set<uint64_t> dirty_;  // Connections with output to flush.
  uint64_t next_connection_id_ = kFirstConnectionId;
  size_t pending_requests_ = 0;
  bool clients_paused_ = false;

  // The write batch being gathered in this loop iteration.
  std::vector<structures::Op> batch_ops_;
  std::vector<Waiter> batch_waiters_;
  uint64_t batch_bytes_ = 0;
  std::map<consensus::Index, Proposal> proposals_;
  consensus::Index last_proposed_index_ = 0;

  // Reads gathered in this iteration, reads waiting for their ReadIndex
  // round (by context), and confirmed reads waiting to be applied.
  std::vector<PendingRead> new_reads_;
  absl::flat_hash_map<uint64_t, ReadGroup> reads_by_context_;
  std::deque<ReadGroup> confirmed_reads_;
  uint64_t next_read_context_ = 1;

  // Counters for INFO.
  int64_t loop_us_max_ = 0;       // Longest loop iteration.
  uint64_t loop_over_tick_ = 0;    // Iterations longer than one tick.
  uint64_t ticks_dropped_ = 0;     // Ticks skipped after stalls.
  uint64_t entries_applied_ = 0;
  uint64_t ops_applied_ = 0;
  uint64_t proposals_made_ = 0;
  uint64_t malformed_peer_messages_ = 0;
  uint64_t connections_accepted_ = 0;
  uint64_t connections_rejected_ = 0;
  uint64_t compactions_ = 0;
  uint64_t membership_changes_ = 0;
  uint64_t session_retries_ = 0;  // Answered from the table without a proposal.
  int64_t install_us_last_ = 0;
  // A snapshot being written by snapshot_thread_ (it only reads the data
  // pool, which does not change meanwhile: committed entries wait in
  // apply_backlog_). The result is written before done is set.
  std::thread snapshot_thread_;
  bool snapshot_running_ = false;
  std::atomic<bool> snapshot_done_{false};
  absl::StatusOr<SnapshotStore::Image> snapshot_result_ = absl::UnknownError("no snapshot");
  std::deque<consensus::Entry> apply_backlog_;
  uint64_t apply_backlog_max_ = 0;
  // Admission control: refusals, and the last verdict with the applied
  // index it was computed at (the arena changes only when entries apply).
  bool DataPoolFull();
  uint64_t oom_refused_ = 0;
  uint64_t full_checked_at_index_ = 0;
  bool full_ = false;
  absl::Status fatal_;
};

absl::Status Server::Impl::Init() {
  self_ = cluster_.Find(options_.self);
  if (self_ == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("node id ", options_.self, " is not in the cluster file"));
  }
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return ErrnoStatus("epoll_create1");
  if (absl::Status s = OpenPools(); !s.ok()) return s;
  if (absl::Status s = StartRaft(); !s.ok()) return s;
  if (absl::Status s = StartTransport(); !s.ok()) return s;
  if (absl::Status s = Listen(); !s.ok()) return s;
  return StartTimer();
}

absl::Status Server::Impl::OpenPools() {
  if (absl::Status s = EnsureParentDir(self_->log_pool); !s.ok()) return s;
  if (absl::Status s = EnsureParentDir(self_->data_pool); !s.ok()) return s;
  pmemlog::LogOptions log_options;
  log_options.path = self_->log_pool;
  log_options.pool_bytes = self_->log_pool_bytes;
  log_options.cluster_id = cluster_.cluster_id;
  log_options.node_id = self_->id;
  absl::StatusOr<std::unique_ptr<pmemlog::PmemLog>> log =
      pmemlog::PmemLog::Open(log_options);
  if (!log.ok()) {
    return absl::Status(log.status().code(),
                        absl::StrCat("log pool ", self_->log_pool, ": ",
                                     log.status().message()));
  }
  log_ = std::move(*log);
  absl::StatusOr<std::unique_ptr<SnapshotStore>> snapshots =
      SnapshotStore::Open(self_->data_pool + ".snapshots", cluster_.cluster_id);
  if (!snapshots.ok()) return snapshots.status();
  snapshots_ = std::move(*snapshots);
  storage_ = std::make_unique<PmemLogStorage>(log_.get(), snapshots_.get());
  if (absl::Status s = OpenStore(/*adopt=*/false); !s.ok()) {
    // A crash between an install's pool rename and its re-stamp leaves the
    // snapshot's pool with the sender's node id: accept exactly that.
    if (!absl::IsFailedPrecondition(s) || snapshots_->meta().index == 0) return s;
    if (absl::Status a = OpenStore(/*adopt=*/true); !a.ok()) return a;
    if (store_->AppliedIndex() != snapshots_->meta().index) return s;
  }

  // A crash during a snapshot install: the snapshot's meta (the commit
  // point) is newer than the data pool. Finish the install.
  const consensus::SnapshotMeta& snap = snapshots_->meta();
  if (snap.index > store_->AppliedIndex()) {
    if (absl::Status s = RestoreFromSnapshot(); !s.ok()) return s;
  } else if (absl::Status s = ResetLogToSnapshot(); !s.ok()) {
    return s;
  }

  // The data pool may never be ahead of the log: that would mean the log
  // pool was replaced or lost, and applied operations could be re-applied.
  // (Up to the kept snapshot it may: an install is durable before the
  // hard state that carries its commit.)
  const uint64_t applied = store_->AppliedIndex();
  const pmemlog::HardState hs = log_->GetHardState();
  if (applied > std::max(hs.commit, snap.index) || applied > log_->LastIndex()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "data pool %s has applied index %d but the log pool %s ends at %d "
        "(commit %d): the pools do not belong together; refusing to serve",
        self_->data_pool, applied, self_->log_pool, log_->LastIndex(), hs.commit));
  }
  return absl::OkStatus();
}

absl::Status Server::Impl::OpenStore(bool adopt) {
  replication_.reset();
  sessions_.reset();
  store_.reset();
  structures::StoreOptions store_options;
  store_options.path = self_->data_pool;
  store_options.pool_bytes = self_->data_pool_bytes;
  store_options.cluster_id = cluster_.cluster_id;
  store_options.node_id = self_->id;
  // A pool installed from another replica's snapshot carries that node's
  // id until it is re-stamped here (node/SNAPSHOT.md).
  store_options.adopt_node_id = adopt;
  absl::StatusOr<std::unique_ptr<structures::KvStore>> store =
      structures::KvStore::Open(store_options);
  if (!store.ok()) {
    return absl::Status(store.status().code(),
                        absl::StrCat("data pool ", self_->data_pool, ": ",
                                     store.status().message()));
  }
  store_ = std::move(*store);
  sessions_ = std::make_unique<SessionTable>(cluster_.sessions_max);
  if (absl::Status s = sessions_->Load(*store_); !s.ok()) {
    return absl::Status(s.code(), absl::StrCat("data pool ", self_->data_pool,
                                               ": session table: ", s.message()));
  }
  absl::StatusOr<std::unique_ptr<ReplicationMode>> mode =
      CreateReplicationMode(store_.get(), sessions_.get());
  if (!mode.ok()) return mode.status();
  replication_ = std::move(*mode);
  return absl::OkStatus();
}

absl::Status Server::Impl::RestoreFromSnapshot() {
  const consensus::SnapshotMeta& meta = snapshots_->meta();
  const int64_t start_us = MonotonicUs();
  replication_.reset();
  sessions_.reset();
  store_.reset();  // Closes the pool before its file is replaced.
  if (absl::Status s = snapshots_->RestorePool(self_->data_pool); !s.ok()) return s;
  if (absl::Status s = OpenStore(/*adopt=*/true); !s.ok()) return s;
  if (store_->AppliedIndex() != meta.index) {
    return absl::DataLossError(absl::StrCat("snapshot ", meta.index,
                                            " holds a pool at applied index ",
                                            store_->AppliedIndex()));
  }
  install_us_last_ = MonotonicUs() - start_us;
  return ResetLogToSnapshot();
}

absl::Status Server::Impl::ResetLogToSnapshot() {
  const consensus::SnapshotMeta& meta = snapshots_->meta();
  if (meta.index == 0) return absl::OkStatus();
  if (meta.index + 1 < log_->FirstIndex()) {
    return absl::DataLossError(absl::StrCat("the log is compacted to ", log_->FirstIndex(),
                                            ", beyond the kept snapshot ", meta.index));
  }
  if (meta.index <= log_->LastIndex()) {
    absl::StatusOr<uint64_t> t = log_->TermAt(meta.index);
    if (t.ok() && *t == meta.term) return absl::OkStatus();  // The log holds it.
  }
  return log_->Reset(meta.index, meta.term);
}

absl::Status Server::Impl::StartRaft() {
  consensus::Config config;
  config.id = self_->id;
  // A node outside the bootstrap voters waits to be added (no voters: it
  // never campaigns and learns the membership from the leader).
  const std::vector<uint64_t> voters = cluster_.BootstrapVoters();
  if (std::find(voters.begin(), voters.end(), self_->id) != voters.end()) {
    config.voters = voters;
  }
  config.snapshot_chunk_bytes = cluster_.snapshot_chunk_bytes;
  config.election_timeout_ticks = static_cast<int>(cluster_.election_timeout_ticks);
  config.heartbeat_interval_ticks = static_cast<int>(cluster_.heartbeat_interval_ticks);
  config.random_seed = options_.random_seed != 0
                           ? options_.random_seed
                           : cluster_.cluster_id * 1000003 + self_->id;
  config.applied = store_->AppliedIndex();
  absl::StatusOr<std::unique_ptr<consensus::Raft>> raft =
      consensus::Raft::Create(config, storage_.get());
  if (!raft.ok()) return raft.status();
  raft_ = std::move(*raft);
  return absl::OkStatus();
}

absl::Status Server::Impl::StartTransport() {
  const transport::TransportOptions t = TransportOptionsFor(cluster_, *self_);
  absl::StatusOr<std::unique_ptr<transport::Transport>> tr =
      transport::CreateTransport(t);
  if (!tr.ok()) {
    return absl::Status(tr.status().code(),
                        absl::StrCat(transport::TransportName(), " transport: ",
                                     tr.status().message()));
  }
  transport_ = std::move(*tr);
  if (transport_->ReadinessFd() >= 0) {
    return EpollAdd(transport_->ReadinessFd(), EPOLLIN, kTransportTag);
  }
  return absl::OkStatus();
}

absl::Status Server::Impl::Listen() {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listen_fd_ < 0) return ErrnoStatus("socket");
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(self_->client_port);
  if (inet_pton(AF_INET, self_->host.c_str(), &addr.sin_addr) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("host '", self_->host, "' is not an IPv4 address"));
  }
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) < 0) {
    return ErrnoStatus(absl::StrCat("bind client port ", self_->host, ":",
                                    self_->client_port));
  }
  if (listen(listen_fd_, 1024) < 0) return ErrnoStatus("listen");
  return EpollAdd(listen_fd_, EPOLLIN, kListenTag);
}

absl::Status Server::Impl::StartTimer() {
  timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (timer_fd_ < 0) return ErrnoStatus("timerfd_create");
  itimerspec spec{};
  spec.it_interval.tv_sec = cluster_.tick_ms / 1000;
  spec.it_interval.tv_nsec = static_cast<long>(cluster_.tick_ms % 1000) * 1000000;
  spec.it_value = spec.it_interval;
  if (timerfd_settime(timer_fd_, 0, &spec, nullptr) < 0) {
    return ErrnoStatus("timerfd_settime");
  }
  return EpollAdd(timer_fd_, EPOLLIN, kTimerTag);
}

absl::Status Server::Impl::EpollAdd(int fd, uint32_t events, uint64_t tag) {
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = tag;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) < 0) {
    return ErrnoStatus("epoll_ctl(ADD)");
  }
  return absl::OkStatus();
}

absl::Status Server::Impl::Run(const std::atomic<bool>& stop) {
  epoll_event events[kEventsMax];
  // A transport without a readiness fd (busy-polling) is polled at least
  // every millisecond; otherwise the tick timer bounds the wait.
  const int wait_ms = transport_->ReadinessFd() >= 0
                          ? static_cast<int>(cluster_.tick_ms)
                          : 1;
  while (!stop.load(std::memory_order_relaxed) && fatal_.ok()) {
    // Raft may still have output from the last iteration: do not sleep then.
    int n = epoll_wait(epoll_fd_, events, kEventsMax, raft_->HasReady() ? 0 : wait_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoStatus("epoll_wait");
    }
    const int64_t iteration_start_us = MonotonicUs();
    uint64_t ticks = 0;
    for (int i = 0; i < n; ++i) {
      const uint64_t tag = events[i].data.u64;
      if (tag == kListenTag) {
        Accept();
      } else if (tag == kTimerTag) {
        uint64_t expirations = 0;
        if (read(timer_fd_, &expirations, sizeof(expirations)) == sizeof(expirations)) {
          ticks += expirations;
        }
      } else if (tag == kTransportTag) {
        // Polled below, every iteration.
      } else {
        OnClientEvent(tag, events[i].events);
      }
    }
    // Drain peers, then turn what clients sent into one proposal and one
    // read round, then let Raft run until it has nothing more to say.
    for (int round = 0; round < 4; ++round) {
      absl::Status s = transport_->Poll(
          [this](transport::NodeId from, absl::Span<const uint8_t> bytes) {
            OnTransportMessage(from, bytes);
          });
      if (!s.ok()) return s;
      if (round == 0) {
        // Time advances only after what peers sent has been taken in: a
        // leader that was busy must not conclude it lost its quorum from
        // heartbeat answers that sit unread in its sockets. After a stall,
        // do not fire a storm of ticks at once either.
        for (uint64_t t = 0; t < std::min(ticks, kTicksPerWakeupMax); ++t) {
          raft_->Tick();
        }
        FlushWriteBatch();
        IssueReads();
      }
      if (!raft_->status().ok()) {
        return absl::Status(raft_->status().code(),
                            absl::StrCat("consensus stopped: ", raft_->status().message()));
      }
      if (!raft_->HasReady()) break;
      if (absl::Status r = ProcessReady(); !r.ok()) return r;
    }
    if (snapshot_running_ && snapshot_done_.load(std::memory_order_acquire)) {
      if (absl::Status s = FinishSnapshot(); !s.ok()) {
        fatal_ = absl::Status(s.code(), absl::StrCat("snapshot: ", s.message()));
        return fatal_;
      }
    }
    ServeReads();
    for (uint64_t id : std::vector<uint64_t>(dirty_.begin(), dirty_.end())) {
      auto it = connections_.find(id);
      if (it != connections_.end()) FlushConnection(id, it->second);
    }
    dirty_.clear();
    ResumePausedClients();
    const int64_t took_us = MonotonicUs() - iteration_start_us;
    loop_us_max_ = std::max(loop_us_max_, took_us);
    if (took_us > static_cast<int64_t>(cluster_.tick_ms) * 1000) ++loop_over_tick_;
    if (ticks > kTicksPerWakeupMax) ticks_dropped_ += ticks - kTicksPerWakeupMax;
  }
  return fatal_;
}

// ---------------------------------------------------------------- clients

void Server::Impl::Accept() {
  while (true) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd < 0) return;  // EAGAIN, or a transient error: try next time.
    if (connections_.size() >= cluster_.clients_max) {
      static constexpr char kFull[] = "-ERR max number of clients reached\r\n";
      (void)!write(fd, kFull, sizeof(kFull) - 1);
      close(fd);
      ++connections_rejected_;
      continue;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    const uint64_t id = next_connection_id_++;
    Connection& conn = connections_[id];
    conn.fd = fd;
    conn.paused = clients_paused_;
    conn.epoll_events = conn.paused ? 0u : static_cast<uint32_t>(EPOLLIN);
    if (!EpollAdd(fd, conn.epoll_events, id).ok()) {
      connections_.erase(id);
      close(fd);
      continue;
    }
    ++connections_accepted_;
  }
}

void Server::Impl::OnClientEvent(uint64_t id, uint32_t events) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  Connection& conn = it->second;
  if (events & (EPOLLERR | EPOLLHUP)) {
    CloseConnection(id);
    return;
  }
  if (events & EPOLLOUT) dirty_.insert(id);
  if ((events & EPOLLIN) && !conn.paused) ReadClient(id, conn);
}

void Server::Impl::ReadClient(uint64_t id, Connection& conn) {
  char buf[64 << 10];
  size_t budget = options_.client_read_bytes_per_turn;
  while (budget > 0 && !conn.close_after_flush) {
    ssize_t r = read(conn.fd, buf, std::min(sizeof(buf), budget));
    if (r == 0) {
      CloseConnection(id);
      return;
    }
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      CloseConnection(id);
      return;
    }
    budget -= static_cast<size_t>(r);
    conn.parser.Feed(std::string_view(buf, static_cast<size_t>(r)));
    while (!conn.close_after_flush) {
      absl::StatusOr<std::optional<std::vector<std::string>>> req = conn.parser.Next();
      if (!req.ok()) {
        // Redis answers a protocol error and closes the connection.
        std::string reply;
        AppendError(reply, absl::StrCat("ERR ", req.status().message()));
        Connection& c = conn;
        const uint64_t seq = AddSlot(c);
        FillSlot(Waiter{id, seq}, std::move(reply));
        c.close_after_flush = true;
        break;
      }
      if (!req->has_value()) break;
      HandleRequest(id, conn, std::move(**req));
    }
  }
  dirty_.insert(id);
}

uint64_t Server::Impl::AddSlot(Connection& conn) {
  conn.slots.emplace_back();
  ++pending_requests_;
  return conn.next_seq++;
}

void Server::Impl::FillSlot(const Waiter& w, std::string reply) {
  ABSL_RAW_CHECK(pending_requests_ > 0, "reply without a pending request");
  --pending_requests_;
  auto it = connections_.find(w.conn);
  if (it == connections_.end()) return;  // The client went away.
  Connection& conn = it->second;
  ABSL_RAW_CHECK(w.seq >= conn.first_seq && w.seq < conn.next_seq,
                 "reply for a slot that does not exist");
  Slot& slot = conn.slots[w.seq - conn.first_seq];
  ABSL_RAW_CHECK(!slot.ready, "slot answered twice");
  slot.ready = true;
  slot.reply = std::move(reply);
  dirty_.insert(w.conn);
}

void Server::Impl::HandleRequest(uint64_t id, Connection& conn,
                                 std::vector<std::string> args) {
  Command cmd = ParseCommand(args);
  const uint64_t seq = AddSlot(conn);
  const Waiter waiter{id, seq};
  // SESSION <client> <seq> <command...>: unwrap, remember the session.
  uint64_t session_client = 0;
  uint64_t session_seq = 0;
  if (cmd.kind == CommandKind::kSession) {
    if (!absl::SimpleAtoi(args[1], &session_client) || session_client == 0 ||
        !absl::SimpleAtoi(args[2], &session_seq) || session_seq == 0) {
      std::string err;
      AppendError(err, "ERR SESSION client id and sequence number must be positive integers");
      FillSlot(waiter, std::move(err));
      return;
    }
    args.erase(args.begin(), args.begin() + 3);
    cmd = ParseCommand(args);
    if (cmd.kind == CommandKind::kSession || cmd.kind == CommandKind::kCluster) {
      std::string err;
      AppendError(err, "ERR SESSION wraps data commands only");
      FillSlot(waiter, std::move(err));
      return;
    }
  }
  if (cmd.kind == CommandKind::kRead || cmd.kind == CommandKind::kWrite) {
    // The node's own keys (the session table) are not addressable.
    for (size_t i = 1; i < args.size(); ++i) {
      if (IsReservedArgument(args[i])) {
        std::string err;
        AppendError(err, "ERR arguments starting with the reserved prefix \\xffblz\\x00 "
                         "are not allowed");
        FillSlot(waiter, std::move(err));
        return;
      }
    }
  }
  switch (cmd.kind) {
    case CommandKind::kCluster:
      HandleCluster(waiter, args);
      return;
    case CommandKind::kSession:
      ABSL_RAW_CHECK(false, "SESSION unwrapped above");
      return;
    case CommandKind::kReply:
      FillSlot(waiter, std::move(cmd.reply));
      return;
    case CommandKind::kQuit: {
      std::string ok;
      AppendSimpleString(ok, "OK");
      FillSlot(waiter, std::move(ok));
      conn.close_after_flush = true;
      return;
    }
    case CommandKind::kInfo: {
      std::string reply;
      AppendBulk(reply, InfoText());
      FillSlot(waiter, std::move(reply));
      return;
    }
    case CommandKind::kReadOnly:
    case CommandKind::kReadWrite: {
      conn.stale_reads = cmd.kind == CommandKind::kReadOnly;
      std::string ok;
      AppendSimpleString(ok, "OK");
      FillSlot(waiter, std::move(ok));
      return;
    }
    case CommandKind::kRead:
    case CommandKind::kWrite:
      break;
  }
  if (cmd.kind == CommandKind::kRead && conn.stale_reads &&
      raft_->role() != consensus::Role::kLeader) {
    // Opt-in follower read: the state as of this replica's applied index,
    // possibly behind the leader. Linearizable reads never take this path.
    FillSlot(waiter, ExecuteClientRead(args));
    return;
  }
  if (raft_->role() != consensus::Role::kLeader) {
    FillSlot(waiter, RedirectError());
    return;
  }
  if (session_client != 0 && cmd.kind == CommandKind::kWrite) {
    // A retry of the session's last applied request is answered from the
    // table; an older one gets an error. Retries that race their original
    // into the log are filtered when applied (session_table.h).
    if (const SessionTable::Record* r = sessions_->Find(session_client);
        r != nullptr && session_seq <= r->seq) {
      ++session_retries_;
      std::string reply;
      if (session_seq == r->seq) {
        reply = FormatResult(r->result);
      } else {
        AppendError(reply, absl::StrCat("ERR SESSION stale sequence number ", session_seq,
                                        " (the session is at ", r->seq, ")"));
      }
      FillSlot(waiter, std::move(reply));
      return;
    }
  }
  if (cmd.kind == CommandKind::kRead) {
    new_reads_.push_back(PendingRead{waiter, std::move(args)});
    return;
  }
  if (structures::MayGrowMemory(cmd.op.code) && DataPoolFull()) {
    // Admission control (node/README.md, "A full data pool"): refused
    // before the log, so it needs no determinism; what gets through and
    // still finds no room fails alone when applied.
    ++oom_refused_;
    std::string err;
    AppendError(err, structures::kOutOfMemoryError);
    FillSlot(waiter, std::move(err));
    return;
  }
  uint64_t op_bytes = 16;
  for (const std::string& a : cmd.op.args) op_bytes += a.size() + 8;
  if (!batch_ops_.empty() && (batch_ops_.size() >= cluster_.batch_ops_max ||
                              batch_bytes_ + op_bytes > cluster_.batch_bytes_max)) {
    FlushWriteBatch();
  }
  if (session_client != 0) {
    SessionTable::AppendTagged(batch_ops_, session_client, session_seq, std::move(cmd.op));
    op_bytes += 48;
  } else {
    batch_ops_.push_back(std::move(cmd.op));
  }
  batch_waiters_.push_back(waiter);
  batch_bytes_ += op_bytes;
}

std::string Server::Impl::ExecuteClientRead(const std::vector<std::string>& args) const {
  if (absl::AsciiStrToLower(args[0]) == "dbsize") {
    // The session table's records are not client keys.
    std::string out;
    AppendInteger(out, static_cast<int64_t>(store_->Size() - sessions_->size()));
    return out;
  }
  return ExecuteRead(args, *store_);
}

std::string Server::Impl::MembershipLines() const {
  const consensus::Membership& m = raft_->membership();
  return absl::StrCat("voters:", absl::StrJoin(m.voters, ","), "\r\n",
                      "learners:", absl::StrJoin(m.learners, ","), "\r\n");
}

std::string Server::Impl::MembersText() const {
  return absl::StrCat(MembershipLines(), "leader_id:", raft_->leader(), "\r\n");
}

// CLUSTER MEMBERS | ADDLEARNER id | PROMOTE id | REMOVE id | TRANSFER id.
// Changes go to the leader (others redirect) and are answered +OK once
// their kConfig entry commits; TRANSFER answers at once (the transfer
// itself takes up to an election timeout: watch INFO leader_id).
void Server::Impl::HandleCluster(const Waiter& waiter, const std::vector<std::string>& args) {
  const std::string sub = absl::AsciiStrToLower(args[1]);
  std::string reply;
  auto error = [&](const std::string& message) {
    AppendError(reply, message);
    FillSlot(waiter, std::move(reply));
  };
  if (sub == "members" && args.size() == 2) {
    AppendBulk(reply, MembersText());
    FillSlot(waiter, std::move(reply));
    return;
  }
  const bool change = sub == "addlearner" || sub == "promote" || sub == "remove";
  if ((!change && sub != "transfer") || args.size() != 3) {
    return error("ERR CLUSTER: MEMBERS, ADDLEARNER <id>, PROMOTE <id>, REMOVE <id> or "
                 "TRANSFER <id>");
  }
  uint64_t node = 0;
  if (!absl::SimpleAtoi(args[2], &node) || cluster_.Find(node) == nullptr) {
    return error(absl::StrCat("ERR CLUSTER: node '", args[2].substr(0, 32),
                              "' is not in the cluster file"));
  }
  if (raft_->role() != consensus::Role::kLeader) {
    FillSlot(waiter, RedirectError());
    return;
  }
  if (sub == "transfer") {
    const absl::Status s = raft_->TransferLeadership(node);
    if (!s.ok()) return error(absl::StrCat("ERR CLUSTER TRANSFER: ", s.message()));
    AppendSimpleString(reply, "OK");
    FillSlot(waiter, std::move(reply));
    return;
  }
  consensus::MembershipChange c;
  c.node = node;
  if (sub == "addlearner") {
    c.type = consensus::MembershipChangeType::kAddLearner;
  } else if (sub == "promote") {
    // Promote only a learner that has caught up, or the group may stall
    // waiting for it to count in a quorum (consensus/raft.h): its log is
    // within one append pipeline (Raft's in-flight window) of the commit.
    c.type = consensus::MembershipChangeType::kAddVoter;
    const consensus::Index match = raft_->match_index(node);
    const uint64_t lag_max = static_cast<uint64_t>(consensus::Config{}.inflight_appends_max);
    if (raft_->membership().IsLearner(node) && match + lag_max < raft_->commit_index()) {
      return error(absl::StrCat("ERR CLUSTER PROMOTE: node ", node, " has not caught up (match ",
                                match, ", commit ", raft_->commit_index(), "); retry"));
    }
  } else {
    c.type = consensus::MembershipChangeType::kRemoveNode;
  }
  // The write batch goes first so that index order is request order.
  FlushWriteBatch();
  absl::StatusOr<consensus::Index> index = raft_->ProposeMembershipChange(c);
  if (!index.ok()) return error(absl::StrCat("ERR CLUSTER ", absl::AsciiStrToUpper(sub), ": ",
                                             index.status().message()));
  ++proposals_made_;
  last_proposed_index_ = *index;
  Proposal& p = proposals_[*index];
  p.term = raft_->term();
  p.waiters = {waiter};
  p.membership = true;
}

std::string Server::Impl::RedirectError() const {
  std::string out;
  const NodeConfig* leader = cluster_.Find(raft_->leader());
  if (leader == nullptr || leader->id == self_->id) {
    AppendError(out, "CLUSTERDOWN no leader elected yet, try again");
  } else {
    // Redis Cluster's redirection: redis-cli -c and cluster-aware clients
    // follow it. The slot is always 0: Blizzard has one keyspace.
    AppendError(out, absl::StrCat("MOVED 0 ", leader->host, ":", leader->client_port));
  }
  return out;
}

void Server::Impl::FlushConnection(uint64_t id, Connection& conn) {
  while (!conn.slots.empty() && conn.slots.front().ready) {
    conn.out.append(conn.slots.front().reply);
    conn.slots.pop_front();
    ++conn.first_seq;
  }
  while (conn.out_offset < conn.out.size()) {
    ssize_t w = write(conn.fd, conn.out.data() + conn.out_offset,
                      conn.out.size() - conn.out_offset);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) break;
      CloseConnection(id);
      return;
    }
    conn.out_offset += static_cast<size_t>(w);
  }
  if (conn.out_offset == conn.out.size()) {
    conn.out.clear();
    conn.out_offset = 0;
    if (conn.close_after_flush && conn.slots.empty()) {
      CloseConnection(id);
      return;
    }
  } else if (conn.out.size() - conn.out_offset > options_.client_output_bytes_max) {
    CloseConnection(id);  // The client does not read its replies.
    return;
  } else if (conn.out_offset > (1u << 20)) {
    conn.out.erase(0, conn.out_offset);
    conn.out_offset = 0;
  }
  UpdateInterest(id, conn);
}

void Server::Impl::UpdateInterest(uint64_t id, Connection& conn) {
  const bool want_out = conn.out_offset < conn.out.size();
  epoll_event ev{};
  uint32_t events = 0;
  if (!conn.paused && !conn.close_after_flush) events |= EPOLLIN;
  if (want_out) events |= EPOLLOUT;
  // Most flushes write everything and change nothing: no system call then.
  if (events == conn.epoll_events) return;
  ev.events = events;
  ev.data.u64 = id;
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, conn.fd, &ev);
  conn.epoll_events = events;
}

void Server::Impl::CloseConnection(uint64_t id) {
  auto it = connections_.find(id);
  if (it == connections_.end()) return;
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, it->second.fd, nullptr);
  close(it->second.fd);
  // Pending replies of this connection are still counted in
  // pending_requests_; FillSlot decrements them when they complete.
  connections_.erase(it);
  dirty_.erase(id);
}

void Server::Impl::ResumePausedClients() {
  const bool over = pending_requests_ >= options_.pending_requests_max;
  if (over == clients_paused_) return;
  clients_paused_ = over;
  for (auto& [id, conn] : connections_) {
    conn.paused = over;
    UpdateInterest(id, conn);
  }
}

std::string Server::Impl::InfoText() const {
  const transport::TransportStats ts = transport_->Stats();
  const pmemlog::LogStats ls = log_->Stats();
  const NodeConfig* leader = cluster_.Find(raft_->leader());
  std::string s;
  absl::StrAppend(&s, "# Server\r\n", "blizzard_version:0.1.0\r\n",
                  "transport:", transport::TransportName(), "\r\n",
                  "replication_mode:", ReplicationModeName(), "\r\n",
                  "cluster_id:", cluster_.cluster_id, "\r\n",
                  "node_id:", self_->id, "\r\n", "process_id:", getpid(), "\r\n",
                  "tcp_port:", self_->client_port, "\r\n");
  absl::StrAppend(&s, "\r\n# Replication\r\n", "role:", consensus::RoleName(raft_->role()),
                  "\r\n", "term:", raft_->term(), "\r\n", "leader_id:", raft_->leader(),
                  "\r\n", "leader_addr:",
                  leader ? absl::StrCat(leader->host, ":", leader->client_port) : "",
                  "\r\n", "commit_index:", raft_->commit_index(), "\r\n",
                  "applied_index:", store_->AppliedIndex(), "\r\n",
                  "last_index:", raft_->last_index(), "\r\n", "first_index:",
                  log_->FirstIndex(), "\r\n", "nodes:", cluster_.nodes.size(), "\r\n",
                  MembershipLines(),
                  "membership_changes:", membership_changes_, "\r\n");
  const SnapshotStats& ss = snapshots_->stats();
  absl::StrAppend(&s, "\r\n# Snapshots\r\n", "snapshot_index:", snapshots_->meta().index,
                  "\r\n", "snapshot_term:", snapshots_->meta().term, "\r\n",
                  "snapshot_bytes:", snapshots_->meta().bytes, "\r\n",
                  "snapshots_created:", ss.created, "\r\n",
                  "snapshots_installed:", ss.installed, "\r\n",
                  "snapshot_chunks_sent:", ss.chunks_read, "\r\n",
                  "snapshot_bytes_sent:", ss.bytes_read, "\r\n",
                  "snapshot_chunks_received:", ss.chunks_staged, "\r\n",
                  "snapshot_create_us_last:", ss.last_create_us, "\r\n",
                  "snapshot_create_us_max:", ss.create_us_max, "\r\n",
                  "snapshot_install_us_last:", install_us_last_, "\r\n",
                  "snapshot_in_progress:", snapshot_running_ ? 1 : 0, "\r\n",
                  "apply_backlog_max:", apply_backlog_max_, "\r\n",
                  "log_compactions:", compactions_, "\r\n");
  const structures::StoreStats st = store_->Stats();
  const structures::MemoryUsage mem = store_->Memory();
  absl::StrAppend(&s, "\r\n# Data\r\n", "keys:", store_->Size() - sessions_->size(), "\r\n",
                  "sessions:", sessions_->size(), "\r\n",
                  "session_retries_answered:", session_retries_ + sessions_->retries_answered(),
                  "\r\n",
                  "data_transactions:", st.transactions, "\r\n",
                  "data_bytes_written:", st.bytes_written, "\r\n",
                  "state_hash:", absl::StrFormat("%016x", store_->StateHash()), "\r\n",
                  "data_used_bytes:", mem.used_bytes, "\r\n",
                  "data_capacity_bytes:", mem.capacity_bytes, "\r\n",
                  "max_memory_percent:", cluster_.max_memory_percent, "\r\n",
                  "oom_refused:", oom_refused_, "\r\n",
                  "oom_applied:", st.ops_out_of_memory, "\r\n",
                  "oom_session_records_dropped:", st.epilogues_dropped, "\r\n",
                  "entries_applied:", entries_applied_, "\r\n", "ops_applied:",
                  ops_applied_, "\r\n", "proposals:", proposals_made_, "\r\n");
  replication_->AppendInfo(&s);
  absl::StrAppend(&s, "\r\n# Stats\r\n", "connected_clients:", connections_.size(),
                  "\r\n", "connections_accepted:", connections_accepted_, "\r\n",
                  "connections_rejected:", connections_rejected_, "\r\n",
                  "pending_requests:", pending_requests_, "\r\n",
                  "loop_iteration_us_max:", loop_us_max_, "\r\n",
                  "loop_iterations_over_tick:", loop_over_tick_, "\r\n",
                  "ticks_dropped:", ticks_dropped_, "\r\n",
                  "peer_messages_sent:", ts.messages_sent, "\r\n",
                  "peer_messages_received:", ts.messages_received, "\r\n",
                  "peer_bytes_sent:", ts.bytes_sent, "\r\n", "peer_bytes_received:",
                  ts.bytes_received, "\r\n", "peer_messages_dropped:",
                  ts.messages_dropped, "\r\n", "peer_messages_malformed:",
                  malformed_peer_messages_, "\r\n", "log_appends:", ls.appends,
                  "\r\n", "log_entries_appended:", ls.entries_appended, "\r\n",
                  "log_bytes_persisted:", ls.bytes_persisted, "\r\n",
                  "log_fences:", ls.fences, "\r\n", "log_bytes_used:",
                  log_->BytesUsed(), "\r\n");
  AppendTransportInfo(ts, &s);
  return s;
}

// ------------------------------------------------------------ replication

void Server::Impl::OnTransportMessage(transport::NodeId from,
                                      absl::Span<const uint8_t> bytes) {
  absl::StatusOr<consensus::Message> msg = consensus::DecodeMessage(bytes);
  // The transport authenticated the sender at connection time; a message
  // claiming another sender is forged or corrupt.
  if (!msg.ok() || msg->from != from || msg->to != self_->id) {
    ++malformed_peer_messages_;
    return;
  }
  if (absl::Status s = raft_->Step(*msg); !s.ok()) {
    // Logged for the first few only: a peer that keeps sending them
    // would flood the log.
    if (++malformed_peer_messages_ <= 10) {
      fprintf(stderr, "node %llu: refused a message from node %llu: %s\n",
              static_cast<unsigned long long>(self_->id), static_cast<unsigned long long>(from),
              s.ToString().c_str());
    }
  }
}

void Server::Impl::FlushWriteBatch() {
  if (batch_ops_.empty()) return;
  std::vector<structures::Op> ops = std::move(batch_ops_);
  std::vector<Waiter> waiters = std::move(batch_waiters_);
  batch_ops_.clear();
  batch_waiters_.clear();
  batch_bytes_ = 0;

  absl::StatusOr<consensus::Index> index = absl::FailedPreconditionError("not leader");
  std::optional<std::vector<structures::OpResult>> results;
  if (raft_->role() == consensus::Role::kLeader) {
    const consensus::Index next = raft_->last_index() + 1;
    absl::StatusOr<BuiltEntry> entry = replication_->BuildEntry(
        next, raft_->term(), ops, ServerUnappliedLog(*raft_, *storage_));
    if (!entry.ok()) {
      std::string reply;
      AppendError(reply, absl::StrCat(absl::IsUnavailable(entry.status()) ? "TRYAGAIN " : "ERR ",
                                      entry.status().message()));
      for (const Waiter& w : waiters) FillSlot(w, reply);
      return;
    }
    results = std::move(entry->results);
    index = raft_->Propose(std::move(entry->payload));
    if (index.ok()) {
      ABSL_RAW_CHECK(*index == next, "Raft proposed at another index than built for");
      replication_->Proposed(*index, raft_->term());
    }
  }
  if (!index.ok()) {
    std::string reply;
    if (absl::IsFailedPrecondition(index.status())) {
      reply = RedirectError();  // No longer the leader.
    } else if (absl::IsResourceExhausted(index.status())) {
      AppendError(reply, absl::StrCat("BUSY the replication pipeline is full (",
                                      index.status().message(), "); retry"));
    } else {
      AppendError(reply, absl::StrCat("ERR ", index.status().message()));
    }
    for (const Waiter& w : waiters) FillSlot(w, reply);
    return;
  }
  ++proposals_made_;
  last_proposed_index_ = *index;
  Proposal& p = proposals_[*index];
  p.term = raft_->term();
  p.waiters = std::move(waiters);
  p.results = std::move(results);
}

void Server::Impl::IssueReads() {
  if (new_reads_.empty()) return;
  const uint64_t context = next_read_context_++;
  absl::Status s = raft_->role() == consensus::Role::kLeader
                       ? raft_->ReadIndex(context)
                       : absl::FailedPreconditionError("not leader");
  if (!s.ok()) {
    std::string reply;
    if (absl::IsFailedPrecondition(s)) {
      reply = RedirectError();
    } else {
      AppendError(reply, absl::StrCat("BUSY too many reads pending (", s.message(),
                                      "); retry"));
    }
    for (const PendingRead& r : new_reads_) FillSlot(r.waiter, reply);
    new_reads_.clear();
    return;
  }
  // A read must also see every write proposed before it (a client that
  // pipelines SET then GET reads its own write): wait for that index too.
  ReadGroup& group = reads_by_context_[context];
  group.index = last_proposed_index_;
  group.reads = std::move(new_reads_);
  new_reads_.clear();
}

absl::Status Server::Impl::ProcessReady() {
  consensus::Ready ready = raft_->GetReady();
  bool lost_leadership = false;
  if (ready.soft_state.has_value()) {
    const bool was_leader = soft_state_.role == consensus::Role::kLeader;
    soft_state_ = *ready.soft_state;
    lost_leadership = was_leader && soft_state_.role != consensus::Role::kLeader;
  }
  if (ready.membership.has_value()) {
    // The transport already knows every node of the cluster file (all that
    // may ever join); Raft only talks to members.
    ++membership_changes_;
    fprintf(stderr, "node %llu: membership voters [%s] learners [%s]\n",
            static_cast<unsigned long long>(self_->id),
            absl::StrJoin(ready.membership->voters, ",").c_str(),
            absl::StrJoin(ready.membership->learners, ",").c_str());
  }
  // 1-2. Stage snapshot chunks; install a complete snapshot, durable before
  // the rest. A new term and vote go first: the snapshot's last entry may
  // be of the term this Ready raises (tools/sim/README.md, finding 1).
  for (const consensus::SnapshotChunk& c : ready.snapshot_chunks) {
    if (absl::Status st = snapshots_->Stage(c); !st.ok()) {
      fatal_ = absl::Status(st.code(), absl::StrCat("staging a snapshot: ", st.message()));
      return fatal_;
    }
  }
  if (ready.snapshot.has_value()) {
    if (ready.hard_state.has_value()) {
      if (absl::Status st = storage_->PersistTermAndVote(*ready.hard_state); !st.ok()) {
        fatal_ = st;
        return st;
      }
    }
    if (absl::Status st = InstallSnapshot(*ready.snapshot); !st.ok()) {
      fatal_ = absl::Status(st.code(), absl::StrCat("installing snapshot ",
                                                    ready.snapshot->index, ": ", st.message()));
      return fatal_;
    }
  }
  // 3. Persist BEFORE sending: a vote or an acknowledgement must be durable.
  absl::Status s = storage_->Persist(ready.entries, ready.hard_state);
  if (!s.ok()) {
    return absl::Status(s.code(), absl::StrCat("persisting the Raft log failed: ",
                                               s.message()));
  }
  for (const consensus::Message& m : ready.messages) {
    std::string bytes = consensus::EncodeMessage(m);
    // A full queue or a dead peer is a lost message; Raft retries.
    (void)transport_->Send(m.to, absl::MakeConstSpan(
                                     reinterpret_cast<const uint8_t*>(bytes.data()),
                                     bytes.size()));
  }
  for (const consensus::Entry& e : ready.committed) {
    if (snapshot_running_) {
      // The data pool is being copied: apply once the copy is done.
      apply_backlog_.push_back(e);
      apply_backlog_max_ = std::max<uint64_t>(apply_backlog_max_, apply_backlog_.size());
      continue;
    }
    if (absl::Status a = ApplyCommitted(e); !a.ok()) {
      fatal_ = a;
      return a;
    }
  }
  if (lost_leadership) {
    // Entries of this Ready committed while we led (e.g. our own removal,
    // after which we step down) were answered above, or will be once
    // applied. The rest may or may not commit under the next leader: their
    // clients must not take them as acknowledged.
    std::string err;
    AppendError(err, "TRYAGAIN leadership changed before the request completed; "
                     "its outcome is unknown");
    FailAllPending(err);
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
  if (absl::Status c = MaybeCompact(); !c.ok()) {
    fatal_ = absl::Status(c.code(), absl::StrCat("log compaction: ", c.message()));
    return fatal_;
  }
  return absl::OkStatus();
}

absl::Status Server::Impl::InstallSnapshot(const consensus::SnapshotMeta& meta) {
  // A snapshot of our own being written is older than this one (Raft
  // installs only beyond the commit index): let it finish, it is dropped
  // when committed below, and so is the backlog the install supersedes.
  WaitForSnapshotThread();
  // The meta's rename is the commit point; a crash after it is finished by
  // OpenPools on restart (RestoreFromSnapshot).
  if (absl::Status s = snapshots_->CommitStaged(meta); !s.ok()) return s;
  absl::Status s = RestoreFromSnapshot();
  if (s.ok() && snapshot_result_.ok()) (void)snapshots_->CommitImage(*snapshot_result_);
  snapshot_result_ = absl::UnknownError("no snapshot");
  while (s.ok() && !apply_backlog_.empty()) {
    s = ApplyCommitted(apply_backlog_.front());  // Skips what the snapshot holds.
    apply_backlog_.pop_front();
  }
  fprintf(stderr, "node %llu: installed snapshot %llu (term %llu, %llu bytes) in %lld us: %s\n",
          static_cast<unsigned long long>(self_->id),
          static_cast<unsigned long long>(meta.index),
          static_cast<unsigned long long>(meta.term),
          static_cast<unsigned long long>(meta.bytes), static_cast<long long>(install_us_last_),
          s.ToString().c_str());
  return s;
}

// Compaction (consensus/raft.h, driver obligation 3): once the log pool's
// ring passes snapshot_log_percent, snapshot the data pool at the applied
// index and drop the log below it, keeping snapshot_keep_entries entries
// for followers that lag a little. A new snapshot at most every
// snapshot_keep_entries applied entries (no snapshot storm while the log
// is full of entries not yet applied); in between, the kept entries go.
absl::Status Server::Impl::MaybeCompact() {
  if (snapshot_running_) return absl::OkStatus();
  const uint64_t capacity = log_->BytesCapacity();
  auto over = [&] {
    return log_->BytesUsed() * 100 >= capacity * cluster_.snapshot_log_percent;
  };
  if (!over()) return absl::OkStatus();
  const consensus::Index applied = store_->AppliedIndex();
  const uint64_t keep = cluster_.snapshot_keep_entries;
  consensus::SnapshotMeta snap = snapshots_->meta();
  consensus::Index upto = snap.index + 1;
  if (applied > snap.index &&
      (snap.index == 0 || applied >= snap.index + std::max<uint64_t>(keep, 1))) {
    absl::StatusOr<consensus::SnapshotMeta> meta = raft_->SnapshotMetaForApplied();
    if (!meta.ok()) return absl::OkStatus();  // E.g. a joining node: later.
    ABSL_RAW_CHECK(meta->index == applied && apply_backlog_.empty(),
                   "snapshot and data pool disagree");
    // Copy on another thread; the loop keeps running Raft (heartbeats,
    // appends, votes) and holds back applying until FinishSnapshot.
    snapshot_running_ = true;
    snapshot_done_.store(false, std::memory_order_relaxed);
    snapshot_thread_ = std::thread([this, meta = *meta, dir = snapshots_->dir(),
                                    cluster_id = cluster_.cluster_id,
                                    pool = self_->data_pool] {
      snapshot_result_ = SnapshotStore::WriteImage(dir, cluster_id, pool, meta);
      snapshot_done_.store(true, std::memory_order_release);
    });
    return absl::OkStatus();
  }
  if (snap.index == 0 || upto <= log_->FirstIndex()) return absl::OkStatus();
  ABSL_RAW_CHECK(upto <= snap.index + 1 && upto <= applied + 1, "compacting beyond the snapshot");
  if (absl::Status s = log_->CompactPrefix(upto); !s.ok()) return s;
  ++compactions_;
  return absl::OkStatus();
}

void Server::Impl::WaitForSnapshotThread() {
  if (!snapshot_running_) return;
  snapshot_thread_.join();
  snapshot_running_ = false;
}

absl::Status Server::Impl::FinishSnapshot() {
  WaitForSnapshotThread();
  absl::StatusOr<SnapshotStore::Image> image = std::move(snapshot_result_);
  snapshot_result_ = absl::UnknownError("no snapshot");
  if (!image.ok()) return image.status();
  if (absl::Status s = snapshots_->CommitImage(*image); s.ok()) {
    fprintf(stderr, "node %llu: snapshot %llu (%llu bytes) written in %lld us, %zu entries "
            "held back\n",
            static_cast<unsigned long long>(self_->id),
            static_cast<unsigned long long>(image->meta.index),
            static_cast<unsigned long long>(image->meta.bytes),
            static_cast<long long>(image->took_us), apply_backlog_.size());
    if (absl::Status c = CompactToSnapshot(); !c.ok()) return c;
  } else if (!absl::IsFailedPrecondition(s)) {
    return s;  // (FailedPrecondition: a newer snapshot was installed meanwhile.)
  }
  while (!apply_backlog_.empty()) {
    if (absl::Status a = ApplyCommitted(apply_backlog_.front()); !a.ok()) return a;
    apply_backlog_.pop_front();
  }
  return absl::OkStatus();
}

absl::Status Server::Impl::CompactToSnapshot() {
  const consensus::SnapshotMeta& snap = snapshots_->meta();
  const uint64_t keep = std::min<uint64_t>(cluster_.snapshot_keep_entries, snap.index);
  const consensus::Index upto = snap.index + 1 - keep;
  if (upto <= log_->FirstIndex()) return absl::OkStatus();
  ABSL_RAW_CHECK(upto <= store_->AppliedIndex() + 1, "compacting beyond the applied index");
  if (absl::Status s = log_->CompactPrefix(upto); !s.ok()) return s;
  ++compactions_;
  return absl::OkStatus();
}

bool Server::Impl::DataPoolFull() {
  if (cluster_.max_memory_percent >= 100) return false;
  const uint64_t applied = store_->AppliedIndex();
  if (applied != full_checked_at_index_ || applied == 0) {
    // O(1) in logical mode; after write sets (physical) one walk of the
    // free lists, at most once per applied index.
    const structures::MemoryUsage m = store_->Memory();
    full_ = m.used_bytes * 100 >= m.capacity_bytes * cluster_.max_memory_percent;
    full_checked_at_index_ = applied;
  }
  return full_;
}

absl::Status Server::Impl::ApplyCommitted(const consensus::Entry& entry) {
  static const std::vector<structures::OpResult> kNoResults;
  if (entry.index <= store_->AppliedIndex()) return absl::OkStatus();
  AppliedEntry applied;
  if (entry.type == consensus::EntryType::kNormal && !entry.data.empty()) {
    absl::StatusOr<AppliedEntry> r = replication_->ApplyEntry(
        entry.index, absl::MakeConstSpan(
                         reinterpret_cast<const uint8_t*>(entry.data.data()),
                         entry.data.size()));
    if (!r.ok()) {
      return absl::Status(r.status().code(),
                          absl::StrCat("applying entry ", entry.index, ": ",
                                       r.status().message()));
    }
    applied = std::move(*r);
  } else {
    absl::Status r = replication_->ApplyEmpty(entry.index);
    if (!r.ok()) return r;
  }
  ++entries_applied_;
  ops_applied_ += applied.ops;

  // Answer the clients of a proposal of ours, if this is it; a proposal at
  // this index from another term was overwritten by another leader.
  while (!proposals_.empty() && proposals_.begin()->first <= entry.index) {
    auto it = proposals_.begin();
    Proposal p = std::move(it->second);
    // Physical mode computed the results when it built the entry.
    const std::vector<structures::OpResult>& results =
        p.results.has_value() ? *p.results
                              : (applied.results.has_value() ? *applied.results : kNoResults);
    const bool ours = it->first == entry.index && p.term == entry.term &&
                      (p.membership ? entry.type == consensus::EntryType::kConfig
                                    : p.waiters.size() == results.size());
    proposals_.erase(it);
    for (size_t i = 0; i < p.waiters.size(); ++i) {
      if (ours && p.membership) {
        std::string ok;
        AppendSimpleString(ok, "OK");
        FillSlot(p.waiters[i], std::move(ok));
      } else if (ours) {
        FillSlot(p.waiters[i], FormatResult(results[i]));
      } else {
        std::string err;
        AppendError(err, "TRYAGAIN the request was overwritten by a new leader");
        FillSlot(p.waiters[i], std::move(err));
      }
    }
  }
  return absl::OkStatus();
}

void Server::Impl::ServeReads() {
  const uint64_t applied = store_->AppliedIndex();
  while (!confirmed_reads_.empty() && confirmed_reads_.front().index <= applied) {
    ReadGroup group = std::move(confirmed_reads_.front());
    confirmed_reads_.pop_front();
    for (const PendingRead& r : group.reads) {
      FillSlot(r.waiter, ExecuteClientRead(r.args));
    }
  }
}

void Server::Impl::FailAllPending(const std::string& reply) {
  // Proposals at committed indices stay: their entries will be applied
  // here (e.g. from the backlog held during a snapshot copy) and answered
  // as usual, ours or overwritten, by ApplyCommitted.
  const consensus::Index commit = raft_->commit_index();
  for (auto it = proposals_.upper_bound(commit); it != proposals_.end(); ++it) {
    for (const Waiter& w : it->second.waiters) FillSlot(w, reply);
  }
  proposals_.erase(proposals_.upper_bound(commit), proposals_.end());
  for (auto& [ctx, group] : reads_by_context_) {
    for (const PendingRead& r : group.reads) FillSlot(r.waiter, reply);
  }
  reads_by_context_.clear();
  for (ReadGroup& group : confirmed_reads_) {
    for (const PendingRead& r : group.reads) FillSlot(r.waiter, reply);
  }
  confirmed_reads_.clear();
}

// ------------------------------------------------------------------ Server

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() = default;

absl::StatusOr<std::unique_ptr<Server>> Server::Create(const ClusterConfig& cluster,
                                                       const ServerOptions& options) {
  auto impl = std::make_unique<Impl>(cluster, options);
  if (absl::Status s = impl->Init(); !s.ok()) return s;
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

absl::Status Server::Run(const std::atomic<bool>& stop) { return impl_->Run(stop); }

}  // namespace blizzard::node
