#include "artifact/sha256.hpp"
#include "server/artifact_store.hpp"
#include "util/fs.hpp"

#include <algorithm>
#include <doctest/doctest.h>
#include <filesystem>

namespace fs = std::filesystem;
using mlctl::server::ArtifactStore;

TEST_CASE("uploads are hashed while written and move to their content address") {
  mlctl::util::TempDir dir;
  ArtifactStore store(dir.path());
  CHECK(fs::is_directory(dir.path() / "artifacts" / "sha256"));
  CHECK(fs::is_directory(dir.path() / "tmp"));

  std::string payload(3 << 20, '\0');
  for (std::size_t i = 0; i < payload.size(); ++i) {
    payload[i] = static_cast<char>((i * 7919) % 251);
  }
  auto up = store.begin_upload();
  const auto tmp = up->path();
  CHECK(tmp.parent_path() == dir.path() / "tmp");
  // Writes of every size: small, crossing the buffer, larger than it.
  up->write(payload.data(), 10);
  up->write(payload.data() + 10, (1 << 20) - 5);
  up->write(payload.data() + 10 + (1 << 20) - 5, payload.size() - 10 - (1 << 20) + 5);
  CHECK(store.stale_temporaries().empty()); // ours is alive
  up->finish();
  CHECK(up->size() == payload.size());
  CHECK(up->sha256() == mlctl::artifact::sha256_hex(payload));
  CHECK(store.adopt(*up));
  const auto target = store.path_for(up->sha256());
  CHECK(target == dir.path() / "artifacts" / "sha256" / up->sha256().substr(0, 2) / up->sha256());
  CHECK(mlctl::util::read_file(target) == payload);
  CHECK(store.contains(up->sha256()));
  CHECK_FALSE(fs::exists(tmp));

  // The same bytes again: the address is taken, the second copy is dropped.
  auto again = store.begin_upload();
  again->write(payload.data(), payload.size());
  again->finish();
  const auto again_tmp = again->path();
  CHECK_FALSE(store.adopt(*again));
  again.reset();
  CHECK_FALSE(fs::exists(again_tmp));

  const auto files = store.scan();
  REQUIRE(files.size() == 1);
  CHECK(files[0].sha256 == mlctl::artifact::sha256_hex(payload));
  CHECK(files[0].size == payload.size());
  CHECK(store.remove(files[0].sha256) == payload.size());
  CHECK(store.remove(files[0].sha256) == 0);
  CHECK(store.scan().empty());
}

TEST_CASE("abandoned uploads are removed; stray files are listed; live temporaries are not stale") {
  mlctl::util::TempDir dir;
  ArtifactStore store(dir.path());
  std::filesystem::path abandoned;
  {
    auto up = store.begin_upload();
    up->write("abc", 3);
    abandoned = up->path();
  }
  CHECK_FALSE(fs::exists(abandoned));
  auto scratch = store.scratch_dir();
  mlctl::util::write_file_atomic(dir.path() / "tmp" / "upload-left-by-a-crash", "x");
  const auto stale = store.stale_temporaries();
  REQUIRE(stale.size() == 1);
  CHECK(stale[0].filename() == "upload-left-by-a-crash");
  mlctl::util::write_file_atomic(dir.path() / "artifacts" / "sha256" / "zz" / "not-an-address", "y");
  const auto files = store.scan();
  REQUIRE(files.size() == 1);
  CHECK(files[0].sha256.empty());
  const auto scratch_path = scratch->path();
  scratch.reset();
  CHECK_FALSE(fs::exists(scratch_path));
}
