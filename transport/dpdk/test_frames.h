// Test helpers that build frames by hand, for tests that play a peer or
// forge hostile input: the payload of a messages frame, and a whole frame
// around a payload.
#ifndef BLIZZARD_TRANSPORT_DPDK_TEST_FRAMES_H_
#define BLIZZARD_TRANSPORT_DPDK_TEST_FRAMES_H_

#include <cstdint>
#include <cstring>
#include <vector>

#include "transport/dpdk/frame_format.h"

namespace blizzard::transport::dpdk::testing {

// Each message as a record: u32 length (little-endian) + bytes.
inline std::vector<uint8_t> Records(
    const std::vector<std::vector<uint8_t>>& messages) {
  std::vector<uint8_t> out;
  for (const auto& m : messages) {
    const uint32_t length = static_cast<uint32_t>(m.size());
    uint8_t prefix[kRecordPrefixBytes];
    std::memcpy(prefix, &length, sizeof(prefix));
    out.insert(out.end(), prefix, prefix + sizeof(prefix));
    out.insert(out.end(), m.begin(), m.end());
  }
  return out;
}

// A complete frame: `payload` after the headers, payload_bytes set from it.
inline std::vector<uint8_t> SealFrame(const Addressing& a, FrameHeader h,
                                      const std::vector<uint8_t>& payload) {
  h.payload_bytes = static_cast<uint16_t>(payload.size());
  std::vector<uint8_t> frame(kFrameHeadersBytes + payload.size());
  std::copy(payload.begin(), payload.end(), frame.begin() + kFrameHeadersBytes);
  FinishFrame(a, h, absl::MakeSpan(frame));
  return frame;
}

}  // namespace blizzard::transport::dpdk::testing

#endif  // BLIZZARD_TRANSPORT_DPDK_TEST_FRAMES_H_
