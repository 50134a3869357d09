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
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/internal/raw_logging.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "consensus/codec.h"
#include "consensus/raft.h"
#include "node/commands.h"
#include "node/log_storage.h"
#include "node/replication.h"
#include "node/resp.h"
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
  bool writable_armed = false;     // EPOLLOUT registered.
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
};

// Reads confirmed by a ReadIndex round, waiting for applied >= index.
struct ReadGroup {
  consensus::Index index = 0;
  std::vector<PendingRead> reads;
};

}  // namespace

class Server::Impl {
 public:
  Impl(const ClusterConfig& cluster, const ServerOptions& options)
      : cluster_(cluster), options_(options) {}

  ~Impl() {
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
  std::string InfoText() const;

  // Replication side.
  void OnTransportMessage(transport::NodeId from, absl::Span<const uint8_t> bytes);
  void FlushWriteBatch();
  void IssueReads();
  absl::Status ProcessReady();
  absl::Status ApplyCommitted(const consensus::Entry& entry);
  void ServeReads();
  void FailAllPending(const std::string& reply);

  const ClusterConfig cluster_;
  const ServerOptions options_;
  const NodeConfig* self_ = nullptr;

  std::unique_ptr<pmemlog::PmemLog> log_;
  std::unique_ptr<PmemLogStorage> storage_;
  std::unique_ptr<structures::KvStore> store_;
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
  storage_ = std::make_unique<PmemLogStorage>(log_.get());

  structures::StoreOptions store_options;
  store_options.path = self_->data_pool;
  store_options.pool_bytes = self_->data_pool_bytes;
  store_options.cluster_id = cluster_.cluster_id;
  store_options.node_id = self_->id;
  absl::StatusOr<std::unique_ptr<structures::KvStore>> store =
      structures::KvStore::Open(store_options);
  if (!store.ok()) {
    return absl::Status(store.status().code(),
                        absl::StrCat("data pool ", self_->data_pool, ": ",
                                     store.status().message()));
  }
  store_ = std::move(*store);

  // The data pool may never be ahead of the log: that would mean the log
  // pool was replaced or lost, and applied operations could be re-applied.
  const uint64_t applied = store_->AppliedIndex();
  const pmemlog::HardState hs = log_->GetHardState();
  if (applied > hs.commit || applied > log_->LastIndex()) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "data pool %s has applied index %d but the log pool %s ends at %d "
        "(commit %d): the pools do not belong together; refusing to serve",
        self_->data_pool, applied, self_->log_pool, log_->LastIndex(), hs.commit));
  }
  absl::StatusOr<std::unique_ptr<ReplicationMode>> mode =
      CreateReplicationMode(store_.get());
  if (!mode.ok()) return mode.status();
  replication_ = std::move(*mode);
  return absl::OkStatus();
}

absl::Status Server::Impl::StartRaft() {
  consensus::Config config;
  config.id = self_->id;
  for (const NodeConfig& n : cluster_.nodes) config.voters.push_back(n.id);
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
    if (!EpollAdd(fd, conn.paused ? 0u : static_cast<uint32_t>(EPOLLIN), id).ok()) {
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
  switch (cmd.kind) {
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
    FillSlot(waiter, ExecuteRead(args, *store_));
    return;
  }
  if (raft_->role() != consensus::Role::kLeader) {
    FillSlot(waiter, RedirectError());
    return;
  }
  if (cmd.kind == CommandKind::kRead) {
    new_reads_.push_back(PendingRead{waiter, std::move(args)});
    return;
  }
  uint64_t op_bytes = 16;
  for (const std::string& a : cmd.op.args) op_bytes += a.size() + 8;
  if (!batch_ops_.empty() && (batch_ops_.size() >= cluster_.batch_ops_max ||
                              batch_bytes_ + op_bytes > cluster_.batch_bytes_max)) {
    FlushWriteBatch();
  }
  batch_ops_.push_back(std::move(cmd.op));
  batch_waiters_.push_back(waiter);
  batch_bytes_ += op_bytes;
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
  ev.events = events;
  ev.data.u64 = id;
  epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, conn.fd, &ev);
  conn.writable_armed = want_out;
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
                  log_->FirstIndex(), "\r\n", "nodes:", cluster_.nodes.size(), "\r\n");
  const structures::StoreStats st = store_->Stats();
  absl::StrAppend(&s, "\r\n# Data\r\n", "keys:", store_->Size(), "\r\n",
                  "data_transactions:", st.transactions, "\r\n",
                  "data_bytes_written:", st.bytes_written, "\r\n",
                  "state_hash:", absl::StrFormat("%016x", store_->StateHash()), "\r\n",
                  "entries_applied:", entries_applied_, "\r\n", "ops_applied:",
                  ops_applied_, "\r\n", "proposals:", proposals_made_, "\r\n");
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
  if (!raft_->Step(*msg).ok()) ++malformed_peer_messages_;
}

