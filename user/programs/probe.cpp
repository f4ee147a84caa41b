// probe: touches one address it may not, to be killed for it (lab 3's isolation test).
//
//   probe read ADDRESS     reads 8 bytes at ADDRESS (a kernel address, a non-canonical one, ...)
//   probe write ADDRESS    writes 8 bytes there
//   probe read stdin       reads the address from the console first (one line), then reads it
//   probe exec_data        calls code it wrote into its own .data (no-execute)
//   probe write_text       writes into its own .text (read-only)
//
// It prints what it is about to do, then does it; if it is still alive afterwards it says so
// and exits with 1.
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

extern "C" {
/// Where the faulting instructions are (the grader checks RIP against these symbols).
void probe_read(u64 address);
void probe_write(u64 address);
/// A return instruction in writable data: executing it must fault.
#if defined(__x86_64__)
volatile u8 probe_data_code[16] = {0xc3};  // ret
#elif defined(__aarch64__)
volatile u8 probe_data_code[16] = {0xc0, 0x03, 0x5f, 0xd6};  // ret
#endif
}

// The accesses, in assembly so that the faulting instruction has a known address.
#if defined(__x86_64__)
asm(R"(
    .text
    .globl probe_read, probe_write
probe_read:
    movq (%rdi), %rax
    ret
probe_write:
    movq %rdi, (%rdi)
    ret
)");
#elif defined(__aarch64__)
asm(R"(
    .text
    .globl probe_read, probe_write
probe_read:
    ldr x0, [x0]
    ret
probe_write:
    str x0, [x0]
    ret
)");
#endif

namespace {

u64 read_address_line() {
  char line[64];
  usize n = 0;
  println("probe: pid {} waiting for an address on the console", getpid());
  while (n < sizeof line - 1) {
    const i64 got = read(abi::kStdin, line + n, sizeof line - 1 - n);
    if (abi::is_error(got)) break;
    n += usize(got);
    if (n > 0 && line[n - 1] == '\n') break;
  }
  u64 value = 0;
  if (n > 0 && line[n - 1] == '\n') --n;
  return parse_number(StringView(line, n), value) ? value : 0;
}

}  // namespace

int main(int, char**) {
  const StringView mode = arg(1);
  const i64 pid = getpid();
  if (mode == "read" || mode == "write") {
    const u64 address = arg(2) == "stdin" ? read_address_line() : arg_number(2, 0);
    println("probe: pid {} {}s {:#x}", pid, mode, address);
    if (mode == "read") probe_read(address);
    else probe_write(address);
  } else if (mode == "exec_data") {
    println("probe: pid {} executes its data at {:#x}", pid, reinterpret_cast<uptr>(probe_data_code));
    // Read it first: pages come on demand (lab 5), and the fetch must meet a present NX page.
    if (probe_data_code[0] == 0) return 3;
    reinterpret_cast<void (*)()>(reinterpret_cast<uptr>(probe_data_code))();
  } else if (mode == "write_text") {
    println("probe: pid {} writes its text at {:#x}", pid, reinterpret_cast<uptr>(&probe_read));
    probe_write(reinterpret_cast<uptr>(&probe_read));
  } else {
    println("probe: unknown mode '{}' (read, write, exec_data, write_text)", mode);
    return 2;
  }
  println("probe: pid {} is still alive", pid);
  return 1;
}
