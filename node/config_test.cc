#include "node/config.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gtest/gtest.h"

namespace blizzard::node {
namespace {

// The example of CONFIG.md, verbatim: the documentation must parse.
constexpr char kExample[] = R"ini(# Blizzard cluster file: three nodes on one machine (loopback + veth pairs).
; Both '#' and ';' start a comment.

[cluster]
id = 7                          # Stamped into every pool; a node refuses a foreign pool.
tick_ms = 10                    # One Raft tick every 10 ms.
election_timeout_ticks = 15     # Elections after 150..300 ms without a leader.
heartbeat_interval_ticks = 2    # Leader heartbeat every 20 ms.
batch_ops_max = 4096            # Client operations per Raft entry.
batch_bytes_max = 4M            # Bytes of operations per Raft entry.
clients_max = 10000             # Concurrent client connections per node.
busy_poll = false               # DPDK: back off when idle (nodes share cores).

[node.1]
host = 127.0.0.1
client_port = 7001              # RESP: redis-cli -p 7001
peer_port = 7101                # Raft messages between nodes.
log_pool = /dev/shm/blizzard/node1/log.pool
log_pool_bytes = 256M
data_pool = /dev/shm/blizzard/node1/data.pool
data_pool_bytes = 1G
mac = 02:00:00:00:00:01         # DPDK transport only.
eal_args = --no-huge -m 512 --no-pci --file-prefix=node1 --vdev=net_af_packet0,iface=veth1

[node.2]
host = 127.0.0.1
client_port = 7002
peer_port = 7102
log_pool = /dev/shm/blizzard/node2/log.pool
log_pool_bytes = 256M
data_pool = /dev/shm/blizzard/node2/data.pool
data_pool_bytes = 1G
mac = 02:00:00:00:00:02
eal_args = --no-huge -m 512 --no-pci --file-prefix=node2 --vdev=net_af_packet0,iface=veth2

[node.3]
host = 127.0.0.1
client_port = 7003
peer_port = 7103
log_pool = /dev/shm/blizzard/node3/log.pool
log_pool_bytes = 256M
data_pool = /dev/shm/blizzard/node3/data.pool
data_pool_bytes = 1G
mac = 02:00:00:00:00:03
eal_args = --no-huge -m 512 --no-pci --file-prefix=node3 --vdev=net_af_packet0,iface=veth3
)ini";

// The smallest valid file: only required keys.
constexpr char kMinimal[] =
    "[cluster]\n"                 // 1
    "id = 1\n"                    // 2
    "[node.1]\n"                  // 3
    "host = 10.0.0.1\n"           // 4
    "client_port = 6379\n"        // 5
    "peer_port = 6380\n"          // 6
    "log_pool = /p/log\n"         // 7
    "data_pool = /p/data\n";      // 8

// Expects `text` to fail with InvalidArgument "line <line>: ...<fragment>...".
void ExpectError(std::string_view text, size_t line, std::string_view fragment) {
  absl::StatusOr<ClusterConfig> config = ParseClusterConfig(text);
  ASSERT_FALSE(config.ok()) << "accepted:\n" << text;
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  const std::string message(config.status().message());
  EXPECT_TRUE(absl::StartsWith(message, absl::StrCat("line ", line, ": ")))
      << message << "\nfor:\n" << text;
  EXPECT_TRUE(absl::StrContains(message, std::string(fragment)))
      << message << "\nexpected to contain: " << fragment;
}

// kMinimal with `key = value` appended to [node.1] (line 9).
std::string MinimalWithNodeKey(std::string_view key, std::string_view value) {
  return absl::StrCat(kMinimal, std::string(key), " = ", std::string(value),
                      "\n");
}

// kMinimal with `key = value` inserted in [cluster] as line 3.
std::string MinimalWithClusterKey(std::string_view key, std::string_view value) {
  std::string text = kMinimal;
  text.insert(text.find("[node.1]"),
              absl::StrCat(std::string(key), " = ", std::string(value), "\n"));
  return text;
}

// kMinimal with [cluster]'s `key` set to `value`; `line` is where it is.
std::string MinimalWithClusterValue(std::string_view key,
                                    std::string_view value, size_t& line) {
  if (key == "id") {
    line = 2;
    return absl::StrReplaceAll(
        kMinimal, {{"id = 1", absl::StrCat("id = ", std::string(value))}});
  }
  line = 3;
  return MinimalWithClusterKey(key, value);
}

TEST(ClusterConfigTest, ParsesTheDocumentedExample) {
  absl::StatusOr<ClusterConfig> config = ParseClusterConfig(kExample);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->cluster_id, 7u);
  EXPECT_EQ(config->tick_ms, 10u);
  EXPECT_EQ(config->election_timeout_ticks, 15u);
  EXPECT_EQ(config->heartbeat_interval_ticks, 2u);
  EXPECT_EQ(config->batch_ops_max, 4096u);
  EXPECT_EQ(config->batch_bytes_max, 4u << 20);
  EXPECT_EQ(config->clients_max, 10000u);
  EXPECT_FALSE(config->busy_poll);
  ASSERT_EQ(config->nodes.size(), 3u);
  const NodeConfig& n2 = config->nodes[1];
  EXPECT_EQ(n2.id, 2u);
  EXPECT_EQ(n2.host, "127.0.0.1");
  EXPECT_EQ(n2.client_port, 7002);
  EXPECT_EQ(n2.peer_port, 7102);
  EXPECT_EQ(n2.log_pool, "/dev/shm/blizzard/node2/log.pool");
  EXPECT_EQ(n2.log_pool_bytes, 256u << 20);
  EXPECT_EQ(n2.data_pool, "/dev/shm/blizzard/node2/data.pool");
  EXPECT_EQ(n2.data_pool_bytes, 1u << 30);
  EXPECT_EQ(n2.mac, "02:00:00:00:00:02");
  EXPECT_EQ(n2.eal_args,
            "--no-huge -m 512 --no-pci --file-prefix=node2 "
            "--vdev=net_af_packet0,iface=veth2");
}

