#include "consensus/testing/datadriven.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace blizzard::consensus::testing {

namespace {

bool IsPreambleLine(absl::string_view line) {
  return absl::StripAsciiWhitespace(line).empty() ||
         absl::StartsWith(line, "#");
}

}  // namespace

absl::StatusOr<DataDrivenFile> ParseDataDriven(absl::string_view text) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  // A final newline does not start another line.
  if (!lines.empty() && lines.back().empty()) lines.pop_back();
  DataDrivenFile file;
  std::string preamble;
  size_t i = 0;
  while (i < lines.size()) {
    if (IsPreambleLine(lines[i])) {
      absl::StrAppend(&preamble, lines[i], "\n");
      ++i;
      continue;
    }
    DataDrivenCase c;
    c.preamble = std::move(preamble);
    preamble.clear();
    c.line = static_cast<int>(i) + 1;
    c.command = std::string(lines[i]);
    ++i;
    if (i >= lines.size() || lines[i] != "----") {
      return absl::InvalidArgumentError(absl::StrFormat(
          "line %d: command without a \"----\" line after it", c.line));
    }
    ++i;
    std::vector<absl::string_view> expected;
    while (i < lines.size() && !lines[i].empty()) expected.push_back(lines[i++]);
    if (i < lines.size()) ++i;  // The blank line ending the block.
    c.expected = absl::StrJoin(expected, "\n");
    file.cases.push_back(std::move(c));
  }
  file.trailer = std::move(preamble);
  return file;
}

std::string RenderDataDriven(const DataDrivenFile& file,
                             const std::vector<std::string>& actual) {
  std::string out;
  for (size_t k = 0; k < file.cases.size(); ++k) {
    const DataDrivenCase& c = file.cases[k];
    absl::StrAppend(&out, c.preamble, c.command, "\n----\n",
                    k < actual.size() ? actual[k] : c.expected, "\n");
    // The blank line closing the block, unless the file ends here.
    if (k + 1 < file.cases.size() || !file.trailer.empty()) out += "\n";
  }
  absl::StrAppend(&out, file.trailer);
  return out;
}

ScriptCommand ParseCommand(absl::string_view line) {
  ScriptCommand c;
  for (absl::string_view token : absl::StrSplit(line, ' ', absl::SkipEmpty())) {
    if (c.name.empty()) {
      c.name = std::string(token);
      continue;
    }
    const size_t eq = token.find('=');
    if (eq == absl::string_view::npos) {
      c.args.emplace_back(token);
    } else {
      c.kwargs[std::string(token.substr(0, eq))] =
          std::string(token.substr(eq + 1));
    }
  }
  return c;
}

}  // namespace blizzard::consensus::testing
