// The generic start-up of a user program: _start (per ISA) calls pagoda_user_start.
#include "user/lib/start.hpp"

#include "lib/abi.hpp"
#include "user/lib/syscalls.hpp"

extern "C" {
// Bounds of the constructor table, defined by user/user.ld.
using Constructor = void (*)();
extern Constructor __init_array_start[];
extern Constructor __init_array_end[];

// A pure virtual function was called through a partly built object: end the process.
void __cxa_pure_virtual() { pagoda::user::exit(127); }
}

int main(int argc, char** argv);

namespace pagoda::user {
namespace {

int g_argc = 0;
char** g_argv = nullptr;

}  // namespace

int argc() { return g_argc; }

StringView arg(int i) { return i >= 0 && i < g_argc && g_argv != nullptr ? StringView(g_argv[i]) : StringView(); }

StringView token() {
  for (int i = 0; i < g_argc; ++i) {
    const StringView a = arg(i);
    if (a.starts_with(abi::kTokenArgPrefix)) return a.substr(abi::kTokenArgPrefix.size());
  }
  return {};
}

bool grading() { return !token().empty(); }

bool parse_number(StringView text, u64& value) {
  u64 base = 10;
  if (text.starts_with("0x")) {
    base = 16;
    text = text.substr(2);
  }
  if (text.empty()) return false;
  u64 v = 0;
  for (char c : text) {
    u64 digit;
    if (c >= '0' && c <= '9') digit = u64(c - '0');
    else if (base == 16 && c >= 'a' && c <= 'f') digit = u64(c - 'a' + 10);
    else if (base == 16 && c >= 'A' && c <= 'F') digit = u64(c - 'A' + 10);
    else return false;
    if (v > (~u64{0} - digit) / base) return false;
    v = v * base + digit;
  }
  value = v;
  return true;
}

u64 arg_number(int i, u64 fallback) {
  u64 v;
  return parse_number(arg(i), v) ? v : fallback;
}

void exit(int code) {
  syscall_raw(u64(abi::Syscall::Exit), u64(i64(code)));
  __builtin_trap();  // the kernel returned from exit: stop here rather than run on
}

}  // namespace pagoda::user

extern "C" [[noreturn]] void pagoda_user_start(int argc, char** argv) {
  if (argc < 0 || argv == nullptr) argc = 0;
  pagoda::user::g_argc = argc;
  pagoda::user::g_argv = argv;
  for (Constructor* c = __init_array_start; c != __init_array_end; ++c) (*c)();
  pagoda::user::exit(main(argc, argv));
}
