// sh: a small shell (lab 6): fork, exec, wait and exit put to work.
//
//   $ echo hello world        runs the embedded program `echo` with its arguments (fork, then
//                             exec in the child; the shell waits for it)
//   $ spin 100000 &           `&` after a command: runs it in the background, prints [pid]
//   $ echo one; echo two      `;` after a command: runs it, then the next one
//   $ echo "a  b" 'c'         quotes keep spaces (and ; and &) inside one word
//   $ echo $?                 $? is the exit status of the last command in the foreground
//   $ help                    lists the builtins and the programs there are
//   $ jobs                    lists the background jobs still running
//   $ kill [-t] PID...        ends processes (-t: with their descendants)
//   $ wait                    waits for every background job
//   $ exit [CODE]             ends the shell (Ctrl-D on an empty line, or the end of input, too)
//
// Ctrl-C ends the program in the foreground: the shell makes each program it waits for the
// console's foreground process (the Foreground system call), and the kernel's console ends it,
// with its descendants, when Ctrl-C is typed (kernel/proc/terminal.hpp). At the prompt Ctrl-C
// drops the line being typed. A background job that ends is reported ("[pid] done: ...")
// before the next prompt; what a job prints while the shell waits for a line lands above the
// prompt, which the kernel's console writes again below it (kernel/core/held_line.hpp).
//
// The boot token, when the shell has one (under the grader), is passed on to every program it
// runs (token=...), so that their proofs are checkable. A program that does not exist:
// "sh: NAME: ENOENT", status 127.
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

