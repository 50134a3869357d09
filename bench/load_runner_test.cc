#include "bench/load_runner.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "node/resp.h"

namespace blizzard::bench {
namespace {

// A single-threaded fake Redis-protocol server on an ephemeral loopback
// port: `answer` maps a request to its raw reply bytes; a connection is
// closed after `close_after` replies when that is > 0.
class FakeServer {
 public:
  using Answer = std::function<std::string(const std::vector<std::string>&)>;

  explicit FakeServer(Answer answer, int close_after = 0)
      : answer_(std::move(answer)), close_after_(close_after) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(listen(listen_fd_, 128), 0);
    socklen_t len = sizeof(addr);
    getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this] { Loop(); });
  }
  ~FakeServer() {
    stop_ = true;
    thread_.join();
    close(listen_fd_);
  }
  Endpoint endpoint() const { return Endpoint{"127.0.0.1", port_}; }
  uint64_t requests() const { return requests_.load(); }

 private:
  struct Client {
    int fd;
    node::RespParser parser;
    int replies = 0;
  };

  void Loop() {
    std::map<int, Client> clients;
    while (!stop_) {
      std::vector<pollfd> fds = {{listen_fd_, POLLIN, 0}};
      for (auto& [fd, c] : clients) fds.push_back({fd, POLLIN, 0});
      if (poll(fds.data(), fds.size(), 10) <= 0) continue;
      if (fds[0].revents & POLLIN) {
        const int fd = accept(listen_fd_, nullptr, nullptr);
        if (fd >= 0) clients.emplace(fd, Client{fd, node::RespParser(), 0});
      }
      for (size_t i = 1; i < fds.size(); ++i) {
        if (fds[i].revents == 0) continue;
        Client& c = clients.at(fds[i].fd);
        char buf[65536];
        const ssize_t n = read(c.fd, buf, sizeof(buf));
        bool close_it = n <= 0;
        if (n > 0) c.parser.Feed(std::string_view(buf, static_cast<size_t>(n)));
        std::string out;
        while (!close_it) {
          auto request = c.parser.Next();
          if (!request.ok()) {
            close_it = true;
            break;
          }
          if (!request->has_value()) break;
          ++requests_;
          out += answer_(**request);
          if (close_after_ > 0 && ++c.replies >= close_after_) close_it = true;
        }
        if (!out.empty()) send(c.fd, out.data(), out.size(), MSG_NOSIGNAL);
        if (close_it) {
          close(c.fd);
          clients.erase(fds[i].fd);
        }
      }
    }
    for (auto& [fd, c] : clients) close(fd);
  }

  Answer answer_;
  int close_after_;
  int listen_fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> requests_{0};
  std::thread thread_;
};

std::string RedisLike(const std::vector<std::string>& args) {
  if (args[0] == "SET") return "+OK\r\n";
  if (args[0] == "GET") return "$3\r\nabc\r\n";
  return absl::StrCat("-ERR unknown command '", args[0], "', with args beginning with: \r\n");
}

LoadOptions Options(const Endpoint& target) {
  LoadOptions o;
  o.target = target;
  o.connections = 4;
  o.pipeline = 8;
  o.warmup_s = 0.05;
  o.duration_s = 0.3;
  o.progress = false;
  o.connect_timeout_s = 2;
  return o;
}

