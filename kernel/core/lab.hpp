/// @file lab.hpp
/// @brief What lab skeletons and the code around them use: loud at run time, harmless to the
/// labs before them.
///
/// A published lab branch replaces each solution region of that lab by a skeleton. A skeleton
/// of a function that returns a Result returns an error that carries its message (naming the
/// lab, the function to write and the handout):
///
///     return Error(Error::NotImplemented, "lab 1: write Cursor::make_path() in ...");
///
/// Callers that can carry on without the feature (so that earlier labs still work) check for
/// Error::NotImplemented and print it once with lab_todo(). The page-table layer never includes
/// this header: its skeletons only return such errors. Skeletons of functions that cannot fail
/// panic() with such a message instead; those that must print and carry on (a lab-1 fallback
/// in a lab-2 skeleton) call lab_not_done().
#pragma once

#include "lib/result.hpp"

namespace pagoda {

/// Prints "LAB TODO: <message>" once per distinct message (and "LAB TODO: <error>" for an
/// error without one). A caller that carries on with a working stand-in for the missing feature
/// names it in @p stand_in: the line ends "(meanwhile: <stand_in>)", and the grader then knows the
/// skeleton blocks nothing by itself (it never heads a failure: grade/pagoda_grade/outcomes.py).
void lab_todo(const Error& error, const char* stand_in = nullptr);

/// lab_todo() of an Error::NotImplemented made at the caller's line with @p message; returns it.
Error lab_not_done(const char* message, const char* made_in = __builtin_FILE(), u32 made_at = __builtin_LINE());

}  // namespace pagoda
