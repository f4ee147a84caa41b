// The user-space ABI (lib/abi.hpp): numbers, names and error results agree with themselves.
// (The structure layouts are pinned by static_asserts in the header.)
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "lib/abi.hpp"

namespace pagoda::abi {
namespace {

TEST(Abi, EverySystemCallHasOneNumberAndADistinctName) {
  std::set<std::string> names;
  usize test_calls = 0;
  for (u64 n = 0; n < kSyscallCount + 8; ++n) {
    const char* name = syscall_name(n);
    if (name == nullptr) continue;
    EXPECT_LT(n, kSyscallCount) << name;
    EXPECT_NE(n, 0u) << "0 must never be a system call";
    EXPECT_TRUE(names.insert(name).second) << "two calls named " << name;
    test_calls += n >= kFirstTestSyscall;
  }
  EXPECT_EQ(names.size(), 27u);
  EXPECT_EQ(test_calls,
            9u);  // proc_info, vma_list, kernel_recurse, kernel_spin; temp_fill, temp_take, temp_stress (lab 4);
                  // evict, swap_info (lab 7)
  EXPECT_STREQ(syscall_name(u64(Syscall::Write)), "write");
  EXPECT_STREQ(syscall_name(u64(Syscall::ProcInfo)), "proc_info");
}

TEST(Abi, ErrorResultsRoundTripAndStayOutOfTheWayOfValues) {
  const Errno all[] = {Errno::Perm,  Errno::NoEnt, Errno::Srch,  Errno::TooBig,      Errno::NoExec,
                       Errno::BadFd, Errno::Child, Errno::Again, Errno::NoMem,       Errno::Access,
                       Errno::Fault, Errno::Exist, Errno::Inval, Errno::NameTooLong, Errno::NoSys};
  std::set<std::string> names;
  for (Errno e : all) {
    const i64 r = error_result(e);
    EXPECT_TRUE(is_error(r));
    EXPECT_EQ(errno_of(r), e);
    EXPECT_TRUE(names.insert(errno_name(e)).second) << errno_name(e);
    EXPECT_EQ(std::string(errno_name(e)).rfind('E', 0), 0u);
  }
  EXPECT_EQ(error_result(Errno::Fault), -14);
  EXPECT_FALSE(is_error(0));
  EXPECT_FALSE(is_error(0x400000));
  EXPECT_FALSE(is_error(-kMaxErrno - 1));  // far below: a value, not an error
  EXPECT_STREQ(errno_name(Errno(1000)), "E?");
}

TEST(Abi, ProtectionAndMapFlagsAreDistinctBits) {
  EXPECT_EQ(kProtRead & kProtWrite, 0u);
  EXPECT_EQ(kProtWrite & kProtExec, 0u);
  EXPECT_EQ(kProtMask, 7u);
  EXPECT_EQ(kMapFixed & kMapFixedNoReplace, 0u);
  EXPECT_STREQ(termination_name(Termination::StackLimit), "stack limit");
  EXPECT_STREQ(termination_name(Termination::Interrupted), "interrupted");
  EXPECT_STREQ(memory_kind_name(MemoryKind::Image), "image");
}

}  // namespace
}  // namespace pagoda::abi
