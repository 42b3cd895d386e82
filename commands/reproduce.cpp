// `mlctl reproduce NAME:VERSION`: downloads the version, fetches its dataset again from the
// recorded source (digest checked), retrains with the recorded hyper-parameters, seed and
// threads, and compares the new model.onnx with the registered one, byte for byte (sha256).
#include "pipeline/reproduce.hpp"
#include "api/names.hpp"
#include "artifact/sha256.hpp"
#include "artifact/tar.hpp"
#include "client/subsample.hpp"
#include "commands/commands.hpp"
#include "commands/fetch_mnist.hpp"
#include "commands/option_checks.hpp"
#include "commands/output.hpp"
#include "commands/remote.hpp"
#include "data/dataset.hpp"
#include "data/fetch.hpp"
#include "model/card.hpp"
#include "model/train.hpp"
#include "util/build_info.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <unistd.h>

namespace mlctl::cli {

namespace {
namespace fs = std::filesystem;

struct ReproduceOptions {
  std::string ref;
  std::string data_dir;
  std::string source;
  std::string workdir;
  std::string cache_dir;
  int threads = 0; // 0: the recorded count
};

std::string file_sha256(const fs::path& file) {
  std::error_code ec;
  return fs::is_regular_file(file, ec) ? artifact::sha256_file(file) : std::string();
}

int run_reproduce(const ReproduceOptions& opts, Context& ctx) {
  const auto ref = api::parse_model_ref(opts.ref, api::RefVersion::required);
  const auto log = ctx.log();
  std::optional<util::TempDir> temp;
  fs::path work;
  if (opts.workdir.empty()) {
    temp.emplace();
    work = temp->path();
  } else {
    work = opts.workdir;
    std::error_code ec;
    if (fs::exists(work, ec) && !(fs::is_directory(work, ec) && fs::is_empty(work, ec))) {
      throw Error(ErrorKind::conflict, opts.workdir + ": exists and is not an empty directory");
    }
    fs::create_directories(work, ec);
    if (ec) {
      throw Error(ErrorKind::io, opts.workdir + ": cannot create: " + ec.message());
    }
  }

  // 1. The registered version: its card (lineage) and its model.onnx.
  auto client = api_client(ctx);
  const auto got = client.download_artifact(ref, work / "registered.tar.gz");
  const std::string model_ref = ref.name + ":" + std::to_string(got.version);
  const auto registered = work / "registered";
  artifact::unpack_safely(work / "registered.tar.gz", registered);
  const auto card = model::load_card(registered / "model.yaml");
  const std::string registered_sha = file_sha256(registered / "model.onnx");
  if (registered_sha.empty()) {
    throw Error(ErrorKind::corrupt, model_ref + ": the artifact has no model.onnx");
  }
  // Refuses imported models and incomplete lineages before any data is fetched.
  auto train = pipeline::retrain_options(card, model_ref, work / "data", work / "model");
  if (opts.threads > 0) {
    train.threads = opts.threads;
  }
  const auto& lineage = card.lineage;
  const nlohmann::json recorded_source =
      lineage.dataset ? lineage.dataset->source : nlohmann::json();
  log(model_ref + ": trained on " + (lineage.dataset ? lineage.dataset->digest : "?") +
      " by mlctl " + lineage.mlctl_version + " (" + lineage.git_commit + ")");

  // 2. The same data: each dataset the lineage records (several for `train --merge`), from a
  // given directory, fetched again from its recorded source, or sampled again from the
  // platform's stored requests (a production subsample records its window and seed).
  const bool merged = recorded_source.value("name", std::string()) == "merged" &&
                      recorded_source.contains("merged") && recorded_source["merged"].is_array();
  const nlohmann::json parts =
      merged ? recorded_source["merged"]
             : nlohmann::json::array(
                   {{{"source", recorded_source},
                     {"digest", lineage.dataset ? lineage.dataset->digest : std::string()}}});
  std::vector<pipeline::Difference> part_differences;
  std::string data_origin;
  std::string data_digest;
  for (std::size_t k = 0; k < parts.size(); ++k) {
    const auto& part = parts[k];
    const auto source = part.value("source", nlohmann::json());
    const auto dir = k == 0 ? train.data_dir : work / ("data-" + std::to_string(k));
    const auto what = merged ? "dataset " + std::to_string(k + 1) + " of " +
                                   std::to_string(parts.size())
                             : std::string("the dataset");
    nlohmann::json info;
    std::string origin;
    auto refetch = pipeline::refetch_source(source);
    if (k == 0 && !opts.data_dir.empty()) {
      train.data_dir = opts.data_dir;
      info = data::read_dataset_info(train.data_dir);
      origin = opts.data_dir;
    } else if (const auto sample = client::subsample_request_from_source(source);
               sample && (k > 0 || opts.source.empty())) {
      log("sampling " + sample->application + "'s stored requests again (before " +
          sample->until + ", seed " + std::to_string(sample->seed) + ") from " + client.server());
      info = client::write_subsample(client, *sample, dir, log);
      origin = "subsample of " + sample->application + " at " + client.server();
    } else {
      if (k == 0 && !opts.source.empty()) {
        refetch = pipeline::RefetchSource{opts.source, refetch ? refetch->test_fraction : 0.2};
      }
      if (!refetch) {
        throw Error(ErrorKind::invalid_input,
                    model_ref + ": " + what + "'s recorded source (" + source.dump() +
                        ") cannot be fetched again" +
                        (k == 0 ? ": pass --data-dir DIR or --source SRC" : ""));
      }
      data::FetchOptions fetch;
      fetch.source = refetch->source;
      fetch.test_fraction = refetch->test_fraction;
      fetch.out = dir;
      fetch.cache_dir = opts.cache_dir;
      wire_fetch_downloads(fetch, ctx, 3, 0);
      log("fetching " + refetch->source + " again");
      info = data::fetch_mnist(fetch);
      origin = refetch->source;
    }
    if (k > 0) {
      train.merge_dirs.push_back(dir);
    }
    const auto digest = info.value("digest", std::string());
    const auto recorded = part.value("digest", std::string());
    if (merged && digest != recorded) {
      part_differences.push_back({"data digest of " + what, recorded.empty() ? "-" : recorded, digest});
    }
    data_origin += (data_origin.empty() ? "" : " + ") + origin;
    data_digest = digest;
  }
  const bool same_data = lineage.dataset && (merged ? part_differences.empty()
                                                    : lineage.dataset->digest == data_digest);

  // 3. Retrain, unless the data already differ (the bytes cannot match then).
  std::string new_sha;
  std::string new_ae_sha;
  if (same_data) {
    log("retraining: " + std::to_string(train.steps) + " steps, seed " + std::to_string(train.seed) +
        ", " + std::to_string(train.threads) + " thread(s)");
    const bool tty = ::isatty(STDERR_FILENO) != 0;
    model::train_model(train, tty ? ctx.progress() : util::ProgressFn{}, log);
    new_sha = file_sha256(train.out_dir / "model.onnx");
    new_ae_sha = file_sha256(train.out_dir / "autoencoder.onnx");
    if (merged) { // the digest of the joined content, as training computed it
      const auto retrained = model::load_card(train.out_dir / "model.yaml");
      data_digest = retrained.lineage.dataset ? retrained.lineage.dataset->digest : "";
    }
  } else if (merged) {
    data_digest = "-";
  }
  auto differences =
      pipeline::lineage_differences(lineage, data_digest, train.threads,
                                    std::string(build::version()), std::string(build::git_commit()));
  if (!part_differences.empty()) {
    std::erase_if(differences, [](const auto& d) { return d.what == "data digest"; });
    differences.insert(differences.begin(), part_differences.begin(), part_differences.end());
  }
  const bool reproduced = same_data && new_sha == registered_sha;
  const std::string registered_ae_sha = file_sha256(registered / "autoencoder.onnx");

  nlohmann::json diffs = nlohmann::json::array();
  for (const auto& d : differences) {
    diffs.push_back({{"what", d.what}, {"recorded", d.recorded}, {"now", d.now}});
  }
  const nlohmann::json result = {
      {"ref", model_ref},
      {"reproduced", reproduced},
      {"registered", {{"model_sha256", registered_sha}, {"autoencoder_sha256", registered_ae_sha}}},
      {"retrained",
       same_data ? nlohmann::json{{"model_sha256", new_sha}, {"autoencoder_sha256", new_ae_sha}}
                 : nlohmann::json()},
      {"dataset",
       {{"recorded_digest", lineage.dataset ? lineage.dataset->digest : ""},
        {"digest", data_digest},
        {"from", data_origin}}},
      {"differences", diffs},
      {"workdir", opts.workdir.empty() ? nlohmann::json() : nlohmann::json(opts.workdir)},
  };
  print_result(ctx, result, [&] {
    std::vector<std::pair<std::string, std::string>> fields = {
        {"model", model_ref},
        {"verdict", reproduced ? "reproduced" : "not reproduced"},
        {"registered sha256", registered_sha},
        {"retrained sha256", same_data ? new_sha : "- (not retrained: the data differ)"},
        {"dataset", data_digest + " (from " + data_origin + ")"},
    };
    for (const auto& d : differences) {
      fields.emplace_back("differs: " + d.what, d.recorded + " -> " + d.now);
    }
    print_fields(fields);
  });
  if (!reproduced) {
    std::string what;
    for (const auto& d : differences) {
      what += (what.empty() ? "" : "; ") + d.what + " (recorded " + d.recorded + ", now " + d.now + ")";
    }
    log(model_ref + ": not reproduced: " +
        (what.empty() ? "model.onnx differs and no recorded difference explains it" : what));
    return k_exit_check_failed;
  }
  log(model_ref + ": reproduced (model.onnx sha256 " + registered_sha + ")");
  return 0;
}

} // namespace

void register_reproduce(CLI::App& parent, Dispatch& dispatch) {
  auto opts = std::make_shared<ReproduceOptions>();
  auto* cmd = parent.add_subcommand(
      "reproduce",
      "Retrain a registered version from its lineage and check that model.onnx is byte-identical");
  cmd->add_option("ref", opts->ref, "NAME:VERSION (or NAME@ALIAS) of a registered version")
      ->required()
      ->type_name("REF");
  cmd->add_option("--data-dir", opts->data_dir,
                  "Use this dataset directory instead of fetching the recorded source again "
                  "(its digest is still checked)")
      ->type_name("DIR");
  cmd->add_option("--source", opts->source,
                  "Fetch the dataset from this fetch-mnist source instead of the recorded one "
                  "(e.g. a local copy; its digest is still checked)");
  cmd->add_option("--workdir", opts->workdir,
                  "Keep the downloaded artifact, the dataset and the retrained model here (a new "
                  "or empty directory; default: a temporary directory, removed)")
      ->type_name("DIR");
  cmd->add_option("--threads", opts->threads, "Train with this many threads (default: as recorded)")
      ->check(in_range(1, 1024));
  cmd->add_option("--cache-dir", opts->cache_dir,
                  "Download cache for the dataset (default $XDG_CACHE_HOME/mlctl or ~/.cache/mlctl)")
      ->envname("MLCTL_CACHE_DIR")
      ->type_name("DIR");
  cmd->footer("Exit status: 0 reproduced, 3 not reproduced (what differed is printed).\n\n"
              "Example:\n  mlctl reproduce mnist:1 --workdir reproduce-mnist-1");
  cmd->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_reproduce(*opts, ctx); };
  });
}

} // namespace mlctl::cli
