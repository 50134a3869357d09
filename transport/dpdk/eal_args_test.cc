#include "transport/dpdk/eal_args.h"

#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "gtest/gtest.h"

namespace blizzard::transport::dpdk {
namespace {

EalDefaults Defaults() {
  EalDefaults d;
  d.memory_mb = 64;
  d.file_prefix = "node1";
  d.cpus = "0,1";
  return d;
}

std::string Built(const std::string& eal_args) {
  absl::StatusOr<std::vector<std::string>> argv =
      BuildEalArgs(eal_args, Defaults());
  if (!argv.ok()) return argv.status().ToString();
  return absl::StrJoin(*argv, " ");
}

TEST(EalArgsTest, AddsDevelopmentDefaults) {
  EXPECT_EQ(Built("--vdev=net_af_packet0,iface=veth1"),
            "blizzard --vdev=net_af_packet0,iface=veth1 --no-huge -m 64 "
            "--no-pci --file-prefix=node1 --lcores=0@(0,1)");
}

TEST(EalArgsTest, KeepsWhatTheClusterFileSays) {
  // The example of node/CONFIG.md: nothing is added twice.
  EXPECT_EQ(Built("--no-huge -m 512 --no-pci --file-prefix=node2 "
                  "--vdev=net_af_packet0,iface=veth2"),
            "blizzard --no-huge -m 512 --no-pci --file-prefix=node2 "
            "--vdev=net_af_packet0,iface=veth2 --lcores=0@(0,1)");
  EXPECT_EQ(Built("-m512 -l 1 --file-prefix x"),
            "blizzard -m512 -l 1 --file-prefix x --no-huge --no-pci");
}

TEST(EalArgsTest, ProductionUsesHugepagesAndPciWhenNamed) {
  EXPECT_EQ(Built("--huge-dir=/mnt/huge --socket-mem=1024 -a 0000:3b:00.0 "
                  "--lcores=2"),
            "blizzard --huge-dir=/mnt/huge --socket-mem=1024 -a 0000:3b:00.0 "
            "--lcores=2 --file-prefix=node1");
}

TEST(EalArgsTest, RefusesWhatCannotWork) {
  EXPECT_TRUE(absl::IsInvalidArgument(
      BuildEalArgs("--in-memory --vdev=x", Defaults()).status()));
  EXPECT_TRUE(absl::IsInvalidArgument(
      BuildEalArgs("--vdev='x y'", Defaults()).status()));
  EalDefaults no_prefix = Defaults();
  no_prefix.file_prefix = "";
  EXPECT_TRUE(absl::IsInvalidArgument(
      BuildEalArgs("--vdev=x", no_prefix).status()));
  EXPECT_TRUE(BuildEalArgs("--vdev=x --file-prefix=y", no_prefix).ok());
}

TEST(EalArgsTest, BlanksSeparateArguments) {
  EXPECT_EQ(Built("  --vdev=a \t --no-pci  "),
            "blizzard --vdev=a --no-pci --no-huge -m 64 --file-prefix=node1 "
            "--lcores=0@(0,1)");
}

TEST(EalArgsTest, CpusOfThisProcessListsAllowedCpus) {
  const std::string cpus = CpusOfThisProcess();
  EXPECT_FALSE(cpus.empty());
  EXPECT_EQ(cpus.find_first_not_of("0123456789,"), std::string::npos) << cpus;
}

TEST(EalArgsTest, AfPacketFrameBytes) {
  using V = std::vector<std::string>;
  EXPECT_EQ(*AfPacketFrameBytes(V{"blizzard", "--no-pci"}), 0u);
  EXPECT_EQ(*AfPacketFrameBytes(V{"blizzard", "--vdev=net_tap0,iface=t0"}), 0u);
  EXPECT_EQ(*AfPacketFrameBytes(V{"blizzard", "--vdev=net_af_packet0,iface=v1"}),
            2048u);
  EXPECT_EQ(*AfPacketFrameBytes(
                V{"blizzard", "--vdev=net_af_packet0,iface=v1,framesz=12288,blocksz=12288"}),
            12288u);
  EXPECT_EQ(*AfPacketFrameBytes(
                V{"blizzard", "--vdev", "eth_af_packet1,framesz=4096,iface=v1"}),
            4096u);
  for (const char* bad : {"framesz=", "framesz=0", "framesz=-1", "framesz=4k",
                          "framesz=99999999999"}) {
    EXPECT_TRUE(absl::IsInvalidArgument(
        AfPacketFrameBytes(V{"--vdev=net_af_packet0,iface=v1," + std::string(bad)})
            .status()))
        << bad;
  }
}

}  // namespace
}  // namespace blizzard::transport::dpdk
