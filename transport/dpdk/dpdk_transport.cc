#include "transport/dpdk/dpdk_transport.h"

#include <errno.h>
#include <linux/filter.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <dirent.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/base/internal/raw_logging.h"
#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_format.h"
#include "transport/dpdk/eal_args.h"

#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

namespace blizzard::transport::dpdk {
namespace {

int64_t NowUs() {
  timespec ts;
  ABSL_RAW_CHECK(clock_gettime(CLOCK_MONOTONIC, &ts) == 0,
                 "clock_gettime(CLOCK_MONOTONIC) failed");
  return int64_t{ts.tv_sec} * 1000000 + ts.tv_nsec / 1000;
}

// A new epoch per transport instance: the realtime clock in ns differs
// across restarts of a node (FORMAT.md, "Epochs").
uint64_t NewEpoch() {
  timespec ts;
  ABSL_RAW_CHECK(clock_gettime(CLOCK_REALTIME, &ts) == 0,
                 "clock_gettime(CLOCK_REALTIME) failed");
  return (uint64_t(ts.tv_sec) * 1000000000u + uint64_t(ts.tv_nsec)) | 1;
}

// The af_packet PMD's socket for the interface `if_index`: an AF_PACKET
// socket of this process bound to that interface with a TPACKET_V2 ring
// (the PMD's version; the filter socket below keeps the default V1). -1
// unless there is exactly one: with several queue pairs no one socket
// sees every frame. DPDK has no API for it (the PMD has no rx interrupts),
// so the process's descriptors are searched, once, at start-up.
int FindPortSocket(int if_index) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  const int dir_fd = dirfd(dir);
  int found = -1;
  int matches = 0;
  while (dirent* entry = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == dir_fd) continue;
    int domain = 0;
    socklen_t len = sizeof(domain);
    if (getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_DOMAIN, &domain,
                   &len) != 0 ||
        domain != AF_PACKET) {
      continue;
    }
    sockaddr_ll addr{};
    len = sizeof(addr);
    int version = 0;
    socklen_t version_len = sizeof(version);
    if (getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&addr),
                    &len) != 0 ||
        addr.sll_ifindex != if_index ||
        getsockopt(static_cast<int>(fd), SOL_PACKET, PACKET_VERSION, &version,
                   &version_len) != 0 ||
        version != TPACKET_V2) {
      continue;
    }
    found = static_cast<int>(fd);
    ++matches;
  }
  closedir(dir);
  return matches == 1 ? found : -1;
}

absl::Status ErrnoStatus(const char* what) {
  return absl::InternalError(
      absl::StrFormat("%s: %s", what, std::strerror(errno)));
}

absl::Status ValidateDpdkOptions(const DpdkOptions& o) {
  if (o.rx_burst_frames == 0 || o.tx_burst_frames == 0 ||
      o.rx_bursts_per_poll_max <= 0 || o.tx_frames_per_poll_max <= 0) {
    return absl::InvalidArgumentError("burst sizes must be > 0");
  }
  if (o.rx_descriptors == 0 || o.tx_descriptors == 0) {
    return absl::InvalidArgumentError("descriptor counts must be > 0");
  }
  // The retransmission clock starts when a frame is built: a flush delay
  // near the RTO would make every gated frame time out.
  if (o.tx_flush_delay_us < 0 || o.tx_flush_delay_us > o.protocol.rto_us_min / 2) {
    return absl::InvalidArgumentError(
        "tx_flush_delay_us must be in [0, protocol.rto_us_min / 2]");
  }
  if (o.idle_backoff_us_min <= 0 ||
      o.idle_backoff_us_max < o.idle_backoff_us_min ||
      o.doorbell_backoff_us_min <= 0 ||
      o.doorbell_backoff_us_max < o.doorbell_backoff_us_min) {
    return absl::InvalidArgumentError("idle back-off needs 0 < min <= max");
  }
  if (o.eal_memory_mb == 0) {
    return absl::InvalidArgumentError("eal_memory_mb must be > 0");
  }
  return absl::OkStatus();
}

EngineConfig MakeEngineConfig(const TransportOptions& options,
                              const DpdkOptions& o, const PortInfo& port) {
  EngineConfig config = o.protocol;
  config.ack_delay_us = options.ack_delay_us;
  config.port_mac = port.mac;
  config.mtu_bytes = port.mtu_bytes;
  config.epoch = NewEpoch();
  return config;
}

}  // namespace

