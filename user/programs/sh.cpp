// sh: a small shell (lab 6): fork, exec, wait and exit put to work.
//
//   $ echo hello world        runs the embedded program `echo` with its arguments (fork, then
//                             exec in the child; the shell waits for it)
//   $ spin 100000 &           `&` at the end: runs it in the background, prints [pid]
//   $ echo $?                 $? is the exit status of the last command in the foreground
//   $ wait                    waits for every background job
//   $ exit [CODE]             ends the shell (end of input does too)
//
// A finished background job is reported ("[pid] done: ...") before the next prompt. The boot
// token, when the shell has one, is passed on to every program it runs (token=...), so that
// their proofs are checkable. A program that does not exist: "sh: NAME: ENOENT", status 127.
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

namespace {

constexpr usize kLine = 256;
constexpr i32 kNotFound = 127;

/// Reads one line (without its newline) into @p line, echoing what it reads (the serial console
/// does not: the terminal is raw) and honouring backspace; false at the end of input.
bool read_line(char* line, usize size, usize& length) {
  length = 0;
  for (;;) {
    char chunk[kLine];
    const i64 n = read(abi::kStdin, chunk, sizeof chunk);
    if (n <= 0) return length > 0;
    for (i64 i = 0; i < n; ++i) {
      if (chunk[i] == '\n') {
        (void)write(abi::kStdout, "\n", 1);
        return true;
      }
      if (chunk[i] == '\b' || chunk[i] == 0x7f) {
        if (length > 0) {
          --length;
          (void)write(abi::kStdout, "\b \b", 3);
        }
        continue;
      }
      if (length + 1 < size) {
        line[length++] = chunk[i];
        (void)write(abi::kStdout, &chunk[i], 1);
      }
    }
  }
}

/// The status a wait reports, as a shell shows it: the exit code, or 128 + how it was killed.
i32 status_of(const abi::ExitInfo& info) {
  return info.how == u32(abi::Termination::Exited) ? info.code : 128 + i32(info.how);
}

void describe(i64 pid, const abi::ExitInfo& info) {
  if (info.how == u32(abi::Termination::Exited)) println("[{}] done: exit {}", pid, info.code);
  else println("[{}] done: killed ({})", pid, abi::termination_name(abi::Termination(info.how)));
}

/// Reports the background jobs that ended since the last prompt.
void reap_background() {
  abi::ExitInfo info{};
  for (i64 pid; (pid = waitpid(-1, &info, abi::kWaitNoHang)) > 0;) describe(pid, info);
}

}  // namespace

int main(int, char**) {
  char token_arg[96] = {};
  if (!token().empty()) format_buffer(token_arg, sizeof token_arg, "{}{}", abi::kTokenArgPrefix, token());
  i32 last = 0;
  char line[kLine];
  char status[16];
  for (;;) {
    reap_background();
    (void)write(abi::kStdout, "$ ", 2);
    usize length = 0;
    if (!read_line(line, sizeof line, length)) break;
    // Words, separated by spaces; `$?` is the last status; a final `&` runs in the background.
    const char* argv[abi::kMaxArgs + 1] = {};
    usize argc = 0;
    bool background = false, too_many = false;
    for (usize i = 0; i < length;) {
      while (i < length && (line[i] == ' ' || line[i] == '\t')) line[i++] = '\0';
      if (i == length) break;
      const usize start = i;
      while (i < length && line[i] != ' ' && line[i] != '\t') ++i;
      if (i < length) line[i++] = '\0';
      else line[length] = '\0';
      const StringView word(line + start);
      if (word == "&") {
        background = true;
        continue;
      }
      if (argc + 2 > abi::kMaxArgs) {
        too_many = true;
        continue;
      }
      argv[argc++] = word == "$?" ? format_buffer(status, sizeof status, "{}", last).data() : line + start;
    }
    if (too_many) {
      println("sh: more than {} arguments", abi::kMaxArgs - 2);
      last = 2;
      continue;
    }
    if (argc == 0) continue;
    const StringView name(argv[0]);
    if (name == "exit") {
      u64 code = u64(last);
      if (argc > 1 && !parse_number(StringView(argv[1]), code)) code = 2;
      return i32(code);
    }
    if (name == "wait") {
      abi::ExitInfo info{};
      for (i64 pid; (pid = wait(&info)) > 0;) describe(pid, info);
      continue;
    }
    if (token_arg[0] != '\0') argv[argc++] = token_arg;
    argv[argc] = nullptr;
    const i64 pid = fork();
    if (pid == 0) {
      const i64 r = exec(argv[0], argv);
      println("sh: {}: {}", name, abi::errno_name(abi::errno_of(r)));
      exit(kNotFound);
    }
    if (pid < 0) {
      println("sh: fork: {}", abi::errno_name(abi::errno_of(pid)));
      last = 2;
      continue;
    }
    if (background) {
      println("[{}]", pid);
      continue;
    }
    abi::ExitInfo info{};
    if (waitpid(pid, &info) == pid) last = status_of(info);
  }
  return last;
}
