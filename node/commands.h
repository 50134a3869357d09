// The command table: which Redis commands a node serves, their arity, and
// whether they are local (answered at once), reads (served by the leader at
// a linearizable read point) or writes (replicated through Raft as a
// structures::Op). Pure functions, no I/O: the event loop does the rest.
#ifndef BLIZZARD_NODE_COMMANDS_H_
#define BLIZZARD_NODE_COMMANDS_H_

#include <string>
#include <vector>

#include "structures/kv_store.h"
#include "structures/op.h"

namespace blizzard::node {

enum class CommandKind {
  kReply,  // Answered at once with `reply` (PING, errors, ...).
  kInfo,   // INFO: needs the node's state.
  kRead,   // Served from the store after a ReadIndex round.
  kWrite,  // `op` goes through Raft; the reply comes from the apply result.
  kQuit,   // Reply +OK, then close the connection.
  kReadOnly,   // READONLY: this connection accepts stale reads on followers.
  kReadWrite,  // READWRITE: back to linearizable reads only (the default).
  kCluster,    // CLUSTER <sub> ...: membership admin (the event loop parses it).
  kSession,    // SESSION <client> <seq> <command...>: exactly-once wrapper.
};

struct Command {
  CommandKind kind = CommandKind::kReply;
  std::string reply;      // kReply: a complete RESP reply.
  structures::Op op;      // kWrite.
};

// Classifies a request (args[0] is the command name, any case): checks the
// name and arity and parses integers, producing Redis' error replies for
// unknown commands, wrong arity and bad arguments.
Command ParseCommand(const std::vector<std::string>& args);

// Executes a read command (kind kRead) against the store; returns the RESP
// reply.
std::string ExecuteRead(const std::vector<std::string>& args,
                        const structures::KvStore& store);

// The RESP reply for the result of an applied write.
std::string FormatResult(const structures::OpResult& result);

}  // namespace blizzard::node

#endif  // BLIZZARD_NODE_COMMANDS_H_