absl::StatusOr<std::unique_ptr<DpdkTransport>> DpdkTransport::Create(
    const TransportOptions& options, const DpdkOptions& dpdk_options) {
  if (absl::Status s = ValidateDpdkOptions(dpdk_options); !s.ok()) return s;
  // Check the node's options before EAL exists: their errors must not leave
  // a half-initialized EAL behind. The port's MAC and MTU are not known yet;
  // stand-ins that are always valid take their place.
  {
    PortInfo stand_in;
    stand_in.mac = {0x02, 0, 0, 0, 0, 0x01};
    stand_in.mtu_bytes = 1500;
    absl::StatusOr<std::unique_ptr<FrameEngine>> dry_run =
        FrameEngine::Create(options, MakeEngineConfig(options, dpdk_options, stand_in));
    if (!dry_run.ok()) return dry_run.status();
  }
  auto transport = std::unique_ptr<DpdkTransport>(
      new DpdkTransport(options, dpdk_options));
  if (absl::Status s = transport->Init(options); !s.ok()) return s;
  return transport;
}

DpdkTransport::DpdkTransport(const TransportOptions& options,
                             const DpdkOptions& dpdk_options)
    : options_(dpdk_options),
      busy_poll_(options.busy_poll),
      idle_spin_us_(options.idle_spin_us) {}

absl::Status DpdkTransport::Init(const TransportOptions& options) {
  EalDefaults defaults;
  defaults.memory_mb = options_.eal_memory_mb;
  defaults.file_prefix =
      options_.file_prefix.empty()
          ? absl::StrFormat("blizzard_%d_%d", options.cluster_id, options.self)
          : options_.file_prefix;
  defaults.cpus = CpusOfThisProcess();
  absl::StatusOr<std::vector<std::string>> argv =
      BuildEalArgs(options.eal_args, defaults);
  if (!argv.ok()) return argv.status();

  PortRequest request;
  request.eal_argv = *argv;
  request.port_index = options_.port_index;
  request.mtu_bytes_max = options_.mtu_bytes_max;
  request.mtu_bytes = options.mtu_bytes;
  request.rx_descriptors = options_.rx_descriptors;
  request.tx_descriptors = options_.tx_descriptors;
  // rx burst + tx buffer + the spare: all this class ever holds.
  request.mbufs_held_max =
      uint32_t{options_.rx_burst_frames} + options_.tx_burst_frames + 1;
  request.mac = options.mac;
  absl::StatusOr<PortInfo> port = AcquirePort(request);
  if (!port.ok()) return port.status();
  port_ = *port;
  port_held_ = true;

  absl::StatusOr<std::unique_ptr<FrameEngine>> engine =
      FrameEngine::Create(options, MakeEngineConfig(options, options_, port_));
  if (!engine.ok()) return engine.status();
  engine_ = std::move(*engine);
  ABSL_RAW_CHECK(port_.mbuf_data_bytes >= engine_->frame_bytes_max(),
                 "mbufs cannot hold a frame of the port's MTU");
  rx_.resize(options_.rx_burst_frames);
  tx_.resize(options_.tx_burst_frames);
  tx_bytes_.resize(options_.tx_burst_frames);
  return InitReadiness();
}

absl::Status DpdkTransport::InitReadiness() {
  ready_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (ready_fd_ < 0) return ErrnoStatus("epoll_create1");
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) return ErrnoStatus("eventfd");
  timer_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  if (timer_fd_ < 0) return ErrnoStatus("timerfd_create");
  if (!busy_poll_) OpenDoorbell();
  for (int fd : {wake_fd_, timer_fd_, doorbell_fd_}) {
    if (fd < 0) continue;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    if (epoll_ctl(ready_fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      return ErrnoStatus("epoll_ctl(ADD)");
    }
  }
  // Start awake: the first Poll runs at once. In busy mode the eventfd is
  // never read again, so the fd stays readable for good.
  SetAwake(true);
  return absl::OkStatus();
}

void DpdkTransport::OpenDoorbell() {
  if (port_.if_index <= 0) return;  // No kernel interface: the timer only.
  if (options_.doorbell_on_port_socket) {
    doorbell_fd_ = FindPortSocket(port_.if_index);
    if (doorbell_fd_ >= 0) {
      doorbell_ = DoorbellKind::kPortSocket;
      return;
    }
  }
  doorbell_fd_ = OpenFilterSocket();
  if (doorbell_fd_ >= 0) doorbell_ = DoorbellKind::kFilterSocket;
}

