// The node's side of the transport: the options a node builds for
// CreateTransport from the cluster file, and the transport's counters as
// INFO lines. Independent of which transport is linked (TCP ignores the DPDK
// fields, DPDK leaves the connection counters at 0), so it is tested without
// EAL.
#ifndef BLIZZARD_NODE_TRANSPORT_SETUP_H_
#define BLIZZARD_NODE_TRANSPORT_SETUP_H_

#include <string>

#include "node/config.h"
#include "transport/transport.h"

namespace blizzard::node {

// Options for node `self` (an element of cluster.nodes): cluster id, this
// node's host and peer port, every other node as a peer (host, peer port,
// MAC), and the DPDK keys (eal_args, mac, busy_poll). The cluster file was
// validated by ParseClusterConfig; the transport validates the rest (e.g.
// DPDK refuses a peer without a MAC).
transport::TransportOptions TransportOptionsFor(const ClusterConfig& cluster,
                                               const NodeConfig& self);

// Appends INFO's "# Transport" section: every TransportStats counter that
// INFO's "# Stats" does not already show as peer_*, as
// "transport_<field>:<value>\r\n".
void AppendTransportInfo(const transport::TransportStats& stats, std::string* out);

}  // namespace blizzard::node

#endif  // BLIZZARD_NODE_TRANSPORT_SETUP_H_
