// 16550 UART on COM1: the boot console. Polled, no interrupts.
//
//   port base+0  THR  transmit holding register (DLL when LCR.DLAB = 1)
//        base+1  IER  interrupt enable          (DLM when LCR.DLAB = 1)
//        base+2  FCR  FIFO control
//        base+3  LCR  line control: word length, stop bits, parity, DLAB
//        base+4  MCR  modem control: DTR, RTS
//        base+5  LSR  line status: bit 0 = data ready, bit 5 = transmit holding register empty
#include "arch/x86_64/serial.hpp"

#include "arch/x86_64/boot_defs.h"
#include "arch/x86_64/cpu.hpp"

namespace pagoda::x86 {
namespace {

constexpr u16 kBase = COM1_PORT;
constexpr u16 kThr = kBase + 0, kIer = kBase + 1, kFcr = kBase + 2, kLcr = kBase + 3, kMcr = kBase + 4,
              kLsr = kBase + 5;
constexpr u16 kDll = kBase + 0, kDlm = kBase + 1;

constexpr u8 kLcrDlab = 0x80;
constexpr u8 kLcr8N1 = 0x03;          // 8 data bits, no parity, 1 stop bit
constexpr u8 kFcrEnableClear = 0xC7;  // enable and clear FIFOs, 14-byte trigger
constexpr u8 kMcrDtrRts = 0x03;
constexpr u8 kLsrThrEmpty = 0x20;
constexpr u8 kLsrDataReady = 0x01;
constexpr u16 kRbr = kBase + 0;    // receive buffer (DLAB = 0)
constexpr u16 kDivisor115200 = 1;  // 115200 / 115200

void put_raw(char c) {
  while ((inb(kLsr) & kLsrThrEmpty) == 0) pause();
  outb(kThr, u8(c));
}

}  // namespace

void serial_init() {
  outb(kIer, 0);
  outb(kLcr, kLcrDlab);
  outb(kDll, u8(kDivisor115200 & 0xff));
  outb(kDlm, u8(kDivisor115200 >> 8));
  outb(kLcr, kLcr8N1);
  outb(kFcr, kFcrEnableClear);
  outb(kMcr, kMcrDtrRts);
}

int serial_read_byte() { return (inb(kLsr) & kLsrDataReady) ? inb(kRbr) : -1; }

void serial_write(StringView text) {
  for (char c : text) {
    if (c == '\n') put_raw('\r');
    put_raw(c);
  }
}

}  // namespace pagoda::x86
