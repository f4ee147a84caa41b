#include <gtest/gtest.h>

#include <string>

#include "core/cmdline.hpp"

namespace pagoda {
namespace {

std::string get(const char* line, const char* key) {
  const CmdlineValue v = cmdline_get(line, key);
  return v.found ? std::string(v.value.data(), v.value.size()) : "<absent>";
}

TEST(Cmdline, FindsKeys) {
  EXPECT_EQ(get("token=abc test=pf", "token"), "abc");
  EXPECT_EQ(get("token=abc test=pf", "test"), "pf");
  EXPECT_EQ(get("  token=abc   test=pf  ", "test"), "pf");
}

TEST(Cmdline, AbsentEmptyAndLastWins) {
  EXPECT_EQ(get("token=abc", "test"), "<absent>");
  EXPECT_EQ(get("", "test"), "<absent>");
  EXPECT_EQ(get("test=", "test"), "");
  EXPECT_EQ(get("test=a test=b", "test"), "b");
  EXPECT_EQ(get("testing=a test", "test"), "<absent>");  // prefixes and bare words don't match
  EXPECT_EQ(get("a=b=c", "a"), "b=c");
}

TEST(Cmdline, ParsesNumbers) {
  EXPECT_EQ(parse_u64("0").value(), 0u);
  EXPECT_EQ(parse_u64("1234").value(), 1234u);
  EXPECT_EQ(parse_u64("0x100000").value(), 0x100000u);
  EXPECT_EQ(parse_u64("0xFFFFffffFFFFffff").value(), ~u64{0});
  EXPECT_EQ(parse_u64("18446744073709551615").value(), ~u64{0});
  EXPECT_TRUE(parse_u64("18446744073709551616").is_error());
  EXPECT_TRUE(parse_u64("0x1_0000_0000_0000_0000").is_error());
  EXPECT_TRUE(parse_u64("").is_error());
  EXPECT_TRUE(parse_u64("0x").is_error());
  EXPECT_TRUE(parse_u64("12a").is_error());
  EXPECT_TRUE(parse_u64("-1").is_error());
}

}  // namespace
}  // namespace pagoda
