#pragma once
// Facts about this build, fixed at configure time.

#include <string_view>

namespace mlctl::build {

std::string_view version();    // "0.1.0"
std::string_view git_commit(); // short hash, or "unknown" outside a git checkout
std::string_view build_type(); // "Release", "Debug", ...
std::string_view target_cpu(); // "x86-64-v3" or "x86-64"

} // namespace mlctl::build
