// Finding embedded programs by name; the table itself is generated (cmake/user.cmake).
#include "proc/programs.hpp"

namespace pagoda {

const EmbeddedProgram* find_program(StringView name) {
  for (const EmbeddedProgram& p : embedded_programs())
    if (p.name == name) return &p;
  return nullptr;
}

}  // namespace pagoda
