#include "node/commands.h"

#include <cstdint>
#include <string>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "node/resp.h"

namespace blizzard::node {
namespace {

using structures::Op;
using structures::OpCode;

struct Spec {
  const char* name;
  int arity;  // Redis convention: N exact, -N at least N (name included).
  CommandKind kind;
};

constexpr Spec kSpecs[] = {
    {"ping", -1, CommandKind::kReply},   {"echo", 2, CommandKind::kReply},
    {"command", -1, CommandKind::kReply}, {"config", -2, CommandKind::kReply},
    {"info", -1, CommandKind::kInfo},    {"quit", -1, CommandKind::kQuit},
    {"get", 2, CommandKind::kRead},      {"exists", -2, CommandKind::kRead},
    {"strlen", 2, CommandKind::kRead},   {"mget", -2, CommandKind::kRead},
    {"dbsize", 1, CommandKind::kRead},   {"set", -3, CommandKind::kWrite},
    {"del", -2, CommandKind::kWrite},    {"incr", 2, CommandKind::kWrite},
    {"decr", 2, CommandKind::kWrite},    {"incrby", 3, CommandKind::kWrite},
    {"decrby", 3, CommandKind::kWrite},  {"append", 3, CommandKind::kWrite},
    {"mset", -3, CommandKind::kWrite},
    // The typed keyspace: lists, sets, sorted sets.
    {"type", 2, CommandKind::kRead},     {"llen", 2, CommandKind::kRead},
    {"lrange", 4, CommandKind::kRead},   {"lindex", 3, CommandKind::kRead},
    {"smembers", 2, CommandKind::kRead}, {"sismember", 3, CommandKind::kRead},
    {"scard", 2, CommandKind::kRead},    {"zscore", 3, CommandKind::kRead},
    {"zcard", 2, CommandKind::kRead},    {"zrange", -4, CommandKind::kRead},
    {"zrangebyscore", -4, CommandKind::kRead},
    {"lpush", -3, CommandKind::kWrite},  {"rpush", -3, CommandKind::kWrite},
    {"lpop", -2, CommandKind::kWrite},   {"rpop", -2, CommandKind::kWrite},
    {"sadd", -3, CommandKind::kWrite},   {"srem", -3, CommandKind::kWrite},
    {"zadd", -4, CommandKind::kWrite},   {"zrem", -3, CommandKind::kWrite},
    {"zpopmin", -2, CommandKind::kWrite}, {"zpopmax", -2, CommandKind::kWrite},
    // Redis Cluster's replica reads: opt-in, stale, never the default.
    {"readonly", 1, CommandKind::kReadOnly},
    {"readwrite", 1, CommandKind::kReadWrite},
    // Membership admin and client sessions: handled by the event loop.
    {"cluster", -2, CommandKind::kCluster},
    {"session", -4, CommandKind::kSession},
};

const Spec* FindSpec(const std::string& lower) {
  for (const Spec& spec : kSpecs) {
    if (lower == spec.name) return &spec;
  }
  return nullptr;
}

bool ArityOk(const Spec& spec, size_t argc) {
  return spec.arity >= 0 ? argc == static_cast<size_t>(spec.arity)
                         : argc >= static_cast<size_t>(-spec.arity);
}

Command Reply(std::string reply) {
  Command c;
  c.kind = CommandKind::kReply;
  c.reply = std::move(reply);
  return c;
}

Command Error(std::string_view message) {
  std::string out;
  AppendError(out, message);
  return Reply(std::move(out));
}

Command Write(OpCode code, std::vector<std::string> args, int64_t delta = 0,
              std::vector<double> scores = {}) {
  Command c;
  c.kind = CommandKind::kWrite;
  c.op.code = code;
  c.op.args = std::move(args);
  c.op.delta = delta;
  c.op.scores = std::move(scores);
  absl::Status valid = structures::ValidateOp(c.op);
  if (!valid.ok()) return Error(absl::StrCat("ERR ", valid.message()));
  return c;
}

// Redis quotes at most the first 128 bytes of each argument in its
// unknown-command message; keep that shape.
std::string UnknownCommandMessage(const std::vector<std::string>& args) {
  std::string msg = absl::StrCat("ERR unknown command '", args[0].substr(0, 128),
                                 "', with args beginning with: ");
  for (size_t i = 1; i < args.size() && msg.size() < 1024; ++i) {
    absl::StrAppend(&msg, "'", args[i].substr(0, 128), "' ");
  }
  return msg;
}

// Redis' string2ll: an optional '-', then digits, no spaces, no '+', no
// leading zeros, within int64.
bool ParseStrictInt64(const std::string& s, int64_t* value) {
  size_t digits = (!s.empty() && s[0] == '-') ? 1 : 0;
  if (s.size() == digits || s.size() > 20) return false;
  for (size_t i = digits; i < s.size(); ++i) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(s[i]))) return false;
  }
  if (s[digits] == '0' && s.size() > digits + 1) return false;
  if (s == "-0") return false;
  return absl::SimpleAtoi(s, value);
}

