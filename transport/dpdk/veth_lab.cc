#include "transport/dpdk/veth_lab.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

extern char** environ;

namespace blizzard::transport::dpdk::testing {
namespace {

// Bazel's test PATH may lack the sbin directories where `ip` lives.
std::string FindTool(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  for (const char* dir : {"/usr/sbin", "/sbin", "/usr/bin", "/bin"}) {
    std::string path = absl::StrCat(dir, "/", name);
    if (access(path.c_str(), X_OK) == 0) return path;
  }
  return name;
}

}  // namespace

absl::StatusOr<pid_t> SpawnLogged(const std::vector<std::string>& argv,
                                  const std::string& log_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null",
                                   O_RDONLY, 0);
  std::vector<std::string> args = argv;
  args[0] = FindTool(args[0]);
  std::vector<char*> c_args;
  for (std::string& arg : args) c_args.push_back(arg.data());
  c_args.push_back(nullptr);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, c_args[0], &actions, nullptr,
                             c_args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    return absl::InternalError(
        absl::StrCat("posix_spawn ", args[0], ": ", std::strerror(rc)));
  }
  return pid;
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

absl::Status RunCommand(const std::vector<std::string>& argv) {
  char log_template[] = "/tmp/veth_lab_XXXXXX";
  const int fd = mkstemp(log_template);
  if (fd < 0) return absl::InternalError("mkstemp failed");
  close(fd);
  const std::string log = log_template;
  absl::StatusOr<pid_t> pid = SpawnLogged(argv, log);
  if (!pid.ok()) {
    unlink(log.c_str());
    return pid.status();
  }
  const int code = WaitAll({*pid}, absl::Seconds(30))[0];
  const std::string output = ReadFile(log);
  unlink(log.c_str());
  if (code != 0) {
    return absl::UnavailableError(absl::StrCat(
        "`", absl::StrJoin(argv, " "), "` exited with ", code, ": ", output));
  }
  return absl::OkStatus();
}

std::vector<int> WaitAll(const std::vector<pid_t>& pids,
                         absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::vector<int> codes(pids.size(), -1);
  std::vector<bool> done(pids.size(), false);
  size_t remaining = pids.size();
  while (remaining > 0) {
    for (size_t i = 0; i < pids.size(); ++i) {
      if (done[i]) continue;
      int status = 0;
      const pid_t r = waitpid(pids[i], &status, WNOHANG);
      if (r == pids[i] || (r < 0 && errno == ECHILD)) {
        if (r == pids[i]) {
          codes[i] = WIFEXITED(status) ? WEXITSTATUS(status)
                                       : 128 + WTERMSIG(status);
        }
        done[i] = true;
        --remaining;
      }
    }
    if (remaining == 0) break;
    if (absl::Now() > deadline) {
      for (size_t i = 0; i < pids.size(); ++i) {
        if (done[i]) continue;
        kill(pids[i], SIGKILL);
        waitpid(pids[i], nullptr, 0);
        codes[i] = -1;
      }
      break;
    }
    usleep(10000);
  }
  return codes;
}

std::string SelfPath() {
  char buffer[4096];
  const ssize_t n = readlink("/proc/self/exe", buffer, sizeof(buffer) - 1);
  if (n <= 0) return "";
  return std::string(buffer, static_cast<size_t>(n));
}

absl::Status VethLab::AddNamespace(const std::string& name) {
  if (absl::Status s = RunCommand({"ip", "netns", "add", name}); !s.ok()) {
    // The first one failing means the machine does not let us (callers
    // skip); any later failure is a real error.
    return created_.empty() ? absl::FailedPreconditionError(s.message())
                            : absl::InternalError(s.message());
  }
  created_.push_back(name);
  return RunCommand({"ip", "-n", name, "link", "set", "lo", "up"});
}

