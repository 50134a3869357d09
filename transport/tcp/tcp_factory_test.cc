// The link-time factory: a binary linking //transport:tcp gets TCP.
#include <string>

#include "gtest/gtest.h"
#include "transport/transport.h"

namespace blizzard::transport {
namespace {

TEST(TcpFactoryTest, CreateTransportBuildsTcp) {
  EXPECT_EQ(std::string(TransportName()), "tcp");
  TransportOptions options;
  options.self = 1;
  options.listen_host = "127.0.0.1";
  auto transport = CreateTransport(options);
  ASSERT_TRUE(transport.ok()) << transport.status();
  EXPECT_GE((*transport)->ReadinessFd(), 0);
  EXPECT_NE((*transport)->ListenPort(), 0);
  options.message_bytes_max = 0;
  EXPECT_TRUE(absl::IsInvalidArgument(CreateTransport(options).status()));
}

}  // namespace
}  // namespace blizzard::transport
