// Golden-trace tests in the style of etcd's raft interaction tests: each
// consensus/testdata/*.txt is a script of commands (testing/datadriven.h),
// each followed by the expected trace of every Ready handled and message
// delivered (testing/trace.h). The scripts run on the test cluster
// (testing/cluster.h), so every safety check runs too.
//
// To rewrite the expected traces after an intended change, run
//   REWRITE=1 bazel run //consensus:interaction_test
// and review the diff of consensus/testdata/.
//
// Commands (ids are node ids; L a leader):
//   add-nodes N [pre-vote=B] [check-quorum=B] [lease-reads=B]
//       [lease-margin=T] [election=T] [heartbeat=T] [chunk-bytes=N]
//       [inflight-chunks=N] [stall-ticks=T] [inflight-appends=N]
//       [append-bytes=N] [broadcast-commit=B]
//                         first call: a new group of voters 1..N (pre-vote
//                         and check-quorum off unless asked); later calls:
//                         N more nodes outside the group
//   campaign ID           campaign now (pre-vote if configured)
//   tick ID [N]           tick one node N times (delivers nothing)
//   tick-all [N]          tick every node, delivering what is due
//   deliver-msgs [ID...] [from=ID] [type=T] [count=N]
//                         deliver the messages in flight now (to the ids,
//                         all if none; the first N matching); what that
//                         causes stays in flight
//   drop-msgs [to=ID] [from=ID] [type=T] [count=N]
//   stabilize             deliver until no message is left
//   propose ID DATA       a proposal
//   add-learner L ID | add-voter L ID | remove-node L ID
//   transfer-leadership L ID
//   read-index L CTX
//   compact ID [keep=N]   snapshot the state machine at its applied index
//                         and compact the log, keeping N entries before it
//   isolate ID | cut A B | heal
//   crash ID | restart ID
//   status ID | log ID | applied ID | raft-state
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "consensus/testing/cluster.h"
#include "consensus/testing/datadriven.h"
#include "consensus/testing/trace.h"
#include "gtest/gtest.h"

namespace blizzard::consensus {
namespace {

using testing::Cluster;
using testing::ClusterOptions;
using testing::ScriptCommand;

constexpr char kTestdataDir[] = "consensus/testdata";

absl::StatusOr<uint64_t> ParseU64(const std::string& s) {
  uint64_t v = 0;
  if (!absl::SimpleAtoi(s, &v)) {
    return absl::InvalidArgumentError(absl::StrCat("not a number: ", s));
  }
  return v;
}

absl::StatusOr<bool> ParseBool(const std::string& s) {
  if (s == "true") return true;
  if (s == "false") return false;
  return absl::InvalidArgumentError(absl::StrCat("not a bool: ", s));
}

absl::StatusOr<MessageType> ParseType(const std::string& s) {
  for (uint8_t t = 1; IsValidMessageType(t); ++t) {
    if (s == MessageTypeName(static_cast<MessageType>(t))) {
      return static_cast<MessageType>(t);
    }
  }
  return absl::InvalidArgumentError(absl::StrCat("unknown message type: ", s));
}

// The state of one script: a cluster, created by the first add-nodes.
class Env {
 public:
  // Runs one command; returns its output ("ok" if it printed nothing).
  std::string Run(const std::string& line) {
    trace_.clear();
    std::string out;
    absl::Status status = Dispatch(testing::ParseCommand(line), out);
    std::string result = trace_ + out;
    if (!status.ok()) absl::StrAppend(&result, "error: ", status.ToString(), "\n");
    if (cluster_ != nullptr) {
      for (size_t i = reported_violations_; i < cluster_->violations().size(); ++i) {
        absl::StrAppend(&result, "VIOLATION: ", cluster_->violations()[i], "\n");
      }
      reported_violations_ = cluster_->violations().size();
    }
    while (!result.empty() && result.back() == '\n') result.pop_back();
    return result.empty() ? "ok" : result;
  }

  const Cluster* cluster() const { return cluster_.get(); }

