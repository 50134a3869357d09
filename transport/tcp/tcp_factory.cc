// The link-time factory of //transport:tcp: a node binary that links this
// library gets TCP from CreateTransport.
#include "transport/tcp/tcp_transport.h"
#include "transport/transport.h"

namespace blizzard::transport {

absl::StatusOr<std::unique_ptr<Transport>> CreateTransport(
    const TransportOptions& options) {
  return CreateTcpTransport(options);
}

const char* TransportName() { return "tcp"; }

}  // namespace blizzard::transport
