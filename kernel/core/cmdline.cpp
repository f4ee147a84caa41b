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

}  // namespace pagoda