// A raw socket on the port's kernel interface that receives nothing but a
// 1-byte stub of each frame addressed to our MAC and UDP port: epoll sees it
// readable when a frame for us arrives. -1 if the socket cannot be made (the
// back-off timer then suffices). Each frame is delivered to it as well as to
// the port, which costs the kernel a clone, the filter and a wake-up per
// frame: the fallback when the port's own socket cannot be identified.
int DpdkTransport::OpenFilterSocket() const {
  if (port_.if_index <= 0) return -1;
  const MacAddress& mac = engine_->self_mac();
  const uint32_t mac_high = (uint32_t{mac[0]} << 24) | (uint32_t{mac[1]} << 16) |
                            (uint32_t{mac[2]} << 8) | mac[3];
  const uint32_t mac_low = (uint32_t{mac[4]} << 8) | mac[5];
  // Classic BPF, loads are big-endian. Offsets: dst MAC 0, EtherType 12,
  // IP protocol 23, UDP destination port 36 (IPv4 without options).
  sock_filter code[] = {
      BPF_STMT(BPF_LD | BPF_W | BPF_ABS, 0),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, mac_high, 0, 9),
      BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 4),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, mac_low, 0, 7),
      BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 12),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kEtherTypeIpv4, 0, 5),
      BPF_STMT(BPF_LD | BPF_B | BPF_ABS, 23),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, kIpProtocolUdp, 0, 3),
      BPF_STMT(BPF_LD | BPF_H | BPF_ABS, 36),
      BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, engine_->udp_port(), 0, 1),
      BPF_STMT(BPF_RET | BPF_K, 1),  // Keep one byte: a doorbell, no data.
      BPF_STMT(BPF_RET | BPF_K, 0),
  };
  sock_fprog program{static_cast<unsigned short>(sizeof(code) / sizeof(code[0])),
                     code};
  // Protocol 0: receives nothing until bound, so no frame slips in before
  // the filter is attached.
  const int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  const int one = 1;
  const int small = 1;  // The kernel rounds up to its minimum: a few frames.
  sockaddr_ll addr{};
  addr.sll_family = AF_PACKET;
  addr.sll_protocol = htons(ETH_P_ALL);
  addr.sll_ifindex = port_.if_index;
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &program, sizeof(program)) != 0 ||
      setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)) != 0 ||
      bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  // Our own transmissions never ring (older kernels lack the option; the
  // MAC filter excludes them anyway).
  (void)setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(one));
  return fd;
}

DpdkTransport::~DpdkTransport() {
  if (tx_count_ > 0) rte_pktmbuf_free_bulk(tx_.data(), tx_count_);
  if (spare_ != nullptr) rte_pktmbuf_free(spare_);
  // The port's socket is the PMD's to close.
  if (doorbell_ == DoorbellKind::kFilterSocket) close(doorbell_fd_);
  for (int fd : {timer_fd_, wake_fd_, ready_fd_}) {
    if (fd >= 0) close(fd);
  }
  if (port_held_) ReleasePort();
}

absl::Status DpdkTransport::Send(NodeId to, absl::Span<const uint8_t> payload) {
  absl::Status s = engine_->Send(to, payload);
  // Outside Poll, make ReadinessFd readable so a loop sleeping on it comes
  // back to transmit; Poll transmits before it returns anyway.
  if (s.ok() && !in_poll_) SetAwake(true);
  return s;
}

absl::Status DpdkTransport::Poll(const MessageHandler& handler) {
  ABSL_RAW_CHECK(!in_poll_, "Poll called from its own handler");
  in_poll_ = true;
  absl::Cleanup done = [this] { in_poll_ = false; };
  const int64_t now_us = NowUs();
  // Waking from idle: clear the doorbell before looking at the ring, so a
  // frame arriving after this look rings it again.
  ++poll_stats_.polls;
  const bool woke = !awake_;
  if (woke && doorbell_ == DoorbellKind::kFilterSocket && DrainDoorbell()) {
    ++poll_stats_.doorbell_rings;
  }
  bool worked = Receive(now_us, handler);
  // The port's own ring needs no draining: rx_burst consumed what rang it.
  if (woke && worked && doorbell_ == DoorbellKind::kPortSocket) {
    ++poll_stats_.doorbell_rings;
  }
  engine_->Expire(now_us);
  worked |= Transmit(now_us);
  UpdateReadiness(now_us, worked);
  return absl::OkStatus();
}