 private:
  absl::StatusOr<NodeId> Id(const ScriptCommand& c, size_t i) {
    if (i >= c.args.size()) {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: missing argument %d", c.name, i + 1));
    }
    absl::StatusOr<uint64_t> id = ParseU64(c.args[i]);
    if (!id.ok()) return id.status();
    if (cluster_ == nullptr ||
        std::find(cluster_->ids().begin(), cluster_->ids().end(), *id) ==
            cluster_->ids().end()) {
      return absl::InvalidArgumentError(absl::StrCat("no node ", *id));
    }
    return *id;
  }

  absl::StatusOr<NodeId> UpId(const ScriptCommand& c, size_t i) {
    absl::StatusOr<NodeId> id = Id(c, i);
    if (id.ok() && !cluster_->IsUp(*id)) {
      return absl::FailedPreconditionError(absl::StrCat("node ", *id, " is down"));
    }
    return id;
  }

  // One add-nodes option: a flag or a number of the Config.
  static absl::Status SetOption(Config& cfg, const std::string& key,
                                const std::string& value) {
    using Flag = bool Config::*;
    using Int = int Config::*;
    using U64 = uint64_t Config::*;
    static const std::map<std::string, Flag> kFlags = {
        {"pre-vote", &Config::pre_vote},
        {"check-quorum", &Config::check_quorum},
        {"lease-reads", &Config::lease_reads},
        {"broadcast-commit", &Config::broadcast_commit}};
    static const std::map<std::string, Int> kInts = {
        {"lease-margin", &Config::lease_drift_margin_ticks},
        {"election", &Config::election_timeout_ticks},
        {"heartbeat", &Config::heartbeat_interval_ticks},
        {"inflight-chunks", &Config::snapshot_inflight_chunks_max},
        {"stall-ticks", &Config::snapshot_stall_ticks},
        {"inflight-appends", &Config::inflight_appends_max}};
    static const std::map<std::string, U64> kU64s = {
        {"chunk-bytes", &Config::snapshot_chunk_bytes},
        {"append-bytes", &Config::append_bytes_max}};
    if (auto it = kFlags.find(key); it != kFlags.end()) {
      absl::StatusOr<bool> flag = ParseBool(value);
      if (!flag.ok()) return flag.status();
      cfg.*(it->second) = *flag;
      return absl::OkStatus();
    }
    absl::StatusOr<uint64_t> num = ParseU64(value);
    if (auto it = kInts.find(key); it != kInts.end() && num.ok()) {
      cfg.*(it->second) = static_cast<int>(*num);
      return absl::OkStatus();
    }
    if (auto it = kU64s.find(key); it != kU64s.end() && num.ok()) {
      cfg.*(it->second) = *num;
      return absl::OkStatus();
    }
    return absl::InvalidArgumentError(absl::StrCat("bad option ", key, "=", value));
  }

  absl::Status AddNodes(const ScriptCommand& c, std::string& out) {
    if (c.args.size() != 1) return absl::InvalidArgumentError("add-nodes N");
    absl::StatusOr<uint64_t> n = ParseU64(c.args[0]);
    if (!n.ok()) return n.status();
    if (cluster_ != nullptr) {
      std::vector<NodeId> added;
      for (uint64_t i = 0; i < *n; ++i) added.push_back(cluster_->AddNode());
      absl::StrAppend(&out, "added ", absl::StrJoin(added, " "),
                      " (not members)\n");
      return absl::OkStatus();
    }
    ClusterOptions o;
    o.nodes = static_cast<int>(*n);
    o.seed = 1;
    Config& cfg = o.config;
    cfg.pre_vote = false;
    cfg.check_quorum = false;
    for (const auto& [key, value] : c.kwargs) {
      absl::Status s = SetOption(cfg, key, value);
      if (!s.ok()) return s;
    }
    cluster_ = std::make_unique<Cluster>(o);
    cluster_->set_trace(&trace_);
    absl::StrAppend(&out, "voters ", absl::StrJoin(cluster_->ids(), " "), "\n");
    return absl::OkStatus();
  }

