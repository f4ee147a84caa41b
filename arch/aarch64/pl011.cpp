// The ARM PrimeCell PL011 UART: the boot console. Polled, no interrupts.
//
//   offset  register   what
//   0x000   UARTDR     data: a write transmits the low 8 bits, a read takes a received byte
//   0x018   UARTFR     flags: bit 5 TXFF transmit FIFO full, bit 4 RXFE receive FIFO empty, bit 3 BUSY
//   0x024   UARTIBRD   integer part of the baud rate divisor
//   0x028   UARTFBRD   fractional part (6 bits, in 64ths)
//   0x02c   UARTLCR_H  line control: bits 6:5 WLEN (11 = 8 bits), bit 4 FEN (FIFOs on)
//   0x030   UARTCR     control: bit 0 UARTEN, bit 8 TXE, bit 9 RXE
//   0x038   UARTIMSC   interrupt mask (0: no interrupts)
//   0x044   UARTICR    interrupt clear
#include "arch/aarch64/pl011.hpp"

#include "mm/vm.hpp"

namespace pagoda::aarch64 {
namespace {

constexpr usize kDr = 0x000, kFr = 0x018, kIbrd = 0x024, kFbrd = 0x028, kLcrH = 0x02c, kCr = 0x030, kImsc = 0x038,
                kIcr = 0x044;
constexpr u32 kFrTxFull = 1u << 5, kFrRxEmpty = 1u << 4, kFrBusy = 1u << 3;
constexpr u32 kLcrH8BitsFifo = (3u << 5) | (1u << 4);
constexpr u32 kCrEnable = (1u << 0) | (1u << 8) | (1u << 9);
constexpr u32 kIcrAll = 0x7ff;
// QEMU virt's UART clock is 24 MHz: 24e6 / (16 * 115200) = 13 + 1/64 (rounded).
constexpr u32 kIbrd115200 = 13, kFbrd115200 = 1;

PhysAddr g_base;

volatile u32* reg(usize offset) {
  return reinterpret_cast<volatile u32*>(static_cast<u8*>(vm::device_ptr(g_base)) + offset);
}

void put_raw(char c) {
  while (*reg(kFr) & kFrTxFull) {}
  *reg(kDr) = u8(c);
}

}  // namespace

void pl011_init(PhysAddr base) {
  g_base = base;
  *reg(kCr) = 0;
  while (*reg(kFr) & kFrBusy) {}
  *reg(kImsc) = 0;
  *reg(kIcr) = kIcrAll;
  *reg(kIbrd) = kIbrd115200;
  *reg(kFbrd) = kFbrd115200;
  *reg(kLcrH) = kLcrH8BitsFifo;
  *reg(kCr) = kCrEnable;
}

PhysAddr pl011_base() { return g_base; }

int pl011_read_byte() {
  if (g_base == PhysAddr() || (*reg(kFr) & kFrRxEmpty)) return -1;
  return int(*reg(kDr) & 0xff);  // bits 11:8 are the byte's error flags
}

void pl011_write(StringView text) {
  if (g_base == PhysAddr()) return;  // before pl011_init(): nowhere to write
  for (char c : text) {
    if (c == '\n') put_raw('\r');
    put_raw(c);
  }
}

}  // namespace pagoda::aarch64
