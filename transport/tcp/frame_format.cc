#include "transport/tcp/frame_format.h"

#include <xxhash.h>

#include <bit>
#include <cstring>

#include "absl/base/internal/raw_logging.h"
#include "absl/status/status.h"
#include "absl/strings/str_format.h"

namespace blizzard::transport::tcp {
namespace {

// The format is little-endian; every machine this project targets is too, so
// plain memcpy is the encoding. A big-endian port would byte-swap here.
static_assert(std::endian::native == std::endian::little);

template <typename T>
void Store(uint8_t* at, T value) {
  std::memcpy(at, &value, sizeof(value));
}

template <typename T>
T Load(const uint8_t* at) {
  T value;
  std::memcpy(&value, at, sizeof(value));
  return value;
}

uint64_t PayloadChecksum(const uint8_t* header_first8,
                         absl::Span<const uint8_t> payload) {
  return XXH3_64bits_withSeed(payload.data(), payload.size(),
                              Load<uint64_t>(header_first8));
}

}  // namespace

HelloBytes EncodeHello(uint64_t cluster_id, NodeId node_id) {
  HelloBytes out{};
  Store<uint32_t>(&out[0], kHelloMagic);
  Store<uint16_t>(&out[4], kFormatVersion);
  Store<uint16_t>(&out[6], 0);
  Store<uint64_t>(&out[8], cluster_id);
  Store<uint64_t>(&out[16], node_id);
  Store<uint64_t>(&out[24], XXH3_64bits(out.data(), 24));
  return out;
}

absl::StatusOr<Hello> DecodeHello(absl::Span<const uint8_t> bytes) {
  ABSL_RAW_CHECK(bytes.size() >= kHelloBytes, "hello buffer too short");
  const uint8_t* p = bytes.data();
  if (Load<uint32_t>(p) != kHelloMagic) {
    return absl::DataLossError("hello: bad magic");
  }
  if (Load<uint64_t>(p + 24) != XXH3_64bits(p, 24)) {
    return absl::DataLossError("hello: bad checksum");
  }
  Hello hello;
  hello.version = Load<uint16_t>(p + 4);
  if (hello.version != kFormatVersion) {
    return absl::FailedPreconditionError(absl::StrFormat(
        "hello: format version %d, this build speaks %d", hello.version,
        kFormatVersion));
  }
  if (Load<uint16_t>(p + 6) != 0) {
    return absl::DataLossError("hello: reserved bits set");
  }
  hello.cluster_id = Load<uint64_t>(p + 8);
  hello.node_id = Load<uint64_t>(p + 16);
  return hello;
}

FrameHeaderBytes EncodeFrameHeader(absl::Span<const uint8_t> payload) {
  ABSL_RAW_CHECK(payload.size() <= UINT32_MAX, "payload too long to frame");
  FrameHeaderBytes out{};
  Store<uint32_t>(&out[0], static_cast<uint32_t>(payload.size()));
  Store<uint32_t>(&out[4], kFrameKindMessage);
  Store<uint64_t>(&out[8], PayloadChecksum(out.data(), payload));
  return out;
}

FrameHeader DecodeFrameHeader(absl::Span<const uint8_t> bytes) {
  ABSL_RAW_CHECK(bytes.size() >= kFrameHeaderBytes, "header buffer too short");
  FrameHeader header;
  header.payload_bytes = Load<uint32_t>(bytes.data());
  header.kind = Load<uint32_t>(bytes.data() + 4);
  header.checksum = Load<uint64_t>(bytes.data() + 8);
  return header;
}

bool PayloadMatches(const FrameHeader& header,
                    absl::Span<const uint8_t> payload) {
  ABSL_RAW_CHECK(payload.size() == header.payload_bytes,
                 "payload span does not match the header's length");
  uint8_t first8[8];
  Store<uint32_t>(first8, header.payload_bytes);
  Store<uint32_t>(first8 + 4, header.kind);
  return PayloadChecksum(first8, payload) == header.checksum;
}

}  // namespace blizzard::transport::tcp
