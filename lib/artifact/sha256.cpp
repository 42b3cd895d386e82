#include "artifact/sha256.hpp"

#include "util/error.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <openssl/evp.h>

namespace mlctl::artifact {

struct Sha256::State {
  EVP_MD_CTX* ctx = nullptr;
  ~State() { EVP_MD_CTX_free(ctx); }
};

Sha256::Sha256() : m_state(std::make_unique<State>()) {
  m_state->ctx = EVP_MD_CTX_new();
  if (m_state->ctx == nullptr || EVP_DigestInit_ex(m_state->ctx, EVP_sha256(), nullptr) != 1) {
    throw Error(ErrorKind::internal, "sha256: cannot initialise the digest");
  }
}

Sha256::~Sha256() = default;
Sha256::Sha256(Sha256&&) noexcept = default;
Sha256& Sha256::operator=(Sha256&&) noexcept = default;

void Sha256::update(std::span<const std::byte> bytes) {
  if (!bytes.empty() && EVP_DigestUpdate(m_state->ctx, bytes.data(), bytes.size()) != 1) {
    throw Error(ErrorKind::internal, "sha256: digest update failed");
  }
}

void Sha256::update(std::string_view bytes) {
  update(std::as_bytes(std::span(bytes.data(), bytes.size())));
}

std::string Sha256::hex_digest() {
  std::array<unsigned char, EVP_MAX_MD_SIZE> md{};
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(m_state->ctx, md.data(), &len) != 1) {
    throw Error(ErrorKind::internal, "sha256: digest finalisation failed");
  }
  static constexpr char k_hex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * len);
  for (unsigned int i = 0; i < len; ++i) {
    out.push_back(k_hex[md[i] >> 4]);
    out.push_back(k_hex[md[i] & 0x0f]);
  }
  return out;
}

std::string sha256_hex(std::string_view bytes) {
  Sha256 h;
  h.update(bytes);
  return h.hex_digest();
}

std::string sha256_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
      throw Error(ErrorKind::not_found, path.string() + ": no such file");
    }
    throw Error(ErrorKind::io, path.string() + ": cannot open: " + std::strerror(errno));
  }
  Sha256 h;
  std::string buf(1 << 16, '\0');
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto n = static_cast<std::size_t>(in.gcount());
    h.update(std::string_view(buf.data(), n));
  }
  if (in.bad()) {
    throw Error(ErrorKind::io, path.string() + ": read failed");
  }
  return h.hex_digest();
}

} // namespace mlctl::artifact
