#include <gtest/gtest.h>

#include "lib/proof.hpp"

namespace pagoda {
namespace {

// The same vector is checked by grade/harness_tests/test_proof.py against the grader's twin.
TEST(Proof, KnownVector) { EXPECT_EQ(proof("abc", 42), 0xec720f91ee3d4d81ull); }

TEST(Proof, DependsOnTokenAndValue) {
  EXPECT_NE(proof("abc", 1), proof("abd", 1));
  EXPECT_NE(proof("abc", 1), proof("abc", 2));
  static_assert(proof("", 0) != 0);
}

}  // namespace
}  // namespace pagoda