TEST(ClusterConfigTest, ParsesWhatTheLauncherGenerates) {
  // tools/blizzard_cluster.py gen-config output for 3 nodes.
  std::string text =
      "# Generated by tools/blizzard_cluster.py gen-config\n[cluster]\nid = 1\n"
      "tick_ms = 10\nelection_timeout_ticks = 15\nheartbeat_interval_ticks = "
      "2\n\n";
  for (int i = 1; i <= 3; ++i) {
    absl::StrAppend(&text, "[node.", i, "]\nhost = 127.0.0.1\nclient_port = ",
                    7000 + i, "\npeer_port = ", 7100 + i,
                    "\nlog_pool = /dev/shm/t/node", i,
                    "/log.pool\nlog_pool_bytes = 64M\ndata_pool = /dev/shm/t/node",
                    i, "/data.pool\ndata_pool_bytes = 256M\n\n");
  }
  absl::StatusOr<ClusterConfig> config = ParseClusterConfig(text);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->nodes.size(), 3u);
  EXPECT_EQ(config->nodes[2].log_pool_bytes, 64u << 20);
}

TEST(ClusterConfigTest, DefaultsForOptionalKeys) {
  absl::StatusOr<ClusterConfig> config = ParseClusterConfig(kMinimal);
  ASSERT_TRUE(config.ok()) << config.status();
  const ClusterConfig defaults;
  EXPECT_EQ(config->tick_ms, defaults.tick_ms);
  EXPECT_EQ(config->election_timeout_ticks, defaults.election_timeout_ticks);
  EXPECT_EQ(config->heartbeat_interval_ticks,
            defaults.heartbeat_interval_ticks);
  EXPECT_EQ(config->batch_ops_max, defaults.batch_ops_max);
  EXPECT_EQ(config->batch_bytes_max, defaults.batch_bytes_max);
  EXPECT_EQ(config->clients_max, defaults.clients_max);
  EXPECT_FALSE(config->busy_poll);
  ASSERT_EQ(config->nodes.size(), 1u);
  const NodeConfig node_defaults;
  EXPECT_EQ(config->nodes[0].log_pool_bytes, node_defaults.log_pool_bytes);
  EXPECT_EQ(config->nodes[0].data_pool_bytes, node_defaults.data_pool_bytes);
  EXPECT_EQ(config->nodes[0].mac, "");
  EXPECT_EQ(config->nodes[0].eal_args, "");
}

TEST(ClusterConfigTest, SizeSuffixesAreBinary) {
  const std::pair<std::string_view, uint64_t> cases[] = {
      {"512", 512},           {"4K", 4096},
      {"4k", 4096},           {"64M", 64ull << 20},
      {"2G", 2ull << 30},     {"16777215G", 16777215ull << 30},
      {"9223372036854775808", 9223372036854775808ull},
  };
  for (const auto& [text, bytes] : cases) {
    absl::StatusOr<ClusterConfig> config =
        ParseClusterConfig(MinimalWithNodeKey("data_pool_bytes", text));
    ASSERT_TRUE(config.ok()) << text << ": " << config.status();
    EXPECT_EQ(config->nodes[0].data_pool_bytes, bytes) << text;
  }
  absl::StatusOr<ClusterConfig> config =
      ParseClusterConfig(MinimalWithClusterKey("batch_bytes_max", "1M"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->batch_bytes_max, 1u << 20);
}

TEST(ClusterConfigTest, CommentsWhitespaceAndLineEndings) {
  const std::string text =
      "  # indented comment\r\n"
      "; semicolon comment\r\n"
      "\t[ cluster ]   ; trailing comment\r\n"
      "id=3\r\n"
      "\r\n"
      "[node.1]\r\n"
      "  host\t=\t10.0.0.1   # inline comment\r\n"
      "client_port = 1\r\n"
      "peer_port = 65535\r\n"
      "log_pool = /p/log;not-a-comment\r\n"
      "data_pool = /p/data#not-a-comment\r\n"
      "eal_args = --vdev=net_af_packet0,iface=veth1 --no-pci ; comment\r\n";
  absl::StatusOr<ClusterConfig> config = ParseClusterConfig(text);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->cluster_id, 3u);
  const NodeConfig& node = config->nodes[0];
  EXPECT_EQ(node.host, "10.0.0.1");
  EXPECT_EQ(node.client_port, 1);
  EXPECT_EQ(node.peer_port, 65535);
  EXPECT_EQ(node.log_pool, "/p/log;not-a-comment");
  EXPECT_EQ(node.data_pool, "/p/data#not-a-comment");
  EXPECT_EQ(node.eal_args, "--vdev=net_af_packet0,iface=veth1 --no-pci");
}

