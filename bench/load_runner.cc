#include "bench/load_runner.h"

#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <optional>

#include "absl/base/internal/raw_logging.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "bench/node_stats.h"
#include "bench/resp_reply.h"

namespace blizzard::bench {
namespace {

constexpr uint64_t kNsPerS = 1'000'000'000;
constexpr uint64_t kBackoffMinNs = 50'000'000;   // First reconnect after 50 ms,
constexpr uint64_t kBackoffMaxNs = 1'000'000'000; // doubling up to 1 s.
constexpr uint64_t kLeaderLookupEveryNs = 200'000'000;
constexpr size_t kReadBytes = 256u << 10;
constexpr int kReadsPerEvent = 4;  // Then serve the other connections.

uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * kNsPerS + static_cast<uint64_t>(ts.tv_nsec);
}

uint64_t SecondsToNs(double s) { return static_cast<uint64_t>(s * 1e9); }

struct Pending {
  uint64_t queued_ns;
  OpKind kind;
  bool measured;
};

enum class Phase : uint8_t { kWarmup, kMeasure, kDrain, kDone };

struct Conn {
  Conn(const WorkloadOptions& w, const ValuePool* pool, int index, int pipeline)
      : index(index), generator(w, pool, static_cast<uint64_t>(index)),
        ring(static_cast<size_t>(pipeline)) {}

  size_t outstanding() const { return ring_size; }
  Pending& Front() { return ring[ring_head]; }
  void PopFront() {
    ABSL_RAW_CHECK(ring_size > 0, "reply without a request");
    ring_head = (ring_head + 1) % ring.size();
    --ring_size;
  }
  void PushBack(const Pending& p) {
    ABSL_RAW_CHECK(ring_size < ring.size(), "pipeline overfilled");
    ring[(ring_head + ring_size) % ring.size()] = p;
    ++ring_size;
  }

  enum class State : uint8_t { kIdle, kConnecting, kOpen };
  int index;
  State state = State::kIdle;
  int fd = -1;
  Endpoint endpoint;
  bool ever_connected = false;
  bool want_write = false;  // EPOLLOUT registered.
  std::string out;
  size_t out_pos = 0;
  std::unique_ptr<ReplyParser> parser;
  OpGenerator generator;
  std::vector<Pending> ring;  // Outstanding requests, oldest first.
  size_t ring_head = 0;
  size_t ring_size = 0;
  std::optional<Endpoint> redirect_to;
  int redirects_in_row = 0;
  uint64_t retry_at_ns = 0;
  uint64_t backoff_ns = kBackoffMinNs;
  std::string last_error;
};

class Runner {
 public:
  explicit Runner(const LoadOptions& o)
      : o_(o), pool_(o.workload.value_bytes, o.workload.seed) {}
  ~Runner() {
    for (auto& c : conns_) {
      if (c->fd >= 0) close(c->fd);
    }
    if (epoll_fd_ >= 0) close(epoll_fd_);
  }

  absl::StatusOr<LoadResult> Run();

 private:
  void StartConnect(Conn& c);
  // Closes the socket; the connection becomes idle (outstanding requests
  // are the caller's business).
  void CloseSocket(Conn& c);
  // A failed connection: its outstanding requests are lost; reconnect later.
  void Drop(Conn& c, std::string_view why);
  void OnEvent(Conn& c, uint32_t events);
  void OnReadable(Conn& c);
  void OnReply(Conn& c, const Reply& reply);
  void Fill(Conn& c);
  void Flush(Conn& c);
  void SetWantWrite(Conn& c, bool want);
  void Abort(std::string reason);
  void MaybeProgress();
  bool ErrorsOverLimit(uint64_t replies, uint64_t errors) const;

