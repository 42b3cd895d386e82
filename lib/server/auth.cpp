#include "server/auth.hpp"

#include "artifact/sha256.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <sys/stat.h>

namespace mlctl::server {

TokenFile load_token_file(const std::filesystem::path& path) {
  TokenFile out;
  const auto text = util::read_file(path);
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) {
    throw Error(ErrorKind::invalid_input, path.string() + ": the token file is empty");
  }
  const auto last = text.find_last_not_of(" \t\r\n");
  out.token = text.substr(first, last - first + 1);
  if (out.token.find_first_of(" \t\r\n") != std::string::npos) {
    throw Error(ErrorKind::invalid_input, path.string() + ": the token must be one line without spaces");
  }
  if (out.token.size() < 16) {
    throw Error(ErrorKind::invalid_input, path.string() + ": token shorter than 16 characters");
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    out.warning = path.string() + ": token file is accessible by group or others (mode " + mode +
                  "); run 'chmod 600 " + path.string() + "'";
  }
  return out;
}

std::optional<std::string_view> bearer_token(std::string_view h) {
  constexpr std::string_view k_scheme = "bearer ";
  if (h.size() <= k_scheme.size()) {
    return std::nullopt;
  }
  for (std::size_t i = 0; i < k_scheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(h[i])) != k_scheme[i]) {
      return std::nullopt;
    }
  }
  auto token = h.substr(k_scheme.size());
  while (!token.empty() && token.front() == ' ') {
    token.remove_prefix(1);
  }
  while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) {
    token.remove_suffix(1);
  }
  if (token.empty()) {
    return std::nullopt;
  }
  return token;
}

bool token_matches(std::string_view presented, std::string_view expected) {
  // Comparing digests makes the time independent of the lengths as well as the contents.
  const auto a = artifact::sha256_hex(presented);
  const auto b = artifact::sha256_hex(expected);
  unsigned char diff = 0;
  for (std::size_t i = 0; i < a.size() && i < b.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0 && a.size() == b.size();
}

} // namespace mlctl::server
