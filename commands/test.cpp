// `mlctl test`: the integration test of a live application (golden-set accuracy, latency,
// edge cases) through the real endpoint; exit code 3 when it fails.
#include "api/app_routes.hpp"
#include "api/names.hpp"
#include "client/app_test.hpp"
#include "commands/commands.hpp"
#include "commands/option_checks.hpp"
#include "commands/output.hpp"
#include "commands/remote.hpp"
#include "data/dataset.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <memory>
#include <unistd.h>

namespace mlctl::cli {

namespace {

struct TestOptions {
  std::string app;
  std::string data;
  std::size_t samples = 1000;
  std::size_t batch_size = 1;
  double min_accuracy = 0.9;
  std::size_t max_batch = 0; // 0: the server's, from the application's `limits`
  std::string junit;
  bool no_edge_cases = false;
};

int run_test(const TestOptions& o, Context& ctx) {
  api::validate_name(o.app, "application name");
  const std::filesystem::path data(o.data);
  std::error_code ec;
  const auto golden = std::filesystem::is_directory(data, ec)
                          ? data::read_dataset_split(data, "test")
                          : data::read_split(data);
  client::InferenceClient inference(api_client_options(ctx));
  client::AppTestOptions t;
  t.application = o.app;
  t.samples = o.samples;
  t.batch_size = o.batch_size;
  t.min_accuracy = o.min_accuracy;
  t.max_batch = o.max_batch;
  t.edge_cases = !o.no_edge_cases;
  // A missing application is an error (exit 1), not 1,000 failed requests and a failed gate;
  // the over-limit case needs the server's limit (a server without `limits` had 256).
  const auto app = api_client(ctx).call("GET", api::routes::application(o.app));
  if (t.max_batch == 0) {
    t.max_batch = app.value("limits", nlohmann::json::object()).value("max_batch", 256);
  }
  const util::ProgressFn progress =
      ::isatty(STDERR_FILENO) != 0 ? ctx.progress() : util::ProgressFn{};
  const auto report = client::run_app_test(inference, golden, t, progress);
  if (!o.junit.empty()) {
    util::write_file_atomic(o.junit, client::junit_xml(report));
  }
  print_result(ctx, client::to_json(report), [&] {
    std::string answered;
    for (const auto& [model, count] : report.answered_by) {
      answered += (answered.empty() ? "" : ", ") + model + " (" + std::to_string(count) + ")";
    }
    print_fields({{"application", report.application},
                  {"images", std::to_string(report.images) + " in " +
                                 std::to_string(report.requests) + " request(s)"},
                  {"accuracy", format_fixed(report.accuracy, 4) + " (minimum " +
                                   format_fixed(report.min_accuracy, 4) + ")"},
                  {"latency p50", format_fixed(report.latency_p50_ms, 2) + " ms"},
                  {"latency p99", format_fixed(report.latency_p99_ms, 2) + " ms"},
                  {"answered by", answered.empty() ? "-" : answered},
                  {"result", report.passed ? "passed" : "FAILED"}});
    std::cout << '\n';
    Table table({"CHECK", "RESULT", "DETAIL"});
    for (const auto& c : report.cases) {
      table.add({c.name, c.passed ? "ok" : "FAILED", c.message.empty() ? "-" : c.message});
    }
    table.print();
  });
  if (!report.passed) {
    std::size_t failed = 0;
    for (const auto& c : report.cases) {
      failed += c.passed ? 0 : 1;
    }
    std::cerr << "mlctl: error: application " << o.app << ": " << failed << " of "
              << report.cases.size() << " check(s) failed\n";
    return k_exit_check_failed;
  }
  return 0;
}

} // namespace

void register_test(CLI::App& parent, Dispatch& dispatch) {
  auto opts = std::make_shared<TestOptions>();
  auto* cmd = parent.add_subcommand("test", "Integration-test a live application: golden-set "
                                            "accuracy, latency and edge cases (exit 3 on failure)");
  cmd->add_option("--app", opts->app, "Application to test")
      ->required()
      ->envname("APPLICATION_NAME")
      ->type_name("APP");
  cmd->add_option("--data", opts->data,
                  "Golden set: a split .npz (x, y) or a dataset directory (its test split)")
      ->required()
      ->type_name("FILE|DIR");
  cmd->add_option("--samples", opts->samples, "Use the first N images (0: all)")
      ->capture_default_str();
  cmd->add_option("--batch-size", opts->batch_size, "Images per request")
      ->capture_default_str()
      ->check(in_range(std::size_t{1}, std::size_t{1} << 20));
  cmd->add_option("--min-accuracy", opts->min_accuracy,
                  "Fail (exit 3) when the accuracy is under this")
      ->capture_default_str()
      ->envname("ACCEPTABLE_ACCURACY")
      ->check(in_range(0.0, 1.0));
  cmd->add_option("--max-batch", opts->max_batch,
                  "The server's --max-batch (default: asked from the server): the over-limit case "
                  "sends one image more")
      ->check(in_range(std::size_t{1}, std::size_t{1} << 16));
  cmd->add_option("--junit", opts->junit, "Also write the result as JUnit XML to this file")
      ->type_name("FILE");
  cmd->add_flag("--no-edge-cases", opts->no_edge_cases, "Only the golden set");
  cmd->footer("Example:\n  mlctl test --app mnist-app --data data/mnist/test.npz --samples 100 "
              "--min-accuracy 0.9 "
              "--junit report.xml");
  cmd->callback(
      [opts, &dispatch] { dispatch.run = [opts](Context& ctx) { return run_test(*opts, ctx); }; });
}

} // namespace mlctl::cli
