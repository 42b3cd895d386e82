#include "api/names.hpp"

#include "util/error.hpp"

#include <algorithm>
#include <charconv>

namespace mlctl::api {

namespace {

bool is_lower_alnum(char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); }
bool is_alnum(char c) { return is_lower_alnum(c) || (c >= 'A' && c <= 'Z'); }

// Shows user input in a message without letting it break the one-line form.
std::string quoted(std::string_view text) {
  std::string out = "'";
  for (const char c : text.substr(0, 80)) {
    out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  }
  if (text.size() > 80) {
    out += "...";
  }
  return out + "'";
}

constexpr std::int64_t k_max_version = std::int64_t{1} << 53;

} // namespace

bool is_valid_name(std::string_view name) {
  if (name.empty() || name.size() > 63 || !is_lower_alnum(name.front())) {
    return false;
  }
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return is_lower_alnum(c) || c == '.' || c == '_' || c == '-'; });
}

void validate_name(std::string_view name, std::string_view what) {
  if (!is_valid_name(name)) {
    throw Error(ErrorKind::invalid_input,
                std::string(what) + " " + quoted(name) + ": must match " + std::string(k_name_pattern));
  }
}

void validate_alias(std::string_view alias) {
  validate_name(alias, "alias");
  if (std::all_of(alias.begin(), alias.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    throw Error(ErrorKind::invalid_input, "alias " + quoted(alias) + ": must not be a number");
  }
  if (alias == k_latest) {
    throw Error(ErrorKind::invalid_input, "alias 'latest': is reserved (it always means the highest version)");
  }
}

void validate_tag_key(std::string_view key) {
  const bool ok = !key.empty() && key.size() <= 128 && (is_alnum(key.front()) || key.front() == '_') &&
                  std::all_of(key.begin(), key.end(), [](char c) {
                    return is_alnum(c) || c == '_' || c == '.' || c == ':' || c == '/' || c == '-';
                  });
  if (!ok) {
    throw Error(ErrorKind::invalid_input,
                "tag key " + quoted(key) + ": must match [A-Za-z0-9_][A-Za-z0-9_.:/-]{0,127}");
  }
}

void validate_tag_value(std::string_view key, std::string_view value) {
  if (value.size() > 1024) {
    throw Error(ErrorKind::invalid_input, "tag " + std::string(key) + ": value is longer than 1024 bytes");
  }
  if (std::any_of(value.begin(), value.end(),
                  [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; })) {
    throw Error(ErrorKind::invalid_input, "tag " + std::string(key) + ": value holds control characters");
  }
}

std::optional<std::int64_t> parse_version_number(std::string_view text) {
  if (text.empty() || text.size() > 16 || text.front() == '0') {
    return std::nullopt;
  }
  std::int64_t v = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || ptr != text.data() + text.size() || v < 1 || v > k_max_version) {
    return std::nullopt;
  }
  return v;
}

std::string ModelRef::to_string() const {
  if (version) {
    return name + ":" + std::to_string(*version);
  }
  if (!alias.empty()) {
    return name + "@" + alias;
  }
  return name;
}

std::string ModelRef::selector() const {
  if (version) {
    return std::to_string(*version);
  }
  return alias.empty() ? std::string(k_latest) : alias;
}

ModelRef parse_model_ref(std::string_view text, RefVersion version) {
  const auto expected = [&] {
    return Error(ErrorKind::invalid_input,
                 quoted(text) + ": expected NAME:VERSION or NAME@ALIAS" +
                     (version == RefVersion::optional ? " or NAME" : ""));
  };
  ModelRef ref;
  const auto sep = text.find_first_of(":@");
  if (sep == std::string_view::npos) {
    if (version == RefVersion::required) {
      throw expected();
    }
    validate_name(text);
    ref.name = std::string(text);
    return ref;
  }
  const auto name = text.substr(0, sep);
  const auto rest = text.substr(sep + 1);
  if (name.empty() || rest.empty()) {
    throw expected();
  }
  validate_name(name);
  ref.name = std::string(name);
  if (text[sep] == ':') {
    ref.version = parse_version_number(rest);
    if (!ref.version) {
      // "mnist:production" most likely means the alias ("mnist:1.5" does not).
      const bool word = rest.front() >= 'a' && rest.front() <= 'z' && is_valid_name(rest);
      throw Error(ErrorKind::invalid_input,
                  quoted(text) + ": version must be a positive integer" +
                      (word ? " (an alias goes after @: " + std::string(name) + "@" +
                                  std::string(rest) + ")"
                            : ""));
    }
  } else {
    if (rest != k_latest) {
      validate_alias(rest);
    }
    ref.alias = std::string(rest);
  }
  return ref;
}

VersionSelector parse_version_selector(std::string_view segment) {
  VersionSelector out;
  if (!segment.empty() && segment.front() >= '0' && segment.front() <= '9' &&
      std::all_of(segment.begin(), segment.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    out.version = parse_version_number(segment);
    if (!out.version) {
      throw Error(ErrorKind::invalid_input, "version " + quoted(segment) + ": must be a positive integer");
    }
    return out;
  }
  if (segment != k_latest) {
    validate_alias(segment);
  }
  out.alias = std::string(segment);
  return out;
}

} // namespace mlctl::api
