#include "transport/dpdk/port_mtu.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_format.h"
#include "transport/dpdk/frame_format.h"

namespace blizzard::transport::dpdk {

absl::StatusOr<MtuPlan> PlanMtu(const MtuInputs& in) {
  MtuPlan plan;
  const size_t port_limit = std::min(in.port_mtu_bytes, kMtuBytesMax);
  if (in.explicit_mtu_bytes == 0) {
    // Auto: the largest everything on the path agrees on.
    size_t mtu = std::min(in.mtu_bytes_max, port_limit);
    if (in.kernel_mtu_bytes > 0) mtu = std::min(mtu, in.kernel_mtu_bytes);
    if (in.af_packet_frame_bytes > kAfPacketRxOverheadBytes + kEthernetHeaderBytes) {
      mtu = std::min(mtu, in.af_packet_frame_bytes - kAfPacketRxOverheadBytes -
                              kEthernetHeaderBytes);
    }
    if (mtu < kMtuBytesMin) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "port %s carries an MTU of %d bytes, below the %d the transport "
          "needs",
          in.device, mtu, kMtuBytesMin));
    }
    plan.mtu_bytes = mtu;
    plan.ethdev_mtu_bytes = mtu;
  } else {
    const size_t mtu = in.explicit_mtu_bytes;
    if (mtu < kMtuBytesMin || mtu > kMtuBytesMax) {
      return absl::InvalidArgumentError(absl::StrFormat(
          "mtu_bytes = %d outside [%d, %d]", mtu, kMtuBytesMin, kMtuBytesMax));
    }
    if (mtu > port_limit && in.af_packet_frame_bytes == 0) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "mtu_bytes = %d, but port %s carries at most %d (only an af_packet "
          "port's limit is taken as a report to override)",
          mtu, in.device, port_limit));
    }
    if (in.kernel_mtu_bytes > 0 && in.kernel_mtu_bytes < mtu) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "mtu_bytes = %d, but the kernel interface behind port %s has MTU "
          "%d: raise it (ip link set dev <iface> mtu %d, and on every link "
          "and bridge port between the nodes)",
          mtu, in.device, in.kernel_mtu_bytes, mtu));
    }
    if (in.af_packet_frame_bytes > 0) {
      const size_t needed = kEthernetHeaderBytes + mtu + kAfPacketRxOverheadBytes;
      if (in.af_packet_frame_bytes < needed) {
        return absl::FailedPreconditionError(absl::StrFormat(
            "mtu_bytes = %d needs af_packet ring frames of at least %d bytes, "
            "port %s has framesz=%d: add framesz=N,blocksz=N to its --vdev "
            "(N >= %d, a multiple of the page size)",
            mtu, needed, in.device, in.af_packet_frame_bytes, needed));
      }
    }
    plan.mtu_bytes = mtu;
    plan.ethdev_mtu_bytes = std::min(mtu, port_limit);
  }
  // One frame per mbuf; af_packet's queue set-up also wants a whole ring
  // frame's data (framesz - 32) to fit.
  size_t room = in.mbuf_headroom_bytes + plan.mtu_bytes + kFrameOverMtuBytes;
  if (in.af_packet_frame_bytes > kAfPacketTxOverheadBytes) {
    room = std::max(room, in.mbuf_headroom_bytes + in.af_packet_frame_bytes -
                              kAfPacketTxOverheadBytes);
  }
  room = std::max(room, in.mbuf_data_room_min);
  if (room > UINT16_MAX) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "port %s: one frame needs an mbuf of %d bytes, above DPDK's 65535 "
        "(lower mtu_bytes or the af_packet framesz)",
        in.device, room));
  }
  plan.mbuf_data_room = room;
  return plan;
}

}  // namespace blizzard::transport::dpdk