  // Messages in flight matching the command's filters.
  absl::StatusOr<std::function<bool(const Message&)>> Filter(
      const ScriptCommand& c, bool positional_to) {
    std::vector<NodeId> to;
    if (positional_to) {
      for (size_t i = 0; i < c.args.size(); ++i) {
        absl::StatusOr<NodeId> id = Id(c, i);
        if (!id.ok()) return id.status();
        to.push_back(*id);
      }
    }
    NodeId from = kNoNode;
    std::optional<MessageType> type;
    uint64_t count = UINT64_MAX;
    for (const auto& [key, value] : c.kwargs) {
      if (key == "from" || key == "to") {
        absl::StatusOr<uint64_t> id = ParseU64(value);
        if (!id.ok()) return id.status();
        if (key == "from") {
          from = *id;
        } else {
          to.push_back(*id);
        }
      } else if (key == "type") {
        absl::StatusOr<MessageType> t = ParseType(value);
        if (!t.ok()) return t.status();
        type = *t;
      } else if (key == "count") {
        absl::StatusOr<uint64_t> n = ParseU64(value);
        if (!n.ok()) return n.status();
        count = *n;
      } else {
        return absl::InvalidArgumentError(absl::StrCat("unknown filter ", key));
      }
    }
    // The first `count` matches only (DropIf and DeliverPending ask in
    // delivery order, once per message).
    auto remaining = std::make_shared<uint64_t>(count);
    return [to, from, type, remaining](const Message& m) {
      const bool match =
          (to.empty() || std::find(to.begin(), to.end(), m.to) != to.end()) &&
          (from == kNoNode || m.from == from) &&
          (!type.has_value() || m.type == *type) && *remaining > 0;
      if (match) --*remaining;
      return match;
    };
  }

  absl::Status ChangeMembership(const ScriptCommand& c, MembershipChangeType t,
                                std::string& out) {
    absl::StatusOr<NodeId> leader = UpId(c, 0);
    if (!leader.ok()) return leader.status();
    absl::StatusOr<uint64_t> node = c.args.size() > 1
                                        ? ParseU64(c.args[1])
                                        : absl::InvalidArgumentError("node id");
    if (!node.ok()) return node.status();
    absl::StatusOr<Index> index =
        cluster_->ChangeMembership(*leader, MembershipChange{t, *node});
    if (!index.ok()) return index.status();
    absl::StrAppend(&out, "index ", *index, "\n");
    return absl::OkStatus();
  }

  void PrintLog(NodeId id, std::string& out) {
    const MemoryStorage& s = cluster_->storage(id);
    const SnapshotMeta snap = s.LastSnapshot();
    if (snap.index > 0) {
      absl::StrAppendFormat(&out, "snapshot %d/%d %s, %d bytes\n", snap.index,
                            snap.term, DebugString(snap.membership), snap.bytes);
    }
    absl::StrAppendFormat(&out, "log [%d, %d]\n", s.FirstIndex(), s.LastIndex());
    if (s.LastIndex() >= s.FirstIndex()) {
      const std::vector<Entry> entries =
          *s.Entries(s.FirstIndex(), s.LastIndex() + 1, UINT64_MAX);
      for (const Entry& e : entries) {
        absl::StrAppend(&out, "  ", testing::FormatEntry(e), "\n");
      }
    }
    const HardState hs = s.InitialHardState();
    absl::StrAppendFormat(&out, "hard state term=%d vote=%d commit=%d\n",
                          hs.term, hs.vote, hs.commit);
  }

