#include "tools/sim/sim_client.h"

#include <algorithm>

#include "absl/base/internal/raw_logging.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace blizzard::sim {
namespace {

lincheck::OpKind ToLincheck(OpKind kind) {
  switch (kind) {
    case OpKind::kGet: return lincheck::OpKind::kGet;
    case OpKind::kPut: return lincheck::OpKind::kPut;
    case OpKind::kAppend: return lincheck::OpKind::kAppend;
    case OpKind::kDelete: return lincheck::OpKind::kDelete;
    case OpKind::kCas: return lincheck::OpKind::kCas;
  }
  return lincheck::OpKind::kGet;
}

}  // namespace

SimClient::SimClient(const ClientOptions& options, uint64_t seed, transport::Transport* endpoint,
                     Trace* trace)
    : options_(options), random_(seed), endpoint_(endpoint), trace_(trace) {
  ABSL_RAW_CHECK(!options_.nodes.empty() && options_.keys > 0 && options_.attempts_max > 0 &&
                     options_.timeout_us > 0 && options_.id != 0,
                 "invalid client options");
  const OpMix& m = options_.mix;
  ABSL_RAW_CHECK(m.get >= 0 && m.put >= 0 && m.append >= 0 && m.del >= 0 && m.cas >= 0 &&
                     m.get + m.put + m.append + m.del + m.cas > 0,
                 "the op mix needs a positive weight");
}

uint64_t SimClient::NextNode(uint64_t after) const {
  auto it = std::find(options_.nodes.begin(), options_.nodes.end(), after);
  if (it == options_.nodes.end() || std::next(it) == options_.nodes.end()) {
    return options_.nodes.front();
  }
  return *std::next(it);
}

Command SimClient::NextCommand() {
  const OpMix& m = options_.mix;
  const uint64_t total = static_cast<uint64_t>(m.get + m.put + m.append + m.del + m.cas);
  uint64_t roll = random_.Uniform(0, total - 1);
  Command c;
  c.client = options_.id;
  c.seq = next_seq_++;
  c.key = absl::StrCat("k", random_.Uniform(0, static_cast<uint64_t>(options_.keys) - 1));
  const auto pick = [&roll](int weight) {
    if (roll < static_cast<uint64_t>(weight)) return true;
    roll -= static_cast<uint64_t>(weight);
    return false;
  };
  if (pick(m.get)) {
    c.kind = OpKind::kGet;
  } else if (pick(m.put)) {
    c.kind = OpKind::kPut;
    c.value = absl::StrFormat("p%d.%d", c.client, c.seq);
  } else if (pick(m.append)) {
    c.kind = OpKind::kAppend;
    c.value = absl::StrFormat("a%d.%d;", c.client, c.seq);
  } else if (pick(m.del)) {
    c.kind = OpKind::kDelete;
  } else {
    c.kind = OpKind::kCas;
    c.value = absl::StrFormat("c%d.%d", c.client, c.seq);
    // Mostly what this client saw last (so swaps happen), sometimes "absent".
    auto seen = last_seen_.find(c.key);
    if (seen != last_seen_.end() && random_.Chance(0.8)) {
      c.expected = seen->second;
    }
  }
  return c;
}

void SimClient::Step(int64_t now_us, bool issue) {
  (void)endpoint_->Poll([this, now_us](transport::NodeId from, absl::Span<const uint8_t> bytes) {
    absl::StatusOr<Reply> reply = DecodeReply(bytes);
    if (!reply.ok() || reply->client != options_.id || !current_.has_value() ||
        reply->seq != current_->command.seq) {
      return;  // Junk, or a late answer to an operation already finished.
    }
    // Any node's OK settles the operation (an earlier attempt may have been
    // applied); other answers only matter from the node asked last.
    if (reply->status != ReplyStatus::kOk && from != current_->target) return;
    OnReply(now_us, *reply);
  });
  if (current_.has_value()) {
    if (current_->resend_at_us <= now_us) {
      Send(now_us);
    } else if (current_->resend_at_us == kNever && current_->deadline_us <= now_us) {
      ++stats_.timeouts;
      trace_->Event(now_us, "timeout", {options_.id, current_->command.seq, current_->target},
                    [&] {
                      return absl::StrFormat("client %d #%d: no answer from node %d", options_.id,
                                             current_->command.seq, current_->target);
                    });
      Retry(now_us, NextNode(current_->target), 0);
    }
    return;
  }
  if (!issue || now_us < next_issue_us_) return;
  Command c = NextCommand();
  lincheck::Operation op;
  op.client = options_.id;
  op.kind = ToLincheck(c.kind);
  op.key = c.key;
  op.value = c.value;
  op.expected = c.expected;
  op.call_time = now_us;
  history_.push_back(std::move(op));
  history_seqs_.push_back(c.seq);
  const uint64_t target = preferred_ != 0
                              ? preferred_
                              : options_.nodes[random_.Uniform(0, options_.nodes.size() - 1)];
  current_ = Outstanding{std::move(c), history_.size() - 1, 0, target, 0, kNever};
  trace_->Event(now_us, "invoke", {options_.id, current_->command.seq},
                [&] { return DescribeCommand(current_->command); });
  Send(now_us);
}

