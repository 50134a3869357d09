#include "node/config.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <map>
#include <optional>
#include <utility>

#include "absl/base/internal/raw_logging.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/types/span.h"
#include "consensus/types.h"
#include "transport/transport.h"

namespace blizzard::node {
namespace {

// A cluster file is a few hundred bytes; anything near this is not one.
constexpr size_t kConfigBytesMax = 1u << 20;

// Debian's Abseil has its own absl::string_view; StrCat needs one.
absl::string_view AV(std::string_view s) {
  return absl::string_view(s.data(), s.size());
}

absl::Status LineError(size_t line, std::string_view message) {
  return absl::InvalidArgumentError(
      absl::StrCat("line ", line, ": ", AV(message)));
}

bool IsBlank(char c) { return c == ' ' || c == '\t'; }

std::string_view Trim(std::string_view s) {
  while (!s.empty() && IsBlank(s.front())) s.remove_prefix(1);
  while (!s.empty() && IsBlank(s.back())) s.remove_suffix(1);
  return s;
}

// Drops a trailing comment: '#' or ';' preceded by a blank, as Python's
// configparser does with inline_comment_prefixes (tools/ reads the same
// file with it). "iface=veth1;x" keeps its ';'.
std::string_view StripInlineComment(std::string_view s) {
  for (size_t i = 1; i < s.size(); ++i) {
    if ((s[i] == '#' || s[i] == ';') && IsBlank(s[i - 1])) {
      return s.substr(0, i);
    }
  }
  return s;
}

enum class NumberResult : uint8_t { kOk, kSyntax, kOverflow };

// Decimal digits with an optional K/M/G suffix (powers of 1024) when
// `allow_suffix`; anything else is a syntax error.
NumberResult ParseUnsigned(std::string_view s, bool allow_suffix,
                           uint64_t& value) {
  uint64_t multiplier = 1;
  if (allow_suffix && !s.empty()) {
    switch (s.back()) {
      case 'K': case 'k': multiplier = uint64_t{1} << 10; break;
      case 'M': case 'm': multiplier = uint64_t{1} << 20; break;
      case 'G': case 'g': multiplier = uint64_t{1} << 30; break;
      default: break;
    }
    if (multiplier != 1) s.remove_suffix(1);
  }
  if (s.empty()) return NumberResult::kSyntax;
  bool overflow = false;
  uint64_t parsed = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return NumberResult::kSyntax;
    const uint64_t digit = static_cast<uint64_t>(c - '0');
    if (parsed > (std::numeric_limits<uint64_t>::max() - digit) / 10) {
      overflow = true;  // Keep scanning: garbage later is a syntax error.
    } else {
      parsed = parsed * 10 + digit;
    }
  }
  if (overflow || parsed > std::numeric_limits<uint64_t>::max() / multiplier) {
    return NumberResult::kOverflow;
  }
  value = parsed * multiplier;
  return NumberResult::kOk;
}

// Strict dotted quad: four decimal parts 0..255, no leading zeros (which
// some resolvers read as octal), nothing else.
bool IsIpv4(std::string_view s) {
  int parts = 0;
  size_t i = 0;
  while (true) {
    const size_t start = i;
    unsigned value = 0;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9' && i - start < 3) {
      value = value * 10 + static_cast<unsigned>(s[i] - '0');
      ++i;
    }
    const size_t digits = i - start;
    if (digits == 0 || value > 255 || (digits > 1 && s[start] == '0')) {
      return false;
    }
    ++parts;
    if (i == s.size()) return parts == 4;
    if (s[i] != '.' || parts == 4) return false;
    ++i;
  }
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// "aa:bb:cc:dd:ee:ff" into 6 bytes.
std::optional<uint64_t> ParseMac(std::string_view s) {
  if (s.size() != 17) return std::nullopt;
  uint64_t mac = 0;
  for (size_t octet = 0; octet < 6; ++octet) {
    const size_t at = octet * 3;
    const int high = HexValue(s[at]);
    const int low = HexValue(s[at + 1]);
    if (high < 0 || low < 0) return std::nullopt;
    if (octet < 5 && s[at + 2] != ':') return std::nullopt;
    mac = (mac << 8) | static_cast<uint64_t>(high * 16 + low);
  }
  return mac;
}

enum class Field : uint8_t {
  // [cluster]
  kClusterId, kTickMs, kElectionTimeoutTicks, kHeartbeatIntervalTicks,
  kBatchOpsMax, kBatchBytesMax, kClientsMax, kBusyPoll, kVoters, kSnapshotLogPercent,
  kSnapshotKeepEntries, kSnapshotChunkBytes, kSessionsMax, kMaxMemoryPercent,
  kMtuBytes, kIdleSpinUs, kAckDelayUs,
  // [node.N]
  kHost, kClientPort, kPeerPort, kLogPool, kLogPoolBytes, kDataPool,
  kDataPoolBytes, kMac, kEalArgs,
};

struct KeySpec {
  std::string_view key;
  Field field;
  bool required;
};

constexpr KeySpec kClusterKeys[] = {
    {"id", Field::kClusterId, true},
    {"tick_ms", Field::kTickMs, false},
    {"election_timeout_ticks", Field::kElectionTimeoutTicks, false},
    {"heartbeat_interval_ticks", Field::kHeartbeatIntervalTicks, false},
    {"batch_ops_max", Field::kBatchOpsMax, false},
    {"batch_bytes_max", Field::kBatchBytesMax, false},
    {"clients_max", Field::kClientsMax, false},
    {"busy_poll", Field::kBusyPoll, false},
    {"voters", Field::kVoters, false},
    {"snapshot_log_percent", Field::kSnapshotLogPercent, false},
    {"snapshot_keep_entries", Field::kSnapshotKeepEntries, false},
    {"snapshot_chunk_bytes", Field::kSnapshotChunkBytes, false},
    {"sessions_max", Field::kSessionsMax, false},
    {"max_memory_percent", Field::kMaxMemoryPercent, false},
    {"mtu_bytes", Field::kMtuBytes, false},
    {"idle_spin_us", Field::kIdleSpinUs, false},
    {"ack_delay_us", Field::kAckDelayUs, false},
};

constexpr KeySpec kNodeKeys[] = {
    {"host", Field::kHost, true},
    {"client_port", Field::kClientPort, true},
    {"peer_port", Field::kPeerPort, true},
    {"log_pool", Field::kLogPool, true},
    {"log_pool_bytes", Field::kLogPoolBytes, false},
    {"data_pool", Field::kDataPool, true},
    {"data_pool_bytes", Field::kDataPoolBytes, false},
    {"mac", Field::kMac, false},
    {"eal_args", Field::kEalArgs, false},
};

// One section as read: where it starts and the line of every key seen.
struct Section {
  size_t line = 0;
  std::map<std::string, size_t, std::less<>> key_lines;
};

// A number for `key`, > 0 and <= max.
absl::StatusOr<uint64_t> ParsePositive(size_t line, std::string_view key,
                                       std::string_view value, uint64_t max,
                                       bool allow_suffix) {
  uint64_t parsed = 0;
  switch (ParseUnsigned(value, allow_suffix, parsed)) {
    case NumberResult::kOk:
      break;
    case NumberResult::kOverflow:
      return LineError(line, absl::StrCat(AV(key), " = ", AV(value),
                                          " is out of range (max ", max, ")"));
    case NumberResult::kSyntax:
      return LineError(
          line, absl::StrCat("bad number '", AV(value), "' for ", AV(key),
                             allow_suffix
                                 ? " (expected digits with an optional K, M "
                                   "or G suffix)"
                                 : " (expected decimal digits)"));
  }
  if (parsed == 0) {
    return LineError(line, absl::StrCat(AV(key), " must be greater than 0"));
  }
  if (parsed > max) {
    return LineError(line, absl::StrCat(AV(key), " = ", AV(value),
                                        " is out of range (max ", max, ")"));
  }
  return parsed;
}

class Parser {
 public:
  absl::StatusOr<ClusterConfig> Parse(std::string_view text);

