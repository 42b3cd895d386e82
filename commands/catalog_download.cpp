// `mlctl catalog download REF --out DIR`: fetch the artifact, verify its sha256, unpack safely.
#include "api/names.hpp"
#include "artifact/tar.hpp"
#include "commands/catalog.hpp"
#include "commands/output.hpp"
#include "commands/remote.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <memory>

namespace mlctl::cli {

namespace {
namespace fs = std::filesystem;

struct CatalogDownloadOptions {
  std::string ref;
  std::string out;
  std::string artifact;
};

int run_catalog_download(const CatalogDownloadOptions& opts, Context& ctx) {
  const auto ref = api::parse_model_ref(opts.ref, api::RefVersion::optional);
  std::error_code ec;
  if (fs::exists(opts.out, ec) && !(fs::is_directory(opts.out, ec) && fs::is_empty(opts.out, ec))) {
    throw Error(ErrorKind::conflict, opts.out + ": exists and is not an empty directory");
  }
  auto client = api_client(ctx);
  util::TempDir work;
  const auto tgz = work.path() / "artifact.tar.gz";
  const auto got = client.download_artifact(ref, tgz);
  util::StagedDir staged(opts.out);
  // StagedDir gives an empty directory; unpack_safely wants one that is empty or missing.
  const auto files = artifact::unpack_safely(tgz, staged.path());
  staged.commit();
  if (!opts.artifact.empty()) {
    fs::copy_file(tgz, opts.artifact, fs::copy_options::overwrite_existing);
  }
  const std::string model_ref = ref.name + ":" + std::to_string(got.version);
  const nlohmann::json result = {{"ref", model_ref}, {"sha256", got.sha256}, {"size", got.size},
                                 {"out", opts.out},  {"files", files}};
  print_result(ctx, result, [&] {
    print_fields({{"model", model_ref},
                  {"sha256", got.sha256},
                  {"size", format_bytes(static_cast<double>(got.size))},
                  {"out", opts.out},
                  {"files", std::to_string(files.size())}});
  });
  return 0;
}

} // namespace

void register_catalog_download(CLI::App& catalog, Dispatch& dispatch) {
  auto opts = std::make_shared<CatalogDownloadOptions>();
  auto* cmd = catalog.add_subcommand("download", "Download a version into a directory (sha256 verified, unpacked safely)");
  cmd->add_option("ref", opts->ref, "NAME:VERSION, NAME@ALIAS or NAME (the latest version)")
      ->required()
      ->type_name("REF");
  cmd->add_option("--out", opts->out, "Directory to create (must not exist, or be empty)")
      ->required()
      ->type_name("DIR");
  cmd->add_option("--artifact", opts->artifact, "Also keep the downloaded tar.gz here")->type_name("FILE");
  cmd->footer("Example:\n  mlctl catalog download mnist:3 --out models/mnist-3");
  cmd->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_catalog_download(*opts, ctx); };
  });
}

} // namespace mlctl::cli
