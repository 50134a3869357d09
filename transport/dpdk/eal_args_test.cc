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

}  // namespace
}  // namespace blizzard::transport::dpdk
