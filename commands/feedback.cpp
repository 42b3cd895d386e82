// `mlctl feedback`: ground-truth labels joined to stored requests by trace id.
#include "api/names.hpp"
#include "api/requests.hpp"
#include "api/routes.hpp"
#include "commands/commands.hpp"
#include "commands/option_checks.hpp"
#include "commands/output.hpp"
#include "commands/remote.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <charconv>
#include <memory>

namespace mlctl::cli {

namespace {

struct FeedbackOptions {
  std::string app;
  std::string file;
  std::string trace_id;
  std::int64_t label = -1;
  std::int64_t index = -1;
};

std::int64_t parse_count(std::string_view text, const std::string& where) {
  std::int64_t v = 0;
  const auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size() || v < 0) {
    throw Error(ErrorKind::invalid_input,
                where + ": '" + std::string(text.substr(0, 40)) + "' is not an integer >= 0");
  }
  return v;
}

std::string trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '"')) {
    s.remove_prefix(1);
  }
  while (!s.empty() &&
         (s.back() == ' ' || s.back() == '\t' || s.back() == '\r' || s.back() == '"')) {
    s.remove_suffix(1);
  }
  return std::string(s);
}

// Reads `trace_id,label[,index]` lines; a header line, blank lines and `#` comments are skipped,
// and so is the byte-order mark that spreadsheets put in front of a UTF-8 CSV. `lines` gets the
// line number of each item.
std::vector<api::FeedbackItem> read_csv(const std::string& path, std::vector<std::size_t>& lines) {
  const auto text = util::read_file(path);
  std::vector<api::FeedbackItem> items;
  std::size_t line_no = 0;
  std::size_t pos = text.starts_with("\xEF\xBB\xBF") ? 3 : 0;
  while (pos < text.size()) {
    const auto end = std::min(text.find('\n', pos), text.size());
    const std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    std::vector<std::string> fields;
    std::size_t start = 0;
    while (true) {
      const auto comma = line.find(',', start);
      fields.push_back(trim(line.substr(
          start, comma == std::string_view::npos ? std::string_view::npos : comma - start)));
      if (comma == std::string_view::npos) {
        break;
      }
      start = comma + 1;
    }
    if ((fields.size() == 1 && fields[0].empty()) || fields[0].rfind('#', 0) == 0 ||
        (line_no == 1 && fields[0] == "trace_id")) {
      continue;
    }
    const auto where = path + ":" + std::to_string(line_no);
    if (fields.size() < 2 || fields.size() > 3) {
      throw Error(ErrorKind::invalid_input, where + ": expected trace_id,label[,index]");
    }
    if (!api::is_trace_id(fields[0])) {
      const bool header = line_no == 1 && !fields[1].empty() &&
                          std::none_of(fields[1].begin(), fields[1].end(),
                                       [](char c) { return c >= '0' && c <= '9'; });
      throw Error(
          ErrorKind::invalid_input,
          where + ": trace id '" + fields[0].substr(0, 40) + "' is not 32 lowercase hex digits" +
              (header ? " (a header line must read trace_id,label or trace_id,label,index)" : ""));
    }
    api::FeedbackItem item;
    item.trace_id = fields[0];
    item.label = parse_count(fields[1], where + ": label");
    if (fields.size() == 3 && !fields[2].empty()) {
      item.index = parse_count(fields[2], where + ": index");
    }
    items.push_back(std::move(item));
    lines.push_back(line_no);
  }
  if (items.empty()) {
    throw Error(ErrorKind::invalid_input,
                path + ": no labels (expected lines trace_id,label[,index])");
  }
  return items;
}

// The server refuses a request naming its item `feedback[i]`: said with the line of `path` it
// came from (the request holding the items from `start` on), and what earlier requests stored.
Error at_csv_line(const Error& e, const std::string& path, const std::vector<std::size_t>& lines,
                  std::size_t start) {
  const std::string_view what = e.what();
  const auto at = what.find("feedback[");
  std::size_t i = 0;
  if (at == std::string_view::npos) {
    return e;
  }
  const auto* digits = what.data() + at + 9;
  const auto [end, ec] = std::from_chars(digits, what.data() + what.size(), i);
  if (ec != std::errc() || end == what.data() + what.size() || *end != ']' ||
      start + i >= lines.size()) {
    return e;
  }
  std::string message =
      path + ":" + std::to_string(lines[start + i]) + ": " + std::string(what.substr(at));
  if (start > 0) {
    message += " (the labels of the lines before " + std::to_string(lines[start]) + " were stored)";
  }
  return Error(e.kind(), message);
}

