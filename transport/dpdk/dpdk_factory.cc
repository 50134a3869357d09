// The link-time factory of //transport:dpdk: a node binary that links this
// library gets the DPDK transport from CreateTransport.
#include "transport/dpdk/dpdk_transport.h"
#include "transport/transport.h"

namespace blizzard::transport {

absl::StatusOr<std::unique_ptr<Transport>> CreateTransport(
    const TransportOptions& options) {
  return dpdk::CreateDpdkTransport(options);
}

const char* TransportName() { return "dpdk"; }

}  // namespace blizzard::transport
