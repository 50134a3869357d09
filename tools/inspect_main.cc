// blizzard_inspect: prints a log pool's and a data pool's headers and
// contents and a node's snapshot directory, verifying every checksum on the
// way (read-only: nothing is repaired or removed). Exit status 0 when the
// pools are sound, 1 when one is damaged or foreign (the error names what
// and where), 2 on bad usage.
//
//   blizzard_inspect --log=/dev/shm/bz/node1/log.pool
//   blizzard_inspect --data=/dev/shm/bz/node1/data.pool --entries=50
//   blizzard_inspect --snapshots=/dev/shm/bz/node1/data.pool.snapshots
//   blizzard_inspect --config=cluster.ini --id=1     (both pools and the
//                                                     snapshots of a node)
#include <cstdio>
#include <filesystem>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "node/config.h"
#include "node/snapshot_store.h"
#include "pmemlog/inspect.h"
#include "structures/inspect.h"

ABSL_FLAG(std::string, log, "", "Path of a pmemlog pool.");
ABSL_FLAG(std::string, data, "", "Path of a data (structures) pool.");
ABSL_FLAG(std::string, snapshots, "",
          "A node's snapshot directory (<data pool>.snapshots).");
ABSL_FLAG(std::string, config, "", "Cluster file: inspect both pools of --id.");
ABSL_FLAG(uint64_t, id, 0, "Node id in --config.");
ABSL_FLAG(uint64_t, entries, 20, "How many log entries / keys to list.");

namespace {

int Show(const char* what, const char* kind, const std::string& path,
         const absl::StatusOr<std::string>& description) {
  std::printf("== %s %s %s\n", what, kind, path.c_str());
  if (!description.ok()) {
    std::printf("ERROR: %s\n", description.status().ToString().c_str());
    return 1;
  }
  std::printf("%s\n", description->c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "Prints and verifies Blizzard pools.\n"
      "  blizzard_inspect --log=PATH | --data=PATH | --snapshots=DIR | --config=FILE --id=N");
  absl::ParseCommandLine(argc, argv);
  std::string log = absl::GetFlag(FLAGS_log);
  std::string data = absl::GetFlag(FLAGS_data);
  std::string snapshots = absl::GetFlag(FLAGS_snapshots);
  uint64_t cluster_id = 0;  // Unknown without a cluster file: the meta's own.
  const size_t entries = absl::GetFlag(FLAGS_entries);
  if (!absl::GetFlag(FLAGS_config).empty()) {
    absl::StatusOr<blizzard::node::ClusterConfig> cluster =
        blizzard::node::LoadClusterConfig(absl::GetFlag(FLAGS_config));
    if (!cluster.ok()) {
      std::fprintf(stderr, "error: %s\n", cluster.status().ToString().c_str());
      return 2;
    }
    const blizzard::node::NodeConfig* node = cluster->Find(absl::GetFlag(FLAGS_id));
    if (node == nullptr) {
      std::fprintf(stderr, "error: no node %lu in the cluster file\n",
                   static_cast<unsigned long>(absl::GetFlag(FLAGS_id)));
      return 2;
    }
    log = node->log_pool;
    data = node->data_pool;
    cluster_id = cluster->cluster_id;
    // A node that never took or received a snapshot has no directory yet.
    std::error_code ec;
    if (std::filesystem::exists(data + ".snapshots", ec)) snapshots = data + ".snapshots";
  }
  if (log.empty() && data.empty() && snapshots.empty()) {
    std::fprintf(stderr,
                 "error: give --log, --data, --snapshots or --config/--id (see --help)\n");
    return 2;
  }
  int rc = 0;
  if (!log.empty()) {
    blizzard::pmemlog::DescribeOptions options;
    options.head_entries = entries;
    options.tail_entries = entries;
    absl::StatusOr<std::string> report = blizzard::pmemlog::DescribeLog(log, options);
    rc |= Show("log", "pool", log, report);
    // The report's first line says OK, CORRUPT: ... or REFUSED: ...
    if (report.ok() && report->substr(0, report->find('\n')).find(": OK") ==
                           std::string::npos) {
      rc |= 1;
    }
  }
  if (!data.empty()) {
    rc |= Show("data", "pool", data, blizzard::structures::DescribeStore(data, entries));
  }
  if (!snapshots.empty()) {
    absl::StatusOr<std::string> report = blizzard::node::DescribeSnapshotDir(snapshots, cluster_id);
    // A damaged or foreign store's error message is the whole report.
    const bool has_report =
        !report.ok() && absl::StartsWith(report.status().message(), "status: ");
    rc |= Show("snapshot", "directory", snapshots,
               has_report ? absl::StatusOr<std::string>(std::string(report.status().message()))
                          : report);
    if (!report.ok()) rc |= 1;
  }
  return rc;
}
