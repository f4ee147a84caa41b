#include <gtest/gtest.h>

#include <string>

#include "lib/format.hpp"

namespace pagoda {
namespace {

template <class... Args> std::string fmt(FormatString<Args...> format, const Args&... args) {
  char buffer[256];
  return std::string(format_buffer(buffer, sizeof buffer, format, args...).data());
}

TEST(Format, LiteralsAndEscapes) {
  EXPECT_EQ(fmt("plain"), "plain");
  EXPECT_EQ(fmt("{{}} {}", 1), "{} 1");
  EXPECT_EQ(fmt(""), "");
}

TEST(Format, Integers) {
  EXPECT_EQ(fmt("{}", 0), "0");
  EXPECT_EQ(fmt("{}", -42), "-42");
  EXPECT_EQ(fmt("{}", u64(18446744073709551615ull)), "18446744073709551615");
  EXPECT_EQ(fmt("{}", i64(-9223372036854775807ll - 1)), "-9223372036854775808");
  EXPECT_EQ(fmt("{:x} {:X} {:#x}", 255, 255, 255), "ff FF 0xff");
  EXPECT_EQ(fmt("{:b} {:#o}", 5, 8), "101 0o10");
  EXPECT_EQ(fmt("{:#018x}", u64(0x1234)), "0x0000000000001234");
  EXPECT_EQ(fmt("{:05}", -42), "-0042");
  EXPECT_EQ(fmt("{:>6}|{:<6}|", 42, 42), "    42|42    |");
  EXPECT_EQ(fmt("{}", u8(200)), "200");  // u8 is a number, not a character
}

TEST(Format, TextBoolCharPointer) {
  EXPECT_EQ(fmt("{} {}", "abc", StringView("xyzzy", 2)), "abc xy");
  EXPECT_EQ(fmt("[{:>5}] [{:<5}]", "ab", "ab"), "[   ab] [ab   ]");
  EXPECT_EQ(fmt("{} {:s}", true, false), "true false");
  EXPECT_EQ(fmt("{}{}", 'o', 'k'), "ok");
  EXPECT_EQ(fmt("{:x}", 'A'), "41");
  EXPECT_EQ(fmt("{}", reinterpret_cast<const void*>(0x1000)), "0x0000000000001000");
  EXPECT_EQ(fmt("{}", nullptr), "0x0000000000000000");
  const char* null_string = nullptr;
  EXPECT_EQ(fmt("[{}]", null_string), "[]");
}

enum class Color : u8 { Red = 2 };

TEST(Format, EnumsAndCustomTypes) {
  EXPECT_EQ(fmt("{}", Color::Red), "2");
  EXPECT_EQ(fmt("{}", Hex{0xabc}), "0x0000000000000abc");
}

TEST(Format, TruncatesToBufferAndCountsDrops) {
  char small[6];
  BufferSink sink(small, sizeof small);
  format_to(sink, "{}", "0123456789");
  EXPECT_EQ(std::string(sink.view().data(), sink.view().size()), "01234");
  EXPECT_EQ(small[5], '\0');
  EXPECT_EQ(sink.dropped(), 5u);
}

TEST(Format, WidthLargerThanScratchIsClipped) {
  char buffer[512];
  const StringView wide = format_buffer(buffer, sizeof buffer, "{:0300}", 7);
  EXPECT_EQ(wide.size(), 300u);  // padded to the width, without overrunning the digit scratch
  EXPECT_EQ(wide[wide.size() - 1], '7');
}

}  // namespace
}  // namespace pagoda
