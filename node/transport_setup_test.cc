#include "node/transport_setup.h"

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "node/config.h"
#include "transport/transport.h"

namespace blizzard::node {
namespace {

// Three DPDK nodes; nodes 1 and 2 name their port, node 3 leaves eal_args
// to the transport's defaults.
std::string DpdkCluster() {
  std::string text =
      "[cluster]\nid = 42\nbusy_poll = true\nmtu_bytes = 9000\nidle_spin_us = 30\n"
      "ack_delay_us = 0\n";
  for (int i = 1; i <= 3; ++i) {
    absl::StrAppend(&text, "[node.", i, "]\nhost = 10.0.0.", i,
                    "\nclient_port = ", 7000 + i, "\npeer_port = ", 7100 + i,
                    "\nlog_pool = /dev/shm/t/", i, "/log.pool\ndata_pool = /dev/shm/t/",
                    i, "/data.pool\nmac = 02:00:00:00:00:0", i, "\n");
    if (i < 3) {
      absl::StrAppend(&text, "eal_args = --vdev=net_af_packet0,iface=bzd", i, "\n");
    }
  }
  return text;
}

TEST(TransportOptionsForTest, CarriesEveryKeyOfTheClusterFile) {
  absl::StatusOr<ClusterConfig> cluster = ParseClusterConfig(DpdkCluster());
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const transport::TransportOptions t =
      TransportOptionsFor(*cluster, *cluster->Find(2));
  EXPECT_TRUE(transport::ValidateTransportOptions(t).ok());
  EXPECT_EQ(t.cluster_id, 42u);
  EXPECT_EQ(t.self, 2u);
  EXPECT_EQ(t.listen_host, "10.0.0.2");
  EXPECT_EQ(t.listen_port, 7102);
  EXPECT_EQ(t.mac, "02:00:00:00:00:02");
  EXPECT_EQ(t.eal_args, "--vdev=net_af_packet0,iface=bzd2");
  EXPECT_TRUE(t.busy_poll);
  EXPECT_EQ(t.mtu_bytes, 9000u);
  EXPECT_EQ(t.idle_spin_us, 30);
  EXPECT_EQ(t.ack_delay_us, 0);
  ASSERT_EQ(t.peers.size(), 2u);
  EXPECT_EQ(t.peers[0].id, 1u);
  EXPECT_EQ(t.peers[0].host, "10.0.0.1");
  EXPECT_EQ(t.peers[0].port, 7101);
  EXPECT_EQ(t.peers[0].mac, "02:00:00:00:00:01");
  EXPECT_EQ(t.peers[1].id, 3u);
  EXPECT_EQ(t.peers[1].host, "10.0.0.3");
  EXPECT_EQ(t.peers[1].port, 7103);
  EXPECT_EQ(t.peers[1].mac, "02:00:00:00:00:03");

  // Node 3 has no eal_args: empty, the transport adds its defaults.
  const transport::TransportOptions t3 =
      TransportOptionsFor(*cluster, *cluster->Find(3));
  EXPECT_EQ(t3.eal_args, "");
  EXPECT_EQ(t3.peers.size(), 2u);
}

TEST(TransportOptionsForTest, BusyPollDefaultsToFalseAndMacsMayBeAbsent) {
  // A TCP cluster file: no mac, no busy_poll.
  absl::StatusOr<ClusterConfig> cluster = ParseClusterConfig(
      "[cluster]\nid = 1\n[node.1]\nhost = 127.0.0.1\nclient_port = 1\n"
      "peer_port = 2\nlog_pool = /a\ndata_pool = /b\n[node.2]\nhost = "
      "127.0.0.1\nclient_port = 3\npeer_port = 4\nlog_pool = /c\ndata_pool = "
      "/d\n");
  ASSERT_TRUE(cluster.ok()) << cluster.status();
  const transport::TransportOptions t =
      TransportOptionsFor(*cluster, *cluster->Find(1));
  EXPECT_TRUE(transport::ValidateTransportOptions(t).ok());
  EXPECT_FALSE(t.busy_poll);
  EXPECT_EQ(t.mtu_bytes, 0u);  // The port's own.
  EXPECT_EQ(t.idle_spin_us, 0);
  EXPECT_EQ(t.ack_delay_us, 2000);
  EXPECT_EQ(t.mac, "");
  ASSERT_EQ(t.peers.size(), 1u);
  EXPECT_EQ(t.peers[0].id, 2u);
  EXPECT_EQ(t.peers[0].port, 4);
  EXPECT_EQ(t.peers[0].mac, "");
}

TEST(AppendTransportInfoTest, EveryCounterOnceUnderItsOwnName) {
  transport::TransportStats ts;
  // Distinct values, so a field printed under another field's name fails.
  ts.connects = 1;
  ts.disconnects = 2;
  ts.handshakes_rejected = 3;
  ts.frames_sent = 4;
  ts.frames_received = 5;
  ts.frames_ignored = 6;
  ts.frames_rejected = 7;
  ts.frames_bad_checksum = 8;
  ts.frames_foreign = 9;
  ts.frames_out_of_order = 10;
  ts.frames_duplicate = 11;
  ts.retransmissions = 12;
  ts.retransmit_timeouts = 13;
  ts.reassembly_failures = 14;
  ts.tx_deferred = 15;
  ts.rx_missed = 16;
  std::string out = "before\r\n";
  AppendTransportInfo(ts, &out);
  ASSERT_EQ(out.rfind("before\r\n\r\n# Transport\r\n", 0), 0u) << out;
  absl::flat_hash_map<std::string, std::string> fields;
  for (absl::string_view line : absl::StrSplit(out, "\r\n")) {
    const size_t colon = line.find(':');
    if (colon == absl::string_view::npos) continue;
    EXPECT_TRUE(fields
                    .emplace(std::string(line.substr(0, colon)),
                             std::string(line.substr(colon + 1)))
                    .second)
        << "twice: " << line;
  }
  const std::vector<std::pair<std::string, std::string>> want = {
      {"transport_connects", "1"},
      {"transport_disconnects", "2"},
      {"transport_handshakes_rejected", "3"},
      {"transport_frames_sent", "4"},
      {"transport_frames_received", "5"},
      {"transport_frames_ignored", "6"},
      {"transport_frames_rejected", "7"},
      {"transport_frames_bad_checksum", "8"},
      {"transport_frames_foreign", "9"},
      {"transport_frames_out_of_order", "10"},
      {"transport_frames_duplicate", "11"},
      {"transport_retransmissions", "12"},
      {"transport_retransmit_timeouts", "13"},
      {"transport_reassembly_failures", "14"},
      {"transport_tx_deferred", "15"},
      {"transport_rx_missed", "16"},
  };
  EXPECT_EQ(fields.size(), want.size());
  for (const auto& [key, value] : want) {
    auto it = fields.find(key);
    ASSERT_NE(it, fields.end()) << key;
    EXPECT_EQ(it->second, value) << key;
  }
}

}  // namespace
}  // namespace blizzard::node
