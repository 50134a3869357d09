#include "node/commands.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace blizzard::node {
namespace {

using structures::OpCode;

Command Parse(std::vector<std::string> args) { return ParseCommand(args); }

TEST(CommandsTest, LocalCommandsAnswerAtOnce) {
  EXPECT_EQ(Parse({"PING"}).reply, "+PONG\r\n");
  EXPECT_EQ(Parse({"ping", "hi"}).reply, "$2\r\nhi\r\n");
  EXPECT_EQ(Parse({"ECHO", "x"}).reply, "$1\r\nx\r\n");
  EXPECT_EQ(Parse({"CONFIG", "GET", "appendonly"}).reply,
            "*2\r\n$10\r\nappendonly\r\n$2\r\nno\r\n");
  EXPECT_EQ(Parse({"CONFIG", "GET", "other"}).reply, "*0\r\n");
  EXPECT_EQ(Parse({"info"}).kind, CommandKind::kInfo);
  EXPECT_EQ(Parse({"QUIT"}).kind, CommandKind::kQuit);
}

TEST(CommandsTest, UnknownCommandAndArityErrorsAreRedisStyle) {
  EXPECT_EQ(Parse({"FOO", "a"}).reply,
            "-ERR unknown command 'FOO', with args beginning with: 'a' \r\n");
  EXPECT_EQ(Parse({"GET"}).reply,
            "-ERR wrong number of arguments for 'get' command\r\n");
  EXPECT_EQ(Parse({"get", "a", "b"}).reply,
            "-ERR wrong number of arguments for 'get' command\r\n");
  EXPECT_EQ(Parse({"MSET", "a", "1", "b"}).reply,
            "-ERR wrong number of arguments for 'mset' command\r\n");
  EXPECT_EQ(Parse({"PING", "a", "b"}).reply,
            "-ERR wrong number of arguments for 'ping' command\r\n");
  EXPECT_EQ(Parse({}).kind, CommandKind::kReply);
}

// CLUSTER and SESSION are the event loop's: the table checks their arity.
TEST(CommandsTest, ClusterAndSessionGoToTheEventLoop) {
  EXPECT_EQ(Parse({"CLUSTER", "MEMBERS"}).kind, CommandKind::kCluster);
  EXPECT_EQ(Parse({"cluster", "addlearner", "4"}).kind, CommandKind::kCluster);
  EXPECT_EQ(Parse({"CLUSTER"}).reply,
            "-ERR wrong number of arguments for 'cluster' command\r\n");
  EXPECT_EQ(Parse({"SESSION", "1", "1", "INCR", "k"}).kind, CommandKind::kSession);
  EXPECT_EQ(Parse({"session", "1", "1"}).reply,
            "-ERR wrong number of arguments for 'session' command\r\n");
}

TEST(CommandsTest, WritesBecomeOps) {
  Command set = Parse({"SET", "k", "v"});
  ASSERT_EQ(set.kind, CommandKind::kWrite);
  EXPECT_EQ(set.op.code, OpCode::kSet);
  EXPECT_EQ(set.op.args, (std::vector<std::string>{"k", "v"}));

  Command incr = Parse({"incr", "n"});
  ASSERT_EQ(incr.kind, CommandKind::kWrite);
  EXPECT_EQ(incr.op.code, OpCode::kIncrBy);
  EXPECT_EQ(incr.op.delta, 1);
  EXPECT_EQ(Parse({"DECR", "n"}).op.delta, -1);
  EXPECT_EQ(Parse({"INCRBY", "n", "-42"}).op.delta, -42);
  EXPECT_EQ(Parse({"DECRBY", "n", "7"}).op.delta, -7);

  Command del = Parse({"DEL", "a", "b"});
  EXPECT_EQ(del.op.code, OpCode::kDel);
  EXPECT_EQ(del.op.args.size(), 2u);
  EXPECT_EQ(Parse({"MSET", "a", "1", "b", "2"}).op.code, OpCode::kMSet);
  EXPECT_EQ(Parse({"APPEND", "a", "x"}).op.code, OpCode::kAppend);
}

TEST(CommandsTest, IntegerArgumentsAreStrict) {
  for (const char* bad : {"", " 1", "1 ", "+1", "01", "1.5", "abc", "-0",
                          "9223372036854775808", "99999999999999999999999"}) {
    EXPECT_EQ(Parse({"INCRBY", "k", bad}).reply,
              "-ERR value is not an integer or out of range\r\n")
        << "'" << bad << "'";
  }
  EXPECT_EQ(Parse({"INCRBY", "k", "-9223372036854775808"}).op.delta, INT64_MIN);
  EXPECT_EQ(Parse({"DECRBY", "k", "-9223372036854775808"}).reply,
            "-ERR decrement would overflow\r\n");
}

TEST(CommandsTest, SetOptionsAreRefused) {
  EXPECT_EQ(Parse({"SET", "k", "v", "EX", "10"}).kind, CommandKind::kReply);
}

TEST(CommandsTest, ReadsAreClassified) {
  for (const char* name : {"GET", "STRLEN"}) {
    EXPECT_EQ(Parse({name, "k"}).kind, CommandKind::kRead);
  }
  EXPECT_EQ(Parse({"MGET", "a", "b"}).kind, CommandKind::kRead);
  EXPECT_EQ(Parse({"EXISTS", "a", "b"}).kind, CommandKind::kRead);
  EXPECT_EQ(Parse({"DBSIZE"}).kind, CommandKind::kRead);
}

TEST(CommandsTest, FormatResult) {
  using K = structures::OpResult::Kind;
  EXPECT_EQ(FormatResult({K::kOk, 0, ""}), "+OK\r\n");
  EXPECT_EQ(FormatResult({K::kInteger, -3, ""}), ":-3\r\n");
  EXPECT_EQ(FormatResult({K::kBulk, 0, "ab"}), "$2\r\nab\r\n");
  EXPECT_EQ(FormatResult({K::kNil, 0, ""}), "$-1\r\n");
  EXPECT_EQ(FormatResult({K::kError, 0, "ERR x"}), "-ERR x\r\n");
}

}  // namespace
}  // namespace blizzard::node
