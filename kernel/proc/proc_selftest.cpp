// Self-tests of lab 3 that are not a run= of programs.
#include "core/selftest.hpp"