TEST(ClusterConfigTest, NodesSortedByIdAndFind) {
  std::string text = "[cluster]\nid = 1\n";
  for (int id : {9, 3, 7, 1}) {
    absl::StrAppend(&text, "[node.", id, "]\nhost = 10.0.0.", id,
                    "\nclient_port = 7000\npeer_port = 7100\nlog_pool = /l", id,
                    "\ndata_pool = /d", id, "\n");
  }
  absl::StatusOr<ClusterConfig> config = ParseClusterConfig(text);
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_EQ(config->nodes.size(), 4u);
  EXPECT_EQ(config->nodes[0].id, 1u);
  EXPECT_EQ(config->nodes[1].id, 3u);
  EXPECT_EQ(config->nodes[2].id, 7u);
  EXPECT_EQ(config->nodes[3].id, 9u);
  for (uint64_t id : {1, 3, 7, 9}) {
    const NodeConfig* node = config->Find(id);
    ASSERT_NE(node, nullptr) << id;
    EXPECT_EQ(node->id, id);
    EXPECT_EQ(node->host, absl::StrCat("10.0.0.", id));
  }
  for (uint64_t id : {0, 2, 8, 10}) EXPECT_EQ(config->Find(id), nullptr) << id;
}

// --- Syntax ---

TEST(ClusterConfigTest, SyntaxErrors) {
  ExpectError("id = 1\n", 1, "key before any [section]");
  ExpectError("[cluster]\nid 1\n", 2, "expected 'key = value'");
  ExpectError("[cluster]\n = 1\n", 2, "empty key");
  ExpectError("[cluster]\nid =\n", 2, "empty value for 'id'");
  ExpectError("[cluster]\nid = # only a comment\n", 2, "empty value");
  ExpectError("[cluster\nid = 1\n", 1, "without ']'");
  ExpectError("[cluster] x\n", 1, "text after the section header");
  ExpectError("[cluster]\nid = 1\x01\n", 2, "control character");
  ExpectError(std::string_view("[cluster]\nid = 1\0\n", 18), 2,
              "control character");
}

TEST(ClusterConfigTest, UnknownSectionsAndKeys) {
  ExpectError("[clusters]\n", 1, "unknown section [clusters]");
  ExpectError("[Cluster]\n", 1, "unknown section [Cluster]");
  ExpectError("[node]\n", 1, "unknown section [node]");
  ExpectError("[cluster]\nid = 1\nreplicas = 3\n", 3,
              "unknown key 'replicas' in [cluster]");
  ExpectError(MinimalWithNodeKey("id", "1"), 9, "unknown key 'id' in [node.1]");
  ExpectError(MinimalWithNodeKey("Host", "1.2.3.4"), 9, "unknown key 'Host'");
  ExpectError(MinimalWithClusterKey("host", "1.2.3.4"), 3,
              "unknown key 'host' in [cluster]");
}

TEST(ClusterConfigTest, DuplicateKeysAndSections) {
  ExpectError(MinimalWithNodeKey("host", "10.0.0.2"), 9,
              "duplicate key 'host' (first at line 4)");
  ExpectError(MinimalWithClusterKey("id", "2"), 3,
              "duplicate key 'id' (first at line 2)");
  ExpectError(absl::StrCat(kMinimal, "[cluster]\n"), 9,
              "duplicate section [cluster] (first at line 1)");
  ExpectError(absl::StrCat(kMinimal, "[node.1]\n"), 9,
              "duplicate node id 1 (first at line 3)");
  ExpectError(absl::StrCat(kMinimal, "[node.01]\n"), 9, "duplicate node id 1");
}

TEST(ClusterConfigTest, BadNodeIds) {
  for (std::string_view header :
       {"[node.0]", "[node.]", "[node.x]", "[node.-1]", "[node.1.5]",
        "[node.99999999999999999999]"}) {
    ExpectError(absl::StrCat("[cluster]\nid = 1\n", std::string(header), "\n"),
                3, "bad node id");
  }
}