  const LoadOptions& o_;
  ValuePool pool_;
  std::vector<std::unique_ptr<Conn>> conns_;
  int epoll_fd_ = -1;
  LoadResult r_;
  Phase phase_ = Phase::kWarmup;
  uint64_t now_ = 0;
  uint64_t start_ns_ = 0;
  uint64_t measure_start_ns_ = 0;
  uint64_t last_measured_reply_ns_ = 0;
  uint64_t measured_issued_ = 0;
  uint64_t measured_outstanding_ = 0;
  int idle_conns_ = 0;
  int open_conns_ = 0;
  std::string last_connection_error_;
  // Leader lookups are rate-limited: every lost connection would ask.
  std::optional<Endpoint> leader_hint_;
  uint64_t leader_lookup_ns_ = 0;
  // Progress over the last second.
  uint64_t next_progress_ns_ = 0;
  uint64_t interval_start_ns_ = 0;
  uint64_t interval_replies_ = 0;
  uint64_t interval_errors_ = 0;
  Histogram interval_latency_ns_;
};

void Runner::SetWantWrite(Conn& c, bool want) {
  if (c.want_write == want || c.fd < 0) return;
  epoll_event ev{};
  ev.events = want ? EPOLLIN | EPOLLOUT : EPOLLIN;
  ev.data.u64 = static_cast<uint64_t>(c.index);
  const int rc = epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, c.fd, &ev);
  ABSL_RAW_CHECK(rc == 0, "epoll_ctl MOD failed");
  c.want_write = want;
}

void Runner::StartConnect(Conn& c) {
  ABSL_RAW_CHECK(c.state == Conn::State::kIdle && c.fd < 0, "connect of a busy connection");
  --idle_conns_;
  if (c.redirect_to) {
    c.endpoint = *c.redirect_to;
    c.redirect_to.reset();
  } else if (!o_.cluster.empty() && c.ever_connected) {
    // A lost connection: the leader may have changed.
    if (!leader_hint_ || now_ - leader_lookup_ns_ > kLeaderLookupEveryNs) {
      absl::StatusOr<Endpoint> leader = FindLeader(o_.cluster, 300);
      leader_lookup_ns_ = NowNs();
      if (leader.ok()) leader_hint_ = *leader;
    }
    if (leader_hint_) c.endpoint = *leader_hint_;
  }
  absl::StatusOr<int> fd = ConnectNonBlocking(c.endpoint);
  if (!fd.ok()) {
    c.state = Conn::State::kIdle;
    ++idle_conns_;
    ++r_.connection_failures;
    c.last_error = std::string(fd.status().message());
    last_connection_error_ = c.last_error;
    c.retry_at_ns = now_ + c.backoff_ns;
    c.backoff_ns = std::min(c.backoff_ns * 2, kBackoffMaxNs);
    return;
  }
  c.fd = *fd;
  c.state = Conn::State::kConnecting;
  c.parser = std::make_unique<ReplyParser>();
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT;
  ev.data.u64 = static_cast<uint64_t>(c.index);
  const int rc = epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, c.fd, &ev);
  ABSL_RAW_CHECK(rc == 0, "epoll_ctl ADD failed");
  c.want_write = true;
}

void Runner::CloseSocket(Conn& c) {
  ABSL_RAW_CHECK(c.fd >= 0, "close of a closed connection");
  epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, c.fd, nullptr);
  close(c.fd);
  c.fd = -1;
  if (c.state == Conn::State::kOpen) --open_conns_;
  c.state = Conn::State::kIdle;
  ++idle_conns_;
  c.want_write = false;
  c.out.clear();
  c.out_pos = 0;
}

void Runner::Drop(Conn& c, std::string_view why) {
  CloseSocket(c);
  c.last_error = std::string(why);
  last_connection_error_ = c.last_error;
  ++r_.connection_failures;
  while (c.outstanding() > 0) {
    if (c.Front().measured) {
      ++r_.lost;
      --measured_outstanding_;
    }
    c.PopFront();
  }
  c.redirect_to.reset();
  c.retry_at_ns = now_ + c.backoff_ns;
  c.backoff_ns = std::min(c.backoff_ns * 2, kBackoffMaxNs);
}

void Runner::Fill(Conn& c) {
  if (c.state != Conn::State::kOpen || c.redirect_to) return;
  const bool measuring = phase_ == Phase::kMeasure;
  if (phase_ != Phase::kWarmup && !measuring) return;
  while (c.outstanding() < c.ring.size()) {
    if (measuring && o_.ops > 0 && measured_issued_ >= o_.ops) break;
    const size_t before = c.out.size();
    const OpKind kind = c.generator.Append(c.out);
    if (measuring) {
      ++measured_issued_;
      ++measured_outstanding_;
      r_.bytes_sent += c.out.size() - before;
    }
    c.PushBack(Pending{now_, kind, measuring});
  }
  Flush(c);
}

