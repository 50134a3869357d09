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
}

}  // namespace
}  // namespace blizzard::transport