void Server::Impl::FlushWriteBatch() {
  if (batch_ops_.empty()) return;
  std::vector<structures::Op> ops = std::move(batch_ops_);
  std::vector<Waiter> waiters = std::move(batch_waiters_);
  batch_ops_.clear();
  batch_waiters_.clear();
  batch_bytes_ = 0;

  absl::StatusOr<consensus::Index> index = absl::FailedPreconditionError("not leader");
  if (raft_->role() == consensus::Role::kLeader) {
    absl::StatusOr<std::string> entry = replication_->BuildEntry(ops);
    if (!entry.ok()) {
      index = entry.status();
    } else {
      index = raft_->Propose(std::move(*entry));
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
  if (ready.soft_state.has_value()) {
    const bool was_leader = soft_state_.role == consensus::Role::kLeader;
    soft_state_ = *ready.soft_state;
    if (was_leader && soft_state_.role != consensus::Role::kLeader) {
      // Pending writes may or may not commit under the next leader: their
      // clients must not take them as acknowledged.
      std::string err;
      AppendError(err, "TRYAGAIN leadership changed before the request completed; "
                       "its outcome is unknown");
      FailAllPending(err);
    }
  }
  // Persist BEFORE sending: a vote or an acknowledgement must be durable.
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
    if (absl::Status a = ApplyCommitted(e); !a.ok()) {
      fatal_ = a;
      return a;
    }
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
  return absl::OkStatus();
}

absl::Status Server::Impl::ApplyCommitted(const consensus::Entry& entry) {
  if (entry.index <= store_->AppliedIndex()) return absl::OkStatus();
  std::vector<structures::OpResult> results;
  if (entry.type == consensus::EntryType::kNormal && !entry.data.empty()) {
    absl::StatusOr<std::vector<structures::OpResult>> r = replication_->ApplyEntry(
        entry.index, absl::MakeConstSpan(
                         reinterpret_cast<const uint8_t*>(entry.data.data()),
                         entry.data.size()));
    if (!r.ok()) {
      return absl::Status(r.status().code(),
                          absl::StrCat("applying entry ", entry.index, ": ",
                                       r.status().message()));
    }
    results = std::move(*r);
  } else {
    absl::Status r = replication_->ApplyEmpty(entry.index);
    if (!r.ok()) return r;
  }
  ++entries_applied_;
  ops_applied_ += results.size();

  // Answer the clients of a proposal of ours, if this is it; a proposal at
  // this index from another term was overwritten by another leader.
  while (!proposals_.empty() && proposals_.begin()->first <= entry.index) {
    auto it = proposals_.begin();
    Proposal p = std::move(it->second);
    const bool ours = it->first == entry.index && p.term == entry.term &&
                      p.waiters.size() == results.size();
    proposals_.erase(it);
    for (size_t i = 0; i < p.waiters.size(); ++i) {
      if (ours) {
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
      FillSlot(r.waiter, ExecuteRead(r.args, *store_));
    }
  }
}

void Server::Impl::FailAllPending(const std::string& reply) {
  for (auto& [index, p] : proposals_) {
    for (const Waiter& w : p.waiters) FillSlot(w, reply);
  }
  proposals_.clear();
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