constexpr char kNotInteger[] = "ERR value is not an integer or out of range";
constexpr char kNotPositive[] = "ERR value is out of range, must be positive";

// LPOP/RPOP/ZPOPMIN/ZPOPMAX key [count].
Command ParsePop(OpCode code, const std::string& name, const std::vector<std::string>& args) {
  if (args.size() > 3) {
    return Error(absl::StrCat("ERR wrong number of arguments for '", name, "' command"));
  }
  int64_t count = structures::kNoCount;
  if (args.size() == 3) {
    if (!ParseStrictInt64(args[2], &count) || count < 0) return Error(kNotPositive);
  }
  return Write(code, {args[1]}, count);
}

// ZADD key score member [score member ...]; no options.
Command ParseZAdd(const std::vector<std::string>& args) {
  static constexpr const char* kOptions[] = {"nx", "xx", "gt", "lt", "ch", "incr"};
  const std::string first = absl::AsciiStrToLower(args[2]);
  for (const char* o : kOptions) {
    if (first == o) {
      return Error("ERR syntax error (ZADD options NX, XX, GT, LT, CH and INCR are not supported)");
    }
  }
  if ((args.size() - 2) % 2 != 0) return Error("ERR syntax error");
  std::vector<std::string> members = {args[1]};
  std::vector<double> scores;
  for (size_t i = 2; i < args.size(); i += 2) {
    double score = 0;
    if (!structures::ParseScore(args[i], &score)) return Error("ERR value is not a valid float");
    scores.push_back(score);
    members.push_back(args[i + 1]);
  }
  return Write(OpCode::kZAdd, std::move(members), 0, std::move(scores));
}

Command ParseLocal(const std::string& name, const std::vector<std::string>& args) {
  std::string out;
  if (name == "ping") {
    if (args.size() > 2) {
      return Error("ERR wrong number of arguments for 'ping' command");
    }
    if (args.size() == 2) {
      AppendBulk(out, args[1]);
    } else {
      AppendSimpleString(out, "PONG");
    }
  } else if (name == "echo") {
    AppendBulk(out, args[1]);
  } else if (name == "command") {
    // redis-cli asks for command docs at start-up; an empty answer makes it
    // fall back to plain behaviour.
    AppendArrayHeader(out, 0);
  } else if (name == "config") {
    // redis-benchmark reads "save" and "appendonly" at start-up. Blizzard
    // has no Redis persistence settings: durability is pmem + Raft.
    std::string sub = absl::AsciiStrToLower(args[1]);
    if (sub != "get" || args.size() != 3) {
      return Error("ERR CONFIG: only CONFIG GET <parameter> is supported");
    }
    const std::string& param = args[2];
    if (param == "save" || param == "appendonly") {
      AppendArrayHeader(out, 2);
      AppendBulk(out, param);
      AppendBulk(out, param == "save" ? "" : "no");
    } else {
      AppendArrayHeader(out, 0);
    }
  }
  return Reply(std::move(out));
}

}  // namespace

