// The two text helpers every parser here needs: trimming and ASCII lower case.
#pragma once

#include <string>

namespace ewnet::collect {

/// `s` without leading and trailing white space.
std::string trim(const std::string& s);

/// `s` with A-Z as a-z (names, headers and URL schemes are ASCII case-insensitive).
std::string lower(std::string s);

}  // namespace ewnet::collect