void Runner::Flush(Conn& c) {
  while (c.out_pos < c.out.size()) {
    const ssize_t n = send(c.fd, c.out.data() + c.out_pos, c.out.size() - c.out_pos,
                           MSG_NOSIGNAL);
    if (n > 0) {
      c.out_pos += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      SetWantWrite(c, true);
      return;
    } else {
      Drop(c, absl::StrCat("send: ", std::strerror(errno)));
      return;
    }
  }
  c.out.clear();
  c.out_pos = 0;
  SetWantWrite(c, false);
}

void Runner::OnEvent(Conn& c, uint32_t events) {
  if (c.state == Conn::State::kConnecting) {
    int error = 0;
    socklen_t len = sizeof(error);
    getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &error, &len);
    if (error != 0 || (events & (EPOLLERR | EPOLLHUP)) != 0) {
      Drop(c, absl::StrCat("connect ", c.endpoint.ToString(), ": ",
                           std::strerror(error != 0 ? error : ECONNREFUSED)));
      return;
    }
    if ((events & EPOLLOUT) == 0) return;
    c.state = Conn::State::kOpen;
    ++open_conns_;
    c.ever_connected = true;
    c.backoff_ns = kBackoffMinNs;
    SetWantWrite(c, false);
    Fill(c);
    return;
  }
  if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0) OnReadable(c);
  if (c.fd >= 0 && (events & EPOLLOUT) != 0) Flush(c);
}

void Runner::OnReadable(Conn& c) {
  static thread_local std::string buffer(kReadBytes, '\0');
  for (int i = 0; i < kReadsPerEvent; ++i) {
    const ssize_t n = recv(c.fd, buffer.data(), buffer.size(), 0);
    if (n == 0) {
      Drop(c, absl::StrCat(c.endpoint.ToString(), " closed the connection"));
      return;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      Drop(c, absl::StrCat("recv: ", std::strerror(errno)));
      return;
    }
    if (phase_ == Phase::kMeasure || phase_ == Phase::kDrain) {
      r_.bytes_received += static_cast<uint64_t>(n);
    }
    c.parser->Feed(std::string_view(buffer.data(), static_cast<size_t>(n)));
    if (static_cast<size_t>(n) < buffer.size()) break;
  }
  now_ = NowNs();
  for (;;) {
    absl::StatusOr<std::optional<Reply>> reply = c.parser->Next();
    if (!reply.ok()) {
      Drop(c, std::string(reply.status().message()));
      return;
    }
    if (!reply->has_value()) break;
    if (c.outstanding() == 0) {
      Drop(c, "a reply to no request");
      return;
    }
    OnReply(c, **reply);
    if (c.fd < 0) return;
  }
  if (c.redirect_to && c.outstanding() == 0) {
    // Every reply of the old node is in: move to the one it named.
    if (++c.redirects_in_row > o_.redirects_max) {
      Abort(absl::StrCat("more than ", o_.redirects_max, " redirects in a row on one "
                         "connection (last to ", c.redirect_to->ToString(), ")"));
      return;
    }
    CloseSocket(c);
    StartConnect(c);
    return;
  }
  Fill(c);
}

void Runner::OnReply(Conn& c, const Reply& reply) {
  const Pending p = c.Front();
  c.PopFront();
  if (p.measured) {
    --measured_outstanding_;
    last_measured_reply_ns_ = now_;
  }
  if (reply.type == ReplyType::kError && absl::StartsWith(reply.text, "MOVED ")) {
    // "MOVED <slot> <host:port>": not an operation; it is sent again,
    // as a new request, to the node named.
    std::vector<std::string> words = absl::StrSplit(reply.text, ' ', absl::SkipEmpty());
    absl::StatusOr<Endpoint> to =
        words.size() == 3 ? ParseHostPort(words[2]) : absl::InvalidArgumentError("");
    if (to.ok()) {
      ++r_.redirects;
      if (p.measured) --measured_issued_;  // It will be issued again.
      c.redirect_to = *to;
      return;
    }
  }
  ++interval_replies_;
  const bool error = reply.type == ReplyType::kError;
  if (error) ++interval_errors_;
  if (p.measured) {
    ++r_.ops;
    r_.errors += error;
  } else {
    ++r_.warmup_replies;
    r_.warmup_errors += error;
  }
  if (error) {
    std::string kind = ErrorKind(reply.text);
    if (r_.error_kinds.size() >= kErrorKindsMax && !r_.error_kinds.contains(kind)) {
      kind = "other";
    }
    ++r_.error_kinds[kind];
    return;
  }
  c.redirects_in_row = 0;
  const uint64_t latency = now_ >= p.queued_ns ? now_ - p.queued_ns : 0;
  interval_latency_ns_.Record(latency);
  if (p.measured) {
    r_.latency_ns.Record(latency);
    r_.latency_ns_by_op[static_cast<int>(p.kind)].Record(latency);
    ++r_.ops_by_op[static_cast<int>(p.kind)];
  }
}