Command ParseCommand(const std::vector<std::string>& args) {
  if (args.empty()) return Error("ERR empty command");
  const std::string name = absl::AsciiStrToLower(args[0]);
  const Spec* spec = FindSpec(name);
  if (spec == nullptr) return Error(UnknownCommandMessage(args));
  if (!ArityOk(*spec, args.size())) {
    return Error(absl::StrCat("ERR wrong number of arguments for '", name,
                              "' command"));
  }
  switch (spec->kind) {
    case CommandKind::kReply:
      return ParseLocal(name, args);
    case CommandKind::kInfo:
    case CommandKind::kRead:
    case CommandKind::kQuit:
    case CommandKind::kReadOnly:
    case CommandKind::kReadWrite:
    case CommandKind::kCluster:
    case CommandKind::kSession: {
      Command c;
      c.kind = spec->kind;
      return c;
    }
    case CommandKind::kWrite:
      break;
  }

  if (name == "set") {
    if (args.size() != 3) {
      // EX/PX/NX/XX/KEEPTTL/GET: expiry and conditional sets are not
      // offered (no clocks in a replicated state machine yet).
      return Error("ERR syntax error (SET options are not supported)");
    }
    return Write(OpCode::kSet, {args[1], args[2]});
  }
  if (name == "del") {
    return Write(OpCode::kDel, std::vector<std::string>(args.begin() + 1, args.end()));
  }
  if (name == "append") return Write(OpCode::kAppend, {args[1], args[2]});
  const std::vector<std::string> rest(args.begin() + 1, args.end());
  if (name == "lpush") return Write(OpCode::kLPush, rest);
  if (name == "rpush") return Write(OpCode::kRPush, rest);
  if (name == "sadd") return Write(OpCode::kSAdd, rest);
  if (name == "srem") return Write(OpCode::kSRem, rest);
  if (name == "zrem") return Write(OpCode::kZRem, rest);
  if (name == "zadd") return ParseZAdd(args);
  if (name == "lpop") return ParsePop(OpCode::kLPop, name, args);
  if (name == "rpop") return ParsePop(OpCode::kRPop, name, args);
  if (name == "zpopmin") return ParsePop(OpCode::kZPopMin, name, args);
  if (name == "zpopmax") return ParsePop(OpCode::kZPopMax, name, args);
  if (name == "mset") {
    if (args.size() % 2 != 1) {
      return Error("ERR wrong number of arguments for 'mset' command");
    }
    return Write(OpCode::kMSet, std::vector<std::string>(args.begin() + 1, args.end()));
  }
  int64_t delta = 0;
  if (name == "incr") {
    delta = 1;
  } else if (name == "decr") {
    delta = -1;
  } else {  // incrby, decrby
    if (!ParseStrictInt64(args[2], &delta)) return Error(kNotInteger);
    if (name == "decrby") {
      if (delta == INT64_MIN) {
        return Error("ERR decrement would overflow");
      }
      delta = -delta;
    }
  }
  return Write(OpCode::kIncrBy, {args[1]}, delta);
}

namespace {

void AppendScored(std::string& out, const std::vector<std::pair<std::string, double>>& items,
                  bool with_scores) {
  AppendArrayHeader(out, items.size() * (with_scores ? 2 : 1));
  for (const auto& [member, score] : items) {
    AppendBulk(out, member);
    if (with_scores) AppendBulk(out, structures::FormatScore(score));
  }
}

// ZRANGEBYSCORE bounds: a float, "(" for exclusive, or +inf/-inf.
bool ParseBound(const std::string& s, structures::ScoreBound* bound) {
  std::string_view text = s;
  bound->exclusive = !text.empty() && text[0] == '(';
  if (bound->exclusive) text.remove_prefix(1);
  return structures::ParseScore(text, &bound->value);
}

std::string ErrorReply(std::string_view message) {
  std::string out;
  AppendError(out, message);
  return out;
}

}  // namespace

