#include "transport/transport.h"

#include "gtest/gtest.h"

namespace blizzard::transport {
namespace {

TransportOptions Valid() {
  TransportOptions options;
  options.self = 1;
  options.peers = {{2, "a", 1}, {3, "b", 2}};
  return options;
}

TEST(ValidateTransportOptionsTest, AcceptsDefaultsWithDistinctPeers) {
  EXPECT_TRUE(ValidateTransportOptions(Valid()).ok());
  EXPECT_TRUE(ValidateTransportOptions(TransportOptions()).ok());
}

TEST(ValidateTransportOptionsTest, RejectsEachBrokenField) {
  auto rejects = [](auto mutate) {
    TransportOptions options = Valid();
    mutate(options);
    return absl::IsInvalidArgument(ValidateTransportOptions(options));
  };
  EXPECT_TRUE(rejects([](TransportOptions& o) { o.message_bytes_max = 0; }));
  EXPECT_TRUE(rejects(
      [](TransportOptions& o) { o.message_bytes_max = kMessageBytesMax + 1; }));
  EXPECT_TRUE(rejects([](TransportOptions& o) { o.send_queue_bytes_max = 0; }));
  EXPECT_TRUE(
      rejects([](TransportOptions& o) { o.reconnect_backoff_ms_min = 0; }));
  EXPECT_TRUE(rejects([](TransportOptions& o) {
    o.reconnect_backoff_ms_min = 100;
    o.reconnect_backoff_ms_max = 99;
  }));
  EXPECT_TRUE(rejects([](TransportOptions& o) { o.peers[1].id = 2; }));
  EXPECT_TRUE(rejects([](TransportOptions& o) { o.peers[0].id = 1; }));
  EXPECT_TRUE(rejects(
      [](TransportOptions& o) { o.mtu_bytes = kLinkMtuBytesMin - 1; }));
  EXPECT_TRUE(rejects(
      [](TransportOptions& o) { o.mtu_bytes = kLinkMtuBytesMax + 1; }));
  EXPECT_TRUE(rejects([](TransportOptions& o) { o.idle_spin_us = -1; }));
  EXPECT_TRUE(rejects([](TransportOptions& o) { o.ack_delay_us = -1; }));
  EXPECT_TRUE(
      rejects([](TransportOptions& o) { o.ack_delay_us = kAckDelayUsMax + 1; }));
  EXPECT_TRUE(
      rejects([](TransportOptions& o) { o.idle_spin_us = kIdleSpinUsMax + 1; }));
}

TEST(ValidateTransportOptionsTest, AcceptsMtuAndSpinBounds) {
  for (size_t mtu : {size_t{0}, kLinkMtuBytesMin, size_t{9000}, kLinkMtuBytesMax}) {
    TransportOptions options = Valid();
    options.mtu_bytes = mtu;
    EXPECT_TRUE(ValidateTransportOptions(options).ok()) << mtu;
  }
  for (int64_t spin : {int64_t{0}, int64_t{50}, kIdleSpinUsMax}) {
    TransportOptions options = Valid();
    options.idle_spin_us = spin;
    EXPECT_TRUE(ValidateTransportOptions(options).ok()) << spin;
  }
}

}  // namespace
}  // namespace blizzard::transport
