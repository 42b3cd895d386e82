// `mlctl catalog upload MODEL_DIR|FILE.onnx`: pack deterministically, upload, print name:version.
#include "api/names.hpp"
#include "artifact/tar.hpp"
#include "commands/catalog.hpp"
#include "commands/output.hpp"
#include "commands/remote.hpp"
#include "commands/step_cache.hpp"
#include "model/card.hpp"
#include "onnx/runtime.hpp"
#include "pipeline/steps.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <memory>

namespace mlctl::cli {

namespace {
namespace fs = std::filesystem;

struct CatalogUploadOptions {
  std::string path;
  std::string name;
  std::string version_file;
  bool force_new = false;
  std::string cache_dir;
  bool no_cache = false;
};

// A bare ONNX file from another framework becomes a model directory: the graph plus a card
// built from its inputs and outputs (lineage: imported).
fs::path model_dir_from_onnx(const fs::path& file, const std::string& name, const fs::path& work) {
  const auto model = onnx::Model::load_file(file);
  const auto card = model::card_from_onnx(model, name);
  const auto dir = work / "model";
  fs::create_directories(dir);
  fs::copy_file(file, dir / "model.onnx");
  util::write_file_atomic(dir / "model.yaml", model::card_to_yaml(card));
  return dir;
}

int run_catalog_upload(const CatalogUploadOptions& opts, Context& ctx) {
  const fs::path input(opts.path);
  std::error_code ec;
  if (!fs::exists(input, ec)) {
    throw Error(ErrorKind::not_found, opts.path + ": no such file or directory");
  }
  util::TempDir work;
  std::string name = opts.name;
  fs::path dir = input;
  if (fs::is_directory(input, ec)) {
    if (!fs::exists(input / "model.yaml", ec)) {
      throw Error(ErrorKind::invalid_input,
                  opts.path + ": not a model directory (no model.yaml; `mlctl train --out DIR` "
                              "writes one), nor a .onnx file");
    }
    if (name.empty()) {
      name = model::load_card(input / "model.yaml").name;
    }
    api::validate_name(name);
  } else if (input.extension() == ".onnx") {
    if (name.empty()) {
      name = input.stem().string();
      if (!api::is_valid_name(name)) {
        throw Error(ErrorKind::invalid_input, opts.path + ": pass --name NAME (the file name '" + name +
                                                  "' is not a valid model name)");
      }
    }
    api::validate_name(name);
    dir = model_dir_from_onnx(input, name, work.path());
  } else {
    throw Error(ErrorKind::invalid_input, opts.path + ": expected a model directory (model.yaml + model.onnx) or a .onnx file");
  }
  auto client = api_client(ctx);
  // --force-new asks for a new version whatever is registered: never served from the cache.
  const auto cache = step_cache(opts.cache_dir, opts.no_cache || opts.force_new);
  const auto spec = pipeline::upload_step(input, name, client.server());
  // A recorded upload counts only while the registry still holds that version, same bytes (and
  // the bytes themselves: an upload restores them when they are lost).
  const auto still_registered = [&](const pipeline::StepRecord& record) {
    api::VersionInfo recorded;
    try {
      recorded = record.result.at("version").get<api::VersionInfo>();
    } catch (const nlohmann::json::exception&) {
      return false; // a record of another shape: upload again
    }
    try {
      api::ModelRef ref;
      ref.name = recorded.name;
      ref.version = recorded.version;
      const auto now = client.get_version(ref);
      return now.sha256 == recorded.sha256 && !now.artifact_missing;
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::not_found) {
        return false;
      }
      throw;
    }
  };
  const auto step = run_cached_step(
      ctx, cache, spec,
      [&] {
        const auto tgz = work.path() / "artifact.tar.gz";
        const auto sha = artifact::pack_directory(dir, tgz);
        ctx.debug("packed " + dir.string() + " -> sha256 " + sha);
        const auto uploaded = client.upload(name, tgz, opts.force_new);
        const auto& v = uploaded.version;
        ctx.log()(std::string(uploaded.created    ? "registered "
                              : uploaded.restored ? "restored the lost artifact bytes of "
                                                  : "already registered (identical bytes) as ") +
                  v.ref() + " sha256 " + v.sha256 + " (" +
                  format_bytes(static_cast<double>(v.size)) + ")");
        pipeline::StepOutcome outcome;
        outcome.result = uploaded;
        return outcome;
      },
      still_registered);
  auto result = step.result.get<api::UploadResult>();
  if (step.cached) {
    result.created = false; // this run registered nothing
  }
  const auto& v = result.version;
  if (!opts.version_file.empty()) {
    util::write_file_atomic(opts.version_file, std::to_string(v.version));
  }
  nlohmann::json out = result;
  out["cached"] = step.cached;
  print_result(ctx, out, [&] { std::cout << v.ref() << '\n'; });
  return 0;
}

} // namespace

void register_catalog_upload(CLI::App& catalog, Dispatch& dispatch) {
  auto opts = std::make_shared<CatalogUploadOptions>();
  auto* cmd = catalog.add_subcommand("upload", "Pack a model directory (or a bare .onnx) and register it as the next version");
  cmd->add_option("path", opts->path, "Model directory (model.yaml + model.onnx) or a .onnx file")
      ->required()
      ->type_name("MODEL_DIR|FILE.onnx");
  cmd->add_option("--name", opts->name, "Model name (default: metadata.name of model.yaml, or the .onnx file name)")
      ->envname("MODEL_NAME");
  cmd->add_option("--version-file", opts->version_file, "Write the new version number alone to this file")
      ->type_name("FILE");
  cmd->add_flag("--force-new", opts->force_new, "Create a new version even when identical bytes are registered");
  add_cache_dir_option(*cmd, opts->cache_dir);
  add_no_cache_flag(*cmd, opts->no_cache);
  cmd->footer("Example:\n  mlctl catalog upload models/mnist --version-file model_version.txt");
  cmd->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_catalog_upload(*opts, ctx); };
  });
}

} // namespace mlctl::cli
