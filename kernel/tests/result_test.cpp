// Result<T>, Error, TRY and MUST: state checks, where errors were made, nesting under -Wshadow.
#include <gtest/gtest.h>

#include <string>

#include "host_support.hpp"
#include "lib/result.hpp"

namespace pagoda {
namespace {

std::string text(const Error& e) {
  char buffer[256];
  BufferSink sink(buffer, sizeof buffer);
  e.format(sink);
  return buffer;
}

// The line numbers below are compared with __LINE__ where each error is written.
Result<u64> fails_here(int* line) {
  *line = __LINE__ + 1;
  return Error::NoMemory;
}

Result<void> fails_with_message(int* line) {
  *line = __LINE__ + 1;
  return Error(Error::NotImplemented, "lab 9: write fails_with_message()");
}

Result<u64> passes_it_on(int* line) {
  const u64 v = TRY(fails_here(line));
  return v + 1;
}

Result<u64> twice(u64 v) { return 2 * v; }
Result<u64> nested(u64 v) { return TRY(twice(TRY(twice(v)) + 1)); }  // nested TRY under -Wshadow

TEST(Result, ErrorsRememberWhereTheyWereMade) {
  int line = 0;
  const Result<u64> r = fails_here(&line);
  ASSERT_TRUE(r.is_error());
  EXPECT_EQ(r.error(), Error::NoMemory);
  EXPECT_STREQ(r.error().file, "kernel/tests/result_test.cpp");
  EXPECT_EQ(r.error().line, u32(line));
  EXPECT_EQ(text(r.error()), "no memory (made at kernel/tests/result_test.cpp:" + std::to_string(line) + ")");
}

TEST(Result, ErrorsCarryAStaticMessage) {
  int line = 0;
  const Result<void> r = fails_with_message(&line);
  ASSERT_TRUE(r.is_error());
  EXPECT_EQ(r.error().line, u32(line));
  EXPECT_EQ(text(r.error()), "not implemented yet (a lab skeleton): lab 9: write fails_with_message() (made at "
                             "kernel/tests/result_test.cpp:" +
                                 std::to_string(line) + ")");
  EXPECT_STREQ(error_name(r.error()), "not implemented yet (a lab skeleton)");
}

TEST(Result, TryPassesTheErrorOnUnchanged) {
  int line = 0;
  const Result<u64> r = passes_it_on(&line);
  ASSERT_TRUE(r.is_error());
  EXPECT_EQ(r.error().line, u32(line));  // where it was made, not where TRY returned it
}

Result<void> maps_a_page(int* line) {
  *line = __LINE__ + 1;
  return Error(Error::AlreadyExists, "the page is already mapped").at(0x7fff'ffff'e000);
}

Result<void> loads_a_stack(int* line) {
  TRY_DURING(maps_a_page(line), "mapping the user stack's top page", 0x1234);
  return {};
}

Result<void> starts_a_process(int* line) {
  const Result<void> loaded = loads_a_stack(line);
  if (loaded.is_error()) return loaded.error().during("loading the program").noted("the stack mapped it first");
  return {};
}

TEST(Result, TheFailingStepAddsWhatItWasDoingAndWhere) {
  int line = 0;
  const Result<void> r = starts_a_process(&line);
  ASSERT_TRUE(r.is_error());
  EXPECT_EQ(r.error(), Error::AlreadyExists);
  EXPECT_EQ(r.error().line, u32(line));  // still where it was made
  // The innermost step wins, and the address the maker knew is kept (the step's own is not used).
  EXPECT_STREQ(r.error().step, "mapping the user stack's top page");
  EXPECT_EQ(r.error().address, 0x7fff'ffff'e000u);
  EXPECT_EQ(text(r.error()), "mapping the user stack's top page 0x7fffffffe000: already exists: the page is already "
                             "mapped; the stack mapped it first (made at kernel/tests/result_test.cpp:" +
                                 std::to_string(line) + ")");
  // Without a step, the address alone; without either, as before.
  EXPECT_EQ(text(Error(Error::NotFound, nullptr, "f.cpp", 3).at(0x1000)), "at 0x1000: not found (made at f.cpp:3)");
  EXPECT_EQ(text(Error(Error::NotFound, nullptr, "f.cpp", 3).during("asking")), "asking: not found (made at f.cpp:3)");
  EXPECT_EQ(text(Error(Error::NoMemory, nullptr, "f.cpp", 3).during("a step", 0x2000)),
            "a step 0x2000: no memory (made at f.cpp:3)");
}

TEST(Result, TryNests) {
  const Result<u64> r = nested(3);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r.value(), 14u);
}

TEST(Result, AskingForWhatIsNotThereIsABug) {
  Result<u64> bad = Error::NotFound;
  Result<u64> good = u64(7);
  Result<void> bad_void = Error::Overflow;
  Result<void> good_void;
  EXPECT_THROW((void)bad.value(), host::HostPanic);
  EXPECT_THROW((void)bad.release_value(), host::HostPanic);
  EXPECT_THROW((void)good.error(), host::HostPanic);
  EXPECT_THROW(bad_void.release_value(), host::HostPanic);
  EXPECT_THROW((void)good_void.error(), host::HostPanic);
  try {
    (void)bad.value();
  } catch (const host::HostPanic& e) {
    EXPECT_NE(std::string(e.what()).find("Result::value() of an error: it holds the error not found (made at "
                                         "kernel/tests/result_test.cpp:"),
              std::string::npos)
        << e.what();
  }
}

TEST(Result, MustYieldsTheValueOrPanicsWithTheExpressionAndOrigin) {
  EXPECT_EQ(MUST(twice(4)), 8u);
  int line = 0;
  try {
    (void)MUST(fails_here(&line));
    FAIL() << "MUST of an error did not panic";
  } catch (const host::HostPanic& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("MUST(fails_here(&line)) failed at kernel/tests/result_test.cpp:"), std::string::npos) << what;
    EXPECT_NE(what.find("no memory (made at kernel/tests/result_test.cpp:" + std::to_string(line) + ")"),
              std::string::npos)
        << what;
  }
}

struct Tracked {
  explicit Tracked(int* live) : live_(live) { ++*live_; }
  Tracked(Tracked&& other) : live_(other.live_) { ++*live_; }
  ~Tracked() { --*live_; }
  int* live_;
};

TEST(Result, MoveAssignmentReplacesValueOrErrorAndDestroysWhatItHeld) {
  int live = 0;
  {
    Result<Tracked> r = Tracked(&live);
    EXPECT_EQ(live, 1);
    r = Result<Tracked>(Error::NoMemory);
    EXPECT_EQ(live, 0);
    ASSERT_TRUE(r.is_error());
    r = Result<Tracked>(Tracked(&live));
    EXPECT_EQ(live, 1);
    EXPECT_TRUE(r.ok());
  }
  EXPECT_EQ(live, 0);
  Result<u64> a = u64(1);
  a = twice(21);
  EXPECT_EQ(a.value(), 42u);
}

}  // namespace
}  // namespace pagoda
