#include "bench/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <cstring>

#include "bench/sv.h"
#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace blizzard::bench {
namespace {

absl::Status Errno(std::string_view what) {
  return absl::UnavailableError(absl::StrCat(AV(what), ": ", std::strerror(errno)));
}

absl::StatusOr<sockaddr_in> Resolve(const Endpoint& endpoint) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(endpoint.port);
  if (inet_pton(AF_INET, endpoint.host.c_str(), &addr.sin_addr) == 1) return addr;
  addrinfo hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* result = nullptr;
  const int rc = getaddrinfo(endpoint.host.c_str(), nullptr, &hints, &result);
  if (rc != 0 || result == nullptr) {
    return absl::UnavailableError(
        absl::StrCat("cannot resolve '", endpoint.host, "': ", gai_strerror(rc)));
  }
  addr.sin_addr = reinterpret_cast<sockaddr_in*>(result->ai_addr)->sin_addr;
  freeaddrinfo(result);
  return addr;
}

}  // namespace

std::string Endpoint::ToString() const { return absl::StrCat(host, ":", port); }

absl::StatusOr<Endpoint> ParseHostPort(std::string_view text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == text.size()) {
    return absl::InvalidArgumentError(absl::StrCat("'", AV(text), "' is not host:port"));
  }
  const std::string_view port_text = text.substr(colon + 1);
  uint32_t port = 0;
  const auto [end, ec] =
      std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port == 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("bad port in '", AV(text), "'"));
  }
  return Endpoint{std::string(text.substr(0, colon)), static_cast<uint16_t>(port)};
}

absl::StatusOr<int> ConnectNonBlocking(const Endpoint& endpoint) {
  absl::StatusOr<sockaddr_in> addr = Resolve(endpoint);
  if (!addr.ok()) return addr.status();
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Errno("socket");
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  if (connect(fd, reinterpret_cast<const sockaddr*>(&*addr), sizeof(*addr)) != 0 &&
      errno != EINPROGRESS) {
    absl::Status s = Errno(absl::StrCat("connect ", endpoint.ToString()));
    close(fd);
    return s;
  }
  return fd;
}

absl::StatusOr<Reply> RoundTrip(const Endpoint& endpoint, const std::vector<std::string>& args,
                                int timeout_ms) {
  using Clock = std::chrono::steady_clock;
  const Clock::time_point deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  absl::StatusOr<int> fd = ConnectNonBlocking(endpoint);
  if (!fd.ok()) return fd.status();
  absl::Cleanup closer = [&] { close(*fd); };

  // Waits for `events` on the socket until the deadline.
  auto wait = [&](short events) -> absl::Status {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          deadline - Clock::now()).count();
    if (left <= 0) {
      return absl::DeadlineExceededError(
          absl::StrCat(endpoint.ToString(), ": no reply within ", timeout_ms, " ms"));
    }
    pollfd p{*fd, events, 0};
    const int rc = poll(&p, 1, static_cast<int>(left));
    if (rc < 0 && errno != EINTR) return Errno("poll");
    return absl::OkStatus();
  };

  std::string request = absl::StrCat("*", args.size(), "\r\n");
  for (const std::string& a : args) absl::StrAppend(&request, "$", a.size(), "\r\n", a, "\r\n");
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = send(*fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EINPROGRESS || errno == EINTR)) {
      if (absl::Status s = wait(POLLOUT); !s.ok()) return s;
    } else {
      return Errno(absl::StrCat("send to ", endpoint.ToString()));
    }
  }
  ReplyParser parser;
  char buffer[16384];
  for (;;) {
    absl::StatusOr<std::optional<Reply>> reply = parser.Next();
    if (!reply.ok()) return reply.status();
    if (reply->has_value()) return std::move(**reply);
    const ssize_t n = recv(*fd, buffer, sizeof(buffer), 0);
    if (n > 0) {
      parser.Feed(std::string_view(buffer, static_cast<size_t>(n)));
    } else if (n == 0) {
      return absl::UnavailableError(
          absl::StrCat(endpoint.ToString(), " closed the connection before replying"));
    } else if (errno == EAGAIN || errno == EINTR) {
      if (absl::Status s = wait(POLLIN); !s.ok()) return s;
    } else {
      return Errno(absl::StrCat("recv from ", endpoint.ToString()));
    }
  }
}

bool IsLoopback(std::string_view host) {
  return host == "localhost" || host == "::1" || absl::StartsWith(AV(host), "127.");
}

}  // namespace blizzard::bench
