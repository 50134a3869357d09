#include "consensus/testing/datadriven.h"

#include "gtest/gtest.h"

namespace blizzard::consensus::testing {
namespace {

TEST(DataDrivenTest, ParsesCasesAndRendersThemBack) {
  const std::string text =
      "# A comment.\n"
      "\n"
      "cmd a b=c\n"
      "----\n"
      "line 1\n"
      "line 2\n"
      "\n"
      "# Between.\n"
      "other\n"
      "----\n"
      "ok\n";
  absl::StatusOr<DataDrivenFile> f = ParseDataDriven(text);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_EQ(f->cases.size(), 2u);
  EXPECT_EQ(f->cases[0].preamble, "# A comment.\n\n");
  EXPECT_EQ(f->cases[0].line, 3);
  EXPECT_EQ(f->cases[0].command, "cmd a b=c");
  EXPECT_EQ(f->cases[0].expected, "line 1\nline 2");
  EXPECT_EQ(f->cases[1].preamble, "# Between.\n");
  EXPECT_EQ(f->cases[1].expected, "ok");
  EXPECT_EQ(RenderDataDriven(*f, {"line 1\nline 2", "ok"}), text);
  const std::string rewritten = RenderDataDriven(*f, {"new", "x\ny"});
  absl::StatusOr<DataDrivenFile> g = ParseDataDriven(rewritten);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->cases[0].expected, "new");
  EXPECT_EQ(g->cases[1].expected, "x\ny");
  EXPECT_EQ(RenderDataDriven(*g, {"new", "x\ny"}), rewritten);
}

TEST(DataDrivenTest, TrailerAndErrors) {
  const std::string text = "cmd\n----\nok\n\n# The end.\n";
  absl::StatusOr<DataDrivenFile> f = ParseDataDriven(text);
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->trailer, "# The end.\n");
  EXPECT_EQ(RenderDataDriven(*f, {"ok"}), text);
  EXPECT_FALSE(ParseDataDriven("cmd\nno separator\n").ok());
  EXPECT_FALSE(ParseDataDriven("cmd\n").ok());
}

TEST(DataDrivenTest, ParsesCommands) {
  ScriptCommand c = ParseCommand("add-nodes 3  pre-vote=true voters=1,2");
  EXPECT_EQ(c.name, "add-nodes");
  EXPECT_EQ(c.args, std::vector<std::string>{"3"});
  EXPECT_EQ(c.kwargs.at("pre-vote"), "true");
  EXPECT_EQ(c.kwargs.at("voters"), "1,2");
}

}  // namespace
}  // namespace blizzard::consensus::testing