int run_feedback(const FeedbackOptions& o, Context& ctx) {
  if (!o.app.empty()) {
    api::validate_name(o.app, "application name");
  }
  std::vector<api::FeedbackItem> items;
  std::vector<std::size_t> lines; // of o.file
  if (!o.file.empty()) {
    items = read_csv(o.file, lines);
  } else {
    if (!api::is_trace_id(o.trace_id)) {
      throw Error(ErrorKind::invalid_input,
                  "--trace-id '" + o.trace_id + "': must be 32 lowercase hex digits");
    }
    api::FeedbackItem item;
    item.trace_id = o.trace_id;
    item.label = o.label;
    if (o.index >= 0) {
      item.index = o.index;
    }
    items.push_back(std::move(item));
  }
  auto client = api_client(ctx);
  const auto path = api::routes::feedback() + api::routes::query({{"application", o.app}});
  api::FeedbackResult total;
  for (std::size_t start = 0; start < items.size(); start += api::k_max_feedback_items) {
    const auto end = std::min(items.size(), start + api::k_max_feedback_items);
    const nlohmann::json body(
        std::vector<api::FeedbackItem>(items.begin() + static_cast<std::ptrdiff_t>(start),
                                       items.begin() + static_cast<std::ptrdiff_t>(end)));
    // Labelling is idempotent, so a retried call is harmless.
    nlohmann::json answer;
    try {
      answer = client.call("POST", path, body, true);
    } catch (const Error& e) {
      if (lines.empty()) {
        throw;
      }
      throw at_csv_line(e, o.file, lines, start);
    }
    const auto part = api::from_json_value<api::FeedbackResult>(answer, path, ErrorKind::corrupt);
    total.received += part.received;
    total.matched += part.matched;
    total.rows_labelled += part.rows_labelled;
    total.unknown += part.unknown;
    for (const auto& id : part.unknown_trace_ids) {
      if (total.unknown_trace_ids.size() < 100) {
        total.unknown_trace_ids.push_back(id);
      }
    }
  }
  print_result(ctx, total, [&] {
    print_fields({{"labels", std::to_string(total.received)},
                  {"matched", std::to_string(total.matched)},
                  {"rows labelled", std::to_string(total.rows_labelled)},
                  {"unknown trace ids", std::to_string(total.unknown)}});
  });
  if (total.unknown > 0) {
    ctx.log()(std::to_string(total.unknown) +
              " label(s) matched no stored request (first: " + total.unknown_trace_ids.front() +
              "); not stored, sampled out, or deleted by retention");
  }
  return 0;
}

} // namespace

void register_feedback(CLI::App& parent, Dispatch& dispatch) {
  auto opts = std::make_shared<FeedbackOptions>();
  auto* cmd =
      parent.add_subcommand("feedback", "Join ground-truth labels to stored requests by trace id");
  cmd->add_option("--app", opts->app, "Application name: label only its requests")
      ->envname("APPLICATION_NAME")
      ->type_name("APP");
  auto* file = cmd->add_option("--file", opts->file,
                               "CSV of trace_id,label[,index] lines (a header line is allowed)")
                   ->type_name("FILE");
  auto* trace =
      cmd->add_option("--trace-id", opts->trace_id, "One trace id to label (with --label)")
          ->type_name("TRACE_ID");
  auto* label = cmd->add_option("--label", opts->label, "The true class of --trace-id")
                    ->check(non_negative());
  cmd->add_option("--index", opts->index, "The image's position in the request's batch (default 0)")
      ->check(non_negative())
      ->needs(trace);
  file->excludes(trace);
  trace->needs(label);
  label->needs(trace);
  cmd->footer("Example:\n  mlctl feedback --app mnist-app --file labels.csv");
  cmd->callback([opts, file, trace, &dispatch] {
    if (file->count() == 0 && trace->count() == 0) {
      throw CLI::RequiredError("--file or --trace-id with --label");
    }
    dispatch.run = [opts](Context& ctx) { return run_feedback(*opts, ctx); };
  });
}

} // namespace mlctl::cli
