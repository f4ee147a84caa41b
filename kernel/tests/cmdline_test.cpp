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

}  // namespace
}  // namespace pagoda
