// mlctl monitor: how an application's versions are doing: requests, errors, latency,
// reconstruction score against its threshold, accuracy from feedback and health, with terminal
// sparklines; `--plot` draws the charts of a monitoring UI into a PNG.

#include "api/monitor_routes.hpp"
#include "api/names.hpp"
#include "api/time.hpp"
#include "commands/commands.hpp"
#include "commands/option_checks.hpp"
#include "commands/output.hpp"
#include "commands/remote.hpp"
#include "explain/png.hpp"
#include "util/error.hpp"
#include "util/interrupt.hpp"

#include <CLI/CLI.hpp>
#include <chrono>
#include <cmath>
#include <iostream>
#include <memory>
#include <thread>
#include <unistd.h>

namespace mlctl::cli {

namespace {

struct MonitorOptions {
  std::string app;
  std::string since = "10m";
  std::string step = "10s";
  bool watch = false;
  int interval = 5;
  std::string plot;
};

// Returns `values` as a row of block characters, scaled to their maximum (NaN: a space).
std::string sparkline(const std::vector<double>& values, std::size_t width = 30) {
  static const char* k_blocks[] = {"\u2581", "\u2582", "\u2583", "\u2584",
                                   "\u2585", "\u2586", "\u2587", "\u2588"};
  std::vector<double> v(values.end() - static_cast<std::ptrdiff_t>(std::min(width, values.size())),
                        values.end());
  double hi = 0;
  for (const double x : v) {
    if (std::isfinite(x)) {
      hi = std::max(hi, x);
    }
  }
  std::string out;
  for (const double x : v) {
    if (!std::isfinite(x)) {
      out += ' ';
    } else {
      const int level = hi > 0 ? static_cast<int>(std::lround(x / hi * 7)) : 0;
      out += k_blocks[std::clamp(level, 0, 7)];
    }
  }
  return out;
}

double num(const nlohmann::json& v) {
  return v.is_number() ? v.get<double>() : std::nan("");
}

std::string fixed_or_dash(const nlohmann::json& v, int decimals, double scale = 1.0) {
  return v.is_number() ? format_fixed(v.get<double>() * scale, decimals) : "-";
}

std::vector<double> column(const nlohmann::json& series, const char* key, double scale = 1.0) {
  std::vector<double> out;
  for (const auto& p : series["points"]) {
    out.push_back(num(p[key]) * scale);
  }
  return out;
}

std::vector<double> times(const nlohmann::json& series) {
  std::vector<double> out;
  for (const auto& p : series["points"]) {
    const auto t = api::parse_time(p["time"].get<std::string>());
    out.push_back(t ? std::chrono::duration<double>(t->time_since_epoch()).count() : std::nan(""));
  }
  return out;
}

void print_monitor(const nlohmann::json& metrics, const nlohmann::json& health) {
  // The window's bounds, not a time the state began: each version's is in its own heading.
  std::cout << "application " << metrics["application"].get<std::string>() << ": "
            << health.value("state", std::string("unknown")) << " (window "
            << metrics["since"].get<std::string>() << " to " << metrics["until"].get<std::string>()
            << ", step " << metrics["step_seconds"].get<int>() << "s)\n\n";
  Table table({"VERSION", "VARIANT", "REQUESTS", "ERRORS", "P50 MS", "P99 MS", "RECONSTRUCTION",
               "THRESHOLD", "ACCURACY", "HEALTH"});
  for (const auto& s : metrics["series"]) {
    const auto& t = s["totals"];
    table.add({s["ref"].get<std::string>(), s["variant"].get<std::string>(),
               std::to_string(t["requests"].get<std::uint64_t>()),
               std::to_string(t["errors"].get<std::uint64_t>()),
               fixed_or_dash(t["latency_p50_seconds"], 2, 1000),
               fixed_or_dash(t["latency_p99_seconds"], 2, 1000),
               fixed_or_dash(t["reconstruction"], 5), fixed_or_dash(t["threshold"], 5),
               fixed_or_dash(t["accuracy"], 3), t["health"].get<std::string>()});
  }
  table.print();
  // The series live in the server's memory: a window reaching before its start is shorter than
  // it reads, and the requests before it are only in the request store.
  const auto app = metrics["application"].get<std::string>();
  const auto collected = metrics.value("collected_since", std::string());
  const bool clipped = !collected.empty() && metrics["since"].get<std::string>() < collected;
  if (table.empty() && clipped) {
    std::cout << "(no requests since " << collected
              << ", where the series begin (the server's start, or the oldest step kept); "
                 "earlier requests are listed by 'mlctl requests --app "
              << app << " --since AGE')\n";
  } else if (table.empty()) {
    std::cout << "(no requests in this window: send some with 'mlctl predict --app " << app
              << " --data DATASET_DIR', or widen it with --since)\n";
  } else if (clipped) {
    std::cout << "(the series begin at " << collected
              << ", the server's start or the oldest step kept)\n";
  }
  for (const auto& s : metrics["series"]) {
    std::cout << "\n"
              << s["ref"].get<std::string>() << " (" << s["variant"].get<std::string>() << ")";
    for (const auto& v : health.value("versions", nlohmann::json::array())) {
      if (v.value("ref", std::string()) == s["ref"].get<std::string>() && v.contains("since")) {
        std::cout << ": " << v["state"].get<std::string>() << " since "
                  << v["since"].get<std::string>();
      }
    }
    std::cout << "\n";
    std::cout << "  requests        " << sparkline(column(s, "requests")) << "\n";
    std::cout << "  p99 latency     " << sparkline(column(s, "latency_p99_seconds")) << "\n";
    std::cout << "  reconstruction  " << sparkline(column(s, "reconstruction")) << "\n";
    std::cout << "  accuracy        " << sparkline(column(s, "accuracy")) << "\n";
  }
  if (health.contains("events") && !health["events"].empty()) {
    std::cout << "\nhealth events\n";
    Table events({"TIME", "VERSION", "FROM", "TO", "MONITOR", "VALUE", "THRESHOLD"});
    for (const auto& e : health["events"]) {
      events.add({e["time"].get<std::string>(), e["ref"].get<std::string>(),
                  e["from"].get<std::string>(), e["to"].get<std::string>(),
                  e["monitor"].get<std::string>(), format_fixed(e["value"].get<double>(), 5),
                  format_fixed(e["threshold"].get<double>(), 5)});
    }
    events.print();
  }
}

void plot(const std::string& path, const nlohmann::json& metrics) {
  static const explain::Rgb k_palette[] = {
      {31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {148, 103, 189}, {140, 86, 75}};
  const auto step = metrics["step_seconds"].get<double>();
  const auto chart = [](std::string title, std::string y_label) {
    explain::Chart c;
    c.title = std::move(title);
    c.x_label = "time (UTC)";
    c.y_label = std::move(y_label);
    c.x_is_time = true;
    return c;
  };
  auto requests = chart("Requests per second", "requests/s");
  auto latency = chart("Latency p99", "milliseconds");
  auto recon = chart("Reconstruction score (autoencoder MSE)", "mean squared error");
  auto accuracy = chart("Accuracy (labelled requests)", "accuracy");
  accuracy.y_min = 0.0;
  accuracy.y_max = 1.0;
  // Every chart spans the whole window asked for.
  for (auto* chart : {&requests, &latency, &recon, &accuracy}) {
    for (const auto* key : {"since", "until"}) {
      const auto t = api::parse_time(metrics[key].get<std::string>());
      if (t) {
        (std::string(key) == "since" ? chart->x_min : chart->x_max) =
            std::chrono::duration<double>(t->time_since_epoch()).count();
      }
    }
  }
  std::size_t k = 0;
  for (const auto& s : metrics["series"]) {
    const auto colour = k_palette[k++ % std::size(k_palette)];
    const auto label = s["ref"].get<std::string>() + " " + s["variant"].get<std::string>();
    const auto x = times(s);
    requests.series.push_back({label, x, column(s, "requests", 1.0 / step), colour});
    latency.series.push_back({label, x, column(s, "latency_p99_seconds", 1000.0), colour});
    recon.series.push_back({label, x, column(s, "reconstruction"), colour});
    accuracy.series.push_back({label, x, column(s, "accuracy"), colour});
    const auto& threshold = s["totals"]["threshold"];
    if (threshold.is_number() && !recon.threshold) {
      recon.threshold = threshold.get<double>();
      recon.threshold_label = "threshold " + format_fixed(*recon.threshold, 4);
    }
  }
  const auto figure = explain::compose({explain::draw_chart(requests), explain::draw_chart(latency),
                                        explain::draw_chart(recon), explain::draw_chart(accuracy)},
                                       2, 10);
  explain::write_png(path, figure);
}

int run_monitor(const MonitorOptions& o, Context& ctx) {
  api::validate_name(o.app, "application name");
  auto client = api_client(ctx);
  const bool tty = ::isatty(STDOUT_FILENO) != 0;
  for (;;) {
    const auto metrics = client.call("GET", api::routes::application_metrics(o.app) +
                                                "?since=" + o.since + "&step=" + o.step);
    const auto health = client.call("GET", api::routes::application_health(o.app) + "?limit=10");
    if (!o.plot.empty()) {
      plot(o.plot, metrics);
    }
    const nlohmann::json result = {
        {"metrics", metrics},
        {"health", health},
        {"plot", o.plot.empty() ? nlohmann::json() : nlohmann::json(o.plot)}};
    if (o.watch && tty && ctx.format() == OutputFormat::table) {
      std::cout << "\x1b[2J\x1b[H"; // clear the screen between refreshes
    }
    print_result(ctx, result, [&] {
      print_monitor(metrics, health);
      if (!o.plot.empty()) {
        std::cout << "\ncharts: " << o.plot << "\n";
      }
    });
    std::cout.flush();
    if (!o.watch) {
      return 0;
    }
    for (int i = 0; i < o.interval * 10; ++i) {
      util::throw_if_interrupted();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  }
}

} // namespace

void register_monitor(CLI::App& parent, Dispatch& dispatch) {
  auto opts = std::make_shared<MonitorOptions>();
  auto* cmd = parent.add_subcommand(
      "monitor",
      "Show an application's requests, errors, latency, reconstruction score, accuracy and health");
  cmd->add_option("--app", opts->app, "Application name")
      ->required()
      ->envname("APPLICATION_NAME")
      ->type_name("APP");
  cmd->add_option("--since", opts->since, "Start: an age (10m, 2h) or an RFC 3339 time")
      ->capture_default_str();
  cmd->add_option("--step", opts->step, "Time-series step (a multiple of 10s)")
      ->capture_default_str();
  cmd->add_flag("--watch", opts->watch, "Refresh until interrupted");
  cmd->add_option("--interval", opts->interval, "Seconds between refreshes with --watch")
      ->check(in_range(1, 3600))
      ->capture_default_str();
  cmd->add_option("--plot", opts->plot,
                  "Write charts (requests, latency, reconstruction, accuracy) to this PNG");
  cmd->footer("Example:\n  mlctl monitor --app mnist-app --since 10m --plot monitor.png");
  cmd->callback([opts, &dispatch] {
    dispatch.run = [opts](Context& ctx) { return run_monitor(*opts, ctx); };
  });
}

} // namespace mlctl::cli
