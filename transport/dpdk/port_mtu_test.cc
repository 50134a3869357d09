#include "transport/dpdk/port_mtu.h"

#include "absl/status/status.h"
#include "gtest/gtest.h"
#include "transport/dpdk/frame_format.h"

namespace blizzard::transport::dpdk {
namespace {

// af_packet as DPDK 22.11 reports it: 1518-byte frames, a kernel veth.
MtuInputs AfPacket(size_t kernel_mtu, size_t framesz) {
  MtuInputs in;
  in.port_mtu_bytes = 1500;
  in.kernel_mtu_bytes = kernel_mtu;
  in.af_packet_frame_bytes = framesz;
  in.device = "net_af_packet0";
  return in;
}

TEST(PlanMtuTest, AutoTakesTheSmallestLimit) {
  MtuInputs nic;  // A PCI NIC that allows jumbo frames.
  nic.port_mtu_bytes = 9600;
  absl::StatusOr<MtuPlan> plan = PlanMtu(nic);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->mtu_bytes, 9000u);  // mtu_bytes_max.
  EXPECT_EQ(plan->ethdev_mtu_bytes, 9000u);
  EXPECT_GE(plan->mbuf_data_room, 128u + 14 + 9000);

  plan = PlanMtu(AfPacket(9000, 2048));  // Default ring, jumbo veth.
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->mtu_bytes, 1500u);
  EXPECT_EQ(plan->mbuf_data_room, 2176u);  // The default mbuf.

  MtuInputs tiny = AfPacket(500, 2048);
  EXPECT_TRUE(absl::IsFailedPrecondition(PlanMtu(tiny).status()));
}

TEST(PlanMtuTest, ExplicitJumboOverAfPacket) {
  absl::StatusOr<MtuPlan> plan = PlanMtu([] {
    MtuInputs in = AfPacket(9000, 12288);
    in.explicit_mtu_bytes = 9000;
    return in;
  }());
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->mtu_bytes, 9000u);
  EXPECT_EQ(plan->ethdev_mtu_bytes, 1500u);  // What ethdev accepts.
  // The PMD's queue set-up needs framesz - 32 bytes of data room.
  EXPECT_EQ(plan->mbuf_data_room, 128u + 12288 - kAfPacketTxOverheadBytes);

  // Exactly enough ring frame: 14 + MTU + the rx overhead.
  MtuInputs edge = AfPacket(9000, 14 + 9000 + kAfPacketRxOverheadBytes);
  edge.explicit_mtu_bytes = 9000;
  EXPECT_TRUE(PlanMtu(edge).ok());
  edge.af_packet_frame_bytes -= 1;
  absl::Status s = PlanMtu(edge).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(s.message().find("framesz"), absl::string_view::npos) << s;

  // An explicit MTU at or below the port's limit: ethdev gets it as is.
  MtuInputs small = AfPacket(1500, 2048);
  small.explicit_mtu_bytes = 1400;
  plan = PlanMtu(small);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->mtu_bytes, 1400u);
  EXPECT_EQ(plan->ethdev_mtu_bytes, 1400u);
}

TEST(PlanMtuTest, ExplicitMtuRefusedWithTheReason) {
  MtuInputs veth_small = AfPacket(1500, 12288);  // veth MTU not raised.
  veth_small.explicit_mtu_bytes = 9000;
  absl::Status s = PlanMtu(veth_small).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(s.message().find("ip link set"), absl::string_view::npos) << s;

  MtuInputs nic;  // A NIC's limit is its hardware's: not overridden.
  nic.port_mtu_bytes = 1500;
  nic.explicit_mtu_bytes = 9000;
  EXPECT_TRUE(absl::IsFailedPrecondition(PlanMtu(nic).status()));

  for (size_t bad : {kMtuBytesMin - 1, kMtuBytesMax + 1}) {
    MtuInputs in = AfPacket(65535, 65536);
    in.explicit_mtu_bytes = bad;
    EXPECT_TRUE(absl::IsInvalidArgument(PlanMtu(in).status())) << bad;
  }

  // A ring frame whose data no 16-bit mbuf can hold.
  MtuInputs huge = AfPacket(65535, 131072);
  huge.explicit_mtu_bytes = 60000;
  s = PlanMtu(huge).status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_NE(s.message().find("65535"), absl::string_view::npos) << s;

  // The largest MTU does fit with a ring frame just large enough.
  MtuInputs largest = AfPacket(65535, 65120);
  largest.explicit_mtu_bytes = kMtuBytesMax;
  absl::StatusOr<MtuPlan> plan = PlanMtu(largest);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_LE(plan->mbuf_data_room, 65535u);
}

}  // namespace
}  // namespace blizzard::transport::dpdk
