"""The machinery ./pagoda's commands and the grader share (standard library only at import): where
things are (paths), messages (ui), building the kernel (build), starting QEMU (qemu), reading QEMU's
exception log (faultlog), an ELF file read with pyelftools (elffile: segments, sections, symbols,
the tables of names the kernel exports) and what it tells (kernelinfo), naming addresses (symbolize), this
machine's speed (speed, pytest_speed), the labs' slips (slips) and the TOML parser (tomlparse).

It sits below both: tools/pagoda (the commands) and grade/pagoda_grade (the grader) import it;
it imports neither (tools/pagoda/layers.py checks that, and that no Python import goes round in
a circle)."""