absl::StatusOr<std::unique_ptr<VethLab>> VethLab::Create(const std::string& tag,
                                                         int mtu_bytes) {
  if (tag.size() + 2 > 15) {
    return absl::InvalidArgumentError("tag too long for interface names");
  }
  auto lab = std::unique_ptr<VethLab>(new VethLab);
  for (const char* end : {"a", "b"}) {
    lab->ns_.push_back(absl::StrCat(tag, end));
    lab->iface_.push_back(absl::StrCat(tag, "v", end));
    // On failure the destructor removes what was created.
    if (absl::Status s = lab->AddNamespace(lab->ns_.back()); !s.ok()) return s;
  }
  // Created in the first namespace, the far end moved at once: nothing ever
  // appears in the caller's namespace.
  std::vector<std::vector<std::string>> steps = {
      {"ip", "-n", lab->ns_[0], "link", "add", lab->iface_[0], "type", "veth",
       "peer", "name", lab->iface_[1], "netns", lab->ns_[1]},
  };
  for (int end = 0; end < 2 && mtu_bytes > 0; ++end) {
    steps.push_back({"ip", "-n", lab->ns_[end], "link", "set", lab->iface_[end],
                     "mtu", absl::StrCat(mtu_bytes)});
  }
  for (int end = 0; end < 2; ++end) {
    steps.push_back({"ip", "-n", lab->ns_[end], "link", "set", lab->iface_[end], "up"});
  }
  for (const auto& step : steps) {
    if (absl::Status s = RunCommand(step); !s.ok()) {
      return absl::InternalError(s.message());
    }
  }
  return lab;
}

absl::StatusOr<std::unique_ptr<VethLab>> VethLab::CreateSwitched(
    const std::string& tag, int nodes, int mtu_bytes) {
  if (tag.size() + 4 > 15 || nodes < 1 || nodes > 9) {
    return absl::InvalidArgumentError("tag too long or node count not 1..9");
  }
  auto lab = std::unique_ptr<VethLab>(new VethLab);
  const std::string sw = absl::StrCat(tag, "sw");
  if (absl::Status s = lab->AddNamespace(sw); !s.ok()) return s;
  std::vector<std::vector<std::string>> steps = {
      {"ip", "-n", sw, "link", "add", "name", "sw0", "type", "bridge"},
      {"ip", "-n", sw, "link", "set", "sw0", "up"},
  };
  for (int i = 0; i < nodes; ++i) {
    lab->ns_.push_back(absl::StrCat(tag, "n", i));
    lab->iface_.push_back(absl::StrCat(tag, "v", i));
    if (absl::Status s = lab->AddNamespace(lab->ns_.back()); !s.ok()) return s;
    const std::string port = absl::StrCat(tag, "p", i);
    steps.push_back({"ip", "-n", lab->ns_.back(), "link", "add", lab->iface_.back(),
                     "type", "veth", "peer", "name", port, "netns", sw});
    if (mtu_bytes > 0) {
      steps.push_back({"ip", "-n", lab->ns_.back(), "link", "set", lab->iface_.back(),
                       "mtu", absl::StrCat(mtu_bytes)});
      steps.push_back({"ip", "-n", sw, "link", "set", port, "mtu", absl::StrCat(mtu_bytes)});
    }
    steps.push_back({"ip", "-n", sw, "link", "set", port, "master", "sw0"});
    steps.push_back({"ip", "-n", sw, "link", "set", port, "up"});
    steps.push_back({"ip", "-n", lab->ns_.back(), "link", "set", lab->iface_.back(), "up"});
  }
  for (const auto& step : steps) {
    if (absl::Status s = RunCommand(step); !s.ok()) {
      return absl::InternalError(s.message());
    }
  }
  return lab;
}

VethLab::~VethLab() {
  for (const std::string& ns : created_) {
    (void)RunCommand({"ip", "netns", "del", ns});
  }
  for (const std::string& prefix : eal_prefixes_) {
    (void)RunCommand({"rm", "-rf", absl::StrCat("/var/run/dpdk/", prefix)});
  }
}

absl::StatusOr<pid_t> VethLab::Spawn(int end,
                                     const std::vector<std::string>& argv,
                                     const std::string& log_path) {
  std::vector<std::string> full = {"ip", "netns", "exec", ns_[end]};
  full.insert(full.end(), argv.begin(), argv.end());
  return SpawnLogged(full, log_path);
}

void VethLab::OwnEalPrefix(const std::string& file_prefix) {
  ABSL_RAW_CHECK(!file_prefix.empty() &&
                     file_prefix.find('/') == std::string::npos &&
                     file_prefix.find("..") == std::string::npos,
                 "EAL prefix must be a plain name");
  eal_prefixes_.push_back(file_prefix);
}

}  // namespace blizzard::transport::dpdk::testing
