// Process-wide DPDK state: the EAL and the one Ethernet port a DpdkTransport
// drives, with its mbuf pool.
//
// Lifetime: EAL can be initialized only once per process, and DPDK cannot
// be re-initialized after rte_eal_cleanup; af_packet closes its sockets in
// rte_eth_dev_stop and cannot start again. So both are set up on the first
// AcquirePort and then live until the process exits: a DpdkTransport
// acquires the port and releases it when destroyed, and a later transport in
// the same process gets the same port back if it asks for the same set-up
// (tests create, destroy and recreate). One transport at a time: that is
// "one DPDK transport per process"; two endpoints need two processes.
#ifndef BLIZZARD_TRANSPORT_DPDK_DPDK_PORT_H_
#define BLIZZARD_TRANSPORT_DPDK_DPDK_PORT_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "transport/dpdk/frame_format.h"

struct rte_mempool;

namespace blizzard::transport::dpdk {

struct PortRequest {
  std::vector<std::string> eal_argv;  // Complete, from BuildEalArgs.
  uint16_t port_index = 0;            // Among the ports EAL found.
  size_t mtu_bytes_max = 9000;        // Jumbo frames if the port allows.
  // Nonzero: exactly this MTU, or an error (port_mtu.h, PlanMtu).
  size_t mtu_bytes = 0;
  uint16_t rx_descriptors = 1024;
  uint16_t tx_descriptors = 1024;
  // Mbufs the transport itself holds at most (tx buffer, rx burst, spare);
  // the pool adds the rings' descriptors and the per-lcore cache.
  uint32_t mbufs_held_max = 128;
  std::string mac;  // Set as the port's address when nonempty.
};

struct PortInfo {
  uint16_t port_id = 0;
  rte_mempool* pool = nullptr;
  uint32_t pool_mbufs = 0;
  size_t mbuf_data_bytes = 0;  // Room for one frame in one mbuf.
  size_t mtu_bytes = 0;        // IP MTU in use.
  MacAddress mac{};            // The port's address now.
  // The MAC could not be set, so the port receives everything and the
  // transport filters by MAC itself.
  bool promiscuous = false;
  int if_index = 0;  // Kernel interface behind the port (af_packet), or 0.
  std::string device;  // e.g. "net_af_packet0".
  // True when this process set the port up earlier and it was reused.
  bool reused = false;
};

// Initializes EAL and the port on first use, else hands back the port set
// up before if `request` matches it. Errors: InvalidArgument (EAL refused
// its arguments), FailedPrecondition (no such port; the port is held by a
// live transport; EAL or the port were set up differently earlier in this
// process), Internal (a DPDK call failed), each naming the cause.
absl::StatusOr<PortInfo> AcquirePort(const PortRequest& request);

// Gives the port back; it stays started, its pending frames are dropped by
// the next AcquirePort.
void ReleasePort();

// Frames the port dropped (imissed + rx_nombuf) since it started.
uint64_t PortRxMissed(uint16_t port_id);

}  // namespace blizzard::transport::dpdk

#endif  // BLIZZARD_TRANSPORT_DPDK_DPDK_PORT_H_