  absl::Status Dispatch(const ScriptCommand& c, std::string& out) {
    if (c.name == "add-nodes") return AddNodes(c, out);
    if (cluster_ == nullptr) {
      return absl::FailedPreconditionError("add-nodes first");
    }
    if (c.name == "campaign") {
      absl::StatusOr<NodeId> id = UpId(c, 0);
      if (!id.ok()) return id.status();
      cluster_->Campaign(*id);
      return absl::OkStatus();
    }
    if (c.name == "tick" || c.name == "tick-all") {
      const bool all = c.name == "tick-all";
      const size_t count_arg = all ? 0 : 1;
      absl::StatusOr<NodeId> id = all ? NodeId{0} : UpId(c, 0);
      if (!id.ok()) return id.status();
      absl::StatusOr<uint64_t> n = c.args.size() > count_arg
                                       ? ParseU64(c.args[count_arg])
                                       : uint64_t{1};
      if (!n.ok()) return n.status();
      for (uint64_t i = 0; i < *n; ++i) {
        if (all) {
          cluster_->Tick();
        } else {
          cluster_->TickNode(*id);
        }
      }
      return absl::OkStatus();
    }
    if (c.name == "deliver-msgs" || c.name == "drop-msgs") {
      const bool deliver = c.name == "deliver-msgs";
      auto filter = Filter(c, /*positional_to=*/deliver);
      if (!filter.ok()) return filter.status();
      if (deliver) {
        cluster_->DeliverPending(*filter);
      } else {
        cluster_->DropIf(*filter);
      }
      return absl::OkStatus();
    }
    if (c.name == "stabilize") {
      cluster_->Stabilize();
      return absl::OkStatus();
    }
    if (c.name == "propose") {
      absl::StatusOr<NodeId> id = UpId(c, 0);
      if (!id.ok()) return id.status();
      if (c.args.size() != 2) return absl::InvalidArgumentError("propose ID DATA");
      absl::StatusOr<Index> index = cluster_->Propose(*id, c.args[1]);
      if (!index.ok()) return index.status();
      absl::StrAppend(&out, "index ", *index, "\n");
      return absl::OkStatus();
    }
    if (c.name == "add-learner") {
      return ChangeMembership(c, MembershipChangeType::kAddLearner, out);
    }
    if (c.name == "add-voter") {
      return ChangeMembership(c, MembershipChangeType::kAddVoter, out);
    }
    if (c.name == "remove-node") {
      return ChangeMembership(c, MembershipChangeType::kRemoveNode, out);
    }
    if (c.name == "transfer-leadership") {
      absl::StatusOr<NodeId> leader = UpId(c, 0);
      absl::StatusOr<NodeId> target = Id(c, 1);
      if (!leader.ok()) return leader.status();
      if (!target.ok()) return target.status();
      return cluster_->TransferLeadership(*leader, *target);
    }
    if (c.name == "read-index") {
      absl::StatusOr<NodeId> id = UpId(c, 0);
      if (!id.ok()) return id.status();
      absl::StatusOr<uint64_t> ctx = c.args.size() > 1
                                         ? ParseU64(c.args[1])
                                         : absl::InvalidArgumentError("context");
      if (!ctx.ok()) return ctx.status();
      return cluster_->ReadIndex(*id, *ctx);
    }
    if (c.name == "compact") {
      absl::StatusOr<NodeId> id = UpId(c, 0);
      if (!id.ok()) return id.status();
      uint64_t keep = 0;
      if (auto it = c.kwargs.find("keep"); it != c.kwargs.end()) {
        absl::StatusOr<uint64_t> k = ParseU64(it->second);
        if (!k.ok()) return k.status();
        keep = *k;
      }
      absl::Status s = cluster_->Compact(*id, keep);
      if (!s.ok()) return s;
      PrintLog(*id, out);
      return absl::OkStatus();
    }
    if (c.name == "isolate" || c.name == "crash" || c.name == "restart") {
      absl::StatusOr<NodeId> id = Id(c, 0);
      if (!id.ok()) return id.status();
      if (c.name == "isolate") {
        cluster_->Isolate(*id);
      } else if (c.name == "crash") {
        cluster_->Crash(*id);
      } else {
        return cluster_->Restart(*id);
      }
      return absl::OkStatus();
    }
    if (c.name == "cut") {
      absl::StatusOr<NodeId> a = Id(c, 0);
      absl::StatusOr<NodeId> b = Id(c, 1);
      if (!a.ok()) return a.status();
      if (!b.ok()) return b.status();
      cluster_->CutLink(*a, *b);
      return absl::OkStatus();
    }
    if (c.name == "heal") {
      cluster_->Heal();
      return absl::OkStatus();
    }
    if (c.name == "status") {
      absl::StatusOr<NodeId> id = UpId(c, 0);
      if (!id.ok()) return id.status();
      Raft& r = cluster_->node(*id);
      absl::StrAppend(&out, r.DebugString(), "\n");
      if (r.role() == Role::kLeader) {
        for (NodeId peer : cluster_->ids()) {
          if (peer != *id && r.membership().IsMember(peer)) {
            absl::StrAppendFormat(&out, "  %d: match=%d\n", peer,
                                  r.match_index(peer));
          }
        }
        if (r.transfer_target() != kNoNode) {
          absl::StrAppendFormat(&out, "  transferring to %d\n",
                                r.transfer_target());
        }
      }
      return absl::OkStatus();
    }
    if (c.name == "log") {
      absl::StatusOr<NodeId> id = Id(c, 0);
      if (!id.ok()) return id.status();
      PrintLog(*id, out);
      return absl::OkStatus();
    }
    if (c.name == "applied") {
      absl::StatusOr<NodeId> id = Id(c, 0);
      if (!id.ok()) return id.status();
      std::vector<std::string> data;
      for (const Entry& e : cluster_->applied(*id)) {
        if (e.type == EntryType::kNormal) data.push_back(e.data);
      }
      absl::StrAppendFormat(&out, "applied %d: [%s]\n",
                            cluster_->applied(*id).size(),
                            absl::StrJoin(data, " "));
      return absl::OkStatus();
    }
    if (c.name == "raft-state") {
      for (NodeId id : cluster_->ids()) {
        if (!cluster_->IsUp(id)) {
          absl::StrAppendFormat(&out, "%d: down\n", id);
          continue;
        }
        const Raft& r = cluster_->node(id);
        absl::StrAppendFormat(&out, "%d: %s term=%d leader=%d commit=%d %s\n",
                              id, RoleName(r.role()), r.term(), r.leader(),
                              r.commit_index(), DebugString(r.membership()));
      }
      return absl::OkStatus();
    }
    return absl::InvalidArgumentError(absl::StrCat("unknown command ", c.name));
  }

