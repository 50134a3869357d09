// Network namespaces joined by veth links, for the DPDK tests and the
// benchmark. Each node lives in its own namespace with one interface, so
// each DPDK process sees exactly its port and nothing else on the machine is
// touched. Two shapes: a pair (two nodes, one veth pair) and a switch (n
// nodes, each with a veth pair to a Linux bridge in one more namespace: an
// L2 switch, as in dpdk/README.md's three-node set-up).
// Everything is created with `ip` and removed by the destructor, which
// deletes only what this object created (the namespaces, with the veths and
// the bridge inside them, and the EAL runtime directories registered with
// it). Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and a writable /var/run.
#ifndef BLIZZARD_TRANSPORT_DPDK_VETH_LAB_H_
#define BLIZZARD_TRANSPORT_DPDK_VETH_LAB_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace blizzard::transport::dpdk::testing {

class VethLab {
 public:
  // Names are "<tag>a"/"<tag>b" (namespaces) and "<tag>va"/"<tag>vb"
  // (interfaces); `tag` must be short (interface names have 15 chars) and
  // unique, e.g. "bz" + the pid. FailedPrecondition if the machine cannot
  // create namespaces (not root, no /var/run/netns): callers skip, not
  // fail. Internal for any later step (a real failure).
  // `mtu_bytes` > 0: every veth gets that MTU (jumbo frames); 0: 1500.
  static absl::StatusOr<std::unique_ptr<VethLab>> Create(const std::string& tag,
                                                         int mtu_bytes = 0);
  // Nodes 0..n-1 in namespaces "<tag>n<i>" with interface "<tag>v<i>", each
  // linked to bridge "sw0" in namespace "<tag>sw".
  static absl::StatusOr<std::unique_ptr<VethLab>> CreateSwitched(
      const std::string& tag, int nodes, int mtu_bytes = 0);
  ~VethLab();

  int nodes() const { return static_cast<int>(iface_.size()); }
  const std::string& ns(int end) const { return ns_[end]; }
  const std::string& iface(int end) const { return iface_[end]; }

  // Starts `argv` inside namespace `end` with stdout and stderr appended to
  // `log_path`. Returns the child's pid.
  absl::StatusOr<pid_t> Spawn(int end, const std::vector<std::string>& argv,
                              const std::string& log_path);

  // Removes /var/run/dpdk/<file_prefix> in the destructor.
  void OwnEalPrefix(const std::string& file_prefix);

 private:
  VethLab() = default;
  absl::Status AddNamespace(const std::string& name);

  std::vector<std::string> ns_;     // Per node (not the switch).
  std::vector<std::string> iface_;  // Per node.
  std::vector<std::string> created_;  // Namespaces to delete.
  std::vector<std::string> eal_prefixes_;
};

// Starts a command (argv[0] is looked up in the sbin and bin directories if
// it has no '/') with stdout and stderr appended to `log_path`.
absl::StatusOr<pid_t> SpawnLogged(const std::vector<std::string>& argv,
                                  const std::string& log_path);

// Runs a command (argv[0] found as for SpawnLogged) and waits. Error with its
// output if it fails.
absl::Status RunCommand(const std::vector<std::string>& argv);

// Waits for every pid until `timeout`; kills (SIGKILL) and reaps those still
// running then. Returns each child's exit code (128 + signal if killed by
// one, -1 if it was still running at the deadline).
std::vector<int> WaitAll(const std::vector<pid_t>& pids, absl::Duration timeout);

// The absolute path of this executable (for re-executing it in a namespace).
std::string SelfPath();

// Reads a whole file ("" if it cannot be read).
std::string ReadFile(const std::string& path);

}  // namespace blizzard::transport::dpdk::testing

#endif  // BLIZZARD_TRANSPORT_DPDK_VETH_LAB_H_