TEST(LoadRunner, ExactOpCountAgainstAWorkingServer) {
  FakeServer server(RedisLike);
  LoadOptions o = Options(server.endpoint());
  o.workload.kind = WorkloadKind::kGetSet;
  o.ops = 5000;
  bool started = false, ended = false;
  o.on_measure_start = [&] { started = true; };
  o.on_measure_end = [&] { ended = true; };
  absl::StatusOr<LoadResult> r = RunLoad(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(started && ended);
  EXPECT_EQ(r->ops, 5000u);
  EXPECT_EQ(r->errors, 0u);
  EXPECT_EQ(r->lost, 0u);
  EXPECT_TRUE(r->abort_reason.empty()) << r->abort_reason;
  EXPECT_EQ(r->latency_ns.count(), 5000u);
  const uint64_t gets = r->ops_by_op[static_cast<int>(OpKind::kGet)];
  const uint64_t sets = r->ops_by_op[static_cast<int>(OpKind::kSet)];
  EXPECT_EQ(gets + sets, 5000u);
  EXPECT_GT(gets, 2000u);
  EXPECT_GT(sets, 2000u);
  EXPECT_GT(r->measured_s, 0);
  EXPECT_GT(r->bytes_sent, 5000u * 20);
  EXPECT_GE(server.requests(), 5000u);
}

TEST(LoadRunner, UnknownCommandsAreCountedByKindAndFailFast) {
  FakeServer server(RedisLike);
  LoadOptions o = Options(server.endpoint());
  o.workload.kind = WorkloadKind::kZadd;
  o.duration_s = 30;  // Fail-fast ends it long before.
  o.warmup_s = 0.2;
  absl::StatusOr<LoadResult> r = RunLoad(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->abort_reason.empty());
  EXPECT_EQ(r->warmup_errors, r->warmup_replies);
  EXPECT_GT(r->warmup_errors, 0u);
  EXPECT_EQ(r->error_kinds["ERR unknown command"], r->warmup_errors + r->errors);
}

TEST(LoadRunner, ErrorsCountedWithoutFailFast) {
  FakeServer server(RedisLike);
  LoadOptions o = Options(server.endpoint());
  o.workload.kind = WorkloadKind::kList;  // LPUSH and RPOP: both unknown here.
  o.fail_fast = false;
  o.ops = 1000;
  absl::StatusOr<LoadResult> r = RunLoad(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->ops, 1000u);
  EXPECT_EQ(r->errors, 1000u);
  ASSERT_EQ(r->error_kinds.size(), 1u);
  EXPECT_EQ(r->error_kinds.begin()->first, "ERR unknown command");
  EXPECT_EQ(r->latency_ns.count(), 0u);  // Errors are not latencies.
  EXPECT_DOUBLE_EQ(r->error_fraction(), 1.0);
}

TEST(LoadRunner, FollowsMovedToTheLeader) {
  FakeServer leader(RedisLike);
  const std::string moved = absl::StrCat("-MOVED 0 ", leader.endpoint().ToString(), "\r\n");
  FakeServer follower([&](const std::vector<std::string>&) { return moved; });
  LoadOptions o = Options(follower.endpoint());
  o.ops = 2000;
  absl::StatusOr<LoadResult> r = RunLoad(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->ops, 2000u);
  EXPECT_EQ(r->errors, 0u);
  EXPECT_GE(r->redirects, 4u);  // At least one per connection.
  EXPECT_TRUE(r->abort_reason.empty()) << r->abort_reason;
}

TEST(LoadRunner, RedirectLoopEndsTheRun) {
  std::string moved;
  FakeServer self_redirect([&](const std::vector<std::string>&) { return moved; });
  moved = absl::StrCat("-MOVED 0 ", self_redirect.endpoint().ToString(), "\r\n");
  LoadOptions o = Options(self_redirect.endpoint());
  o.redirects_max = 3;
  o.duration_s = 5;
  absl::StatusOr<LoadResult> r = RunLoad(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_NE(r->abort_reason.find("redirects in a row"), std::string::npos) << r->abort_reason;
}

TEST(LoadRunner, ReconnectsWhenTheServerClosesConnections) {
  FakeServer server(RedisLike, /*close_after=*/50);
  LoadOptions o = Options(server.endpoint());
  o.duration_s = 0.5;
  absl::StatusOr<LoadResult> r = RunLoad(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GT(r->connection_failures, 0u);
  EXPECT_GT(r->ops, 0u);
  EXPECT_EQ(r->errors, 0u);
}

TEST(LoadRunner, GarbageRepliesDropTheConnectionNotTheProcess) {
  FakeServer server([](const std::vector<std::string>&) { return std::string("?what\r\n"); });
  LoadOptions o = Options(server.endpoint());
  o.duration_s = 0.3;
  absl::StatusOr<LoadResult> r = RunLoad(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->ops, 0u);
  EXPECT_GT(r->connection_failures, 0u);
  EXPECT_NE(r->last_connection_error.find("protocol error"), std::string::npos)
      << r->last_connection_error;
}

TEST(LoadRunner, NoServerIsAClearError) {
  LoadOptions o = Options(Endpoint{"127.0.0.1", 1});
  o.connect_timeout_s = 0.3;
  absl::StatusOr<LoadResult> r = RunLoad(o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(r.status().message().find("127.0.0.1:1"), std::string::npos) << r.status();
}

TEST(LoadRunner, RejectsBadOptions) {
  LoadOptions o = Options(Endpoint{"127.0.0.1", 1});
  o.connections = 0;
  EXPECT_EQ(RunLoad(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Options(Endpoint{"127.0.0.1", 1});
  o.pipeline = kPipelineMax + 1;
  EXPECT_EQ(RunLoad(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Options(Endpoint{"127.0.0.1", 1});
  o.duration_s = 0;
  EXPECT_EQ(RunLoad(o).status().code(), absl::StatusCode::kInvalidArgument);
  o = Options(Endpoint{"127.0.0.1", 1});
  o.workload.keys = 0;
  EXPECT_EQ(RunLoad(o).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ErrorKind, CutsTheSpecificPart) {
  EXPECT_EQ(ErrorKind("ERR unknown command 'ZADD', with args beginning with: "),
            "ERR unknown command");
  EXPECT_EQ(ErrorKind("WRONGTYPE Operation against a key holding the wrong kind of value"),
            "WRONGTYPE Operation against a key holding the wr");
  EXPECT_EQ(ErrorKind("TRYAGAIN leadership lost: outcome unknown"), "TRYAGAIN leadership lost");
  EXPECT_EQ(ErrorKind(""), "(empty error)");
}

}  // namespace
}  // namespace blizzard::bench