bool DpdkTransport::Receive(int64_t now_us, const MessageHandler& handler) {
  bool worked = false;
  for (int burst = 0; burst < options_.rx_bursts_per_poll_max; ++burst) {
    const uint16_t n =
        rte_eth_rx_burst(port_.port_id, 0, rx_.data(), options_.rx_burst_frames);
    for (uint16_t i = 0; i < n; ++i) {
      rte_mbuf* m = rx_[i];
      if (m->nb_segs != 1) {
        ++rx_chained_;  // Larger than our MTU: not one of ours.
        continue;
      }
      engine_->OnFrame(
          absl::MakeConstSpan(rte_pktmbuf_mtod(m, const uint8_t*), m->data_len),
          now_us, handler);
    }
    // The handler's spans pointed into these; they are done now.
    rte_pktmbuf_free_bulk(rx_.data(), n);
    worked |= n > 0;
    if (n < options_.rx_burst_frames) break;
  }
  return worked;
}

bool DpdkTransport::Transmit(int64_t now_us) {
  bool worked = false;
  if (tx_count_ == tx_.size()) Flush();  // Retry what the NIC refused.
  for (int built = 0; built < options_.tx_frames_per_poll_max; ++built) {
    if (tx_count_ == tx_.size()) {
      Flush();
      if (tx_count_ == tx_.size()) break;  // The NIC is full: later.
    }
    if (spare_ == nullptr) {
      // The pool is sized for the rings plus what we hold, so this fails
      // only if a driver keeps more than its descriptors: send later.
      spare_ = rte_pktmbuf_alloc(port_.pool);
      if (spare_ == nullptr) {
        ++mbuf_alloc_failures_;
        break;
      }
    }
    const size_t bytes = engine_->NextFrame(
        now_us, absl::MakeSpan(rte_pktmbuf_mtod(spare_, uint8_t*),
                               port_.mbuf_data_bytes));
    if (bytes == 0) break;
    spare_->data_len = static_cast<uint16_t>(bytes);
    spare_->pkt_len = static_cast<uint32_t>(bytes);
    if (tx_count_ == 0) tx_oldest_us_ = now_us;
    tx_[tx_count_] = spare_;
    tx_bytes_[tx_count_] = static_cast<uint32_t>(bytes);
    ++tx_count_;
    spare_ = nullptr;
    worked = true;
  }
  // Time-gated flush of a partial burst.
  if (tx_count_ > 0 && now_us - tx_oldest_us_ >= options_.tx_flush_delay_us) {
    Flush();
  }
  return worked;
}

void DpdkTransport::Flush() {
  const uint16_t taken = rte_eth_tx_burst(port_.port_id, 0, tx_.data(),
                                          static_cast<uint16_t>(tx_count_));
  // The NIC owns the first `taken` mbufs now (it may have freed them):
  // only our own copy of their lengths is read.
  for (uint16_t i = 0; i < taken; ++i) bytes_sent_ += tx_bytes_[i];
  frames_sent_ += taken;
  if (taken < tx_count_) {
    tx_deferred_ += tx_count_ - taken;
    std::move(tx_.begin() + taken, tx_.begin() + tx_count_, tx_.begin());
    std::move(tx_bytes_.begin() + taken, tx_bytes_.begin() + tx_count_,
              tx_bytes_.begin());
  }
  tx_count_ -= taken;
}

void DpdkTransport::UpdateReadiness(int64_t now_us, bool worked) {
  if (busy_poll_) return;  // Always readable.
  // Buffered frames either wait for the flush gate (sleep until it opens)
  // or were refused by the NIC (retry at once).
  const int64_t gate_us = tx_oldest_us_ + options_.tx_flush_delay_us;
  const bool gated = tx_count_ > 0 && now_us < gate_us;
  if (worked || (tx_count_ > 0 && !gated) || engine_->FrameDue(now_us)) {
    idle_polls_ = 0;
    last_work_us_ = now_us;
    SetAwake(true);
    return;
  }
  // Spin a little after work: the answer to what was just sent (an ack, the
  // next request) often comes within tens of microseconds, and catching it
  // without sleeping saves a doorbell wake-up on both sides.
  if (now_us - last_work_us_ < idle_spin_us_) {
    ++poll_stats_.spin_polls;
    SetAwake(true);
    return;
  }
  // Idle: sleep until a doorbell, a deadline, or the back-off, which grows
  // with the time spent idle.
  ++idle_polls_;
  ++poll_stats_.idle_polls;
  // The back-off: without a doorbell the only way to notice frames; with
  // the filter socket a safety net that starts short (a frame can ring
  // before the port's ring has it); with the port's own socket there is no
  // such race (readiness IS the ring's state), so only the long safety net:
  // a short timer here woke an idle follower between every two appends.
  int64_t backoff_min = options_.idle_backoff_us_min;
  int64_t backoff_max = options_.idle_backoff_us_max;
  if (doorbell_ == DoorbellKind::kFilterSocket) {
    backoff_min = options_.doorbell_backoff_us_min;
    backoff_max = options_.doorbell_backoff_us_max;
  } else if (doorbell_ == DoorbellKind::kPortSocket) {
    backoff_min = backoff_max = options_.doorbell_backoff_us_max;
  }
  const int shift = std::min(idle_polls_ - 1, 30);
  int64_t delay_us = std::min(backoff_max, backoff_min << shift);
  const int64_t deadline_us =
      std::min(engine_->DeadlineUs(), gated ? gate_us : kNeverUs);
  if (deadline_us != kNeverUs) {
    delay_us = std::min(delay_us, std::max<int64_t>(deadline_us - now_us, 1));
  }
  SetAwake(false);
  ArmTimer(now_us, delay_us);
}

