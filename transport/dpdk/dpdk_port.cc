#include "transport/dpdk/dpdk_port.h"

#include <net/if.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <optional>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "transport/dpdk/eal_args.h"
#include "transport/dpdk/port_mtu.h"

namespace blizzard::transport::dpdk {
namespace {

// Per-lcore cache of the mbuf pool: allocations and frees mostly stay in it.
constexpr unsigned kPoolCache = 256;

struct ProcessState {
  absl::Mutex mu;
  // EAL: set once. A failed rte_eal_init cannot be retried either.
  bool eal_tried = false;
  absl::Status eal_status;
  std::vector<std::string> eal_argv;
  std::vector<std::string> eal_argv_storage;  // EAL may keep pointers.
  std::vector<char*> eal_argv_pointers;
  // The port, once started. A failed set-up leaves the port in an unknown
  // state (configured, maybe started): it is not tried again.
  absl::Status port_status;
  std::optional<PortRequest> port_request;
  PortInfo port;
  bool in_use = false;
};

ProcessState& State() {
  static ProcessState* state = new ProcessState;  // Never destroyed.
  return *state;
}

absl::Status DpdkError(const std::string& what, int rc) {
  const int err = rc < 0 ? -rc : rte_errno;
  return absl::InternalError(
      absl::StrFormat("%s failed: %s (%d)", what, rte_strerror(err), err));
}

absl::Status InitEal(ProcessState& s, const std::vector<std::string>& argv) {
  if (s.eal_tried) {
    if (argv != s.eal_argv) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "EAL was already initialized in this process with other arguments "
          "(%s); it can be initialized once per process: one DPDK transport "
          "per process",
          absl::StrJoin(s.eal_argv, " ")));
    }
    return s.eal_status;
  }
  s.eal_tried = true;
  s.eal_argv = argv;
  s.eal_argv_storage = argv;
  for (std::string& arg : s.eal_argv_storage) {
    s.eal_argv_pointers.push_back(arg.data());
  }
  s.eal_argv_pointers.push_back(nullptr);
  const int rc = rte_eal_init(static_cast<int>(s.eal_argv_storage.size()),
                              s.eal_argv_pointers.data());
  if (rc < 0) {
    s.eal_status = absl::InvalidArgumentError(absl::StrFormat(
        "rte_eal_init(%s) failed: %s", absl::StrJoin(argv, " "),
        rte_strerror(rte_errno)));
  }
  return s.eal_status;
}

// The MTU of the kernel interface behind a kernel-backed port (af_packet):
// frames above it would be dropped by the kernel on the way out.
size_t KernelMtu(int if_index) {
  char name[IF_NAMESIZE];
  if (if_index <= 0 || if_indextoname(if_index, name) == nullptr) return 0;
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return 0;
  ifreq ifr{};
  static_assert(sizeof(ifr.ifr_name) == IF_NAMESIZE);
  std::memcpy(ifr.ifr_name, name, IF_NAMESIZE);  // NUL-terminated by if_indextoname.
  const int rc = ioctl(fd, SIOCGIFMTU, &ifr);
  close(fd);
  return rc == 0 && ifr.ifr_mtu > 0 ? static_cast<size_t>(ifr.ifr_mtu) : 0;
}

bool SameSetUp(const PortRequest& a, const PortRequest& b) {
  return a.eal_argv == b.eal_argv && a.port_index == b.port_index &&
         a.mtu_bytes_max == b.mtu_bytes_max && a.mtu_bytes == b.mtu_bytes &&
         a.rx_descriptors == b.rx_descriptors &&
         a.tx_descriptors == b.tx_descriptors && a.mac == b.mac;
}

absl::StatusOr<uint16_t> FindPort(uint16_t index) {
  uint16_t n = 0;
  uint16_t port_id;
  RTE_ETH_FOREACH_DEV(port_id) {
    if (n++ == index) return port_id;
  }
  if (n == 0) {
    return absl::FailedPreconditionError(
        "EAL found no Ethernet port: name a device in eal_args, e.g. "
        "--vdev=net_af_packet0,iface=veth1 or -a 0000:3b:00.0");
  }
  return absl::FailedPreconditionError(absl::StrFormat(
      "port index %d requested but EAL found %d port(s)", index, n));
}