// --- Values ---

TEST(ClusterConfigTest, BusyPollIsTrueOrFalse) {
  absl::StatusOr<ClusterConfig> on =
      ParseClusterConfig(MinimalWithClusterKey("busy_poll", "true"));
  ASSERT_TRUE(on.ok()) << on.status();
  EXPECT_TRUE(on->busy_poll);
  absl::StatusOr<ClusterConfig> off =
      ParseClusterConfig(MinimalWithClusterKey("busy_poll", "false"));
  ASSERT_TRUE(off.ok()) << off.status();
  EXPECT_FALSE(off->busy_poll);
  for (std::string_view value : {"1", "0", "yes", "True", "on", "truex"}) {
    ExpectError(MinimalWithClusterKey("busy_poll", value), 3,
                "(expected true or false)");
  }
  // A node section has no busy_poll: it is a property of the deployment.
  ExpectError(MinimalWithNodeKey("busy_poll", "true"), 9,
              "unknown key 'busy_poll' in [node.1]");
}

TEST(ClusterConfigTest, MtuBytesAndIdleSpin) {
  absl::StatusOr<ClusterConfig> absent = ParseClusterConfig(MinimalWithClusterKey("tick_ms", "10"));
  ASSERT_TRUE(absent.ok()) << absent.status();
  EXPECT_EQ(absent->mtu_bytes, 0u);  // The port's own limit.
  EXPECT_EQ(absent->idle_spin_us, 0u);
  for (auto [value, bytes] : {std::pair<std::string_view, uint32_t>{"576", 576},
                              {"9000", 9000}, {"16K", 16384}, {"65000", 65000}}) {
    absl::StatusOr<ClusterConfig> c =
        ParseClusterConfig(MinimalWithClusterKey("mtu_bytes", value));
    ASSERT_TRUE(c.ok()) << value << ": " << c.status();
    EXPECT_EQ(c->mtu_bytes, bytes);
  }
  for (std::string_view value : {"575", "65001", "64K", "1G"}) {
    ExpectError(MinimalWithClusterKey("mtu_bytes", value), 3,
                "mtu_bytes must be in 576..65000");
  }
  ExpectError(MinimalWithClusterKey("mtu_bytes", "0"), 3, "mtu_bytes");
  ExpectError(MinimalWithClusterKey("mtu_bytes", "9000x"), 3, "bad number");
  for (auto [value, us] : {std::pair<std::string_view, uint32_t>{"0", 0},
                           {"50", 50}, {"10000", 10000}}) {
    absl::StatusOr<ClusterConfig> c =
        ParseClusterConfig(MinimalWithClusterKey("idle_spin_us", value));
    ASSERT_TRUE(c.ok()) << value << ": " << c.status();
    EXPECT_EQ(c->idle_spin_us, us);
  }
  for (std::string_view value : {"10001", "-1", "5k", "x", "99999999999999999999"}) {
    ExpectError(MinimalWithClusterKey("idle_spin_us", value), 3,
                "(expected 0..10000)");
  }
  for (auto [value, us] : {std::pair<std::string_view, uint32_t>{"0", 0},
                           {"1000", 1000}, {"5000", 5000}}) {
    absl::StatusOr<ClusterConfig> c =
        ParseClusterConfig(MinimalWithClusterKey("ack_delay_us", value));
    ASSERT_TRUE(c.ok()) << value << ": " << c.status();
    EXPECT_EQ(c->ack_delay_us, us);
  }
  EXPECT_EQ(absent->ack_delay_us, 2000u);
  ExpectError(MinimalWithClusterKey("ack_delay_us", "5001"), 3,
              "ack_delay_us = 5001 (expected 0..5000)");
  // Both are properties of the deployment, not of one node.
  ExpectError(MinimalWithNodeKey("mtu_bytes", "9000"), 9,
              "unknown key 'mtu_bytes' in [node.1]");
}

TEST(ClusterConfigTest, BadNumbers) {
  for (std::string_view key :
       {"id", "tick_ms", "election_timeout_ticks", "heartbeat_interval_ticks",
        "batch_ops_max", "batch_bytes_max", "clients_max"}) {
    size_t line = 0;
    for (std::string_view value :
         {"10x", "-1", "+1", "1.5", "0x10", "ten", "1 0", "1T", "1KB"}) {
      const std::string text = MinimalWithClusterValue(key, value, line);
      ExpectError(text, line,
                  absl::StrCat("bad number '", std::string(value), "' for ",
                               std::string(key)));
    }
    const std::string text = MinimalWithClusterValue(key, "0", line);
    ExpectError(text, line,
                absl::StrCat(std::string(key), " must be greater than 0"));
  }
  // Suffixes are for sizes only.
  ExpectError(MinimalWithClusterKey("tick_ms", "1K"), 3, "bad number '1K'");
  ExpectError(MinimalWithClusterKey("batch_ops_max", "4K"), 3,
              "bad number '4K'");
  for (std::string_view key : {"log_pool_bytes", "data_pool_bytes"}) {
    ExpectError(MinimalWithNodeKey(key, "64MB"), 9, "bad number '64MB'");
    ExpectError(MinimalWithNodeKey(key, "0"), 9, "must be greater than 0");
    ExpectError(MinimalWithNodeKey(key, "0G"), 9, "must be greater than 0");
  }
}