 private:
  absl::Status ParseSectionHeader(size_t line, std::string_view header);
  absl::Status ParseKeyValue(size_t line, std::string_view key,
                             std::string_view value);
  absl::Status SetCluster(size_t line, Field field, std::string_view key,
                          std::string_view value);
  absl::Status SetNode(size_t line, Field field, std::string_view key,
                       std::string_view value, NodeConfig& node);
  absl::Status Validate(size_t last_line);

  ClusterConfig config_;
  std::optional<Section> cluster_section_;
  std::vector<Section> node_sections_;  // Parallel to config_.nodes.
  size_t voters_line_ = 0;
  Section* current_ = nullptr;
  bool current_is_cluster_ = false;
};

absl::StatusOr<ClusterConfig> Parser::Parse(std::string_view text) {
  if (text.size() > kConfigBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat("config is ", text.size(), " bytes, more than ",
                     kConfigBytesMax));
  }
  // Nodes are appended as sections appear; pointers into node_sections_
  // must stay valid.
  node_sections_.reserve(kNodesMax);
  config_.nodes.reserve(kNodesMax);
  size_t line_number = 0;
  while (!text.empty()) {
    ++line_number;
    const size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    for (char c : line) {
      const unsigned char u = static_cast<unsigned char>(c);
      if ((u < 0x20 && c != '\t') || u == 0x7f) {
        return LineError(line_number, "control character");
      }
    }
    line = Trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line[0] == '[') {
      absl::Status s = ParseSectionHeader(line_number, line);
      if (!s.ok()) return s;
      continue;
    }
    const size_t equals = line.find('=');
    if (equals == std::string_view::npos) {
      return LineError(line_number,
                       "expected 'key = value', '[section]' or a comment");
    }
    absl::Status s =
        ParseKeyValue(line_number, Trim(line.substr(0, equals)),
                      Trim(StripInlineComment(line.substr(equals + 1))));
    if (!s.ok()) return s;
  }
  absl::Status s = Validate(line_number);
  if (!s.ok()) return s;
  return std::move(config_);
}