absl::Status SetUpPort(const PortRequest& request, PortInfo* info) {
  absl::StatusOr<uint16_t> port = FindPort(request.port_index);
  if (!port.ok()) return port.status();
  const uint16_t id = *port;
  info->port_id = id;
  char name[RTE_ETH_NAME_MAX_LEN] = {};
  rte_eth_dev_get_name_by_port(id, name);
  info->device = name;

  rte_eth_dev_info dev_info;
  if (int rc = rte_eth_dev_info_get(id, &dev_info); rc != 0) {
    return DpdkError("rte_eth_dev_info_get", rc);
  }
  info->if_index = static_cast<int>(dev_info.if_index);
  // The MTU the port, its receive path and (af_packet) the kernel interface
  // and ring agree on, or the configured one if they can carry it (see
  // port_mtu.h: af_packet under-reports its limit).
  MtuInputs mtu_in;
  mtu_in.explicit_mtu_bytes = request.mtu_bytes;
  mtu_in.mtu_bytes_max = request.mtu_bytes_max;
  mtu_in.port_mtu_bytes = dev_info.max_mtu;
  if (dev_info.max_rx_pktlen > RTE_ETHER_HDR_LEN + RTE_ETHER_CRC_LEN) {
    mtu_in.port_mtu_bytes =
        std::min<size_t>(mtu_in.port_mtu_bytes, dev_info.max_rx_pktlen -
                                                    RTE_ETHER_HDR_LEN -
                                                    RTE_ETHER_CRC_LEN);
  }
  mtu_in.kernel_mtu_bytes = KernelMtu(info->if_index);
  const bool af_packet = info->device.rfind("net_af_packet", 0) == 0 ||
                         info->device.rfind("eth_af_packet", 0) == 0;
  if (af_packet) {
    absl::StatusOr<size_t> frame_bytes = AfPacketFrameBytes(request.eal_argv);
    if (!frame_bytes.ok()) return frame_bytes.status();
    // A vdev EAL was given some other way: the PMD's default ring frame.
    mtu_in.af_packet_frame_bytes =
        *frame_bytes > 0 ? *frame_bytes : kAfPacketDefaultFrameBytes;
  }
  mtu_in.mbuf_headroom_bytes = RTE_PKTMBUF_HEADROOM;
  mtu_in.mbuf_data_room_min = RTE_MBUF_DEFAULT_BUF_SIZE;
  mtu_in.device = info->device;
  absl::StatusOr<MtuPlan> plan = PlanMtu(mtu_in);
  if (!plan.ok()) return plan.status();
  size_t mtu = plan->mtu_bytes;
  rte_eth_conf conf{};
  conf.rxmode.mtu = static_cast<uint32_t>(plan->ethdev_mtu_bytes);
  int rc = rte_eth_dev_configure(id, 1, 1, &conf);
  if (rc != 0 && request.mtu_bytes == 0 && mtu > RTE_ETHER_MTU) {
    // Jumbo refused: standard frames.
    mtu = RTE_ETHER_MTU;
    conf.rxmode.mtu = static_cast<uint32_t>(mtu);
    rc = rte_eth_dev_configure(id, 1, 1, &conf);
  }
  if (rc != 0) return DpdkError("rte_eth_dev_configure", rc);
  uint16_t port_mtu = 0;
  if (request.mtu_bytes == 0 && rte_eth_dev_get_mtu(id, &port_mtu) == 0 &&
      port_mtu >= kMtuBytesMin) {
    mtu = std::min<size_t>(mtu, port_mtu);
  }
  info->mtu_bytes = mtu;

  uint16_t rxd = request.rx_descriptors;
  uint16_t txd = request.tx_descriptors;
  if (rc = rte_eth_dev_adjust_nb_rx_tx_desc(id, &rxd, &txd); rc != 0) {
    return DpdkError("rte_eth_dev_adjust_nb_rx_tx_desc", rc);
  }
  // Every mbuf a ring, the cache or the transport can hold at once, plus
  // slack; 2^k - 1 is the mempool's most compact size. The af_packet PMD
  // holds none: its rings are the kernel's, it copies a frame into a fresh
  // mbuf on rx and out of (then frees) the mbuf on tx. Not counting its
  // nominal descriptors keeps the pool small when frames are large (61 KiB
  // mbufs at the largest MTU its ring allows).
  uint32_t needed = (af_packet ? 0u : uint32_t{rxd} + txd) +
                    request.mbufs_held_max + kPoolCache + 64;
  uint32_t pool_mbufs = 1;
  while (pool_mbufs - 1 < needed) pool_mbufs *= 2;
  info->pool_mbufs = pool_mbufs - 1;
  // One frame per mbuf: no chains to walk.
  const size_t data_room = plan->mbuf_data_room;
  const int socket = rte_eth_dev_socket_id(id);
  info->pool = rte_pktmbuf_pool_create(
      "blizzard_mbufs", info->pool_mbufs, kPoolCache, 0,
      static_cast<uint16_t>(data_room), socket < 0 ? SOCKET_ID_ANY : socket);
  if (info->pool == nullptr) {
    return absl::ResourceExhaustedError(absl::StrFormat(
        "rte_pktmbuf_pool_create(%d mbufs of %d bytes) failed: %s "
        "(raise -m in eal_args)",
        info->pool_mbufs, data_room, rte_strerror(rte_errno)));
  }
  info->mbuf_data_bytes = data_room - RTE_PKTMBUF_HEADROOM;
  if (rc = rte_eth_rx_queue_setup(id, 0, rxd, socket < 0 ? SOCKET_ID_ANY : socket,
                                  nullptr, info->pool);
      rc != 0) {
    return DpdkError(
        "rte_eth_rx_queue_setup (af_packet: framesz above the mbuf size?)",
        rc);
  }
  if (rc = rte_eth_tx_queue_setup(id, 0, txd, socket < 0 ? SOCKET_ID_ANY : socket,
                                  nullptr);
      rc != 0) {
    return DpdkError("rte_eth_tx_queue_setup", rc);
  }
  if (rc = rte_eth_dev_start(id); rc != 0) {
    return DpdkError("rte_eth_dev_start", rc);
  }
  rte_ether_addr addr;
  if (rc = rte_eth_macaddr_get(id, &addr); rc != 0) {
    return DpdkError("rte_eth_macaddr_get", rc);
  }
  std::memcpy(info->mac.data(), addr.addr_bytes, 6);
  if (!request.mac.empty()) {
    absl::StatusOr<MacAddress> want = ParseMac(request.mac);
    if (!want.ok()) return want.status();
    if (*want != info->mac) {
      std::memcpy(addr.addr_bytes, want->data(), 6);
      if (rte_eth_dev_default_mac_addr_set(id, &addr) == 0) {
        info->mac = *want;
      } else if (rc = rte_eth_promiscuous_enable(id); rc == 0) {
        info->promiscuous = true;
      } else {
        return DpdkError(
            "setting the port's MAC and enabling promiscuous mode both", rc);
      }
    }
  }
  return absl::OkStatus();
}

