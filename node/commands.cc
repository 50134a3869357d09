#include "node/commands.h"

#include <cstdint>
#include <string>
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

Command Write(OpCode code, std::vector<std::string> args, int64_t delta = 0) {
  Command c;
  c.kind = CommandKind::kWrite;
  c.op.code = code;
  c.op.args = std::move(args);
  c.op.delta = delta;
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
    if (!ParseStrictInt64(args[2], &delta)) {
      return Error("ERR value is not an integer or out of range");
    }
    if (name == "decrby") {
      if (delta == INT64_MIN) {
        return Error("ERR decrement would overflow");
      }
      delta = -delta;
    }
  }
  return Write(OpCode::kIncrBy, {args[1]}, delta);
}

std::string ExecuteRead(const std::vector<std::string>& args,
                        const structures::KvStore& store) {
  const std::string name = absl::AsciiStrToLower(args[0]);
  std::string out;
  if (name == "get") {
    std::optional<std::string> value = store.Get(args[1]);
    if (value.has_value()) {
      AppendBulk(out, *value);
    } else {
      AppendNull(out);
    }
  } else if (name == "exists") {
    int64_t n = 0;
    for (size_t i = 1; i < args.size(); ++i) n += store.Get(args[i]).has_value();
    AppendInteger(out, n);
  } else if (name == "strlen") {
    std::optional<std::string> value = store.Get(args[1]);
    AppendInteger(out, value.has_value() ? static_cast<int64_t>(value->size()) : 0);
  } else if (name == "mget") {
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
  }
  return out;
}

}  // namespace blizzard::node
