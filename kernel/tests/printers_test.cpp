// The gtest printers of printers.hpp: a failing assertion names kernel values instead of
// dumping their bytes.
#include <gtest/gtest.h>

#include "host_support.hpp"

namespace pagoda {
namespace {

using ::testing::PrintToString;

TEST(Printers, EnumsPrintByEnumeratorName) {
  EXPECT_EQ(PrintToString(WalkStop::Mapped), "WalkStop::Mapped");
  EXPECT_EQ(PrintToString(WalkStop::TableUnreachable), "WalkStop::TableUnreachable");
  EXPECT_EQ(PrintToString(Caching::Uncached), "Caching::Uncached");
}

TEST(Printers, EnumsWithAKernelDescriptionShowIt) {
  EXPECT_EQ(PrintToString(ErrorCode::NoMemory), "ErrorCode::NoMemory (no memory)");
  EXPECT_EQ(PrintToString(abi::Errno::NoMem), "abi::Errno::NoMem");
  EXPECT_EQ(PrintToString(MemoryType::Usable),
            std::string("MemoryType::Usable (") + memory_type_name(MemoryType::Usable) + ")");
  EXPECT_EQ(PrintToString(FreeCheck::DoubleFree),
            "FreeCheck::DoubleFree (double free: the frame is already free (freed twice, or handed out twice by an "
            "allocation that never marked it used))");
}

TEST(Printers, AValueThatNamesNoEnumeratorPrintsAsANumber) {
  EXPECT_EQ(PrintToString(static_cast<WalkStop>(200)), "WalkStop(200)");
}

TEST(Printers, AddressesPermsAndResults) {
  EXPECT_EQ(PrintToString(PhysAddr(0x1000)), "PhysAddr(0x1000)");
  EXPECT_EQ(PrintToString(VirtAddr(0xffffffff80000000)), "VirtAddr(0xffffffff80000000)");
  EXPECT_EQ(PrintToString(kKernelText), "r-x kernel");
  const int line = __LINE__ + 1;
  const Result<int> missing(Error::NotFound);
  EXPECT_EQ(PrintToString(missing), "error(ErrorCode::NotFound: not found (made at kernel/tests/printers_test.cpp:" +
                                        std::to_string(line) + "))");
  EXPECT_EQ(PrintToString(Result<int>(7)), "ok(7)");
  EXPECT_EQ(PrintToString(Result<void>()), "ok");
}

}  // namespace
}  // namespace pagoda
