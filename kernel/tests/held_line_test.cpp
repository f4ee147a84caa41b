// The held console line (core/held_line.hpp): a reader's prompt and typed text are written
// again below what others print while it waits, and nothing changes when nobody waits.
#include <gtest/gtest.h>

#include <string>

#include "core/held_line.hpp"

namespace pagoda {
namespace {

std::string g_screen;

void to_screen(StringView text) { g_screen.append(text.data(), text.size()); }

class HeldLineTest : public ::testing::Test {
 protected:
  void SetUp() override { g_screen.clear(); }
  HeldLine line{to_screen};
};

constexpr u32 kShell = 1, kJob = 2, kKernel = 0;

TEST_F(HeldLineTest, WithoutAReaderTextPassesUnchanged) {
  line.write(kShell, "$ ");
  line.write(kJob, "job: line 1\n");
  line.write(kKernel, "proc 2 (job): ");
  line.write(kKernel, "reaped\n");
  EXPECT_EQ(g_screen, "$ job: line 1\nproc 2 (job): reaped\n");
}

TEST_F(HeldLineTest, AnotherWritersLineGoesBelowAndThePromptComesBack) {
  line.write(kShell, "$ ");
  line.write(kShell, "ech");
  line.hold(kShell);
  line.write(kJob, "[3] done\n");
  EXPECT_EQ(g_screen, "$ ech\n[3] done\n");
  line.settle();
  EXPECT_EQ(g_screen, "$ ech\n[3] done\n$ ech");
  line.settle();  // once
  EXPECT_EQ(g_screen, "$ ech\n[3] done\n$ ech");
  line.release(kShell);
  line.write(kShell, "o");  // the user types on, after the redrawn prompt
  EXPECT_EQ(g_screen, "$ ech\n[3] done\n$ echo");
}

TEST_F(HeldLineTest, LinesWrittenInPiecesAreRedrawnUnderOnceTheyEnd) {
  line.write(kShell, "$ ");
  line.hold(kShell);
  line.write(kKernel, "proc 4 (spin): ");
  line.settle();  // not in the middle of someone's line
  line.write(kKernel, "reaped: killed");
  line.write(kKernel, "\n");
  line.write(kJob, "a\nb\n");
  line.settle();
  EXPECT_EQ(g_screen, "$ \nproc 4 (spin): reaped: killed\na\nb\n$ ");
  line.write(kJob, "c\n");
  line.settle();
  EXPECT_EQ(g_screen, "$ \nproc 4 (spin): reaped: killed\na\nb\n$ \nc\n$ ");
}

TEST_F(HeldLineTest, AnEmptyLineNeedsNoBreakAndNoRedraw) {
  line.write(kJob, "waiting for input\n");
  line.hold(kShell);
  line.write(kJob, "tick\n");
  line.settle();
  EXPECT_EQ(g_screen, "waiting for input\ntick\n");
}

TEST_F(HeldLineTest, TheReadersOwnWritesAndEditsAreKept) {
  line.write(kShell, "$ ab\b \b");  // typed "ab", then erased the b
  line.hold(kShell);
  line.write(kJob, "x\n");
  line.settle();
  EXPECT_EQ(g_screen, "$ ab\b \b\nx\n$ ab\b \b");
}

TEST_F(HeldLineTest, AfterTheReaderLetsGoNothingIsRedrawn) {
  line.write(kShell, "$ ");
  line.hold(kShell);
  line.release(kShell);
  line.write(kShell, "echo hi\n");
  line.write(kJob, "hi\n");
  line.settle();
  EXPECT_EQ(g_screen, "$ echo hi\nhi\n");
  EXPECT_EQ(line.reader(), 0u);
}

TEST_F(HeldLineTest, ALineTooLongToKeepIsNotRedrawn) {
  const std::string prompt(HeldLine::kCapacity + 5, 'p');
  line.write(kShell, StringView(prompt.data(), prompt.size()));
  line.hold(kShell);
  line.write(kJob, "x\n");
  line.settle();
  EXPECT_EQ(g_screen, prompt + "\nx\n");
}

}  // namespace
}  // namespace pagoda