void DrainRx(uint16_t port_id) {
  rte_mbuf* mbufs[64];
  for (int i = 0; i < 1024; ++i) {
    const uint16_t n = rte_eth_rx_burst(port_id, 0, mbufs, 64);
    rte_pktmbuf_free_bulk(mbufs, n);
    if (n == 0) break;
  }
}

}  // namespace

absl::StatusOr<PortInfo> AcquirePort(const PortRequest& request) {
  ProcessState& s = State();
  absl::MutexLock lock(&s.mu);
  if (absl::Status status = InitEal(s, request.eal_argv); !status.ok()) {
    return status;
  }
  if (s.in_use) {
    return absl::FailedPreconditionError(
        "the DPDK port is held by another transport in this process: one "
        "DPDK transport per process");
  }
  if (s.port_request.has_value()) {
    if (!SameSetUp(*s.port_request, request) ||
        request.mbufs_held_max > s.port_request->mbufs_held_max) {
      return absl::FailedPreconditionError(
          "the DPDK port was set up differently by an earlier transport in "
          "this process and cannot be set up again");
    }
    DrainRx(s.port.port_id);  // Frames meant for the previous transport.
    s.in_use = true;
    PortInfo info = s.port;
    info.reused = true;
    return info;
  }
  if (!s.port_status.ok()) return s.port_status;
  PortInfo info;
  if (absl::Status status = SetUpPort(request, &info); !status.ok()) {
    s.port_status = status;
    return status;
  }
  s.port_request = request;
  s.port = info;
  s.in_use = true;
  return info;
}

void ReleasePort() {
  ProcessState& s = State();
  absl::MutexLock lock(&s.mu);
  ABSL_RAW_CHECK(s.in_use, "releasing a port nobody holds");
  s.in_use = false;
}

uint64_t PortRxMissed(uint16_t port_id) {
  rte_eth_stats stats;
  if (rte_eth_stats_get(port_id, &stats) != 0) return 0;
  return stats.imissed + stats.rx_nombuf;
}

}  // namespace blizzard::transport::dpdk
