/// @file string_view.hpp
/// @brief StringView: a non-owning, length-delimited run of characters.
#pragma once

#include "lib/types.hpp"

namespace pagoda {

/// A read-only view of characters; not necessarily NUL-terminated.
class StringView {
 public:
  constexpr StringView() = default;
  constexpr StringView(const char* data, usize size) : data_(data), size_(size) {}
  /// From a NUL-terminated string (the terminator is not part of the view).
  constexpr StringView(const char* cstr) : data_(cstr), size_(cstr ? length_of(cstr) : 0) {}

  constexpr const char* data() const { return data_; }
  constexpr usize size() const { return size_; }
  constexpr bool empty() const { return size_ == 0; }
  constexpr char operator[](usize i) const { return data_[i]; }
  constexpr const char* begin() const { return data_; }
  constexpr const char* end() const { return data_ + size_; }

  /// The characters [pos, pos + count), clipped to the view.
  constexpr StringView substr(usize pos, usize count = ~usize{0}) const {
    if (pos > size_) pos = size_;
    if (count > size_ - pos) count = size_ - pos;
    return {data_ + pos, count};
  }
  constexpr bool starts_with(StringView prefix) const {
    return prefix.size_ <= size_ && substr(0, prefix.size_) == prefix;
  }
  /// Index of the first @p c at or after @p from, or npos.
  constexpr usize find(char c, usize from = 0) const {
    for (usize i = from; i < size_; ++i)
      if (data_[i] == c) return i;
    return npos;
  }
  friend constexpr bool operator==(StringView a, StringView b) {
    if (a.size_ != b.size_) return false;
    for (usize i = 0; i < a.size_; ++i)
      if (a.data_[i] != b.data_[i]) return false;
    return true;
  }

  static constexpr usize npos = ~usize{0};

 private:
  static constexpr usize length_of(const char* s) {
    usize n = 0;
    while (s[n] != '\0') ++n;
    return n;
  }
  const char* data_ = nullptr;
  usize size_ = 0;
};

}  // namespace pagoda
