// The real x86_64 user programs, run on the host under a tracer that plays the kernel: it
// enters them as the ABI says (argc in rdi, argv in rsi), takes every `syscall` they make,
// records its number and six argument registers, performs write and exit itself, answers the
// rest, and keeps Linux from running any of them. So the user library's _start, system-call
// wrappers, print and exit are tested before the kernel has user mode at all.
#include <gtest/gtest.h>

#if defined(__x86_64__) && defined(__linux__)

#include <signal.h>
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "lib/abi.hpp"
#include "lib/proof.hpp"

namespace pagoda {
namespace {

struct Call {
  u64 number;
  u64 args[6];
};

struct Traced {
  std::string output;               ///< what the program wrote to fds 1 and 2
  std::vector<std::string> writes;  ///< each write, as one string
  std::vector<Call> calls;          ///< every system call, in order
  bool exited = false;              ///< it called exit
  i64 exit_code = 0;
  int signal = 0;       ///< the signal that stopped it otherwise (SIGSEGV, SIGILL, ...)
  std::string problem;  ///< why the trace could not be done
};

constexpr u64 kGetPidResult = 7;
/// What run() reports when this machine does not let a process trace its child (some
/// containers forbid ptrace): the tests then skip, saying so, instead of failing.
constexpr const char* kNoPtrace = "ptrace is not permitted on this machine";
constexpr int kMaxCalls = 10000;

std::string program(const char* name) { return std::string(PAGODA_USER_DIR) + "/x86_64/embedded/" + name + ".elf"; }

std::string read_memory(pid_t pid, u64 address, u64 length) {
  std::string out;
  for (u64 at = address; at < address + length; at += sizeof(long)) {
    errno = 0;
    const long word = ptrace(PTRACE_PEEKDATA, pid, reinterpret_cast<void*>(at), nullptr);
    if (errno != 0) break;
    char bytes[sizeof(long)];
    std::memcpy(bytes, &word, sizeof word);
    out.append(bytes, std::min<u64>(sizeof word, address + length - at));
  }
  return out;
}

/// Runs @p path with @p args; unknown system calls get @p unknown_result.
Traced run(const std::string& path, const std::vector<std::string>& args,
           i64 unknown_result = abi::error_result(abi::Errno::NoSys)) {
  Traced t;
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  const pid_t child = fork();
  if (child == 0) {
    if (ptrace(PTRACE_TRACEME, 0, nullptr, nullptr) != 0) _exit(126);
    execv(path.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(child, &status, 0);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 126) {
    t.problem = kNoPtrace;
    return t;
  }
  if (!WIFSTOPPED(status) || WSTOPSIG(status) != SIGTRAP) {
    t.problem = "the program did not stop after exec (status " + std::to_string(status) + "): ptrace or exec failed";
    return t;
  }
  ptrace(PTRACE_SETOPTIONS, child, nullptr, reinterpret_cast<void*>(PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL));

  // Linux leaves argc and argv on the stack; the Pagoda ABI passes them in rdi and rsi.
  user_regs_struct regs{};
  ptrace(PTRACE_GETREGS, child, nullptr, &regs);
  regs.rdi = u64(ptrace(PTRACE_PEEKDATA, child, reinterpret_cast<void*>(regs.rsp), nullptr));
  regs.rsi = regs.rsp + 8;
  ptrace(PTRACE_SETREGS, child, nullptr, &regs);

  for (int n = 0; n < kMaxCalls; ++n) {
    ptrace(PTRACE_SYSCALL, child, nullptr, nullptr);
    waitpid(child, &status, 0);
    if (WIFEXITED(status) || WIFSIGNALED(status)) {
      t.problem = "the program ended without calling exit";
      return t;
    }
    if (WSTOPSIG(status) != (SIGTRAP | 0x80)) {  // a fault: the kernel would kill the process
      t.signal = WSTOPSIG(status);
      break;
    }
    ptrace(PTRACE_GETREGS, child, nullptr, &regs);
    const Call call{regs.orig_rax, {regs.rdi, regs.rsi, regs.rdx, regs.r10, regs.r8, regs.r9}};
    t.calls.push_back(call);
    i64 result = unknown_result;
    switch (abi::Syscall(call.number)) {
      case abi::Syscall::Write:
        if (call.args[0] == abi::kStdout || call.args[0] == abi::kStderr) {
          const std::string text = read_memory(child, call.args[1], call.args[2]);
          t.output += text;
          t.writes.push_back(text);
          result = i64(text.size());
        } else {
          result = abi::error_result(abi::Errno::BadFd);
        }
        break;
      case abi::Syscall::Exit:
        t.exited = true;
        t.exit_code = i64(call.args[0]);
        break;
      case abi::Syscall::GetPid: result = kGetPidResult; break;
      default: break;
    }
    if (t.exited) break;
    regs.orig_rax = ~0ull;  // Linux runs no call; at the exit stop, the result is ours
    ptrace(PTRACE_SETREGS, child, nullptr, &regs);
    ptrace(PTRACE_SYSCALL, child, nullptr, nullptr);
    waitpid(child, &status, 0);
    if (!WIFSTOPPED(status)) {
      t.problem = "the program vanished inside a system call";
      return t;
    }
    ptrace(PTRACE_GETREGS, child, nullptr, &regs);
    regs.rax = u64(result);
    ptrace(PTRACE_SETREGS, child, nullptr, &regs);
  }
  kill(child, SIGKILL);
  waitpid(child, &status, 0);
  return t;
}

u64 collatz_steps(u64 n) {
  u64 steps = 0;
  for (; n != 1; ++steps) n = n % 2 == 0 ? n / 2 : 3 * n + 1;
  return steps;
}

/// hello's line: with a token (under the grader) its proof ends it; without one (at the shell)
/// there is none.
std::string expected_hello(const std::string& token) {
  const u64 n = 1 + proof(StringView(token.data(), token.size()), 0x4845) % 1'000'000;
  const u64 steps = collatz_steps(n);
  char line[200];
  std::snprintf(line, sizeof line, "hello: from user space on x86_64: collatz(%llu) takes %llu steps",
                static_cast<unsigned long long>(n), static_cast<unsigned long long>(steps));
  std::string out = line;
  if (!token.empty()) {
    std::snprintf(line, sizeof line, " proof=%016llx",
                  static_cast<unsigned long long>(proof(StringView(token.data(), token.size()), steps)));
    out += line;
  }
  return out + "\n";
}

#define SKIP_WITHOUT_PTRACE(traced) \
  if ((traced).problem == kNoPtrace) GTEST_SKIP() << kNoPtrace

TEST(UserProgram, HelloPrintsItsProofInOneWriteAndExitsWithZero) {
  for (const std::string token : {"9f2c41d07be3a615", "x"}) {
    const Traced t = run(program("hello"), {"hello", "token=" + token});
    SKIP_WITHOUT_PTRACE(t);
    ASSERT_EQ(t.problem, "");
    EXPECT_EQ(t.signal, 0);
    ASSERT_TRUE(t.exited);
    EXPECT_EQ(t.exit_code, 0);
    EXPECT_EQ(t.output, expected_hello(token));
    EXPECT_EQ(t.writes.size(), 1u) << "a line must leave in one write, so lines of processes do not mix";
    ASSERT_FALSE(t.calls.empty());
    EXPECT_EQ(t.calls.back().number, u64(abi::Syscall::Exit));
  }
}

TEST(UserProgram, HelloWithoutATokenPrintsNoProof) {
  const Traced t = run(program("hello"), {"hello"});
  SKIP_WITHOUT_PTRACE(t);
  ASSERT_EQ(t.problem, "");
  EXPECT_EQ(t.output, expected_hello(""));
}

TEST(UserProgram, ArgumentsAndTheSixArgumentRegistersArriveAsTheAbiSays) {
  const Traced t = run(program("abiprobe"), {"abiprobe", "one", "two words", "token=t0"});
  SKIP_WITHOUT_PTRACE(t);
  ASSERT_EQ(t.problem, "");
  ASSERT_TRUE(t.exited);
  EXPECT_EQ(t.exit_code, 0);
  EXPECT_NE(t.output.find("abiprobe: argc 4\n"), std::string::npos) << t.output;
  EXPECT_NE(t.output.find("abiprobe: argv[2] = \"two words\"\n"), std::string::npos) << t.output;
  EXPECT_NE(t.output.find("-> -38 (ENOSYS)"), std::string::npos) << t.output;
  bool found = false;
  for (const Call& c : t.calls) {
    if (c.number != abi::kSyscallCount + 1) continue;
    found = true;
    const u64 expected[6] = {0x1111'0000'0000'0001, 0x2222'0000'0000'0002, 0x3333'0000'0000'0003,
                             0x4444'0000'0000'0004, 0x5555'0000'0000'0005, 0x6666'0000'0000'0006};
    for (int i = 0; i < 6; ++i) EXPECT_EQ(c.args[i], expected[i]) << "argument " << i;
  }
  EXPECT_TRUE(found) << "no system call with the probe's number";
}

TEST(UserProgram, MainsReturnValueBecomesTheExitCode) {
  // Answer the probe's call with another error: abiprobe's main then returns 1.
  const Traced t = run(program("abiprobe"), {"abiprobe"}, abi::error_result(abi::Errno::Perm));
  SKIP_WITHOUT_PTRACE(t);
  ASSERT_EQ(t.problem, "");
  ASSERT_TRUE(t.exited);
  EXPECT_EQ(t.exit_code, 1);
  EXPECT_NE(t.output.find("(EPERM)"), std::string::npos) << t.output;
}

}  // namespace
}  // namespace pagoda

#else

TEST(UserProgram, NeedsAnX86_64LinuxHost) { GTEST_SKIP() << "the tracer runs x86_64 programs on an x86_64 Linux host"; }

#endif