absl::Status Parser::ParseSectionHeader(size_t line, std::string_view header) {
  const size_t close = header.find(']');
  if (close == std::string_view::npos) {
    return LineError(line, "section header without ']'");
  }
  if (!Trim(StripInlineComment(header.substr(close + 1))).empty()) {
    return LineError(line, "text after the section header");
  }
  const std::string_view name = Trim(header.substr(1, close - 1));
  if (name == "cluster") {
    if (cluster_section_.has_value()) {
      return LineError(line, absl::StrCat("duplicate section [cluster] (first "
                                          "at line ",
                                          cluster_section_->line, ")"));
    }
    cluster_section_.emplace().line = line;
    current_ = &*cluster_section_;
    current_is_cluster_ = true;
    return absl::OkStatus();
  }
  constexpr std::string_view kNodePrefix = "node.";
  if (name.substr(0, kNodePrefix.size()) != kNodePrefix) {
    return LineError(line, absl::StrCat("unknown section [", AV(name),
                                        "] (expected [cluster] or [node.N])"));
  }
  const std::string_view id_text = name.substr(kNodePrefix.size());
  uint64_t id = 0;
  if (ParseUnsigned(id_text, false, id) != NumberResult::kOk || id == 0) {
    return LineError(line, absl::StrCat("bad node id '", AV(id_text),
                                        "' (expected a number > 0)"));
  }
  for (size_t i = 0; i < config_.nodes.size(); ++i) {
    if (config_.nodes[i].id == id) {
      return LineError(line, absl::StrCat("duplicate node id ", id,
                                          " (first at line ",
                                          node_sections_[i].line, ")"));
    }
  }
  if (config_.nodes.size() == kNodesMax) {
    return LineError(line, absl::StrCat("more than ", kNodesMax, " nodes"));
  }
  config_.nodes.emplace_back().id = id;
  node_sections_.emplace_back().line = line;
  ABSL_RAW_CHECK(node_sections_.size() == config_.nodes.size(),
                 "sections and nodes out of step");
  current_ = &node_sections_.back();
  current_is_cluster_ = false;
  return absl::OkStatus();
}

absl::Status Parser::ParseKeyValue(size_t line, std::string_view key,
                                   std::string_view value) {
  if (current_ == nullptr) {
    return LineError(line, "key before any [section]");
  }
  if (key.empty()) return LineError(line, "empty key");
  const absl::Span<const KeySpec> specs =
      current_is_cluster_ ? absl::Span<const KeySpec>(kClusterKeys)
                          : absl::Span<const KeySpec>(kNodeKeys);
  const auto spec = std::find_if(specs.begin(), specs.end(),
                                 [&](const KeySpec& s) { return s.key == key; });
  const std::string section_name =
      current_is_cluster_
          ? std::string("[cluster]")
          : absl::StrCat("[node.", config_.nodes.back().id, "]");
  if (spec == specs.end()) {
    return LineError(line, absl::StrCat("unknown key '", AV(key), "' in ",
                                        section_name));
  }
  const auto [it, inserted] =
      current_->key_lines.emplace(std::string(key), line);
  if (!inserted) {
    return LineError(line, absl::StrCat("duplicate key '", AV(key),
                                        "' (first at line ", it->second, ")"));
  }
  if (value.empty()) {
    return LineError(line, absl::StrCat("empty value for '", AV(key), "'"));
  }
  return current_is_cluster_
             ? SetCluster(line, spec->field, key, value)
             : SetNode(line, spec->field, key, value, config_.nodes.back());
}