bool Runner::ErrorsOverLimit(uint64_t replies, uint64_t errors) const {
  return replies >= kFailFastReplies &&
         static_cast<double>(errors) > o_.max_error_fraction * static_cast<double>(replies);
}

void Runner::Abort(std::string reason) {
  if (r_.abort_reason.empty()) r_.abort_reason = std::move(reason);
  phase_ = Phase::kDone;
}

void Runner::MaybeProgress() {
  if (now_ < next_progress_ns_) return;
  next_progress_ns_ = now_ + kNsPerS;
  const double interval_s = static_cast<double>(now_ - interval_start_ns_) / 1e9;
  if (o_.progress && interval_s > 0) {
    const char* phase = phase_ == Phase::kWarmup ? "warm-up" : phase_ == Phase::kMeasure
                                                                   ? "measure"
                                                                   : "drain";
    std::fprintf(stderr,
                 "[%6.1fs] %-7s %9.0f ops/s  p99 %8.3f ms  errors %-6lu redirects %-4lu "
                 "conns %d/%zu\n",
                 static_cast<double>(now_ - start_ns_) / 1e9, phase,
                 static_cast<double>(interval_replies_) / interval_s,
                 static_cast<double>(interval_latency_ns_.Percentile(0.99)) / 1e6,
                 static_cast<unsigned long>(interval_errors_),
                 static_cast<unsigned long>(r_.redirects), open_conns_, conns_.size());
  }
  interval_start_ns_ = now_;
  interval_replies_ = 0;
  interval_errors_ = 0;
  interval_latency_ns_.Reset();
  // Errors so far, warm-up included: a workload the server does not
  // support fails within a second instead of running its full length.
  if (o_.fail_fast && phase_ == Phase::kMeasure &&
      ErrorsOverLimit(r_.ops + r_.warmup_replies, r_.errors + r_.warmup_errors)) {
    Abort("too many error replies");
  }
}

