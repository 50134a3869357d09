// Human-readable, stable one-line forms of Raft's entries, messages and
// Readys for golden traces (consensus/testdata/*.txt). Changing a format
// changes every trace: rewrite them (README: REWRITE=1) and review the diff.
#ifndef BLIZZARD_CONSENSUS_TESTING_TRACE_H_
#define BLIZZARD_CONSENSUS_TESTING_TRACE_H_

#include <string>

#include "consensus/raft.h"
#include "consensus/types.h"

namespace blizzard::consensus::testing {

// "3/1 normal \"data\"", "1/1 noop", "4/2 config voters=(1,2) learners=(3)".
std::string FormatEntry(const Entry& entry);
// "1->2 Append t1 prev=3/1 commit=3 entries=[4/1 normal \"x\"]" and so on:
// only the fields that mean something for the message's type.
std::string FormatMessage(const Message& message);
// Every part of the Ready that is set, one item per line, each line
// indented by two spaces; no trailing newline.
std::string FormatReady(const Ready& ready);

}  // namespace blizzard::consensus::testing

#endif  // BLIZZARD_CONSENSUS_TESTING_TRACE_H_