absl::Status Parser::SetCluster(size_t line, Field field, std::string_view key,
                                std::string_view value) {
  if (field == Field::kBusyPoll) {
    // Only the two words: "1", "yes" or "on" would each be a second
    // spelling that some other reader of the file might not accept.
    if (value != "true" && value != "false") {
      return LineError(line, absl::StrCat(AV(key), " = ", AV(value),
                                          " (expected true or false)"));
    }
    config_.busy_poll = value == "true";
    return absl::OkStatus();
  }
  constexpr uint64_t kU32Max = std::numeric_limits<uint32_t>::max();
  constexpr uint64_t kU64Max = std::numeric_limits<uint64_t>::max();
  if (field == Field::kIdleSpinUs || field == Field::kAckDelayUs) {
    // 0 is meaningful here (no spin, no delay), so not ParsePositive.
    const bool spin = field == Field::kIdleSpinUs;
    const uint64_t max = static_cast<uint64_t>(
        spin ? transport::kIdleSpinUsMax : transport::kAckDelayUsMax);
    uint64_t us = 0;
    if (ParseUnsigned(value, false, us) != NumberResult::kOk || us > max) {
      return LineError(line, absl::StrCat(AV(key), " = ", AV(value),
                                          " (expected 0..", max, ")"));
    }
    (spin ? config_.idle_spin_us : config_.ack_delay_us) = static_cast<uint32_t>(us);
    return absl::OkStatus();
  }
  if (field == Field::kVoters) {
    // A comma-separated list of node ids, checked against the nodes in
    // Validate (they may come later in the file).
    for (absl::string_view piece : absl::StrSplit(AV(value), ',')) {
      piece = absl::StripAsciiWhitespace(piece);
      const std::string_view part(piece.data(), piece.size());
      uint64_t id = 0;
      if (ParseUnsigned(part, false, id) != NumberResult::kOk || id == 0) {
        return LineError(line, absl::StrCat("voters: '", AV(part), "' is not a node id"));
      }
      if (std::find(config_.voters.begin(), config_.voters.end(), id) != config_.voters.end()) {
        return LineError(line, absl::StrCat("voters: node ", id, " listed twice"));
      }
      config_.voters.push_back(id);
    }
    voters_line_ = line;
    return absl::OkStatus();
  }
  const bool is_size = field == Field::kBatchBytesMax ||
                       field == Field::kSnapshotChunkBytes || field == Field::kMtuBytes;
  const uint64_t max = (field == Field::kClusterId || is_size) ? kU64Max
                                                                : kU32Max;
  absl::StatusOr<uint64_t> number =
      ParsePositive(line, key, value, max, is_size);
  if (!number.ok()) return number.status();
  const uint32_t as_u32 = static_cast<uint32_t>(std::min(*number, kU32Max));
  switch (field) {
    case Field::kClusterId: config_.cluster_id = *number; break;
    case Field::kTickMs: config_.tick_ms = as_u32; break;
    case Field::kElectionTimeoutTicks:
      config_.election_timeout_ticks = as_u32;
      break;
    case Field::kHeartbeatIntervalTicks:
      config_.heartbeat_interval_ticks = as_u32;
      break;
    case Field::kBatchOpsMax: config_.batch_ops_max = as_u32; break;
    case Field::kBatchBytesMax: config_.batch_bytes_max = *number; break;
    case Field::kClientsMax: config_.clients_max = as_u32; break;
    case Field::kSnapshotLogPercent:
      if (*number > 100) {
        return LineError(line, "snapshot_log_percent must be in 1..100");
      }
      config_.snapshot_log_percent = as_u32;
      break;
    case Field::kSnapshotKeepEntries: config_.snapshot_keep_entries = as_u32; break;
    case Field::kSnapshotChunkBytes:
      if (*number > consensus::kSnapshotChunkBytesMax) {
        return LineError(line, absl::StrCat("snapshot_chunk_bytes must be at most ",
                                            consensus::kSnapshotChunkBytesMax));
      }
      config_.snapshot_chunk_bytes = *number;
      break;
    case Field::kSessionsMax: config_.sessions_max = as_u32; break;
    case Field::kMaxMemoryPercent:
      if (*number > 100) {
        return LineError(line, "max_memory_percent must be in 1..100");
      }
      config_.max_memory_percent = as_u32;
      break;
    case Field::kMtuBytes:
      if (*number < transport::kLinkMtuBytesMin ||
          *number > transport::kLinkMtuBytesMax) {
        return LineError(line, absl::StrCat("mtu_bytes must be in ",
                                            transport::kLinkMtuBytesMin, "..",
                                            transport::kLinkMtuBytesMax));
      }
      config_.mtu_bytes = as_u32;
      break;
    default:
      ABSL_RAW_CHECK(false, "node field in [cluster]");
  }
  return absl::OkStatus();
}

