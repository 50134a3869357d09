// Builds the argument vector for rte_eal_init from a node's configured
// eal_args plus the defaults a development machine needs. Pure string work,
// tested without EAL.
//
// Defaults, each added only when the configured arguments do not already
// say something about it (so production can use hugepages and PCI NICs by
// naming them):
//   --no-huge         unless --no-huge, --huge-dir or --socket-mem is given
//   -m <memory_mb>    unless -m or --socket-mem is given
//   --no-pci          unless --no-pci or a PCI allow/block option is given
//   --file-prefix=<p> unless given (EAL's runtime files live in
//                     /var/run/dpdk/<p>; two processes need two prefixes)
//   --lcores=0@(<cpus>) unless -l, -c or --lcores is given: the main lcore
//                     may run on every CPU this process may use. EAL would
//                     otherwise pin the main thread to one CPU, and several
//                     nodes on a 2-core machine would share that one.
// --in-memory is refused: with --no-huge it conflicts with the legacy memory
// model EAL then uses (environment.md).
#ifndef BLIZZARD_TRANSPORT_DPDK_EAL_ARGS_H_
#define BLIZZARD_TRANSPORT_DPDK_EAL_ARGS_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace blizzard::transport::dpdk {

struct EalDefaults {
  size_t memory_mb = 128;
  std::string file_prefix;  // Required: unique per process on a machine.
  std::string cpus;         // e.g. "0,1": see CpusOfThisProcess.
};

// Splits `eal_args` on blanks (no quoting: a quote character is refused so
// nobody believes it works), checks it, and returns argv with "blizzard" as
// argv[0] and the defaults appended. InvalidArgument naming the problem.
absl::StatusOr<std::vector<std::string>> BuildEalArgs(
    const std::string& eal_args, const EalDefaults& defaults);

// The ring frame size (framesz) of the af_packet vdev named in `argv`
// (from BuildEalArgs): the value of its framesz= key, or the PMD's default
// 2048 without one; 0 when argv names no af_packet vdev (net_af_packet* or
// eth_af_packet*). InvalidArgument for a framesz that is not a positive
// decimal number.
absl::StatusOr<size_t> AfPacketFrameBytes(const std::vector<std::string>& argv);

// The CPUs this thread may run on, as "0,1,3" (for --lcores).
std::string CpusOfThisProcess();

}  // namespace blizzard::transport::dpdk

#endif  // BLIZZARD_TRANSPORT_DPDK_EAL_ARGS_H_
