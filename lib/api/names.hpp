#pragma once
// Names on the platform and references to model versions. A name is
// `[a-z0-9][a-z0-9._-]{0,62}` (so it is always a safe path segment and URL segment); a
// reference is `name:version`, `name@alias` or, where allowed, a bare `name`.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace mlctl::api {

inline constexpr std::string_view k_name_pattern = "[a-z0-9][a-z0-9._-]{0,62}";
// The alias every model has implicitly: its highest version. It cannot be set.
inline constexpr std::string_view k_latest = "latest";

// Returns whether `name` matches `k_name_pattern`.
bool is_valid_name(std::string_view name);
// Throws `Error{invalid_input}` "<what> 'Name': must match [a-z0-9][a-z0-9._-]{0,62}" unless
// `name` is valid; `what` is e.g. "model name", "application name".
void validate_name(std::string_view name, std::string_view what = "model name");
// Throws `Error{invalid_input}` unless `alias` is a valid name that is not all digits (so it
// cannot be mistaken for a version) and not `latest`.
void validate_alias(std::string_view alias);
// Throws `Error{invalid_input}` unless `key` matches `[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}`.
void validate_tag_key(std::string_view key);
// Throws `Error{invalid_input}` when `value` is over 1024 bytes or holds control characters.
void validate_tag_value(std::string_view key, std::string_view value);

// Parses a version number (decimal, 1 .. 2^53); returns nothing for anything else.
std::optional<std::int64_t> parse_version_number(std::string_view text);

struct ModelRef {
  std::string name;
  std::optional<std::int64_t> version; // `name:3`
  std::string alias;                   // `name@production` (may be `latest`)

  // Returns `name:3`, `name@alias` or `name`.
  std::string to_string() const;
  // Returns the version segment of REST paths: "3", the alias, or "latest" when neither is set.
  std::string selector() const;
  bool has_version_or_alias() const { return version.has_value() || !alias.empty(); }
};

enum class RefVersion { required, optional };

// Parses `name:3`, `name@alias` and, with `RefVersion::optional`, a bare `name`. Throws
// `Error{invalid_input}` "'text': expected NAME:VERSION or NAME@ALIAS" (or naming the bad part).
ModelRef parse_model_ref(std::string_view text, RefVersion version = RefVersion::required);

// A version segment of a REST path: a number, or an alias (including `latest`).
struct VersionSelector {
  std::optional<std::int64_t> version;
  std::string alias;
};
// Parses a version segment. Throws `Error{invalid_input}` for anything that is neither a
// version number nor a valid alias.
VersionSelector parse_version_selector(std::string_view segment);

} // namespace mlctl::api
