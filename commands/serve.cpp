// `mlctl serve`: the platform (registry API now; applications and the gateway later).
#include "commands/commands.hpp"
#include "commands/option_checks.hpp"
#include "server/server.hpp"
#include "util/error.hpp"
#include "util/interrupt.hpp"

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <memory>
#include <thread>

namespace mlctl::cli {

namespace {

struct ServeOptions {
  std::string data_dir;
  std::string listen = "127.0.0.1:9090";
  std::string token_file;
  std::string tls_cert;
  std::string tls_key;
  int threads = 32;
  int max_body_mb = 256;
  std::string log_file;
  bool insecure_listen_anywhere = false;
  int shutdown_grace_seconds = 10;
  int max_batch = 256;
  std::int64_t store_max_rows = 0;
  std::uint64_t store_max_mb = 0;
  std::size_t store_queue = 4096;
  std::string webhook;
  bool no_monitoring = false;
};

int run_serve(const ServeOptions& opts, Context& ctx) {
  server::ServerOptions o;
  o.data_dir = opts.data_dir;
  server::parse_listen(opts.listen, o);
  o.token_file = opts.token_file;
  o.tls_cert = opts.tls_cert;
  o.tls_key = opts.tls_key;
  o.threads = opts.threads;
  o.max_body_bytes = static_cast<std::uint64_t>(opts.max_body_mb) << 20;
  o.log_file = opts.log_file;
  o.insecure_listen_anywhere = opts.insecure_listen_anywhere;
  o.shutdown_grace = std::chrono::seconds(opts.shutdown_grace_seconds);
  o.max_batch = opts.max_batch;
  o.store_max_rows = opts.store_max_rows;
  o.store_max_bytes = opts.store_max_mb << 20U;
  o.store_queue_capacity = opts.store_queue;
  o.webhook_url = opts.webhook;
  o.webhook_ca_file = ctx.options().cacert;
  o.monitoring = !opts.no_monitoring;
  const auto log = ctx.log();
  server::Server srv(std::move(o), log);

  // SIGINT/SIGTERM and SIGUSR1 only set flags (util/interrupt); this thread turns them into a
  // graceful stop and a reopening of the access log.
  util::install_reopen_handler();
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done.load()) {
      if (util::interrupted()) {
        log("stopping: finishing in-flight requests");
        srv.stop();
        return;
      }
      if (util::take_reopen_request()) {
        try {
          srv.reopen_logs();
          log("SIGUSR1: access log reopened");
        } catch (const Error& e) {
          log(std::string("SIGUSR1: ") + e.what() + " (still writing to the file open before)");
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  try {
    srv.run();
  } catch (...) {
    done = true;
    watcher.join();
    throw;
  }
  done = true;
  watcher.join();
  log("stopped");
  return 0;
}

} // namespace

void register_serve(CLI::App& parent, Dispatch& dispatch) {
  auto opts = std::make_shared<ServeOptions>();
  auto* cmd = parent.add_subcommand("serve", "Run the platform: model registry and REST API (HTTP/HTTPS)");
  cmd->add_option("--data-dir", opts->data_dir,
                  "Directory of the registry database and artifacts (created if missing; one "
                  "server at a time: DIR/serve.lock)")
      ->required()
      ->envname("MLCTL_DATA_DIR")
      ->type_name("DIR");
  cmd->add_option("--listen", opts->listen, "Address to listen on, HOST:PORT (port 0 picks a free one)")
      ->capture_default_str()
      ->envname("MLCTL_LISTEN");
  cmd->add_option("--token-file", opts->token_file,
                  "File holding the bearer token every /api/v1 call must present")
      ->envname("MLCTL_TOKEN_FILE")
      ->type_name("FILE");
  cmd->add_option("--tls-cert", opts->tls_cert, "PEM certificate: serve HTTPS (with --tls-key)")->type_name("FILE");
  cmd->add_option("--tls-key", opts->tls_key, "PEM private key of --tls-cert")->type_name("FILE");
  cmd->add_option("--threads", opts->threads,
                  "Worker threads: requests served at once (idle keep-alive connections hold none)")
      ->capture_default_str()
      ->check(in_range(1, 1024));
  cmd->add_option("--max-body-mb", opts->max_body_mb,
                  "Largest request body accepted, in MiB (larger: 413)")
      ->capture_default_str()
      ->check(in_range(1, 1 << 20));
  cmd->add_option("--log-file", opts->log_file,
                  "Append the access log (JSON lines) here instead of stderr; SIGUSR1 reopens it "
                  "(log rotation)")
      ->type_name("FILE");
  cmd->add_flag("--insecure-listen-anywhere", opts->insecure_listen_anywhere,
                "Allow a non-loopback address without --token-file");
  cmd->add_option("--shutdown-grace", opts->shutdown_grace_seconds,
                  "Seconds in-flight transfers may take after SIGTERM/SIGINT")
      ->capture_default_str()
      ->check(in_range(0, 3600));
  cmd->add_option("--webhook", opts->webhook,
                  "URL that receives every health change of a served version as a JSON POST")
      ->envname("MLCTL_WEBHOOK")
      ->type_name("URL");
  cmd->add_flag("--no-monitoring", opts->no_monitoring,
                "Run without the metrics and health monitors (for measuring their cost)");
  cmd->add_option("--store-max-rows", opts->store_max_rows,
                  "Request store retention: keep at most this many stored rows (one per image), "
                  "deleting the oldest first (images go in whole 16 MB files; 0: no limit)")
      ->capture_default_str()
      ->check(in_range(std::int64_t{0}, std::int64_t{1} << 40));
  cmd->add_option("--store-max-mb", opts->store_max_mb,
                  "Request store retention by size: keep requests.db's pages in use plus the "
                  "image files under this many MiB, deleting the oldest rows first (0: no limit; "
                  "else at least 64)")
      ->capture_default_str()
      ->check(in_range(std::uint64_t{0}, std::uint64_t{1} << 30));
  cmd->add_option(
         "--store-queue", opts->store_queue,
         "Images waiting to be written to the request store; when full, records are dropped "
         "and counted (inference never waits)")
      ->capture_default_str()
      ->check(in_range(std::size_t{1}, std::size_t{1} << 24));
  cmd->add_option(
         "--max-batch", opts->max_batch,
         "Largest batch (images or tensor rows) one inference request may carry; more: 400")
      ->capture_default_str()
      ->check(in_range(1, 1000000));
  cmd->footer("Example:\n  mlctl serve --data-dir .mlctl --listen 127.0.0.1:9090");
  cmd->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_serve(*opts, ctx); };
  });
}

} // namespace mlctl::cli
