// The DPDK transport: the Transport interface over a user-space Ethernet
// port. FrameEngine is the protocol (format, per-peer reliable streams,
// fragmentation); this class is the datapath around it, in the style of
// DPDK's l2fwd:
//
//   Poll = run to completion, no threads:
//     rx: up to rx_bursts_per_poll_max bursts of rx_burst_frames; each frame
//         goes through the engine (which calls the handler) and its mbuf is
//         freed right after (the handler's span points into it).
//     tx: frames the engine has due are built straight into mbufs and
//         buffered; a full buffer of tx_burst_frames is handed to
//         rte_eth_tx_burst at once; a partial one when it has waited
//         tx_flush_delay_us (0: at the end of every Poll). What tx_burst did
//         not take stays ours, in order, and is retried next time (counted
//         in tx_deferred); at most tx_frames_per_poll_max per Poll.
//   Memory: the mbuf pool is sized at start-up from these limits (rings +
//   what this class can hold); Poll allocates nothing but mbufs from it.
//
// Readiness (ReadinessFd is an epoll fd the node adds to its own loop):
//   busy_poll = true: the fd is always readable, so the node's epoll_wait
//     never sleeps: it spins on Poll (production, a core per node).
//   busy_poll = false (idle back-off, for nodes sharing cores): while Poll
//     finds work, and for idle_spin_us after (TransportOptions), the fd
//     stays readable; when idle, it becomes readable again
//     when (a) a frame arrives, if the port is kernel-backed (af_packet):
//     the doorbell. Preferably the PMD's own AF_PACKET socket is in the
//     epoll set: its TPACKET_V2 rx ring polls readable while a frame the
//     kernel filled waits for rx_burst, so nothing is received twice and
//     nothing needs draining. If that socket cannot be identified (more
//     than one queue pair, or DpdkOptions::doorbell_on_port_socket false),
//     a tiny AF_PACKET socket of our own with a BPF filter for our MAC and
//     UDP port that keeps a 1-byte stub of each frame; (b) a
//     timer expires: a retransmission or reassembly deadline, or the back-off
//     (idle_backoff_us_min doubling to _max; with the filter socket the
//     timer is only a safety net: doorbell_backoff_us_min to _max, 1 to 100
//     ms; with the port's socket, which has no race to cover, always
//     doorbell_backoff_us_max);
//     (c) Send queues data outside Poll.
//   An fd rather than "-1, poll me at 1 kHz": the node sleeps in its own
//   epoll with every other fd, wakes within microseconds for a frame, and a
//   cluster of idle nodes costs almost no CPU on a shared 2-core machine.
//
// One per process (EAL is initialized once): see dpdk_port.h.
#ifndef BLIZZARD_TRANSPORT_DPDK_DPDK_TRANSPORT_H_
#define BLIZZARD_TRANSPORT_DPDK_DPDK_TRANSPORT_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "transport/dpdk/dpdk_port.h"
#include "transport/dpdk/frame_engine.h"
#include "transport/transport.h"

struct rte_mbuf;

namespace blizzard::transport::dpdk {

// Knobs below TransportOptions; the defaults suit veth and real NICs.
struct DpdkOptions {
  size_t eal_memory_mb = 128;  // -m when eal_args gives none.
  // --file-prefix when eal_args gives none; empty: "blizzard_<cluster>_<self>".
  std::string file_prefix;
  uint16_t port_index = 0;  // Which of the ports EAL found.
  size_t mtu_bytes_max = 9000;  // Jumbo frames when the port allows them.
  uint16_t rx_descriptors = 1024;
  uint16_t tx_descriptors = 1024;
  uint16_t rx_burst_frames = 32;
  int rx_bursts_per_poll_max = 16;
  uint16_t tx_burst_frames = 32;
  int tx_frames_per_poll_max = 512;
  // A partial burst waits up to this for more frames (<= rto_us_min / 2).
  int64_t tx_flush_delay_us = 0;
  // Protocol: window, timeouts. Its port_mac, mtu_bytes and epoch are the
  // transport's to fill (from the port, and a new epoch per instance).
  // Its ack_delay_us comes from TransportOptions::ack_delay_us (default
  // 2000 us: a Raft exchange is request and response, and the response
  // carries the ack; the response's own ack waits for the next request,
  // saving a frame and a wake-up of the peer).
  EngineConfig protocol;
  // Idle back-off (busy_poll = false) when the port has no doorbell: the
  // timer is the only way to notice frames.
  int64_t idle_backoff_us_min = 50;
  int64_t idle_backoff_us_max = 1000;
  // With a doorbell the timer is a safety net only (a frame that rang
  // before the port's ring had it). Short timers there cost latency: each
  // wake-up is a trip through the scheduler (measured: RTT p50 185 us with
  // 50 us timers, 60 us with 1 ms ones on a loaded 2-core machine).
  int64_t doorbell_backoff_us_min = 1000;
  int64_t doorbell_backoff_us_max = 100000;
  // Use the af_packet PMD's own socket as the doorbell when it can be
  // identified (see above); false: always the filtered socket of our own.
  bool doorbell_on_port_socket = true;
};

// Which doorbell an idle transport sleeps on.
enum class DoorbellKind {
  kNone,          // Busy polling, or no kernel interface: the timer only.
  kPortSocket,    // The af_packet PMD's own socket (its rx ring).
  kFilterSocket,  // An AF_PACKET socket of ours with a BPF filter.
};

// How the loop around the transport behaved (idle back-off mode), for
// tuning and the README's analysis.
struct PollStats {
  uint64_t polls = 0;
  uint64_t idle_polls = 0;      // Found nothing to do, armed the timer.
  uint64_t doorbell_rings = 0;  // Woke from idle with the doorbell rung.
  uint64_t spin_polls = 0;      // Idle, but stayed awake (idle_spin_us).
};

class DpdkTransport final : public Transport {
 public:
  // Initializes EAL and the port if this process has not (see dpdk_port.h),
  // then the engine. InvalidArgument for bad options (a peer without MAC, a
  // host that is not an IPv4 address, bad eal_args); FailedPrecondition if
  // another DPDK transport is alive in this process or EAL was initialized
  // with other arguments; other errors from DPDK, naming the call.
  static absl::StatusOr<std::unique_ptr<DpdkTransport>> Create(
      const TransportOptions& options,
      const DpdkOptions& dpdk_options = DpdkOptions());