TEST(ClusterConfigTest, OverflowingValues) {
  for (std::string_view key :
       {"tick_ms", "election_timeout_ticks", "heartbeat_interval_ticks",
        "batch_ops_max", "clients_max"}) {
    ExpectError(MinimalWithClusterKey(key, "4294967296"), 3,
                "is out of range (max 4294967295)");
  }
  size_t line = 0;
  const std::string text =
      MinimalWithClusterValue("id", "18446744073709551616", line);
  ExpectError(text, line, "out of range");
  ExpectError(MinimalWithClusterKey("batch_bytes_max", "17179869184G"), 3,
              "out of range");
  ExpectError(MinimalWithNodeKey("log_pool_bytes", "99999999999999999999999"),
              9, "out of range");
  // The largest values fit.
  EXPECT_TRUE(
      ParseClusterConfig(MinimalWithClusterKey("clients_max", "4294967295"))
          .ok());
  EXPECT_TRUE(
      ParseClusterConfig(
          MinimalWithClusterValue("id", "18446744073709551615", line))
          .ok());
}

TEST(ClusterConfigTest, Ports) {
  for (std::string_view port : {"0", "65536", "-1", "http", "70000", "1e3"}) {
    std::string bad = absl::StrReplaceAll(
        kMinimal, {{"client_port = 6379", absl::StrCat("client_port = ",
                                                       std::string(port))}});
    ExpectError(bad, 5, "is not a port in 1..65535");
    bad = absl::StrReplaceAll(
        kMinimal,
        {{"peer_port = 6380", absl::StrCat("peer_port = ", std::string(port))}});
    ExpectError(bad, 6, "is not a port in 1..65535");
  }
}

TEST(ClusterConfigTest, Hosts) {
  for (std::string_view host :
       {"localhost", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.",
        ".1.2.3", "1..2.3", "1.2.3.4:80", "::1", "1.2.3.1000", "a.b.c.d"}) {
    const std::string bad = absl::StrReplaceAll(
        kMinimal, {{"host = 10.0.0.1", absl::StrCat("host = ", std::string(host))}});
    ExpectError(bad, 4, "is not an IPv4 address");
  }
  for (std::string_view host : {"0.0.0.0", "255.255.255.255", "192.168.1.10"}) {
    const std::string good = absl::StrReplaceAll(
        kMinimal, {{"host = 10.0.0.1", absl::StrCat("host = ", std::string(host))}});
    EXPECT_TRUE(ParseClusterConfig(good).ok()) << host;
  }
}

TEST(ClusterConfigTest, Macs) {
  for (std::string_view mac :
       {"02:00:00:00:00", "02:00:00:00:00:01:02", "02-00-00-00-00-01",
        "2:0:0:0:0:1", "02:00:00:00:00:0g", "0200.0000.0001", "02:00:00:00:00:01 x"}) {
    ExpectError(MinimalWithNodeKey("mac", mac), 9, "is not of the form");
  }
  ExpectError(MinimalWithNodeKey("mac", "01:00:5e:00:00:01"), 9, "multicast");
  ExpectError(MinimalWithNodeKey("mac", "ff:ff:ff:ff:ff:ff"), 9, "multicast");
  ExpectError(MinimalWithNodeKey("mac", "00:00:00:00:00:00"), 9, "all zero");
  absl::StatusOr<ClusterConfig> config =
      ParseClusterConfig(MinimalWithNodeKey("mac", "AA:bb:0C:dd:ee:F0"));
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->nodes[0].mac, "AA:bb:0C:dd:ee:F0");
}

// --- Whole-file rules ---

TEST(ClusterConfigTest, ElectionTimeoutMustExceedHeartbeat) {
  ExpectError(MinimalWithClusterKey("heartbeat_interval_ticks", "15"), 3,
              "election_timeout_ticks (15) must be greater than "
              "heartbeat_interval_ticks (15)");
  std::string text = kMinimal;
  text.insert(text.find("[node.1]"),
              "election_timeout_ticks = 3\nheartbeat_interval_ticks = 5\n");
  ExpectError(text, 4, "must be greater than heartbeat_interval_ticks (5)");
  EXPECT_TRUE(ParseClusterConfig(
                  MinimalWithClusterKey("heartbeat_interval_ticks", "14"))
                  .ok());
}