absl::Status Parser::SetNode(size_t line, Field field, std::string_view key,
                             std::string_view value, NodeConfig& node) {
  switch (field) {
    case Field::kHost:
      if (!IsIpv4(value)) {
        return LineError(line, absl::StrCat("host '", AV(value),
                                            "' is not an IPv4 address "
                                            "(a.b.c.d)"));
      }
      node.host = std::string(value);
      return absl::OkStatus();
    case Field::kClientPort:
    case Field::kPeerPort: {
      uint64_t port = 0;
      if (ParseUnsigned(value, false, port) != NumberResult::kOk || port == 0 ||
          port > 65535) {
        return LineError(line, absl::StrCat(AV(key), " '", AV(value),
                                            "' is not a port in 1..65535"));
      }
      (field == Field::kClientPort ? node.client_port : node.peer_port) =
          static_cast<uint16_t>(port);
      return absl::OkStatus();
    }
    case Field::kLogPool: node.log_pool = std::string(value); break;
    case Field::kDataPool: node.data_pool = std::string(value); break;
    case Field::kLogPoolBytes:
    case Field::kDataPoolBytes: {
      absl::StatusOr<uint64_t> bytes = ParsePositive(
          line, key, value, std::numeric_limits<uint64_t>::max(), true);
      if (!bytes.ok()) return bytes.status();
      (field == Field::kLogPoolBytes ? node.log_pool_bytes
                                     : node.data_pool_bytes) = *bytes;
      return absl::OkStatus();
    }
    case Field::kMac: {
      const std::optional<uint64_t> mac = ParseMac(value);
      if (!mac.has_value()) {
        return LineError(line, absl::StrCat("mac '", AV(value),
                                            "' is not of the form "
                                            "aa:bb:cc:dd:ee:ff"));
      }
      // Frames are addressed to one node: a group or null address
      // cannot be one.
      if ((*mac >> 40) & 1) {
        return LineError(line, absl::StrCat("mac '", AV(value),
                                            "' is a multicast address"));
      }
      if (*mac == 0) return LineError(line, "mac is all zero");
      node.mac = std::string(value);
      return absl::OkStatus();
    }
    case Field::kEalArgs: node.eal_args = std::string(value); break;
    default:
      ABSL_RAW_CHECK(false, "cluster field in [node.N]");
  }
  return absl::OkStatus();
}