  ~DpdkTransport() override;
  DpdkTransport(const DpdkTransport&) = delete;
  DpdkTransport& operator=(const DpdkTransport&) = delete;

  absl::Status Send(NodeId to, absl::Span<const uint8_t> payload) override;
  // The handler may call Send; it must not call Poll or destroy this object.
  absl::Status Poll(const MessageHandler& handler) override;
  int ReadinessFd() const override { return ready_fd_; }
  // The UDP port frames to this node are addressed to.
  uint16_t ListenPort() const override { return engine_->udp_port(); }
  TransportStats Stats() const override;

  // Introspection for tests, tools and INFO.
  size_t QueuedBytes(NodeId peer) const { return engine_->QueuedBytes(peer); }
  // Every message queued for `peer` was delivered and acknowledged.
  bool Idle(NodeId peer) const { return engine_->Idle(peer); }
  const PortInfo& port() const { return port_; }
  const FrameEngine& engine() const { return *engine_; }
  bool has_doorbell() const { return doorbell_ != DoorbellKind::kNone; }
  DoorbellKind doorbell() const { return doorbell_; }
  const PollStats& poll_stats() const { return poll_stats_; }
  // One line: device, MAC, MTU, pool, readiness mode.
  std::string Describe() const;

 private:
  DpdkTransport(const TransportOptions& options,
                const DpdkOptions& dpdk_options);
  absl::Status Init(const TransportOptions& options);
  absl::Status InitReadiness();
  // The doorbell for an idle transport: sets doorbell_fd_ and doorbell_.
  void OpenDoorbell();
  int OpenFilterSocket() const;

  bool Receive(int64_t now_us, const MessageHandler& handler);
  bool Transmit(int64_t now_us);
  void Flush();
  void UpdateReadiness(int64_t now_us, bool worked);
  void SetAwake(bool awake);
  // The timer fires delay_us from now, or up to an eighth later if it is
  // already armed for then (each timerfd_settime is a system call).
  void ArmTimer(int64_t now_us, int64_t delay_us);
  // Empties the filter socket's stubs; true if it had rung.
  bool DrainDoorbell();

  DpdkOptions options_;
  bool busy_poll_;
  int64_t idle_spin_us_;
  int64_t last_work_us_ = 0;  // The last Poll that found work.
  PortInfo port_;
  bool port_held_ = false;
  std::unique_ptr<FrameEngine> engine_;

  std::vector<rte_mbuf*> rx_;
  std::vector<rte_mbuf*> tx_;      // Built, not yet taken by the NIC.
  std::vector<uint32_t> tx_bytes_;  // Their lengths (read before handing over).
  size_t tx_count_ = 0;
  int64_t tx_oldest_us_ = 0;    // When the oldest buffered frame was built.
  rte_mbuf* spare_ = nullptr;   // Allocated, not yet filled.

  int ready_fd_ = -1;     // epoll: wake_fd_, timer_fd_, doorbell_fd_.
  int wake_fd_ = -1;      // eventfd: readable = "call Poll now".
  int timer_fd_ = -1;
  int doorbell_fd_ = -1;  // AF_PACKET on the port's kernel interface, or -1.
  DoorbellKind doorbell_ = DoorbellKind::kNone;  // Owns doorbell_fd_ only
                                                 // as kFilterSocket.
  int64_t timer_due_us_ = 0;  // When the armed timer fires; 0: disarmed.
  bool awake_ = false;
  int idle_polls_ = 0;
  bool in_poll_ = false;

  PollStats poll_stats_;
  uint64_t frames_sent_ = 0;
  uint64_t bytes_sent_ = 0;
  uint64_t tx_deferred_ = 0;
  uint64_t rx_chained_ = 0;  // Multi-segment frames: never ours, dropped.
  uint64_t mbuf_alloc_failures_ = 0;  // Counted in tx_deferred.
};

// The direct constructor for tests and tools (same as DpdkTransport::Create).
absl::StatusOr<std::unique_ptr<Transport>> CreateDpdkTransport(
    const TransportOptions& options,
    const DpdkOptions& dpdk_options = DpdkOptions());

}  // namespace blizzard::transport::dpdk

#endif  // BLIZZARD_TRANSPORT_DPDK_DPDK_TRANSPORT_H_
