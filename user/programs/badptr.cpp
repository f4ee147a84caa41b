// badptr: hands the kernel every kind of bad pointer, for reading and for writing, and prints
// what each call returned (lab 4's safe user copies). Each must come back EFAULT; the kernel
// must neither fault nor panic.
//
//   badptr KERNEL UNMAPPED LAST   KERNEL: an address in the kernel half; UNMAPPED: a user address
//                                 that is not mapped; LAST: a record size, 2 to sizeof(ProcInfo)
//                                 (all three chosen by the grader at run time)
//
// The kinds: null, kernel half, non-canonical, unmapped, straddling the end of the program's
// last mapped page, (writes only) a read-only page of the program's own, and (proc_info only)
// last_byte: a LAST-byte record whose last byte alone lies past that page, so that the copy
// faults on its very last store, with one byte not copied. A read is the
// kernel reading user memory (write's buffer, spawn's name); a write is the kernel writing it
// (proc_info's result). read(0, buffer) does both: it proves its buffer (reads it, writes it
// back) before it waits for input, so a bad buffer returns EFAULT at once, in the read
// direction for the unreadable kinds and in the write direction for the read-only page.
#include "user/lib/user.hpp"

using namespace pagoda;
using namespace pagoda::user;

extern "C" char _end[];  // user.ld: the end of the last mapped segment

namespace {

const char kReadOnly[64] = "badptr: a read-only page of the program's own";

struct Kind {
  const char* name;
  u64 address;
  bool for_read;
};

}  // namespace

int main(int, char**) {
  const u64 kernel = arg_number(1, 0);
  const u64 unmapped = arg_number(2, 0);
  const u64 last = arg_number(3, 0);
  if (kernel == 0 || unmapped == 0 || last < 2 || last > sizeof(abi::ProcInfo)) {
    println("badptr: usage: badptr KERNEL UNMAPPED LAST");
    return 2;
  }
  const u64 end_page = (u64(reinterpret_cast<uptr>(_end)) + 0xfff) & ~u64(0xfff);
  // The last 16 mapped bytes hold no NUL: a string read from there runs off the mapping.
  for (u64 a = end_page - 16; a < end_page; ++a) *reinterpret_cast<volatile char*>(uptr(a)) = 'A';
  const Kind kinds[] = {
      {"null", 0, true},
      {"kernel", kernel, true},
      {"noncanonical", 0x00ff'0000'0000'0000ull | (unmapped & 0xffff'ffffull), true},  // on every ISA
      {"unmapped", unmapped, true},
      {"straddling", end_page - 16, true},
      {"readonly", u64(reinterpret_cast<uptr>(kReadOnly)), false},
  };
  u64 faults = 0, tag = 0;
  for (const Kind& k : kinds) {
    ++tag;
    if (k.for_read) {
      const i64 w = call(abi::Syscall::Write, 1, k.address, 64);
      println("badptr: {} read (write) -> {} proof={:016x}", k.name, w, proof(token(), u64(w) ^ (tag << 8)));
      const i64 s = call(abi::Syscall::Spawn, k.address, 0);
      println("badptr: {} read (spawn) -> {} proof={:016x}", k.name, s, proof(token(), u64(s) ^ (tag << 8) ^ 1));
      faults += (w == -14) + (s == -14);
    }
    const i64 p = call(abi::Syscall::ProcInfo, k.address, sizeof(abi::ProcInfo));
    println("badptr: {} write (proc_info) -> {} proof={:016x}", k.name, p, proof(token(), u64(p) ^ (tag << 8) ^ 2));
    const i64 r = call(abi::Syscall::Read, 0, k.address, 64);
    println("badptr: {} {} (read) -> {} proof={:016x}", k.name, k.for_read ? "read" : "write", r,
            proof(token(), u64(r) ^ (tag << 8) ^ 3));
    faults += (p == -14) + (r == -14);
  }
  // last_byte: only proc_info(), whose copy's very last store is the one that faults.
  ++tag;
  const i64 p = call(abi::Syscall::ProcInfo, end_page - (last - 1), last);
  println("badptr: last_byte write (proc_info) -> {} proof={:016x}", p, proof(token(), u64(p) ^ (tag << 8) ^ 2));
  faults += p == -14;
  println("badptr: {} EFAULTs proof={:016x}", faults, proof(token(), faults));
  return 0;
}