std::string ExecuteRead(const std::vector<std::string>& args,
                        const structures::KvStore& store) {
  using structures::ValueType;
  const std::string name = absl::AsciiStrToLower(args[0]);
  std::string out;
  // Reads of one key of one type: WRONGTYPE if it holds another.
  auto wrong = [&](ValueType want) {
    const ValueType t = store.Type(args[1]);
    return t != ValueType::kNone && t != want;
  };
  if (name == "get" || name == "strlen") {
    if (wrong(ValueType::kString)) return ErrorReply(structures::kWrongTypeError);
    std::optional<std::string> value = store.Get(args[1]);
    if (name == "strlen") {
      AppendInteger(out, value.has_value() ? static_cast<int64_t>(value->size()) : 0);
    } else if (value.has_value()) {
      AppendBulk(out, *value);
    } else {
      AppendNull(out);
    }
  } else if (name == "exists") {
    int64_t n = 0;
    for (size_t i = 1; i < args.size(); ++i) n += store.Type(args[i]) != ValueType::kNone;
    AppendInteger(out, n);
  } else if (name == "mget") {
    // Redis answers nil for keys of other types here, not WRONGTYPE.
    AppendArrayHeader(out, args.size() - 1);
    for (size_t i = 1; i < args.size(); ++i) {
      std::optional<std::string> value = store.Get(args[i]);
      if (value.has_value()) {
        AppendBulk(out, *value);
      } else {
        AppendNull(out);
      }
    }
  } else if (name == "dbsize") {
    AppendInteger(out, static_cast<int64_t>(store.Size()));
  } else if (name == "type") {
    AppendSimpleString(out, structures::TypeName(store.Type(args[1])));
  } else if (name == "llen" || name == "lrange" || name == "lindex") {
    if (wrong(ValueType::kList)) return ErrorReply(structures::kWrongTypeError);
    if (name == "llen") {
      AppendInteger(out, static_cast<int64_t>(store.ListLength(args[1])));
    } else if (name == "lindex") {
      int64_t index = 0;
      if (!ParseStrictInt64(args[2], &index)) return ErrorReply(kNotInteger);
      std::optional<std::string> v = store.ListIndex(args[1], index);
      if (v.has_value()) {
        AppendBulk(out, *v);
      } else {
        AppendNull(out);
      }
    } else {
      int64_t start = 0, stop = 0;
      if (!ParseStrictInt64(args[2], &start) || !ParseStrictInt64(args[3], &stop)) {
        return ErrorReply(kNotInteger);
      }
      const std::vector<std::string> items = store.ListRange(args[1], start, stop);
      AppendArrayHeader(out, items.size());
      for (const std::string& item : items) AppendBulk(out, item);
    }
  } else if (name == "smembers" || name == "sismember" || name == "scard") {
    if (wrong(ValueType::kSet)) return ErrorReply(structures::kWrongTypeError);
    if (name == "scard") {
      AppendInteger(out, static_cast<int64_t>(store.SetCard(args[1])));
    } else if (name == "sismember") {
      AppendInteger(out, store.SetIsMember(args[1], args[2]) ? 1 : 0);
    } else {
      const std::vector<std::string> members = store.SetMembers(args[1]);
      AppendArrayHeader(out, members.size());
      for (const std::string& m : members) AppendBulk(out, m);
    }
  } else if (name == "zscore" || name == "zcard" || name == "zrange" ||
             name == "zrangebyscore") {
    if (wrong(ValueType::kZSet)) return ErrorReply(structures::kWrongTypeError);
    if (name == "zscore") {
      std::optional<double> score = store.ZScore(args[1], args[2]);
      if (score.has_value()) {
        AppendBulk(out, structures::FormatScore(*score));
      } else {
        AppendNull(out);
      }
    } else if (name == "zcard") {
      AppendInteger(out, static_cast<int64_t>(store.ZCard(args[1])));
    } else if (name == "zrange") {
      bool with_scores = false;
      for (size_t i = 4; i < args.size(); ++i) {
        if (absl::AsciiStrToLower(args[i]) != "withscores" || with_scores) {
          return ErrorReply(
              "ERR syntax error (ZRANGE options other than WITHSCORES are not supported)");
        }
        with_scores = true;
      }
      int64_t start = 0, stop = 0;
      if (!ParseStrictInt64(args[2], &start) || !ParseStrictInt64(args[3], &stop)) {
        return ErrorReply(kNotInteger);
      }
      AppendScored(out, store.ZRange(args[1], start, stop), with_scores);
    } else {
      structures::ScoreBound min, max;
      if (!ParseBound(args[2], &min) || !ParseBound(args[3], &max)) {
        return ErrorReply("ERR min or max is not a float");
      }
      bool with_scores = false;
      int64_t offset = 0, limit = -1;
      for (size_t i = 4; i < args.size(); ++i) {
        const std::string opt = absl::AsciiStrToLower(args[i]);
        if (opt == "withscores") {
          with_scores = true;
        } else if (opt == "limit" && i + 2 < args.size()) {
          if (!ParseStrictInt64(args[i + 1], &offset) || !ParseStrictInt64(args[i + 2], &limit)) {
            return ErrorReply(kNotInteger);
          }
          i += 2;
        } else {
          return ErrorReply("ERR syntax error");
        }
      }
      // Redis: a negative offset gives an empty reply; a negative count all.
      std::vector<std::pair<std::string, double>> items;
      if (offset >= 0) {
        items = store.ZRangeByScore(args[1], min, max, static_cast<uint64_t>(offset), limit);
      }
      AppendScored(out, items, with_scores);
    }
  } else {
    AppendError(out, absl::StrCat("ERR '", name, "' is not a read command"));
  }
  return out;
}

std::string FormatResult(const structures::OpResult& result) {
  std::string out;
  switch (result.kind) {
    case structures::OpResult::Kind::kOk:
      AppendSimpleString(out, "OK");
      break;
    case structures::OpResult::Kind::kInteger:
      AppendInteger(out, result.integer);
      break;
    case structures::OpResult::Kind::kBulk:
      AppendBulk(out, result.text);
      break;
    case structures::OpResult::Kind::kNil:
      AppendNull(out);
      break;
    case structures::OpResult::Kind::kError:
      AppendError(out, result.text);
      break;
    case structures::OpResult::Kind::kArray:
      AppendArrayHeader(out, result.items.size());
      for (const std::string& item : result.items) AppendBulk(out, item);
      break;
    case structures::OpResult::Kind::kNilArray:
      out.append("*-1\r\n");  // RESP2's null array.
      break;
  }
  return out;
}

}  // namespace blizzard::node
