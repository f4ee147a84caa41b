#include "core/cmdline.hpp"

namespace pagoda {

CmdlineValue cmdline_get(StringView cmdline, StringView key) {
  CmdlineValue result;
  usize i = 0;
  while (i < cmdline.size()) {
    while (i < cmdline.size() && cmdline[i] == ' ') ++i;
    usize end = cmdline.find(' ', i);
    if (end == StringView::npos) end = cmdline.size();
    const StringView word = cmdline.substr(i, end - i);
    const usize eq = word.find('=');
    if (eq != StringView::npos && word.substr(0, eq) == key) result = {word.substr(eq + 1), true};
    i = end;
  }
  return result;
}

Result<u64> parse_u64(StringView text) {
  u64 base = 10;
  if (text.starts_with("0x") || text.starts_with("0X")) {
    base = 16;
    text = text.substr(2);
  }
  if (text.empty()) return Error::InvalidArgument;
  u64 value = 0;
  for (char c : text) {
    u64 digit;
    if (c >= '0' && c <= '9') digit = u64(c - '0');
    else if (base == 16 && c >= 'a' && c <= 'f') digit = u64(c - 'a' + 10);
    else if (base == 16 && c >= 'A' && c <= 'F') digit = u64(c - 'A' + 10);
    else return Error::InvalidArgument;
    if (value > (~u64{0} - digit) / base) return Error::InvalidArgument;
    value = value * base + digit;
  }
  return value;
}

}  // namespace pagoda
