// edges: the user copies at the top of the user half, and program names of exactly the kernel's
// limit (lab 4: each boundary driven from both sides). Every buffer lies at the very top of the
// user half, in the top page of the stack, where the loader put this program's arguments (read
// before they are overwritten); the grader picks the sizes at run time.
//
//   edges TOP LEN OVER SHORT CUT   TOP: one past the user half's last byte; LEN: 24..32, the
//                                  bytes of a line that ends at TOP; OVER: bytes a range runs
//                                  past TOP; SHORT: 1..31, a name's bytes left before TOP; CUT:
//                                  1..31, a name's bytes before the program's first unmapped page
//
// The cases, each announced with "edges: next CASE" before its call and answered after it:
//   at_top       write() of a line whose last byte is TOP - 1: the line itself is printed
//   over_top     write() of the same line plus OVER bytes: the range runs past the user half (EFAULT)
//   read_over    read() into the same line plus OVER bytes (at most the kernel's chunk): the buffer
//                runs past the user half (EFAULT, before any input is waited for)
//   info_over    proc_info() into the last LEN bytes: its record runs past the user half (EFAULT)
//   info_at_top  proc_info() into the last sizeof(ProcInfo) bytes: written whole, ending at TOP
//   name_max     spawn() of a name of kMaxProgramName + 1 bytes, no NUL, ending at TOP: the
//                kernel's buffer is full before any NUL (ENAMETOOLONG), byte TOP is never read
//   name_fits    spawn() of a name of kMaxProgramName bytes and its NUL, ending at TOP: read
//                whole, no such program (ENOENT)
//   name_short   spawn() of a name of SHORT bytes, no NUL, ending at TOP: it runs off the user
//                half before the buffer is full (EFAULT), byte TOP is never read
//   name_cut     spawn() of a name of CUT bytes, no NUL, ending at the last byte of the program's
//                last mapped page (past _end): reading on faults in the unmapped page (EFAULT)
#include "user/lib/derived.hpp"
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

namespace {

extern "C" char _end[];  // user.ld: the end of the last mapped segment

char g_token[128];  // a copy: the token's argument lies in the page the cases overwrite
StringView g_tok;

/// Letter i of the run's letters: the grader computes the same ones from the token.
char letter(u64 i) { return char(derived::value(derived::edges_letter, i, g_tok)); }

void next(const char* name) { println("edges: next {}", name); }

void answer(const char* name, i64 result, u64 tag) {
  println("edges: {} -> {} proof={:016x}", name, result, proof(g_tok, u64(result) ^ (tag << 8)));
}

/// Fills [top - n, top) with letters from @p first on, and a NUL as its last byte when @p nul.
char* name_at_top(u64 top, u64 n, u64 first, bool nul) {
  char* start = reinterpret_cast<char*>(uptr(top - n));
  for (u64 i = 0; i < n; ++i) start[i] = letter(first + i);
  if (nul) start[n - 1] = '\0';
  return start;
}

}  // namespace

int main(int, char** argv) {
  const u64 top = arg_number(1, 0), len = arg_number(2, 0), over = arg_number(3, 0), shortn = arg_number(4, 0);
  const u64 cut = arg_number(5, 0);
  const u64 end = u64(reinterpret_cast<uptr>(_end)), end_page = (end + arch::kPageSize - 1) & ~(arch::kPageSize - 1);
  const StringView tok = token();
  const u64 room = top - u64(reinterpret_cast<uptr>(argv));  // the arguments' bytes below TOP
  if (top == 0 || len < 24 || len > 32 || over == 0 || shortn == 0 || shortn > abi::kMaxProgramName ||
      tok.size() > sizeof g_token || room < sizeof(abi::ProcInfo) || room > arch::kPageSize || cut == 0 ||
      cut > abi::kMaxProgramName || cut > end_page - end) {
    println("edges: usage: edges TOP LEN(24..32) OVER SHORT(1..{}) CUT(1..{})", abi::kMaxProgramName,
            min<u64>(abi::kMaxProgramName, end_page - end));
    return 2;
  }
  for (usize i = 0; i < tok.size(); ++i) g_token[i] = tok[i];
  g_tok = StringView(g_token, tok.size());

  // A line of LEN bytes whose last byte (its newline) is the user half's last byte.
  char* line = reinterpret_cast<char*>(uptr(top - len));
  const char prefix[] = "edges: ";
  for (u64 i = 0; i < len; ++i) line[i] = i < sizeof prefix - 1 ? prefix[i] : letter(i);
  line[len - 1] = '\n';
  next("at_top");
  answer("at_top", write(1, line, len), 1);
  next("over_top");
  answer("over_top", write(1, line, len + over), 2);
  next("read_over");
  answer("read_over", read(0, line, len + min<u64>(over, 64)), 9);

  next("info_over");
  answer("info_over", call(abi::Syscall::ProcInfo, top - len, sizeof(abi::ProcInfo)), 3);
  next("info_at_top");
  auto* info = reinterpret_cast<abi::ProcInfo*>(uptr(top - sizeof(abi::ProcInfo)));
  const i64 got = call(abi::Syscall::ProcInfo, u64(reinterpret_cast<uptr>(info)), sizeof(abi::ProcInfo));
  answer("info_at_top", got == i64(sizeof(abi::ProcInfo)) && u64(getpid()) == info->pid ? got : -1, 4);

  next("name_max");
  answer("name_max", spawn(name_at_top(top, abi::kMaxProgramName + 1, 100, false)), 5);
  next("name_fits");
  answer("name_fits", spawn(name_at_top(top, abi::kMaxProgramName + 1, 200, true)), 6);
  next("name_short");
  answer("name_short", spawn(name_at_top(top, shortn, 300, false)), 7);
  next("name_cut");
  answer("name_cut", spawn(name_at_top(end_page, cut, 400, false)), 8);
  println("edges: done proof={:016x}", proof(g_tok, top ^ len));
  return 0;
}