TEST(ClusterConfigTest, VotersSnapshotAndSessionKeys) {
  absl::StatusOr<ClusterConfig> c = ParseClusterConfig(kMinimal);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(c->voters.empty());
  EXPECT_EQ(c->BootstrapVoters(), (std::vector<uint64_t>{1}));
  EXPECT_EQ(c->snapshot_log_percent, 50u);
  EXPECT_EQ(c->snapshot_keep_entries, 64u);
  EXPECT_EQ(c->snapshot_chunk_bytes, 1u << 20);
  EXPECT_EQ(c->sessions_max, 10000u);
  EXPECT_EQ(c->max_memory_percent, 90u);
  std::string two = absl::StrCat(MinimalWithClusterKey("voters", "2, 1"),
                                 "[node.2]\nhost = 10.0.0.2\nclient_port = 6379\n"
                                 "peer_port = 6380\nlog_pool = /q/log\ndata_pool = /q/data\n");
  c = ParseClusterConfig(two);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->voters, (std::vector<uint64_t>{1, 2}));
  c = ParseClusterConfig(absl::StrReplaceAll(two, {{"voters = 2, 1", "voters = 2"}}));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->BootstrapVoters(), (std::vector<uint64_t>{2}));
  ExpectError(MinimalWithClusterKey("voters", "1,3"), 3, "voters: node 3 has no [node.3]");
  ExpectError(MinimalWithClusterKey("voters", "1,1"), 3, "listed twice");
  ExpectError(MinimalWithClusterKey("voters", "1,x"), 3, "'x' is not a node id");
  ExpectError(MinimalWithClusterKey("voters", "0"), 3, "'0' is not a node id");
  ExpectError(MinimalWithClusterKey("snapshot_log_percent", "101"), 3, "1..100");
  ExpectError(MinimalWithClusterKey("snapshot_log_percent", "0"), 3, "");
  ExpectError(MinimalWithClusterKey("snapshot_chunk_bytes", "33M"), 3, "at most");
  ExpectError(MinimalWithClusterKey("max_memory_percent", "101"), 3, "1..100");
  ExpectError(MinimalWithClusterKey("max_memory_percent", "0"), 3, "");
  c = ParseClusterConfig(MinimalWithClusterKey("max_memory_percent", "100"));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->max_memory_percent, 100u);
  c = ParseClusterConfig(MinimalWithClusterKey("snapshot_chunk_bytes", "64K"));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->snapshot_chunk_bytes, 64u << 10);
  c = ParseClusterConfig(MinimalWithClusterKey("sessions_max", "5"));
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->sessions_max, 5u);
}

TEST(ClusterConfigTest, MissingSectionsAndRequiredKeys) {
  ExpectError("", 0, "missing [cluster] section");
  ExpectError("# nothing\n", 1, "missing [cluster] section");
  ExpectError("[cluster]\ntick_ms = 5\n[node.1]\n", 1,
              "[cluster] is missing required key 'id'");
  ExpectError("[cluster]\nid = 1\n", 2, "no [node.N] section");
  const std::vector<std::string> lines = {
      "host = 10.0.0.1", "client_port = 6379", "peer_port = 6380",
      "log_pool = /p/log", "data_pool = /p/data"};
  const char* keys[] = {"host", "client_port", "peer_port", "log_pool",
                        "data_pool"};
  for (size_t skip = 0; skip < lines.size(); ++skip) {
    std::string text = "[cluster]\nid = 1\n[node.4]\n";
    for (size_t i = 0; i < lines.size(); ++i) {
      if (i != skip) text += lines[i] + "\n";
    }
    ExpectError(text, 3,
                absl::StrCat("[node.4] is missing required key '", keys[skip],
                             "'"));
  }
}

std::string Nodes(int count) {
  std::string text = "[cluster]\nid = 1\n";
  for (int i = 1; i <= count; ++i) {
    absl::StrAppend(&text, "[node.", i, "]\nhost = 127.0.0.1\nclient_port = ",
                    7000 + i, "\npeer_port = ", 7100 + i, "\nlog_pool = /l", i,
                    "\ndata_pool = /d", i, "\n");
  }
  return text;
}

TEST(ClusterConfigTest, AtMostNineNodes) {
  absl::StatusOr<ClusterConfig> nine = ParseClusterConfig(Nodes(kNodesMax));
  ASSERT_TRUE(nine.ok()) << nine.status();
  EXPECT_EQ(nine->nodes.size(), kNodesMax);
  // The 10th header is line 3 + 9 * 6.
  ExpectError(Nodes(kNodesMax + 1), 3 + 6 * kNodesMax, "more than 9 nodes");
}

