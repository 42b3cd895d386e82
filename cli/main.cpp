// mlctl: builds the command line, runs the chosen command and maps errors to exit codes.
// Exit codes (stable, documented in README.md): 0 ok, 1 failure, 2 usage error,
// 3 a check or threshold failed, 4 server unreachable, 130 interrupted.

#include "commands/commands.hpp"
#include "commands/context.hpp"
#include "commands/option_checks.hpp"
#include "commands/usage_error.hpp"
#include "util/build_info.hpp"
#include "util/error.hpp"
#include "util/interrupt.hpp"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace {

constexpr int k_exit_failure = 1;
constexpr int k_exit_usage = 2;
constexpr int k_exit_unreachable = 4;
constexpr int k_exit_interrupted = 130;

int exit_code_for(mlctl::ErrorKind kind) {
  switch (kind) {
  case mlctl::ErrorKind::unavailable:
    return k_exit_unreachable;
  case mlctl::ErrorKind::interrupted:
    return k_exit_interrupted;
  default:
    return k_exit_failure;
  }
}

void print_error(const std::string& message) { std::fprintf(stderr, "mlctl: error: %s\n", message.c_str()); }

bool cpu_supports_build() {
#if defined(MLCTL_REQUIRES_X86_64_V3) && defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return true;
#endif
}

} // namespace

int main(int argc, char** argv) {
  if (!cpu_supports_build()) {
    print_error("this build needs an x86-64-v3 CPU (AVX2 and FMA); rebuild with "
                "-DMLCTL_X86_64_V3=OFF for older processors");
    return k_exit_failure;
  }

  CLI::App app{"mlctl: from raw data to a monitored production endpoint and back to retraining"};
  app.name("mlctl");
  app.fallthrough();
  app.require_subcommand(1);
  app.footer("Examples:\n"
             "  mlctl fetch-mnist --source auto --out data/mnist\n"
             "  mlctl data describe data/mnist -o json\n"
             "\nRun 'mlctl COMMAND --help' for the options and an example of each command.");

  mlctl::cli::GlobalOptions global;
  app.add_option("-o,--output", global.output, "Output format: table, json or yaml")
      ->check(CLI::IsMember({"table", "json", "yaml"}))
      ->capture_default_str();
  app.add_flag("-v,--verbose", global.verbose, "Print more detail on stderr");
  app.add_flag("-q,--quiet", global.quiet, "Print only results and errors");
  app.add_option("--server", global.server, "Platform URL, e.g. http://127.0.0.1:9090")
      ->envname("MLCTL_SERVER");
  app.add_option("--token", global.token, "Bearer token for the platform API")->envname("MLCTL_TOKEN");
  app.add_option("--cacert", global.cacert,
                 "PEM file of the CA certificates to trust for https:// (a private CA, a server's "
                 "self-signed certificate), besides the system's")
      ->envname("MLCTL_CACERT")
      ->type_name("FILE")
      ->check(CLI::ExistingFile);

  // Commands in workflow order: the order --help shows.
  mlctl::cli::Dispatch dispatch;
  mlctl::cli::register_fetch_mnist(app, dispatch);
  mlctl::cli::register_data(app, dispatch);
  mlctl::cli::register_train(app, dispatch);
  mlctl::cli::register_predict(app, dispatch);
  mlctl::cli::register_serve(app, dispatch);
  mlctl::cli::register_catalog(app, dispatch);
  mlctl::cli::register_apply(app, dispatch);
  mlctl::cli::register_get(app, dispatch);
  mlctl::cli::register_describe(app, dispatch);
  mlctl::cli::register_delete(app, dispatch);
  mlctl::cli::register_rollout(app, dispatch);
  mlctl::cli::register_test(app, dispatch);
  mlctl::cli::register_requests(app, dispatch);
  mlctl::cli::register_feedback(app, dispatch);
  mlctl::cli::register_monitor(app, dispatch);
  mlctl::cli::register_explain(app, dispatch);
  mlctl::cli::register_subsample(app, dispatch);
  mlctl::cli::register_cluster(app, dispatch);
  mlctl::cli::register_reproduce(app, dispatch);
  mlctl::cli::register_completion(app, dispatch);
  mlctl::cli::register_version(app, dispatch);
  mlctl::cli::refuse_negative_unsigned(app);

  if (argc <= 1) {
    std::cout << app.help();
    return 0;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {
      return app.exit(e);
    }
    print_error(
        mlctl::cli::usage_error_message(app, e, std::vector<std::string>(argv + 1, argv + argc)));
    return k_exit_usage;
  }

  if (!dispatch.run) {
    std::cout << app.help();
    return k_exit_usage;
  }
  mlctl::util::install_interrupt_handlers();
  mlctl::cli::Context ctx(global);
  try {
    return dispatch.run(ctx);
  } catch (const mlctl::Error& e) {
    print_error(e.what());
    return exit_code_for(e.kind());
  } catch (const CLI::Error& e) {
    print_error(e.what());
    return k_exit_usage;
  } catch (const nlohmann::json::exception& e) {
    // JSON of a shape mlctl does not expect, from a server that is not the `mlctl serve` of
    // this version (another service, a proxy): not an internal error.
    print_error(std::string("unexpected JSON in an answer (is the server an mlctl serve of "
                            "version ") +
                std::string(mlctl::build::version()) + "?): " + e.what());
    return k_exit_failure;
  } catch (const std::exception& e) {
    print_error(std::string("internal error: ") + e.what());
    return k_exit_failure;
  }
}
