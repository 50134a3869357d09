// Which IP MTU a DPDK port runs at, and how large its mbufs must be. Pure
// arithmetic over what the port, its kernel interface and the af_packet ring
// report, so every rule is tested without EAL (dpdk_port.cc feeds it).
//
// Why an explicit MTU may exceed what the driver reports: DPDK 22.11's
// af_packet PMD reports max_rx_pktlen = RTE_ETHER_MAX_LEN (1518) whatever its
// ring's frame size, so ethdev refuses any larger MTU. Yet the PMD's tx path
// only checks a frame against the ring's frame size (framesz - 32), and its
// rx path copies the kernel's tp_snaplen (at most framesz - 80: tpacket2
// header, sockaddr_ll, alignment) into one mbuf, having checked at queue
// set-up that framesz - 32 fits the mbuf's data room. So with framesz,
// mbufs and the veth MTU sized for it, jumbo frames cross af_packet; the
// ethdev is configured at the MTU it accepts and the transport builds larger
// frames. Only on kernel-backed ports (af_packet): a PCI NIC's reported limit
// is its hardware's.
#ifndef BLIZZARD_TRANSPORT_DPDK_PORT_MTU_H_
#define BLIZZARD_TRANSPORT_DPDK_PORT_MTU_H_

#include <cstddef>
#include <string>

#include "absl/status/statusor.h"

namespace blizzard::transport::dpdk {

// af_packet (TPACKET_V2) ring frame overheads, from the PMD and the kernel.
inline constexpr size_t kAfPacketTxOverheadBytes = 32;  // Frame data starts here.
inline constexpr size_t kAfPacketRxOverheadBytes = 80;  // Worst case, see above.
inline constexpr size_t kAfPacketDefaultFrameBytes = 2048;  // The PMD's framesz.
// Ethernet header + CRC + two VLAN tags: what a frame adds to the IP MTU
// in the worst case a receive buffer must hold.
inline constexpr size_t kFrameOverMtuBytes = 14 + 4 + 2 * 4;

struct MtuInputs {
  size_t explicit_mtu_bytes = 0;  // The cluster file's mtu_bytes; 0: auto.
  size_t mtu_bytes_max = 9000;    // Auto mode's cap.
  // The port's own limit (min of max_mtu and max_rx_pktlen - 18).
  size_t port_mtu_bytes = 1500;
  size_t kernel_mtu_bytes = 0;    // The kernel interface's MTU; 0: none.
  // The af_packet ring's frame size (framesz); 0: not an af_packet port.
  size_t af_packet_frame_bytes = 0;
  size_t mbuf_headroom_bytes = 128;   // RTE_PKTMBUF_HEADROOM.
  size_t mbuf_data_room_min = 2176;   // RTE_MBUF_DEFAULT_BUF_SIZE.
  std::string device;                 // For messages.
};

struct MtuPlan {
  size_t mtu_bytes = 0;         // What the transport's frames use.
  size_t ethdev_mtu_bytes = 0;  // What rte_eth_dev_configure is given.
  size_t mbuf_data_room = 0;    // Headroom included (pool's data_room_size).
};

// InvalidArgument: the explicit MTU is outside [kMtuBytesMin, kMtuBytesMax].
// FailedPrecondition, naming the fix: the port's limit is below the
// explicit MTU and the port is not af_packet; the kernel interface's MTU is
// below it; the af_packet framesz cannot hold its frames; the mbuf would
// exceed 65535 bytes; auto mode finds less than kMtuBytesMin.
absl::StatusOr<MtuPlan> PlanMtu(const MtuInputs& in);

}  // namespace blizzard::transport::dpdk

#endif  // BLIZZARD_TRANSPORT_DPDK_PORT_MTU_H_
