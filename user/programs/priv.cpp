// priv: executes one instruction that only the kernel may (lab 3): hlt, cli, movcr3 (mov to CR3),
// rdmsr, sgdt (user-mode instruction prevention, UMIP), or out. The CPU refuses it with a general
// protection fault and the kernel ends the process; if it is still alive it says so.
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

extern "C" {
void priv_hlt();
void priv_cli();
void priv_movcr3();
void priv_rdmsr();
void priv_sgdt(void* where);
void priv_out();
}

// One function per instruction, each starting with it (the grader checks the faulting PC
// against the symbol). The names are x86_64's; on AArch64 each is the nearest instruction
// that EL0 may not execute: wfi (trapped), msr daifset, msr ttbr0_el1, mrs of a system
// register, mrs vbar_el1, mrs sctlr_el1.
#if defined(__x86_64__)
asm(R"(
    .text
    .globl priv_hlt, priv_cli, priv_movcr3, priv_rdmsr, priv_sgdt, priv_out
priv_hlt:
    hlt
    ret
priv_cli:
    cli
    ret
priv_movcr3:
    mov %rdi, %cr3
    ret
priv_rdmsr:
    rdmsr
    ret
priv_sgdt:
    sgdt (%rdi)
    ret
priv_out:
    out %al, $0x80
    ret
)");
#elif defined(__aarch64__)
asm(R"(
    .text
    .globl priv_hlt, priv_cli, priv_movcr3, priv_rdmsr, priv_sgdt, priv_out
priv_hlt:
    wfi
    ret
priv_cli:
    msr daifset, #2
    ret
priv_movcr3:
    msr ttbr0_el1, x0
    ret
priv_rdmsr:
    mrs x0, ttbr1_el1
    ret
priv_sgdt:
    mrs x0, vbar_el1
    ret
priv_out:
    mrs x0, sctlr_el1
    ret
)");
#endif

int main(int, char**) {
  const StringView which = arg(1);
  println("priv: pid {} executes {}", getpid(), which);
  u8 table[16] = {};
  if (which == "hlt") priv_hlt();
  else if (which == "cli") priv_cli();
  else if (which == "movcr3") priv_movcr3();
  else if (which == "rdmsr") priv_rdmsr();
  else if (which == "sgdt") priv_sgdt(table);
  else if (which == "out") priv_out();
  else {
    println("priv: unknown instruction '{}' (hlt, cli, movcr3, rdmsr, sgdt, out)", which);
    return 2;
  }
  println("priv: pid {} is still alive after {}", getpid(), which);
  return 1;
}
