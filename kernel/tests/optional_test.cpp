// Optional<T>: every value made is ended exactly once (by reset, emplace, move assignment or the
// Optional's own end), a move leaves the source empty, and an empty one refuses its value.
#include <gtest/gtest.h>

#include <cstddef>
#include <string>

#include "host_support.hpp"
#include "lib/optional.hpp"

namespace pagoda {
namespace {

/// Counts its makings and endings, and knows whether it was moved from (then it owns nothing).
struct Tracked {
  static inline int made = 0;
  static inline int ended = 0;
  static inline int owning_ended = 0;  ///< endings of one that still owned its value

  explicit Tracked(int v) : value(v) { ++made; }
  Tracked(Tracked&& other) : value(other.value), owns(other.owns) {
    other.owns = false;
    ++made;
  }
  Tracked(const Tracked&) = delete;
  Tracked& operator=(const Tracked&) = delete;
  Tracked& operator=(Tracked&&) = delete;  // like AddressSpace: moved, never assigned
  ~Tracked() {
    ++ended;
    if (owns) ++owning_ended;
  }

  int value;
  bool owns = true;
};

class OptionalTest : public ::testing::Test {
 protected:
  void SetUp() override { Tracked::made = Tracked::ended = Tracked::owning_ended = 0; }
  /// Values alive now.
  static int alive() { return Tracked::made - Tracked::ended; }
};

TEST_F(OptionalTest, EmptyUntilEmplacedAndEndedByReset) {
  Optional<Tracked> o;
  EXPECT_FALSE(o.has_value());
  EXPECT_FALSE(bool(o));
  EXPECT_EQ(o.emplace(7).value, 7);
  EXPECT_TRUE(o.has_value());
  EXPECT_EQ(o->value, 7);
  EXPECT_EQ((*o).value, 7);
  EXPECT_EQ(alive(), 1);
  o.reset();
  EXPECT_FALSE(o.has_value());
  EXPECT_EQ(alive(), 0);
  EXPECT_EQ(Tracked::owning_ended, 1);
  o.reset();  // nothing held: nothing ended again
  EXPECT_EQ(Tracked::ended, 1);
}

TEST_F(OptionalTest, EmplaceEndsTheValueItHeldFirst) {
  Optional<Tracked> o;
  o.emplace(1);
  o.emplace(2);
  EXPECT_EQ(o->value, 2);
  EXPECT_EQ(alive(), 1);
  EXPECT_EQ(Tracked::owning_ended, 1);
}

TEST_F(OptionalTest, ItsOwnEndEndsTheValue) {
  {
    Optional<Tracked> o;
    o.emplace(3);
    EXPECT_EQ(alive(), 1);
  }
  EXPECT_EQ(alive(), 0);
  EXPECT_EQ(Tracked::owning_ended, 1);
  { Optional<Tracked> empty; }
  EXPECT_EQ(Tracked::ended, 1);
}

TEST_F(OptionalTest, AMoveTakesTheValueAndLeavesTheSourceEmpty) {
  Optional<Tracked> a;
  a.emplace(4);
  Optional<Tracked> b(move(a));
  EXPECT_FALSE(a.has_value());
  ASSERT_TRUE(b.has_value());
  EXPECT_EQ(b->value, 4);
  EXPECT_TRUE(b->owns);
  EXPECT_EQ(alive(), 1);
  EXPECT_EQ(Tracked::owning_ended, 0);  // the moved-from T ended, owning nothing
  Optional<Tracked> c(Tracked(9));      // from a value
  EXPECT_EQ(c->value, 9);
  EXPECT_EQ(alive(), 2);
}

TEST_F(OptionalTest, MoveAssignmentEndsWhatTheTargetHeld) {
  Optional<Tracked> a;
  Optional<Tracked> b;
  a.emplace(5);
  b.emplace(6);
  b = move(a);
  EXPECT_EQ(b->value, 5);
  EXPECT_FALSE(a.has_value());
  EXPECT_EQ(alive(), 1);
  EXPECT_EQ(Tracked::owning_ended, 1);  // b's 6
  b = Optional<Tracked>();              // from an empty one
  EXPECT_FALSE(b.has_value());
  EXPECT_EQ(alive(), 0);
  EXPECT_EQ(Tracked::owning_ended, 2);
  Optional<Tracked>& self = b;
  b.emplace(8);
  b = move(self);  // onto itself: kept
  EXPECT_EQ(b->value, 8);
  EXPECT_EQ(alive(), 1);
}

/// Made in place, never moved (like UserRegions, whose VmaSet cannot move).
struct Pinned {
  explicit Pinned(int v) : value(v) {}
  Pinned(Pinned&&) = delete;
  int value;
};
static_assert(!Optional<Pinned>::kMovable && !__is_constructible(Optional<Pinned>, Optional<Pinned>&&));
static_assert(Optional<Tracked>::kMovable && __is_constructible(Optional<Tracked>, Optional<Tracked>&&));

TEST_F(OptionalTest, AValueThatCannotMoveIsMadeAndEndedInPlace) {
  Optional<Pinned> o;
  EXPECT_EQ(o.emplace(3).value, 3);
  EXPECT_EQ(o.emplace(4).value, 4);
  o.reset();
  EXPECT_FALSE(o.has_value());
}

TEST_F(OptionalTest, AnEmptyOptionalRefusesItsValue) {
  Optional<Tracked> o;
  EXPECT_THROW((void)o.value(), host::HostPanic);
  const Optional<Tracked>& c = o;
  EXPECT_THROW((void)c.value(), host::HostPanic);
  try {
    (void)o.value();
  } catch (const host::HostPanic& e) {
    EXPECT_NE(std::string(e.what()).find("Optional::value() of an empty Optional"), std::string::npos) << e.what();
  }
}

/// Not standard layout (a virtual function, like the arch's address spaces).
struct Polymorphic {
  virtual ~Polymorphic() = default;
  u64 x = 0;
};
/// A record holding one, as Process does.
struct Holder {
  u32 id = 0;
  Optional<Polymorphic> held;
};

TEST_F(OptionalTest, TheRecordStaysStandardLayoutAndTheOffsetsFindTheValueAndTheFlag) {
  static_assert(__is_standard_layout(Optional<Polymorphic>));
  static_assert(__is_standard_layout(Holder));
  Holder h;
  const auto* base = reinterpret_cast<const u8*>(&h);
  const usize at = offsetof(Holder, held);
  EXPECT_EQ(base[at + Optional<Polymorphic>::engaged_offset()], 0);
  Polymorphic& made = h.held.emplace();
  EXPECT_EQ(reinterpret_cast<const u8*>(&made), base + at + Optional<Polymorphic>::value_offset());
  EXPECT_EQ(base[at + Optional<Polymorphic>::engaged_offset()], 1);
}

}  // namespace
}  // namespace pagoda
