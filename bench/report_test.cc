#include "bench/report.h"

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"

namespace blizzard::bench {
namespace {

RunReport Example() {
  RunReport r;
  r.label = "logical-3";
  r.target = "127.0.0.1:7101";
  r.workload = "zadd";
  r.distribution = "uniform";
  r.keys = 100;
  r.value_bytes = 16;
  r.connections = 4;
  r.pipeline = 2;
  r.seed = 1;
  r.ops = 1000;
  r.ops_per_s = 500;
  r.measured_s = 2;
  r.errors = 1000;
  r.error_kinds = {{"ERR unknown command", 1000}};
  r.node_counters_per_op = {{"peer_bytes_sent", 412.5}, {"data_bytes_persisted", std::nullopt}};
  r.client_cpu_us_per_op = 3.25;
  r.failure = "100.0% of replies were errors, \"quoted\"";
  return r;
}

TEST(Report, JsonHasEveryFieldAndNullForNotAvailable) {
  const std::string j = FormatJson(Example());
  EXPECT_EQ(j.front(), '{');
  EXPECT_EQ(j.back(), '}');
  EXPECT_EQ(j.find('\n'), std::string::npos);
  EXPECT_NE(j.find("\"workload\":\"zadd\""), std::string::npos);
  EXPECT_NE(j.find("\"error_kinds\":{\"ERR unknown command\":1000}"), std::string::npos);
  EXPECT_NE(j.find("\"peer_bytes_sent_per_op\":412.5"), std::string::npos);
  EXPECT_NE(j.find("\"data_bytes_persisted_per_op\":null"), std::string::npos);
  EXPECT_NE(j.find("\"node_cpu_us_per_op\":null"), std::string::npos);
  EXPECT_NE(j.find("\\\"quoted\\\""), std::string::npos);
}

TEST(Report, CsvRowMatchesHeader) {
  const RunReport r = Example();
  const std::string header = CsvHeader(r);
  const std::string row = CsvRow(r);
  const std::vector<std::string> columns = absl::StrSplit(header, ',');
  // The failure cell is quoted (it holds a comma and quotes): count cells
  // outside quotes.
  int cells = 1;
  bool quoted = false;
  for (char c : row) {
    if (c == '"') quoted = !quoted;
    if (c == ',' && !quoted) ++cells;
  }
  EXPECT_EQ(cells, static_cast<int>(columns.size())) << header << "\n" << row;
  EXPECT_NE(header.find("peer_bytes_sent_per_op"), std::string::npos);
  EXPECT_NE(row.find("\"100.0% of replies were errors, \"\"quoted\"\"\""), std::string::npos);
}

TEST(Report, SummaryShowsNotAvailableAndFailure) {
  const std::string s = FormatSummary(Example());
  EXPECT_NE(s.find("peer_bytes_sent 412.5"), std::string::npos);
  EXPECT_NE(s.find("data_bytes_persisted n/a"), std::string::npos);
  EXPECT_NE(s.find("node cpu n/a"), std::string::npos);
  EXPECT_NE(s.find("ERR unknown command x1000"), std::string::npos);
  EXPECT_NE(s.find("FAILED"), std::string::npos);
}

}  // namespace
}  // namespace blizzard::bench