absl::StatusOr<LoadResult> Runner::Run() {
  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return absl::InternalError("epoll_create1 failed");
  conns_.reserve(static_cast<size_t>(o_.connections));
  for (int i = 0; i < o_.connections; ++i) {
    conns_.push_back(std::make_unique<Conn>(o_.workload, &pool_, i, o_.pipeline));
    conns_.back()->endpoint = o_.target;
  }
  now_ = start_ns_ = interval_start_ns_ = NowNs();
  next_progress_ns_ = now_ + kNsPerS;
  const uint64_t warmup_end_ns = start_ns_ + SecondsToNs(o_.warmup_s);
  const uint64_t connect_deadline_ns = start_ns_ + SecondsToNs(o_.connect_timeout_s);
  uint64_t drain_deadline_ns = 0;
  idle_conns_ = o_.connections;
  for (auto& c : conns_) StartConnect(*c);

  std::vector<epoll_event> events(static_cast<size_t>(o_.connections));
  while (phase_ != Phase::kDone) {
    now_ = NowNs();
    const bool stop = o_.stop != nullptr && o_.stop->load();
    if (phase_ == Phase::kWarmup && (now_ >= warmup_end_ns || stop)) {
      if (o_.fail_fast && ErrorsOverLimit(r_.warmup_replies, r_.warmup_errors)) {
        Abort("too many error replies during warm-up");
        break;
      }
      if (o_.on_measure_start) o_.on_measure_start();
      now_ = measure_start_ns_ = last_measured_reply_ns_ = NowNs();
      phase_ = Phase::kMeasure;
      for (auto& c : conns_) Fill(*c);
    }
    if (phase_ == Phase::kMeasure) {
      const bool done = o_.ops > 0 ? measured_issued_ >= o_.ops && measured_outstanding_ == 0
                                   : now_ >= measure_start_ns_ + SecondsToNs(o_.duration_s);
      if (done || stop) {
        phase_ = Phase::kDrain;
        drain_deadline_ns = now_ + SecondsToNs(o_.drain_timeout_s);
      }
    }
    if (phase_ == Phase::kDrain) {
      if (measured_outstanding_ == 0) break;
      if (now_ >= drain_deadline_ns) {
        r_.lost += measured_outstanding_;
        Abort(absl::StrCat(measured_outstanding_, " replies still missing ",
                           o_.drain_timeout_s, " s after the end"));
        break;
      }
    }
    for (auto& c : conns_) {
      if (!c->ever_connected && now_ >= connect_deadline_ns) {
        return absl::UnavailableError(absl::StrCat(
            "connection ", c->index, " to ", c->endpoint.ToString(), " not established within ",
            o_.connect_timeout_s, " s: ", c->last_error.empty() ? "timeout" : c->last_error));
      }
    }
    uint64_t wake_ns = now_ + 10'000'000;  // Timers are checked at least every 10 ms.
    if (idle_conns_ > 0) {
      for (auto& c : conns_) {
        if (c->state != Conn::State::kIdle) continue;
        if (c->retry_at_ns <= now_) {
          StartConnect(*c);
        } else {
          wake_ns = std::min(wake_ns, c->retry_at_ns);
        }
      }
    }
    MaybeProgress();
    if (phase_ == Phase::kDone) break;
    const int timeout_ms =
        static_cast<int>((std::max(wake_ns, now_) - now_ + 999'999) / 1'000'000);
    const int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()),
                             timeout_ms);
    if (n < 0 && errno != EINTR) return absl::InternalError("epoll_wait failed");
    now_ = NowNs();
    for (int i = 0; i < n; ++i) {
      Conn& c = *conns_[events[i].data.u64];
      if (c.fd < 0) continue;  // Dropped by an earlier event of this batch.
      OnEvent(c, events[i].events);
      if (phase_ == Phase::kDone) break;
    }
  }
  r_.measured_s =
      measure_start_ns_ == 0
          ? 0.0
          : static_cast<double>(last_measured_reply_ns_ - measure_start_ns_) / 1e9;
  if (measure_start_ns_ != 0 && o_.on_measure_end) o_.on_measure_end();
  r_.connections_open_at_end = open_conns_;
  r_.last_connection_error = last_connection_error_;
  return std::move(r_);
}

}  // namespace

std::string ErrorKind(std::string_view text) {
  const size_t cut = text.find_first_of("'\",:(");
  std::string_view kind = text.substr(0, std::min<size_t>(cut, 48));
  while (!kind.empty() && absl::ascii_isspace(static_cast<unsigned char>(kind.back()))) {
    kind.remove_suffix(1);
  }
  return kind.empty() ? std::string("(empty error)") : std::string(kind);
}

absl::StatusOr<LoadResult> RunLoad(const LoadOptions& o) {
  if (o.connections < 1 || o.connections > kConnectionsMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("connections ", o.connections, " outside [1, ", kConnectionsMax, "]"));
  }
  if (o.pipeline < 1 || o.pipeline > kPipelineMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("pipeline ", o.pipeline, " outside [1, ", kPipelineMax, "]"));
  }
  if (!(o.warmup_s >= 0) || !(o.duration_s > 0) || !(o.connect_timeout_s > 0) ||
      !(o.drain_timeout_s > 0)) {
    return absl::InvalidArgumentError("warm-up must be >= 0 s, durations and timeouts > 0 s");
  }
  if (!(o.max_error_fraction >= 0 && o.max_error_fraction <= 1)) {
    return absl::InvalidArgumentError("max error fraction outside [0, 1]");
  }
  if (o.target.port == 0) return absl::InvalidArgumentError("no target port");
  if (absl::Status s = ValidateWorkload(o.workload); !s.ok()) return s;
  auto runner = std::make_unique<Runner>(o);  // Large (histograms): on the heap.
  return runner->Run();
}

}  // namespace blizzard::bench