absl::Status Parser::Validate(size_t last_line) {
  if (!cluster_section_.has_value()) {
    return LineError(last_line, "missing [cluster] section");
  }
  const Section& cluster = *cluster_section_;
  for (const KeySpec& spec : kClusterKeys) {
    if (spec.required && !cluster.key_lines.contains(spec.key)) {
      return LineError(cluster.line,
                       absl::StrCat("[cluster] is missing required key '",
                                    AV(spec.key), "'"));
    }
  }
  if (config_.election_timeout_ticks <= config_.heartbeat_interval_ticks) {
    // Name the line of whichever of the two was written (the last one).
    size_t line = cluster.line;
    for (std::string_view key :
         {"election_timeout_ticks", "heartbeat_interval_ticks"}) {
      const auto it = cluster.key_lines.find(key);
      if (it != cluster.key_lines.end()) line = std::max(line, it->second);
    }
    return LineError(
        line, absl::StrCat("election_timeout_ticks (",
                           config_.election_timeout_ticks,
                           ") must be greater than heartbeat_interval_ticks (",
                           config_.heartbeat_interval_ticks,
                           "), or followers start elections between "
                           "heartbeats"));
  }
  if (config_.nodes.empty()) {
    return LineError(last_line, "no [node.N] section");
  }

  // Every listening endpoint, pool file and MAC belongs to one node: two
  // nodes sharing one would fight over it. Checked in file order so the
  // error names the second use.
  std::map<std::pair<std::string, uint16_t>, size_t> endpoints;
  std::map<std::string, size_t, std::less<>> pools;
  std::map<std::string, size_t, std::less<>> macs;
  for (size_t i = 0; i < config_.nodes.size(); ++i) {
    const NodeConfig& node = config_.nodes[i];
    const Section& section = node_sections_[i];
    for (const KeySpec& spec : kNodeKeys) {
      if (spec.required && !section.key_lines.contains(spec.key)) {
        return LineError(section.line,
                         absl::StrCat("[node.", node.id,
                                      "] is missing required key '",
                                      AV(spec.key), "'"));
      }
    }
    for (auto [key, port] : {std::pair<std::string_view, uint16_t>(
                                 "client_port", node.client_port),
                             std::pair<std::string_view, uint16_t>(
                                 "peer_port", node.peer_port)}) {
      const size_t line = section.key_lines.find(key)->second;
      const auto [it, inserted] =
          endpoints.emplace(std::make_pair(node.host, port), line);
      if (!inserted) {
        return LineError(line, absl::StrCat(node.host, ":", port,
                                            " is already used at line ",
                                            it->second));
      }
    }
    for (auto [key, path] : {std::pair<std::string_view, const std::string*>(
                                 "log_pool", &node.log_pool),
                             std::pair<std::string_view, const std::string*>(
                                 "data_pool", &node.data_pool)}) {
      const size_t line = section.key_lines.find(key)->second;
      const auto [it, inserted] = pools.emplace(*path, line);
      if (!inserted) {
        return LineError(line, absl::StrCat("pool ", *path,
                                            " is already used at line ",
                                            it->second));
      }
    }
    if (!node.mac.empty()) {
      std::string normalized = node.mac;
      for (char& c : normalized) {
        if (c >= 'A' && c <= 'F') c = static_cast<char>(c - 'A' + 'a');
      }
      const size_t line = section.key_lines.find("mac")->second;
      const auto [it, inserted] = macs.emplace(std::move(normalized), line);
      if (!inserted) {
        return LineError(line, absl::StrCat("mac ", node.mac,
                                            " is already used at line ",
                                            it->second));
      }
    }
  }
  std::sort(config_.nodes.begin(), config_.nodes.end(),
            [](const NodeConfig& a, const NodeConfig& b) { return a.id < b.id; });
  for (uint64_t id : config_.voters) {
    if (config_.Find(id) == nullptr) {
      return LineError(voters_line_, absl::StrCat("voters: node ", id,
                                                  " has no [node.", id, "] section"));
    }
  }
  std::sort(config_.voters.begin(), config_.voters.end());
  ABSL_RAW_CHECK(!config_.nodes.empty() && config_.nodes.size() <= kNodesMax,
                 "node count out of bounds after validation");
  return absl::OkStatus();
}

}  // namespace

std::vector<uint64_t> ClusterConfig::BootstrapVoters() const {
  if (!voters.empty()) return voters;
  std::vector<uint64_t> out;
  for (const NodeConfig& n : nodes) out.push_back(n.id);
  return out;
}

const NodeConfig* ClusterConfig::Find(uint64_t id) const {
  const auto it = std::lower_bound(
      nodes.begin(), nodes.end(), id,
      [](const NodeConfig& node, uint64_t want) { return node.id < want; });
  return it != nodes.end() && it->id == id ? &*it : nullptr;
}

absl::StatusOr<ClusterConfig> ParseClusterConfig(std::string_view text) {
  return Parser().Parse(text);
}

absl::StatusOr<ClusterConfig> LoadClusterConfig(const std::string& path) {
  std::FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return absl::NotFoundError(
        absl::StrCat("cannot open ", path, ": ", std::strerror(errno)));
  }
  // Read one byte past the limit to tell "too large" from "exactly full".
  std::string text(kConfigBytesMax + 1, '\0');
  const size_t read = std::fread(text.data(), 1, text.size(), file);
  const bool failed = std::ferror(file) != 0;
  const int read_errno = errno;
  std::fclose(file);
  if (failed) {
    return absl::NotFoundError(
        absl::StrCat("cannot read ", path, ": ", std::strerror(read_errno)));
  }
  if (read > kConfigBytesMax) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, " is larger than ", kConfigBytesMax, " bytes"));
  }
  text.resize(read);
  return ParseClusterConfig(text);
}

}  // namespace blizzard::node
