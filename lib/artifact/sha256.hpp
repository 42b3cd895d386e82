#pragma once
// SHA-256 digests (OpenSSL EVP) for dataset versions and content-addressed artifacts.

#include <cstddef>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>

namespace mlctl::artifact {

// An incremental SHA-256. Feed bytes with `update`, then read the digest once.
class Sha256 {
public:
  // Starts an empty digest. Throws `Error{internal}` when OpenSSL cannot initialise it.
  Sha256();
  ~Sha256();
  Sha256(Sha256&&) noexcept;
  Sha256& operator=(Sha256&&) noexcept;
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  // Appends `bytes` to the digested stream. Precondition: `hex_digest()` was not called yet.
  void update(std::span<const std::byte> bytes);
  void update(std::string_view bytes);
  // Finishes the digest and returns it as 64 lowercase hex characters. Call at most once.
  std::string hex_digest();

private:
  struct State;
  std::unique_ptr<State> m_state;
};

// Returns the lowercase hex SHA-256 of `bytes`.
std::string sha256_hex(std::string_view bytes);
// Returns the lowercase hex SHA-256 of the file's content, read in chunks.
// Throws `Error{not_found}` when it does not exist, `Error{io}` when it cannot be read.
std::string sha256_file(const std::filesystem::path& path);

} // namespace mlctl::artifact
