#include "node/commands.h"

#include <string>
#include <vector>

#include <cmath>
#include <memory>

#include "gtest/gtest.h"
#include "structures/sim_memory.h"

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
  EXPECT_EQ(FormatResult({K::kOk, 0, "", {}}), "+OK\r\n");
  EXPECT_EQ(FormatResult({K::kInteger, -3, "", {}}), ":-3\r\n");
  EXPECT_EQ(FormatResult({K::kBulk, 0, "ab", {}}), "$2\r\nab\r\n");
  EXPECT_EQ(FormatResult({K::kNil, 0, "", {}}), "$-1\r\n");
  EXPECT_EQ(FormatResult({K::kError, 0, "ERR x", {}}), "-ERR x\r\n");
  EXPECT_EQ(FormatResult({K::kArray, 0, "", {"a", "bc"}}), "*2\r\n$1\r\na\r\n$2\r\nbc\r\n");
  EXPECT_EQ(FormatResult({K::kArray, 0, "", {}}), "*0\r\n");
  EXPECT_EQ(FormatResult({K::kNilArray, 0, "", {}}), "*-1\r\n");
}

TEST(CommandsTest, TypedWritesBecomeOps) {
  Command push = Parse({"LPUSH", "l", "a", "b"});
  ASSERT_EQ(push.kind, CommandKind::kWrite);
  EXPECT_EQ(push.op.code, OpCode::kLPush);
  EXPECT_EQ(push.op.args, (std::vector<std::string>{"l", "a", "b"}));
  EXPECT_EQ(Parse({"rpush", "l", "a"}).op.code, OpCode::kRPush);
  EXPECT_EQ(Parse({"LPOP", "l"}).op.delta, structures::kNoCount);
  EXPECT_EQ(Parse({"RPOP", "l", "3"}).op.delta, 3);
  EXPECT_EQ(Parse({"LPOP", "l", "-1"}).reply, "-ERR value is out of range, must be positive\r\n");
  EXPECT_EQ(Parse({"LPOP", "l", "x"}).reply, "-ERR value is out of range, must be positive\r\n");
  EXPECT_EQ(Parse({"LPOP", "l", "1", "2"}).reply,
            "-ERR wrong number of arguments for 'lpop' command\r\n");
  EXPECT_EQ(Parse({"SADD", "s", "m"}).op.code, OpCode::kSAdd);
  EXPECT_EQ(Parse({"SREM", "s", "m", "n"}).op.args.size(), 3u);
  Command zadd = Parse({"ZADD", "z", "1.5", "a", "-inf", "b"});
  ASSERT_EQ(zadd.kind, CommandKind::kWrite);
  EXPECT_EQ(zadd.op.args, (std::vector<std::string>{"z", "a", "b"}));
  EXPECT_EQ(zadd.op.scores, (std::vector<double>{1.5, -HUGE_VAL}));
  EXPECT_EQ(Parse({"ZADD", "z", "1", "a", "2"}).reply, "-ERR syntax error\r\n");
  EXPECT_EQ(Parse({"ZADD", "z", "nan", "a"}).reply, "-ERR value is not a valid float\r\n");
  EXPECT_EQ(Parse({"ZADD", "z", "x", "a"}).reply, "-ERR value is not a valid float\r\n");
  EXPECT_EQ(Parse({"ZADD", "z", "NX", "1", "a"}).kind, CommandKind::kReply);
  EXPECT_EQ(Parse({"ZPOPMIN", "z"}).op.code, OpCode::kZPopMin);
  EXPECT_EQ(Parse({"ZPOPMAX", "z", "2"}).op.delta, 2);
  EXPECT_EQ(Parse({"ZREM", "z", "a"}).op.code, OpCode::kZRem);
  for (const char* name : {"TYPE", "LLEN", "SMEMBERS", "SCARD", "ZCARD"}) {
    EXPECT_EQ(Parse({name, "k"}).kind, CommandKind::kRead) << name;
  }
  EXPECT_EQ(Parse({"ZRANGE", "z", "0", "-1", "WITHSCORES"}).kind, CommandKind::kRead);
}

