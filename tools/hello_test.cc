#include <libpmemobj.h>
#include "absl/status/statusor.h"
#include "absl/strings/str_format.h"
#include "gtest/gtest.h"
TEST(Hello, Works) { absl::StatusOr<int> v = 3; EXPECT_EQ(*v, 3); EXPECT_EQ(absl::StrFormat("%d", 4), "4"); }