int64_t SimClient::NextWakeUs() const {
  if (!current_.has_value()) return next_issue_us_;
  return current_->resend_at_us != kNever ? current_->resend_at_us : current_->deadline_us;
}

void SimClient::Send(int64_t now_us) {
  ABSL_RAW_CHECK(current_.has_value(), "nothing to send");
  Outstanding& o = *current_;
  ++o.attempts;
  ++stats_.sends;
  o.deadline_us = now_us + options_.timeout_us;
  o.resend_at_us = kNever;
  const std::string bytes = EncodeRequest(o.command);
  (void)endpoint_->Send(
      o.target, absl::MakeConstSpan(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
}

void SimClient::OnReply(int64_t now_us, const Reply& reply) {
  trace_->Event(now_us, "reply",
                {options_.id, reply.seq, static_cast<uint64_t>(reply.status), reply.leader_hint,
                 reply.result.ok ? 1u : 0u},
                [&] {
                  return absl::StrFormat("client %d #%d <- %s%s%s", options_.id, reply.seq,
                                         ReplyStatusName(reply.status),
                                         reply.leader_hint ? absl::StrCat(" leader=", reply.leader_hint)
                                                           : "",
                                         reply.status == ReplyStatus::kOk
                                             ? absl::StrCat(" ok=", reply.result.ok, " '",
                                                            reply.result.value, "'")
                                             : "");
                });
  Outstanding& o = *current_;
  switch (reply.status) {
    case ReplyStatus::kOk:
      Finish(now_us, true, reply.result);
      return;
    case ReplyStatus::kNotLeader:
      ++stats_.redirects;
      if (reply.leader_hint != 0) {
        preferred_ = reply.leader_hint;
        Retry(now_us, reply.leader_hint, 0);
      } else {
        Retry(now_us, NextNode(o.target), options_.retry_backoff_us);
      }
      return;
    case ReplyStatus::kUnknown:
      ++stats_.unknown_replies;
      preferred_ = 0;
      Retry(now_us, NextNode(o.target), options_.retry_backoff_us);
      return;
    case ReplyStatus::kBusy:
      Retry(now_us, o.target, options_.retry_backoff_us);
      return;
    case ReplyStatus::kStale:
      // The node's session table holds a later request of ours than the
      // one we are waiting for: impossible with one request at a time.
      failure_ = absl::StrFormat("client %d: node %d calls request #%d stale", options_.id,
                                 o.target, reply.seq);
      Finish(now_us, false, {});
      return;
  }
}

void SimClient::Retry(int64_t now_us, uint64_t target, int64_t delay_us) {
  Outstanding& o = *current_;
  if (o.attempts >= options_.attempts_max) {
    Finish(now_us, false, {});
    return;
  }
  o.target = target;
  if (delay_us == 0) {
    Send(now_us);
  } else {
    o.resend_at_us = now_us + delay_us;
  }
}

void SimClient::Finish(int64_t now_us, bool known, const CommandResult& result) {
  Outstanding& o = *current_;
  lincheck::Operation& op = history_[o.history_index];
  op.known = known;
  const Command& c = o.command;
  if (known) {
    ++stats_.ops_ok;
    op.return_time = now_us;
    if (c.kind == OpKind::kGet) {
      op.output_value = result.ok ? std::optional<std::string>(result.value) : std::nullopt;
    } else {
      op.output_ok = result.ok;
      acked_.emplace_back(c.client, c.seq);
    }
    switch (c.kind) {
      case OpKind::kGet: last_seen_[c.key] = op.output_value; break;
      case OpKind::kPut: last_seen_[c.key] = c.value; break;
      case OpKind::kDelete: last_seen_[c.key] = std::nullopt; break;
      case OpKind::kCas:
        if (result.ok) last_seen_[c.key] = c.value;
        break;
      case OpKind::kAppend: last_seen_.erase(c.key); break;
    }
  } else {
    ++stats_.ops_unknown;
    last_seen_.erase(c.key);
  }
  trace_->Event(now_us, known ? "complete" : "give-up", {options_.id, c.seq},
                [&] { return lincheck::DescribeOperation(op); });
  current_.reset();
  next_issue_us_ = now_us + static_cast<int64_t>(random_.Uniform(
                                0, static_cast<uint64_t>(std::max<int64_t>(options_.think_us_max, 0))));
}

}  // namespace blizzard::sim
