#pragma once
// Bearer-token authentication of the platform API.

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace mlctl::server {

struct TokenFile {
  std::string token;               // surrounding whitespace removed
  std::optional<std::string> warning; // e.g. the file is readable by group or others
};

// Reads the token from `path`. Throws `Error{not_found}`/`Error{io}` from reading and
// `Error{invalid_input}` "<path>: the token file is empty" / "...: token shorter than 16 characters".
TokenFile load_token_file(const std::filesystem::path& path);

// Returns the token of an `Authorization: Bearer <token>` header value, or nothing.
std::optional<std::string_view> bearer_token(std::string_view authorization);

// Compares in time independent of where the strings differ (and of their lengths).
bool token_matches(std::string_view presented, std::string_view expected);

} // namespace mlctl::server
