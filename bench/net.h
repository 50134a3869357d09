// Addresses and sockets for the load generator: host:port endpoints, a
// non-blocking connect for the event loop and a blocking request/reply
// round trip with a deadline for out-of-band probes (INFO).
#ifndef BLIZZARD_BENCH_NET_H_
#define BLIZZARD_BENCH_NET_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/resp_reply.h"

namespace blizzard::bench {

struct Endpoint {
  std::string host;
  uint16_t port = 0;

  std::string ToString() const;
  bool operator==(const Endpoint&) const = default;
};

// "host:port" (as in -MOVED replies and INFO's leader_addr).
absl::StatusOr<Endpoint> ParseHostPort(std::string_view text);

// A non-blocking TCP socket (TCP_NODELAY) with a connect in progress or
// done; Unavailable when the host does not resolve or connect fails at once.
absl::StatusOr<int> ConnectNonBlocking(const Endpoint& endpoint);

// Sends one command (as RESP bulk strings) and waits for its reply, at most
// timeout_ms in total. For probes, never on the load path.
absl::StatusOr<Reply> RoundTrip(const Endpoint& endpoint, const std::vector<std::string>& args,
                                int timeout_ms);

// True for 127.0.0.0/8, ::1 and "localhost": whose /proc is this machine's.
bool IsLoopback(std::string_view host);

}  // namespace blizzard::bench

#endif  // BLIZZARD_BENCH_NET_H_
