#include "transport/dpdk/eal_args.h"

#include <sched.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"

namespace blizzard::transport::dpdk {
namespace {

// True if some argument is `option` or starts with `option=`. A short option
// such as -m also matches its glued form (-m512).
bool Has(const std::vector<std::string>& args, const std::string& option) {
  for (const std::string& arg : args) {
    if (arg == option) return true;
    if (arg.size() > option.size() && arg.compare(0, option.size(), option) == 0) {
      const char next = arg[option.size()];
      const bool is_long = option.size() > 2;
      if (next == '=' || !is_long) return true;
    }
  }
  return false;
}

bool HasAny(const std::vector<std::string>& args,
            std::initializer_list<const char*> options) {
  for (const char* option : options) {
    if (Has(args, option)) return true;
  }
  return false;
}

}  // namespace

absl::StatusOr<std::vector<std::string>> BuildEalArgs(
    const std::string& eal_args, const EalDefaults& defaults) {
  if (eal_args.find_first_of("\"'") != std::string::npos) {
    return absl::InvalidArgumentError(
        "eal_args: quotes are not supported (arguments are split on blanks)");
  }
  std::vector<std::string> given =
      absl::StrSplit(eal_args, absl::ByAnyChar(" \t"), absl::SkipEmpty());
  if (Has(given, "--in-memory")) {
    return absl::InvalidArgumentError(
        "eal_args: --in-memory is not supported (it conflicts with "
        "--no-huge's legacy memory model)");
  }
  if (defaults.file_prefix.empty() && !Has(given, "--file-prefix")) {
    return absl::InvalidArgumentError("eal_args: no --file-prefix");
  }
  std::vector<std::string> argv = {"blizzard"};
  argv.insert(argv.end(), given.begin(), given.end());
  if (!HasAny(given, {"--no-huge", "--huge-dir", "--socket-mem"})) {
    argv.push_back("--no-huge");
  }
  if (!HasAny(given, {"-m", "--socket-mem"})) {
    argv.push_back("-m");
    argv.push_back(absl::StrCat(defaults.memory_mb));
  }
  if (!HasAny(given, {"--no-pci", "-a", "--allow", "-b", "--block"})) {
    argv.push_back("--no-pci");
  }
  if (!Has(given, "--file-prefix")) {
    argv.push_back(absl::StrCat("--file-prefix=", defaults.file_prefix));
  }
  if (!HasAny(given, {"-l", "-c", "--lcores"}) && !defaults.cpus.empty()) {
    argv.push_back(absl::StrCat("--lcores=0@(", defaults.cpus, ")"));
  }
  return argv;
}

absl::StatusOr<size_t> AfPacketFrameBytes(const std::vector<std::string>& argv) {
  for (size_t i = 0; i < argv.size(); ++i) {
    // "--vdev=<dev>,k=v,..." or "--vdev <dev>,k=v,...".
    std::string spec;
    if (argv[i].rfind("--vdev=", 0) == 0) {
      spec = argv[i].substr(7);
    } else if (argv[i] == "--vdev" && i + 1 < argv.size()) {
      spec = argv[i + 1];
    } else {
      continue;
    }
    std::vector<std::string> parts = absl::StrSplit(spec, ',');
    if (parts[0].rfind("net_af_packet", 0) != 0 &&
        parts[0].rfind("eth_af_packet", 0) != 0) {
      continue;
    }
    size_t frame_bytes = 2048;  // DFLT_FRAME_SIZE of the PMD.
    for (size_t k = 1; k < parts.size(); ++k) {
      if (parts[k].rfind("framesz=", 0) != 0) continue;
      const std::string value = parts[k].substr(8);
      if (value.empty() || value.size() > 9 ||
          value.find_first_not_of("0123456789") != std::string::npos ||
          std::stoul(value) == 0) {
        return absl::InvalidArgumentError(absl::StrCat(
            "eal_args: af_packet framesz '", value, "' is not a positive number"));
      }
      frame_bytes = std::stoul(value);
    }
    return frame_bytes;
  }
  return 0;
}

std::string CpusOfThisProcess() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0) return "";
  std::vector<int> cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  }
  return absl::StrJoin(cpus, ",");
}

}  // namespace blizzard::transport::dpdk
