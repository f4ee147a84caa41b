/// @file lab.hpp
/// @brief What lab skeletons call: loud at run time, harmless to the labs before them.
///
/// A published lab branch replaces each solution region of that lab by a skeleton. Skeletons
/// of functions that return a Result call lab_not_done(), which prints the message (naming the
/// lab, the function to write and the handout) and returns Error::NotImplemented; callers that
/// can carry on without the feature (so that earlier labs still work) check for that error.
/// Skeletons of functions that cannot fail panic() with such a message instead.
#pragma once

#include "lib/result.hpp"
#include "lib/string_view.hpp"

namespace pagoda {

/// Prints "LAB TODO: <message>" once per distinct message and returns Error::NotImplemented.
Error lab_not_done(StringView message);

}  // namespace pagoda
