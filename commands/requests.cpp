// `mlctl requests --app A`: the requests an application answered, from the request store.
#include "api/requests.hpp"
#include "api/names.hpp"
#include "api/routes.hpp"
#include "commands/commands.hpp"
#include "commands/option_checks.hpp"
#include "commands/output.hpp"
#include "commands/remote.hpp"
#include "util/error.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <memory>

namespace mlctl::cli {

namespace {

struct RequestsOptions {
  std::string app;
  std::string since;
  std::string until;
  std::int64_t limit = 20;
  std::string trace_id;
  bool oldest_first = false;
  bool include_input = false;
};

std::string cell(const std::optional<std::int64_t>& v) {
  return v ? std::to_string(*v) : "-";
}

// `text` cut to at most `max` bytes with "..." (at a UTF-8 character boundary).
std::string shortened(const std::string& text, std::size_t max) {
  if (text.size() <= max) {
    return text;
  }
  auto end = max - 3;
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) {
    --end;
  }
  return text.substr(0, end) + "...";
}

// The table of `rows`; an ERROR column (the message, cut short) when some request failed.
void print_rows(const std::vector<api::StoredRequest>& rows) {
  const bool errors = std::any_of(rows.begin(), rows.end(),
                                  [](const api::StoredRequest& r) { return !r.error.empty(); });
  std::vector<std::string> header = {"TIME",   "TRACE ID", "IMAGE", "MODEL",  "VARIANT",
                                     "STATUS", "CLASS",    "LABEL", "LATENCY"};
  if (errors) {
    header.emplace_back("ERROR");
  }
  Table table(header);
  for (const auto& r : rows) {
    std::vector<std::string> row = {
        r.time, r.trace_id, std::to_string(r.index), r.model_ref(),
        r.variant.empty() ? "-" : r.variant, std::to_string(r.status), cell(r.predicted),
        cell(r.label),
        // A request refused before a model ran has no latency.
        r.model.empty() ? "-" : format_fixed(r.latency_seconds * 1000.0, 3) + " ms"};
    if (errors) {
      row.push_back(shortened(r.error, 60));
    }
    table.add(row);
  }
  table.print();
}

int run_requests(const RequestsOptions& o, Context& ctx) {
  auto client = api_client(ctx);
  if (!o.trace_id.empty()) {
    if (!api::is_trace_id(o.trace_id)) {
      throw Error(ErrorKind::invalid_input,
                  "--trace-id '" + o.trace_id + "': must be 32 lowercase hex digits");
    }
    const auto path =
        api::routes::request_trace(o.trace_id) + (o.include_input ? "?include=input" : "");
    const auto found = api::from_json_value<api::TraceRequests>(client.call("GET", path), path,
                                                                ErrorKind::corrupt);
    print_result(ctx, found, [&] { print_rows(found.requests); });
    return 0;
  }
  api::validate_name(o.app, "application name");
  std::vector<std::pair<std::string, std::string>> params = {
      {"since", o.since},
      {"until", o.until},
      {"limit", std::to_string(o.limit)},
      {"order", o.oldest_first ? "asc" : ""},
      {"include", o.include_input ? "input" : ""},
  };
  const auto path = api::routes::application_requests(o.app) + api::routes::query(params);
  const auto list =
      api::from_json_value<api::RequestList>(client.call("GET", path), path, ErrorKind::corrupt);
  print_result(ctx, list, [&] {
    print_rows(list.requests);
    if (list.requests.empty()) {
      ctx.log()("no request of " + o.app + " is stored" +
                (o.since.empty() && o.until.empty() ? std::string() : " in this range") +
                " (its capture sample is in 'mlctl describe application " + o.app + "')");
    }
    if (!list.next_page_token.empty()) {
      ctx.log()("more requests than --limit " + std::to_string(o.limit) + " in this range");
    }
  });
  return 0;
}

} // namespace

void register_requests(CLI::App& parent, Dispatch& dispatch) {
  auto opts = std::make_shared<RequestsOptions>();
  auto* cmd = parent.add_subcommand(
      "requests", "List the requests an application answered (request store), newest first");
  auto* app = cmd->add_option("--app", opts->app, "Application name")
                  ->envname("APPLICATION_NAME")
                  ->type_name("APP");
  cmd->add_option("--since", opts->since,
                  "Only requests since this time: RFC 3339 or an age like 10m, 2h, 1d")
      ->type_name("TIME");
  cmd->add_option("--until", opts->until, "Only requests before this time (RFC 3339 or an age)")
      ->type_name("TIME");
  cmd->add_option("--limit", opts->limit, "At most this many rows (one per image)")
      ->capture_default_str()
      ->check(in_range(1, 10000));
  auto* trace =
      cmd->add_option("--trace-id", opts->trace_id, "Show every stored row of one trace id instead")
          ->type_name("TRACE_ID");
  cmd->add_flag("--oldest-first", opts->oldest_first, "Oldest first");
  cmd->add_flag("--include-input", opts->include_input,
                "Include each image (784 bytes 0-255) in -o json|yaml");
  cmd->footer("Example:\n  mlctl requests --app mnist-app --since 10m --limit 20");
  cmd->callback([opts, app, trace, &dispatch] {
    if (app->count() == 0 && trace->count() == 0 && opts->app.empty()) {
      throw CLI::RequiredError("--app or --trace-id");
    }
    dispatch.run = [opts](Context& ctx) { return run_requests(*opts, ctx); };
  });
}

} // namespace mlctl::cli
