"""pagoda_pt: the kernel's page tables and records, in plain Python, for the grader and Pagoda's
GDB helpers.

Nothing here imports gdb: physical memory comes in through a PhysReader callable
read_phys(pa, size) -> bytes, so everything can be tested against synthetic tables. The package
itself imports nothing: a caller takes the modules it needs (walker: walk, dump, diff; format:
the text; regs: the x86 registers' and error codes' decoders; contract: the kernel's names).
"""
