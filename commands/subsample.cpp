// mlctl subsample: a representative sample of an application's stored production requests,
// written as a dataset directory (the fetch-mnist format) to retrain on.

#include "client/subsample.hpp"
#include "api/names.hpp"
#include "api/requests.hpp"
#include "api/time.hpp"
#include "commands/commands.hpp"
#include "commands/option_checks.hpp"
#include "commands/output.hpp"
#include "commands/remote.hpp"
#include "util/error.hpp"

#include <CLI/CLI.hpp>
#include <chrono>
#include <memory>

namespace mlctl::cli {

namespace {

struct SubsampleOptions {
  std::string app;
  std::size_t n = 1000;
  std::string out;
  std::string labeled; // default: only (any with --pseudo-label)
  bool pseudo_label = false;
  std::string strategy = "reservoir";
  std::string since;
  std::string until;
  std::uint64_t seed = 42;
  double test_fraction = 0.25;
};

// An age ("7d") or an RFC 3339 time, as an absolute RFC 3339 time (so the window recorded in
// dataset.json means the same thing later).
std::string absolute_time(const std::string& flag, const std::string& text,
                          std::chrono::system_clock::time_point now) {
  const auto t = api::parse_time_or_age(text, now);
  if (!t) {
    throw Error(ErrorKind::invalid_input,
                flag + " '" + text + "': expected an age like 7d or 10m, or an RFC 3339 time");
  }
  return api::format_time(*t);
}

int run_subsample(const SubsampleOptions& o, Context& ctx) {
  api::validate_name(o.app, "application name");
  client::SubsampleRequest request;
  request.application = o.app;
  request.n = o.n;
  request.labeled = !o.labeled.empty() ? o.labeled : (o.pseudo_label ? "any" : "only");
  request.pseudo_label = o.pseudo_label;
  request.strategy = o.strategy;
  request.seed = o.seed;
  request.test_fraction = o.test_fraction;
  const auto now = std::chrono::system_clock::now();
  if (!o.since.empty()) {
    request.since = absolute_time("--since", o.since, now);
  }
  if (!o.until.empty()) {
    request.until = absolute_time("--until", o.until, now);
  }
  auto client = api_client(ctx);
  const auto result = client::write_subsample(client, request, o.out, ctx.log());
  const auto& source = result.at("source");
  print_result(ctx, result, [&] {
    print_fields(
        {{"dataset", o.out},
         {"digest", result.at("digest").get<std::string>()},
         {"images", std::to_string(result.at("train").get<std::int64_t>()) + " train, " +
                        std::to_string(result.at("test").get<std::int64_t>()) + " test"},
         {"sampled from", std::to_string(result.at("scanned").get<std::int64_t>()) +
                              " stored requests (" + o.strategy + ", labelled " + request.labeled +
                              ") before " + source.at("window").at("until").get<std::string>()},
         {"time range", source.at("time_range").at("first").get<std::string>() + " .. " +
                            source.at("time_range").at("last").get<std::string>()},
         {"labels", result.at("pseudo_labelled").get<std::int64_t>() > 0
                        ? std::to_string(result.at("pseudo_labelled").get<std::int64_t>()) +
                              " pseudo-labels from the served predictions"
                        : std::string("ground truth (feedback)")}});
  });
  return 0;
}

} // namespace

void register_subsample(CLI::App& parent, Dispatch& dispatch) {
  auto opts = std::make_shared<SubsampleOptions>();
  auto* cmd = parent.add_subcommand(
      "subsample",
      "Write a representative sample of stored production requests as a dataset directory");
  cmd->add_option("--app", opts->app, "Application name")
      ->required()
      ->envname("APPLICATION_NAME")
      ->type_name("APP");
  cmd->add_option("-n", opts->n, "Images to sample")
      ->check(in_range(1, 100000))
      ->capture_default_str();
  cmd->add_option("--out", opts->out, "Dataset directory to write (replaced atomically)")
      ->required();
  // Both spellings: the rest of mlctl writes "labelled" (rollout --min-labelled).
  cmd->add_option("--labelled,--labeled", opts->labeled,
                  "Which requests: only those with feedback labels, or any (default only; any with "
                  "--pseudo-label)")
      ->check(CLI::IsMember({"only", "any"}));
  cmd->add_flag(
      "--pseudo-label", opts->pseudo_label,
      "Label requests without feedback with the served prediction (recorded in dataset.json)");
  cmd->add_option("--strategy", opts->strategy,
                  "reservoir (uniform) or stratified (keeps the production class proportions)")
      ->check(CLI::IsMember({"reservoir", "stratified"}))
      ->capture_default_str();
  cmd->add_option("--since", opts->since, "Requests from: an age (7d, 10m) or an RFC 3339 time");
  cmd->add_option("--until", opts->until,
                  "Requests before: an age or an RFC 3339 time (default: now; the window is "
                  "recorded in dataset.json, so mlctl reproduce can take the same sample again)");
  cmd->add_option("--seed", opts->seed, "Random seed of the sample and the split")
      ->capture_default_str();
  cmd->add_option("--test-fraction", opts->test_fraction, "Share of the sample in test.npz")
      ->check(fraction(true))
      ->capture_default_str();
  cmd->footer("Example:\n  mlctl subsample --app mnist-app -n 1000 --out data/retrain");
  cmd->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_subsample(*opts, ctx); };
  });
}

} // namespace mlctl::cli