TEST(ClusterConfigTest, EndpointsPoolsAndMacsAreNotShared) {
  // Node 2's client port is node 1's peer port on the same host.
  std::string text = absl::StrReplaceAll(Nodes(2), {{"client_port = 7002",
                                                      "client_port = 7101"}});
  ExpectError(text, 11, "127.0.0.1:7101 is already used at line 6");
  // One node listening twice on the same port.
  text = absl::StrReplaceAll(Nodes(1), {{"peer_port = 7101", "peer_port = 7001"}});
  ExpectError(text, 6, "127.0.0.1:7001 is already used at line 5");
  // The same ports on different hosts are fine.
  text = absl::StrReplaceAll(Nodes(2), {{"client_port = 7002", "client_port = 7001"},
                                        {"peer_port = 7102", "peer_port = 7101"}});
  EXPECT_FALSE(ParseClusterConfig(text).ok());
  text = absl::StrReplaceAll(text, {{"[node.2]\nhost = 127.0.0.1",
                                     "[node.2]\nhost = 127.0.0.2"}});
  EXPECT_TRUE(ParseClusterConfig(text).ok()) << ParseClusterConfig(text).status();
  // Pools: across nodes, and log == data within one node.
  text = absl::StrReplaceAll(Nodes(2), {{"log_pool = /l2", "log_pool = /d1"}});
  ExpectError(text, 13, "pool /d1 is already used at line 8");
  text = absl::StrReplaceAll(Nodes(1), {{"data_pool = /d1", "data_pool = /l1"}});
  ExpectError(text, 8, "pool /l1 is already used at line 7");
  // MACs, compared without case.
  text = absl::StrCat(Nodes(2));
  text.insert(text.find("[node.2]"), "mac = 02:00:00:00:00:0a\n");
  text += "mac = 02:00:00:00:00:0A\n";
  ExpectError(text, 16, "mac 02:00:00:00:00:0A is already used at line 9");
}

TEST(ClusterConfigTest, OversizedText) {
  std::string text = kMinimal;
  text += std::string((1u << 20), '#');
  absl::StatusOr<ClusterConfig> config = ParseClusterConfig(text);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
}

// --- Files ---

std::string TempPath(std::string_view name) {
  const char* dir = std::getenv("TEST_TMPDIR");
  return absl::StrCat(dir != nullptr ? dir : "/tmp", "/config_test_", getpid(),
                      "_", std::string(name));
}

void WriteFile(const std::string& path, std::string_view text) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr) << path;
  ASSERT_EQ(std::fwrite(text.data(), 1, text.size(), f), text.size());
  ASSERT_EQ(std::fclose(f), 0);
}

TEST(LoadClusterConfigTest, ReadsAFile) {
  const std::string path = TempPath("ok.ini");
  WriteFile(path, kExample);
  absl::StatusOr<ClusterConfig> config = LoadClusterConfig(path);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->nodes.size(), 3u);
  std::remove(path.c_str());
}

