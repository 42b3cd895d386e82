#include "util/error.hpp"

#include <array>
#include <cerrno>
#include <utility>

namespace mlctl {

namespace {
constexpr std::array<std::pair<ErrorKind, std::string_view>, 9> k_names{{
    {ErrorKind::invalid_input, "invalid_input"},
    {ErrorKind::not_found, "not_found"},
    {ErrorKind::conflict, "conflict"},
    {ErrorKind::unavailable, "unavailable"},
    {ErrorKind::io, "io"},
    {ErrorKind::no_space, "no_space"},
    {ErrorKind::corrupt, "corrupt"},
    {ErrorKind::internal, "internal"},
    {ErrorKind::interrupted, "interrupted"},
}};
} // namespace

std::string_view to_string(ErrorKind kind) {
  for (const auto& [k, name] : k_names) {
    if (k == kind) {
      return name;
    }
  }
  return "internal";
}

ErrorKind error_kind_from_string(std::string_view name) {
  for (const auto& [k, n] : k_names) {
    if (n == name) {
      return k;
    }
  }
  return ErrorKind::internal;
}

ErrorKind io_error_kind(int error) noexcept {
  return error == ENOSPC || error == EDQUOT ? ErrorKind::no_space : ErrorKind::io;
}

Error Error::with_context(std::string_view subject) const {
  return Error(m_kind, std::string(subject) + ": " + what());
}

} // namespace mlctl