void DpdkTransport::SetAwake(bool awake) {
  if (awake == awake_) return;
  uint64_t value = 1;
  if (awake) {
    ABSL_RAW_CHECK(write(wake_fd_, &value, sizeof(value)) == sizeof(value),
                   "eventfd write failed");
  } else {
    (void)!read(wake_fd_, &value, sizeof(value));
  }
  awake_ = awake;
}

void DpdkTransport::ArmTimer(int64_t now_us, int64_t delay_us) {
  // Already armed for about then (not early, at most an eighth of the delay
  // late): keep it. A timer that fired is due before now, so it is always
  // re-armed, which also clears its readability. An early expiry would cost
  // a wake-up, far more than the system call that re-arming is.
  const int64_t due_us = now_us + delay_us;
  if (timer_due_us_ >= due_us && timer_due_us_ <= due_us + delay_us / 8) return;
  timer_due_us_ = due_us;
  itimerspec spec{};
  spec.it_value.tv_sec = delay_us / 1000000;
  spec.it_value.tv_nsec = (delay_us % 1000000) * 1000;
  if (timerfd_settime(timer_fd_, 0, &spec, nullptr) != 0) {
    ABSL_RAW_LOG(FATAL, "timerfd_settime(%ld us) failed: %s", long{delay_us},
                 std::strerror(errno));
  }
}

bool DpdkTransport::DrainDoorbell() {
  uint8_t byte;
  int rung = 0;
  for (; rung < 64; ++rung) {
    if (recv(doorbell_fd_, &byte, 1, MSG_DONTWAIT | MSG_TRUNC) < 0) break;
  }
  return rung > 0;
}

TransportStats DpdkTransport::Stats() const {
  TransportStats stats = engine_->stats();
  stats.frames_sent = frames_sent_;
  stats.bytes_sent = bytes_sent_;
  stats.tx_deferred = tx_deferred_ + mbuf_alloc_failures_;
  stats.frames_received += rx_chained_;
  stats.frames_ignored += rx_chained_;
  stats.rx_missed = PortRxMissed(port_.port_id);
  return stats;
}

std::string DpdkTransport::Describe() const {
  return absl::StrFormat(
      "dpdk port %s (if_index %d) mac %s%s mtu %d, udp port %d, pool %d mbufs "
      "of %d B, %s",
      port_.device, port_.if_index, FormatMac(engine_->self_mac()),
      port_.promiscuous ? " (promiscuous)" : "", port_.mtu_bytes,
      engine_->udp_port(), port_.pool_mbufs, port_.mbuf_data_bytes,
      busy_poll_ ? "busy polling"
      : doorbell_ == DoorbellKind::kPortSocket
          ? "idle back-off with doorbell (the port's socket)"
      : doorbell_ == DoorbellKind::kFilterSocket
          ? "idle back-off with doorbell (a filter socket)"
          : "idle back-off (timer)");
}

absl::StatusOr<std::unique_ptr<Transport>> CreateDpdkTransport(
    const TransportOptions& options, const DpdkOptions& dpdk_options) {
  absl::StatusOr<std::unique_ptr<DpdkTransport>> t =
      DpdkTransport::Create(options, dpdk_options);
  if (!t.ok()) return t.status();
  return std::unique_ptr<Transport>(std::move(*t));
}

}  // namespace blizzard::transport::dpdk