TEST(LoadClusterConfigTest, MissingFileAndDirectoryAreNotFound) {
  EXPECT_EQ(LoadClusterConfig(TempPath("absent.ini")).status().code(),
            absl::StatusCode::kNotFound);
  const char* dir = std::getenv("TEST_TMPDIR");
  EXPECT_EQ(LoadClusterConfig(dir != nullptr ? dir : "/tmp").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(LoadClusterConfigTest, ErrorsKeepTheirLineAndOversizedFilesFail) {
  const std::string path = TempPath("bad.ini");
  WriteFile(path, "[cluster]\nid = 1\nbogus = 2\n");
  absl::StatusOr<ClusterConfig> config = LoadClusterConfig(path);
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StartsWith(config.status().message(), "line 3: "))
      << config.status();
  WriteFile(path, std::string((1u << 20) + 1, '#'));
  EXPECT_EQ(LoadClusterConfig(path).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::remove(path.c_str());
}

// --- Fuzz ---

// What every accepted config guarantees.
void CheckInvariants(const ClusterConfig& config, uint64_t seed) {
  ASSERT_GT(config.cluster_id, 0u) << "seed=" << seed;
  ASSERT_GT(config.tick_ms, 0u) << "seed=" << seed;
  ASSERT_GT(config.election_timeout_ticks, config.heartbeat_interval_ticks)
      << "seed=" << seed;
  ASSERT_GT(config.heartbeat_interval_ticks, 0u) << "seed=" << seed;
  ASSERT_GT(config.batch_ops_max, 0u) << "seed=" << seed;
  ASSERT_GT(config.batch_bytes_max, 0u) << "seed=" << seed;
  ASSERT_GT(config.clients_max, 0u) << "seed=" << seed;
  ASSERT_GE(config.nodes.size(), 1u) << "seed=" << seed;
  ASSERT_LE(config.nodes.size(), kNodesMax) << "seed=" << seed;
  std::set<std::pair<std::string, uint16_t>> endpoints;
  std::set<std::string> pools;
  for (size_t i = 0; i < config.nodes.size(); ++i) {
    const NodeConfig& node = config.nodes[i];
    ASSERT_GT(node.id, 0u) << "seed=" << seed;
    if (i > 0) {
      ASSERT_LT(config.nodes[i - 1].id, node.id) << "seed=" << seed;
    }
    ASSERT_EQ(config.Find(node.id), &node) << "seed=" << seed;
    ASSERT_FALSE(node.host.empty()) << "seed=" << seed;
    ASSERT_GT(node.client_port, 0) << "seed=" << seed;
    ASSERT_GT(node.peer_port, 0) << "seed=" << seed;
    ASSERT_TRUE(endpoints.emplace(node.host, node.client_port).second);
    ASSERT_TRUE(endpoints.emplace(node.host, node.peer_port).second);
    ASSERT_TRUE(pools.insert(node.log_pool).second) << "seed=" << seed;
    ASSERT_TRUE(pools.insert(node.data_pool).second) << "seed=" << seed;
    ASSERT_GT(node.log_pool_bytes, 0u) << "seed=" << seed;
    ASSERT_GT(node.data_pool_bytes, 0u) << "seed=" << seed;
    ASSERT_TRUE(node.mac.empty() || node.mac.size() == 17) << "seed=" << seed;
  }
}

std::vector<std::string> SplitLines(std::string_view text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    lines.emplace_back(text.substr(start, end - start));
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return lines;
}

std::string Mutate(const std::vector<std::string>& original,
                   std::mt19937_64& rng) {
  static constexpr std::string_view kTokens[] = {
      "[cluster]", "[node.1]", "[node.10]", "[node.0]", "=", "#", ";", "0",
      "65535", "65536", "1K", "4G", "18446744073709551616", "127.0.0.1",
      "02:00:00:00:00:01", "id = 2", "host = 1.2.3.4", "peer_port = 7001",
      "log_pool = /dev/shm/blizzard/node1/log.pool", "\r", "\t", " ", "]", "["};
  std::vector<std::string> lines = original;
  const int mutations = 1 + static_cast<int>(rng() % 5);
  for (int m = 0; m < mutations && !lines.empty(); ++m) {
    std::string& line = lines[rng() % lines.size()];
    const size_t at = line.empty() ? 0 : rng() % (line.size() + 1);
    switch (rng() % 9) {
      case 0:  // Delete a line.
        lines.erase(lines.begin() + static_cast<long>(rng() % lines.size()));
        break;
      case 1:  // Duplicate a line.
        lines.insert(lines.begin() + static_cast<long>(rng() % lines.size()),
                     line);
        break;
      case 2:  // Swap two lines.
        std::swap(line, lines[rng() % lines.size()]);
        break;
      case 3:  // Insert a token.
        line.insert(at, kTokens[rng() % std::size(kTokens)]);
        break;
      case 4:  // Replace a value.
        if (size_t eq = line.find('='); eq != std::string::npos) {
          line = line.substr(0, eq + 1) + " " +
                 std::string(kTokens[rng() % std::size(kTokens)]);
        }
        break;
      case 5:  // Flip a byte.
        if (!line.empty()) line[rng() % line.size()] = static_cast<char>(rng());
        break;
      case 6:  // Delete bytes.
        if (!line.empty()) line.erase(rng() % line.size(), 1 + rng() % 4);
        break;
      case 7:  // Truncate the line.
        line.resize(at);
        break;
      case 8:  // Insert a whole new line.
        lines.insert(lines.begin() + static_cast<long>(rng() % lines.size()),
                     std::string(kTokens[rng() % std::size(kTokens)]));
        break;
    }
  }
  std::string text;
  for (const std::string& line : lines) text += line + "\n";
  if (rng() % 8 == 0) text.resize(rng() % (text.size() + 1));  // Truncate.
  return text;
}

TEST(ClusterConfigFuzzTest, MutationsNeverCrashAndAcceptedFilesAreValid) {
  const uint64_t seed = 1234;
  std::mt19937_64 rng(seed);
  const std::vector<std::string> example = SplitLines(kExample);
  size_t accepted = 0;
  for (int round = 0; round < 20000; ++round) {
    const std::string text = Mutate(example, rng);
    absl::StatusOr<ClusterConfig> config = ParseClusterConfig(text);
    if (config.ok()) {
      ++accepted;
      CheckInvariants(*config, seed);
      if (HasFatalFailure()) {
        ADD_FAILURE() << "seed=" << seed << " round=" << round << "\n" << text;
        return;
      }
    } else {
      ASSERT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument)
          << "seed=" << seed << " round=" << round;
      ASSERT_TRUE(absl::StartsWith(config.status().message(), "line "))
          << "seed=" << seed << " round=" << round << ": " << config.status();
    }
  }
  // Both sides are exercised: comments and value swaps keep files valid.
  EXPECT_GT(accepted, 500u);
  EXPECT_LT(accepted, 15000u);
}

}  // namespace
}  // namespace blizzard::node