class ReadTest : public ::testing::Test {
 protected:
  ReadTest() : mem_(1 << 20) {
    auto s = structures::KvStore::OpenMemory(&mem_);
    EXPECT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }
  void Write(std::vector<std::string> args) {
    Command c = Parse(std::move(args));
    ASSERT_EQ(c.kind, CommandKind::kWrite) << c.reply;
    ASSERT_TRUE(store_->ApplyBatch(store_->AppliedIndex() + 1, {c.op}).ok());
  }
  std::string Read(std::vector<std::string> args) {
    EXPECT_EQ(Parse(args).kind, CommandKind::kRead);
    return ExecuteRead(args, *store_);
  }
  structures::SimMemory mem_;
  std::unique_ptr<structures::KvStore> store_;
};

constexpr char kWrongType[] =
    "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";

TEST_F(ReadTest, TypedReadsAndWrongType) {
  Write({"SET", "s", "v"});
  Write({"RPUSH", "l", "a", "b", "c"});
  Write({"SADD", "S", "m"});
  Write({"ZADD", "z", "1", "one", "2.5", "two", "3", "three"});
  EXPECT_EQ(Read({"TYPE", "s"}), "+string\r\n");
  EXPECT_EQ(Read({"TYPE", "l"}), "+list\r\n");
  EXPECT_EQ(Read({"TYPE", "S"}), "+set\r\n");
  EXPECT_EQ(Read({"TYPE", "z"}), "+zset\r\n");
  EXPECT_EQ(Read({"TYPE", "none"}), "+none\r\n");
  EXPECT_EQ(Read({"EXISTS", "s", "l", "S", "z", "x"}), ":4\r\n");
  EXPECT_EQ(Read({"GET", "l"}), kWrongType);
  EXPECT_EQ(Read({"STRLEN", "z"}), kWrongType);
  EXPECT_EQ(Read({"MGET", "s", "l"}), "*2\r\n$1\r\nv\r\n$-1\r\n");
  EXPECT_EQ(Read({"LRANGE", "l", "0", "-1"}), "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n");
  EXPECT_EQ(Read({"LRANGE", "l", "x", "1"}), "-ERR value is not an integer or out of range\r\n");
  EXPECT_EQ(Read({"LINDEX", "l", "-1"}), "$1\r\nc\r\n");
  EXPECT_EQ(Read({"LINDEX", "l", "5"}), "$-1\r\n");
  EXPECT_EQ(Read({"LLEN", "l"}), ":3\r\n");
  EXPECT_EQ(Read({"LLEN", "s"}), kWrongType);
  EXPECT_EQ(Read({"SMEMBERS", "S"}), "*1\r\n$1\r\nm\r\n");
  EXPECT_EQ(Read({"SISMEMBER", "S", "m"}), ":1\r\n");
  EXPECT_EQ(Read({"SCARD", "l"}), kWrongType);
  EXPECT_EQ(Read({"SCARD", "missing"}), ":0\r\n");
  EXPECT_EQ(Read({"ZSCORE", "z", "two"}), "$3\r\n2.5\r\n");
  EXPECT_EQ(Read({"ZSCORE", "z", "four"}), "$-1\r\n");
  EXPECT_EQ(Read({"ZCARD", "z"}), ":3\r\n");
  EXPECT_EQ(Read({"ZRANGE", "z", "0", "0", "WITHSCORES"}),
            "*2\r\n$3\r\none\r\n$1\r\n1\r\n");
  EXPECT_EQ(Read({"ZRANGE", "z", "0", "-1", "REV"}),
            "-ERR syntax error (ZRANGE options other than WITHSCORES are not supported)\r\n");
  EXPECT_EQ(Read({"ZRANGEBYSCORE", "z", "(1", "+inf"}),
            "*2\r\n$3\r\ntwo\r\n$5\r\nthree\r\n");
  EXPECT_EQ(Read({"ZRANGEBYSCORE", "z", "-inf", "+inf", "LIMIT", "1", "1", "WITHSCORES"}),
            "*2\r\n$3\r\ntwo\r\n$3\r\n2.5\r\n");
  EXPECT_EQ(Read({"ZRANGEBYSCORE", "z", "a", "1"}), "-ERR min or max is not a float\r\n");
  EXPECT_EQ(Read({"ZRANGEBYSCORE", "l", "0", "1"}), kWrongType);
}

}  // namespace
}  // namespace blizzard::node
