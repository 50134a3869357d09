// blizzard node binary. The transport and the replication mode are chosen
// when the binary is linked (see BUILD.bazel): blizzard_tcp_logical, ...
//
//   blizzard_tcp_logical --config=cluster.ini --id=1
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/str_cat.h"
#include "node/config.h"
#include "node/replication.h"
#include "node/server.h"
#include "transport/transport.h"

ABSL_FLAG(std::string, config, "", "Path of the cluster INI file (node/CONFIG.md).");
ABSL_FLAG(uint64_t, id, 0, "This node's id in the cluster file.");
ABSL_FLAG(uint64_t, seed, 0,
          "Seed of the election-timeout generator (0: derived from cluster and node id).");

namespace {
std::atomic<bool> g_stop{false};
void OnSignal(int) { g_stop.store(true); }
}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Blizzard node: a replicated persistent-memory data-structure server.\n"
      "Usage: blizzard_<transport>_<mode> --config=cluster.ini --id=N");
  absl::ParseCommandLine(argc, argv);
  const std::string path = absl::GetFlag(FLAGS_config);
  const uint64_t id = absl::GetFlag(FLAGS_id);
  if (path.empty() || id == 0) {
    std::fprintf(stderr, "error: --config and --id are required (see --help)\n");
    return 2;
  }
  absl::StatusOr<blizzard::node::ClusterConfig> cluster =
      blizzard::node::LoadClusterConfig(path);
  if (!cluster.ok()) {
    std::fprintf(stderr, "error: cluster file: %s\n", cluster.status().ToString().c_str());
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  struct sigaction sa{};
  sa.sa_handler = OnSignal;
  sigaction(SIGTERM, &sa, nullptr);
  sigaction(SIGINT, &sa, nullptr);

  blizzard::node::ServerOptions options;
  options.self = id;
  options.random_seed = absl::GetFlag(FLAGS_seed);
  absl::StatusOr<std::unique_ptr<blizzard::node::Server>> server =
      blizzard::node::Server::Create(*cluster, options);
  if (!server.ok()) {
    std::fprintf(stderr, "error: node %lu: %s\n", static_cast<unsigned long>(id),
                 server.status().ToString().c_str());
    return 1;
  }
  const blizzard::node::NodeConfig* self = cluster->Find(id);
  std::fprintf(stderr,
               "blizzard node %lu (%s transport, %s replication) serving clients on "
               "%s:%u, peers on %s:%u\n",
               static_cast<unsigned long>(id), blizzard::transport::TransportName(),
               blizzard::node::ReplicationModeName(), self->host.c_str(),
               self->client_port, self->host.c_str(), self->peer_port);
  absl::Status s = (*server)->Run(g_stop);
  if (!s.ok()) {
    std::fprintf(stderr, "fatal: node %lu: %s\n", static_cast<unsigned long>(id),
                 s.ToString().c_str());
    return 1;
  }
  std::fprintf(stderr, "blizzard node %lu stopped\n", static_cast<unsigned long>(id));
  return 0;
}