namespace {

constexpr usize kLine = 256;
constexpr i32 kNotFound = 127;
constexpr i32 kUsage = 2;
/// Ctrl-D: the end of input on an empty line.
constexpr char kEndOfInput = 0x04;
/// Most commands one line may hold (`;` and `&` separate them).
constexpr usize kMaxCommands = 16;
/// Most background jobs the shell keeps track of.
constexpr usize kMaxJobs = 32;
/// Width of the program list `help` prints.
constexpr usize kHelpWidth = 78;

enum class LineEnd { Line, Interrupted, EndOfInput };

/// Reads one line (without its newline) into @p line, echoing what it reads (the serial console
/// does not: the terminal is raw) and honouring backspace; Ctrl-C drops the line, Ctrl-D on an
/// empty line (or the end of input) ends it.
LineEnd read_line(char* line, usize size, usize& length) {
  length = 0;
  for (;;) {
    char chunk[kLine];
    const i64 n = read(abi::kStdin, chunk, sizeof chunk);
    if (n <= 0) return length > 0 ? LineEnd::Line : LineEnd::EndOfInput;
    for (i64 i = 0; i < n; ++i) {
      const char c = chunk[i];
      if (c == '\n') {
        (void)write(abi::kStdout, "\n", 1);
        return LineEnd::Line;
      }
      if (c == abi::kConsoleInterrupt) {
        (void)write(abi::kStdout, "^C\n", 3);
        length = 0;
        return LineEnd::Interrupted;
      }
      if (c == kEndOfInput) {
        if (length > 0) continue;
        (void)write(abi::kStdout, "\n", 1);
        return LineEnd::EndOfInput;
      }
      if (c == '\b' || c == 0x7f) {
        if (length > 0) {
          --length;
          (void)write(abi::kStdout, "\b \b", 3);
        }
        continue;
      }
      if (u8(c) < ' ' && c != '\t') continue;  // other control keys (arrows' escapes) do nothing
      if (length + 1 < size) {
        line[length++] = c;
        (void)write(abi::kStdout, &c, 1);
      }
    }
  }
}

/// The status a wait reports, as a shell shows it: the exit code, or 128 + how it was killed.
i32 status_of(const abi::ExitInfo& info) {
  return info.how == u32(abi::Termination::Exited) ? info.code : 128 + i32(info.how);
}

const char* how_name(const abi::ExitInfo& info) { return abi::termination_name(abi::Termination(info.how)); }

// ---- background jobs ------------------------------------------------------------------------

struct Job {
  i64 pid = 0;
  char name[abi::kMaxProgramName + 1] = {};
};

Job g_jobs[kMaxJobs];

void add_job(i64 pid, StringView name) {
  for (Job& j : g_jobs)
    if (j.pid == 0) {
      j.pid = pid;
      (void)format_buffer(j.name, sizeof j.name, "{}", name);
      return;
    }
}

/// Forgets job @p pid; false when it was none of the shell's background jobs (a program's child
/// that the shell adopted when its parent ended).
bool end_job(i64 pid, char (&name)[abi::kMaxProgramName + 1]) {
  for (Job& j : g_jobs)
    if (j.pid == pid) {
      j.pid = 0;
      (void)format_buffer(name, sizeof name, "{}", StringView(j.name));
      return true;
    }
  return false;
}

/// Reports how background job @p pid ended (an adopted process ends silently).
void describe(i64 pid, const abi::ExitInfo& info) {
  char name[abi::kMaxProgramName + 1];
  if (!end_job(pid, name)) return;
  if (info.how == u32(abi::Termination::Exited)) println("[{}] done: {}: exit {}", pid, StringView(name), info.code);
  else println("[{}] done: {}: killed ({})", pid, StringView(name), how_name(info));
}

/// Reports the background jobs that ended since the last prompt.
void reap_background() {
  abi::ExitInfo info{};
  for (i64 pid; (pid = waitpid(-1, &info, abi::kWaitNoHang)) > 0;) describe(pid, info);
}

// ---- commands -------------------------------------------------------------------------------

struct Command {
  const char* argv[abi::kMaxArgs + 1] = {};
  usize argc = 0;
  bool background = false;
  bool too_many = false;
};

/// Splits @p line into commands: words separated by blanks, commands by `;` (run in turn) and
/// `&` (in the background). Quotes ("..." or '...') keep blanks, ; and & inside a word. The
/// words are written into @p words (NUL-terminated); `$?` becomes @p last. Returns how many
/// commands, or -1 (an unclosed quote: @p problem says so).
i64 parse(const char* line, usize length, char* words, Command* commands, const char* last, const char*& problem) {
  usize count = 0, at = 0;
  Command* cmd = &commands[0];
  *cmd = Command{};
  usize i = 0;
  const auto end_command = [&](bool background) -> bool {
    if (cmd->argc == 0) return true;  // an empty command (";;", "& ;") is nothing
    cmd->background = background;
    if (++count == kMaxCommands) return false;
    cmd = &commands[count];
    *cmd = Command{};
    return true;
  };
  while (i < length) {
    const char c = line[i];
    if (c == ' ' || c == '\t') {
      ++i;
      continue;
    }
    if (c == ';' || c == '&') {
      ++i;
      if (!end_command(c == '&')) break;
      continue;
    }
    // A word: up to a blank, ; or & outside quotes.
    char* word = words + at;
    bool quoted = false;
    while (i < length && line[i] != ' ' && line[i] != '\t' && line[i] != ';' && line[i] != '&') {
      if (line[i] == '"' || line[i] == '\'') {
        const char quote = line[i++];
        quoted = true;
        while (i < length && line[i] != quote) words[at++] = line[i++];
        if (i == length) {
          problem = quote == '"' ? "a \" is not closed" : "a ' is not closed";
          return -1;
        }
        ++i;
        continue;
      }
      words[at++] = line[i++];
    }
    words[at++] = '\0';
    const StringView w(word);
    if (cmd->argc + 2 > abi::kMaxArgs) {
      cmd->too_many = true;
      continue;
    }
    cmd->argv[cmd->argc++] = !quoted && w == "$?" ? last : word;
  }
  if (count < kMaxCommands && cmd->argc > 0) ++count;
  return i64(count);
}

// ---- builtins -------------------------------------------------------------------------------

struct Builtin {
  const char* name;
  const char* usage;
  const char* what;
};

constexpr Builtin kBuiltins[] = {
    {"help", "help", "this list: the builtins and the programs"},
    {"exit", "exit [CODE]", "end the shell (Ctrl-D does too)"},
    {"wait", "wait", "wait for every background job"},
    {"jobs", "jobs", "the background jobs still running"},
    {"kill", "kill [-t] PID...", "end processes (-t: with their descendants)"},
};

i32 help() {
  println("builtins:");
  for (const Builtin& b : kBuiltins) println("  {:<18} {}", b.usage, b.what);
  println("  {:<18} {}", "CMD ; CMD", "run one command, then the next");
  println("  {:<18} {}", "CMD &", "run it in the background");
  println("  {:<18} {}", "$?", "the exit status of the last command");
  println("  {:<18} {}", "Ctrl-C", "end the program in the foreground");
  char list[2048];
  const i64 size = programs(list, sizeof list);
  if (abi::is_error(size)) {
    println("sh: help: the program list: {}", abi::errno_name(abi::errno_of(size)));
    return 1;
  }
  println("programs (run one by name, with arguments):");
  // The names, in columns as wide as the longest one.
  const usize n = usize(min<i64>(size, i64(sizeof list)));
  usize widest = 0;
  for (usize start = 0, i = 0; i < n; ++i)
    if (list[i] == '\n') {
      widest = max(widest, i - start);
      start = i + 1;
    }
  const usize column = widest + 2, per_line = max<usize>(1, (kHelpWidth - 2) / column);
  char row[kHelpWidth + abi::kMaxProgramName + 8];
  usize used = 0, in_row = 0;
  for (usize start = 0, i = 0; i < n; ++i) {
    if (list[i] != '\n') continue;
    const StringView name(list + start, i - start);
    start = i + 1;
    if (in_row == 0) used = format_buffer(row, sizeof row, "  ").size();
    used += format_buffer(row + used, sizeof row - used, "{}", name).size();
    if (++in_row == per_line || i + 1 == n) {
      println("{}", StringView(row, used));
      in_row = 0;
      continue;
    }
    for (usize k = name.size(); k < column; ++k) row[used++] = ' ';
  }
  return 0;
}

i32 jobs() {
  for (const Job& j : g_jobs)
    if (j.pid != 0) println("[{}] running: {}", j.pid, StringView(j.name));
  return 0;
}

i32 kill_builtin(const Command& cmd) {
  usize first = 1;
  u64 flags = 0;
  if (cmd.argc > 1 && StringView(cmd.argv[1]) == "-t") {
    flags = abi::kKillTree;
    first = 2;
  }
  if (first >= cmd.argc) {
    println("sh: usage: kill [-t] PID...");
    return kUsage;
  }
  i32 status = 0;
  for (usize i = first; i < cmd.argc; ++i) {
    u64 pid = 0;
    if (!parse_number(StringView(cmd.argv[i]), pid)) {
      println("sh: kill: {}: not a process id", cmd.argv[i]);
      status = kUsage;
      continue;
    }
    const i64 r = kill(i64(pid), flags);
    if (abi::is_error(r)) {
      println("sh: kill: {}: {}", pid, abi::errno_name(abi::errno_of(r)));
      status = 1;
    }
  }
  return status;
}

/// Runs @p cmd; its status ($?).
i32 run(Command& cmd, const char* token_arg, bool& quit) {
  const StringView name(cmd.argv[0]);
  if (cmd.too_many) {
    println("sh: {}: more than {} arguments", name, abi::kMaxArgs - 2);
    return kUsage;
  }
  if (name == "exit") {
    u64 code = 0;
    if (cmd.argc > 1 && !parse_number(StringView(cmd.argv[1]), code)) code = kUsage;
    quit = true;
    return i32(code);
  }
  if (name == "help") return help();
  if (name == "jobs") return jobs();
  if (name == "kill") return kill_builtin(cmd);
  if (name == "wait") {
    abi::ExitInfo info{};
    for (i64 pid; (pid = wait(&info)) > 0;) describe(pid, info);
    return 0;
  }
  if (token_arg[0] != '\0') cmd.argv[cmd.argc++] = token_arg;
  cmd.argv[cmd.argc] = nullptr;
  const i64 pid = fork();
  if (pid == 0) {
    if (!cmd.background) (void)foreground(getpid());  // Ctrl-C from its first instruction on
    const i64 r = exec(cmd.argv[0], cmd.argv);
    println("sh: {}: {}", name, abi::errno_name(abi::errno_of(r)));
    exit(kNotFound);
  }
  if (pid < 0) {
    println("sh: fork: {}", abi::errno_name(abi::errno_of(pid)));
    return kUsage;
  }
  if (cmd.background) {
    add_job(pid, name);
    println("[{}]", pid);
    return 0;
  }
  const i64 previous = foreground(pid);  // (a shell run from a shell gives it back after)
  abi::ExitInfo info{};
  const i64 got = waitpid(pid, &info);
  (void)foreground(abi::is_error(previous) ? 0 : previous);
  if (got != pid) return kUsage;
  if (info.how != u32(abi::Termination::Exited) && info.how != u32(abi::Termination::Interrupted))
    println("sh: {}: killed ({})", name, how_name(info));
  return status_of(info);
}

}  // namespace

int main(int, char**) {
  char token_arg[96] = {};
  if (!token().empty()) format_buffer(token_arg, sizeof token_arg, "{}{}", abi::kTokenArgPrefix, token());
  i32 last = 0;
  char line[kLine];
  char words[2 * kLine];
  char status[16];
  Command commands[kMaxCommands];
  for (bool quit = false; !quit;) {
    reap_background();
    (void)write(abi::kStdout, "$ ", 2);
    usize length = 0;
    const LineEnd end = read_line(line, sizeof line, length);
    if (end == LineEnd::EndOfInput) break;
    if (end == LineEnd::Interrupted) {
      last = 128 + i32(abi::Termination::Interrupted);
      continue;
    }
    const char* problem = "";
    const i64 count = parse(line, length, words, commands, format_buffer(status, sizeof status, "{}", last).data(),
                            problem);
    if (count < 0) {
      println("sh: {}", problem);
      last = kUsage;
      continue;
    }
    for (i64 k = 0; k < count && !quit; ++k) last = run(commands[k], token_arg, quit);
  }
  return last;
}
