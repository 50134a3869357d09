// A human-readable description of a pmemlog pool for the pool inspector
// (tools/): header, tail, both state slots, the live range, and per-entry
// index/term/type/size/checksum status for the first and last entries and
// every damaged one. It reports corruption instead of failing on it, and it
// never writes the log (libpmemobj's own open may replay its internal redo
// logs: "read-only-ish").
#ifndef BLIZZARD_PMEMLOG_INSPECT_H_
#define BLIZZARD_PMEMLOG_INSPECT_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace blizzard::pmemlog {

struct DescribeOptions {
  uint64_t head_entries = 10;          // First entries listed.
  uint64_t tail_entries = 10;          // Last entries listed.
  uint64_t damaged_entries_max = 100;  // Damaged entries listed (all are counted).
};

// The report's first line is "pmemlog <path>: " followed by "OK",
// "CORRUPT: <first error>" or "REFUSED: <why>" (another version, say).
// An error Status only when the file cannot be opened as a pmemobj pool at
// all (missing, not a pool, another layout, in use, rejected by libpmemobj).
absl::StatusOr<std::string> DescribeLog(const std::string& path,
                                        const DescribeOptions& options = {});

// The same report for a log in a plain byte region (a simulated image).
std::string DescribeRegion(const std::string& name, const uint8_t* region, uint64_t region_bytes,
                           uint64_t meta_offset, const DescribeOptions& options = {});

}  // namespace blizzard::pmemlog

#endif  // BLIZZARD_PMEMLOG_INSPECT_H_
