/// @file terminal.hpp
/// @brief The console as processes see it: typed input kept for read(), the foreground process,
///        and the interrupt character (Ctrl-C) that ends it.
///
/// The console's receiver is read at every timer tick (and by read() itself), not only while a
/// process reads: so a Ctrl-C reaches the kernel while the foreground program spins and nobody
/// reads. What was typed waits in a buffer for read(). The interrupt character
/// (abi::kConsoleInterrupt) ends the foreground process and its descendants through kill()
/// (Termination::Interrupted), echoes "^C" and drops what was typed ahead; without a
/// foreground process it is input like any other byte (the shell, at its prompt, drops its
/// line). The shell makes each program it waits for the foreground process (abi Foreground).
///
///     timer tick / read() --> poll() --> [input buffer] --> take() --> read()
///                               |
///                               +-- ^C with a foreground process --> kill(fg, tree) --> exit path
#pragma once

#include "lib/types.hpp"

namespace pagoda::proc {

/// Starts taking console input for processes (run_programs(); before it the boot's self-tests
/// read the console themselves).
void terminal_start();

/// Moves what the console's receiver holds into the input buffer, acting on the interrupt
/// character; then lets the console redraw a held line (console_settle()). Interrupts off.
void terminal_poll();

/// Takes up to @p size bytes of input into @p out, stopping after the first newline (a carriage
/// return arrives as a newline); how many (0: nothing is waiting).
usize terminal_take(char* out, usize size);

/// The foreground process (0: none): the one the interrupt character ends.
u32 foreground();
/// Makes @p pid the foreground process (0: none); returns the previous one.
u32 set_foreground(u32 pid);

}  // namespace pagoda::proc