  std::unique_ptr<Cluster> cluster_;
  std::string trace_;
  size_t reported_violations_ = 0;
};

std::vector<std::string> TestdataFiles() {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(kTestdataDir, ec)) {
    if (entry.path().extension() == ".txt") {
      files.push_back(entry.path().filename().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

// The scripts are found through the runfiles tree: an empty list would
// make the parameterized test vanish silently.
TEST(InteractionTestdata, OneScriptPerFeatureIsPresent) {
  const std::vector<std::string> files = TestdataFiles();
  for (const char* name :
       {"election.txt", "pre_vote.txt", "check_quorum.txt", "replication.txt",
        "read_index.txt", "lease_reads.txt", "snapshot.txt",
        "snapshot_faults.txt", "membership.txt", "leadership_transfer.txt"}) {
    EXPECT_NE(std::find(files.begin(), files.end(), name), files.end()) << name;
  }
}

class InteractionTest : public ::testing::TestWithParam<std::string> {};

TEST_P(InteractionTest, MatchesGoldenTrace) {
  const std::string path = absl::StrCat(kTestdataDir, "/", GetParam());
  std::ifstream in(path);
  ASSERT_TRUE(in.good()) << path;
  std::stringstream text;
  text << in.rdbuf();
  absl::StatusOr<testing::DataDrivenFile> file =
      testing::ParseDataDriven(text.str());
  ASSERT_TRUE(file.ok()) << path << ": " << file.status();

  const bool rewrite = std::getenv("REWRITE") != nullptr;
  Env env;
  std::vector<std::string> actual;
  for (const testing::DataDrivenCase& c : file->cases) {
    actual.push_back(env.Run(c.command));
    if (!rewrite) {
      EXPECT_EQ(actual.back(), c.expected)
          << path << ":" << c.line << ": " << c.command;
    }
    EXPECT_EQ(actual.back().find("VIOLATION"), std::string::npos)
        << path << ":" << c.line;
  }
  if (env.cluster() != nullptr) {
    EXPECT_TRUE(env.cluster()->violations().empty()) << path;
  }

  if (rewrite) {
    const char* workspace = std::getenv("BUILD_WORKSPACE_DIRECTORY");
    ASSERT_NE(workspace, nullptr)
        << "REWRITE=1 needs `bazel run` (BUILD_WORKSPACE_DIRECTORY)";
    const std::string target = absl::StrCat(workspace, "/", path);
    std::ofstream out(target, std::ios::trunc);
    out << testing::RenderDataDriven(*file, actual);
    ASSERT_TRUE(out.good()) << "cannot write " << target;
  }
}

INSTANTIATE_TEST_SUITE_P(Testdata, InteractionTest,
                         ::testing::ValuesIn(TestdataFiles()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param.substr(
                               0, info.param.size() - 4);  // ".txt"
                           for (char& ch : name) {
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return name;
                         });

}  // namespace
}  // namespace blizzard::consensus
