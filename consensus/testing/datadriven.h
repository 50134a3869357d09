// Golden-file test scripts in the style of cockroachdb/datadriven, which
// etcd's raft interaction tests use:
//
//   # Comments and blank lines are kept verbatim.
//   command arg1 arg2 key=value
//   ----
//   expected output, one or more lines (never a blank one)
//   <blank line or end of file>
//
// A runner executes each command, compares its output with the expected
// block, and can render the file back with the actual outputs (rewrite).
#ifndef BLIZZARD_CONSENSUS_TESTING_DATADRIVEN_H_
#define BLIZZARD_CONSENSUS_TESTING_DATADRIVEN_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace blizzard::consensus::testing {

struct DataDrivenCase {
  std::string preamble;  // Comment and blank lines before the command.
  int line = 0;          // Of the command, 1-based.
  std::string command;   // The command line.
  std::string expected;  // Without a trailing newline.
};

struct DataDrivenFile {
  std::vector<DataDrivenCase> cases;
  std::string trailer;  // Comment and blank lines after the last case.
};

// InvalidArgument (with the line number) for a command without "----".
absl::StatusOr<DataDrivenFile> ParseDataDriven(absl::string_view text);
// The file with case i's expected output replaced by actual[i] (one per
// case): ParseDataDriven(RenderDataDriven(f, outputs)) gives those outputs.
std::string RenderDataDriven(const DataDrivenFile& file,
                             const std::vector<std::string>& actual);

// "name a b k=v" -> name, positional args, key=value args.
struct ScriptCommand {
  std::string name;
  std::vector<std::string> args;
  std::map<std::string, std::string> kwargs;
};
ScriptCommand ParseCommand(absl::string_view line);

}  // namespace blizzard::consensus::testing

#endif  // BLIZZARD_CONSENSUS_TESTING_DATADRIVEN_H_
