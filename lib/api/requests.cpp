#include "api/requests.hpp"

#include "api/routes.hpp"
#include "api/time.hpp"
#include "util/error.hpp"

#include <charconv>

namespace mlctl::api {
using nlohmann::json;

void to_json(json& j, const StoredRequest& v) {
  j = json{{"id", v.id},
           {"trace_id", v.trace_id},
           {"index", v.index},
           {"application", v.application},
           {"stage", v.stage},
           {"model", v.model},
           {"version", v.version},
           {"variant", v.variant},
           {"time", v.time},
           {"latency_seconds", v.latency_seconds},
           {"status", v.status},
           {"error", v.error.empty() ? json(nullptr) : json(v.error)},
           {"class", v.predicted ? json(*v.predicted) : json(nullptr)},
           {"probabilities", v.probabilities},
           {"label", v.label ? json(*v.label) : json(nullptr)},
           {"labelled_at", v.labelled_at.empty() ? json(nullptr) : json(v.labelled_at)}};
  if (!v.input.empty()) {
    j["input"] = v.input;
  }
}

void from_json(const json& j, StoredRequest& v) {
  v.id = j.at("id").get<std::int64_t>();
  v.trace_id = j.at("trace_id").get<std::string>();
  v.index = j.at("index").get<std::int64_t>();
  v.application = j.at("application").get<std::string>();
  v.stage = j.at("stage").get<std::int64_t>();
  v.model = j.at("model").get<std::string>();
  v.version = j.at("version").get<std::int64_t>();
  v.variant = j.at("variant").get<std::string>();
  v.time = j.at("time").get<std::string>();
  v.latency_seconds = j.at("latency_seconds").get<double>();
  v.status = j.at("status").get<int>();
  const auto& error = j.at("error");
  v.error = error.is_null() ? std::string() : error.get<std::string>();
  const auto& cls = j.at("class");
  v.predicted = cls.is_null() ? std::nullopt : std::optional<std::int64_t>(cls.get<std::int64_t>());
  v.probabilities = j.at("probabilities").get<std::vector<float>>();
  const auto& label = j.at("label");
  v.label = label.is_null() ? std::nullopt : std::optional<std::int64_t>(label.get<std::int64_t>());
  const auto& at = j.at("labelled_at");
  v.labelled_at = at.is_null() ? std::string() : at.get<std::string>();
  v.input = j.contains("input") ? j["input"].get<std::vector<std::uint8_t>>()
                                : std::vector<std::uint8_t>{};
}

void to_json(json& j, const RequestList& v) {
  j = json{{"application", v.application},
           {"requests", v.requests},
           {"next_page_token", v.next_page_token}};
}

void from_json(const json& j, RequestList& v) {
  v.application = j.at("application").get<std::string>();
  v.requests = j.at("requests").get<std::vector<StoredRequest>>();
  v.next_page_token = j.at("next_page_token").get<std::string>();
}

void to_json(json& j, const TraceRequests& v) {
  j = json{{"trace_id", v.trace_id}, {"requests", v.requests}};
}

void from_json(const json& j, TraceRequests& v) {
  v.trace_id = j.at("trace_id").get<std::string>();
  v.requests = j.at("requests").get<std::vector<StoredRequest>>();
}

void to_json(json& j, const FeedbackItem& v) {
  j = json{{"trace_id", v.trace_id}, {"label", v.label}};
  if (v.index) {
    j["index"] = *v.index;
  }
}

void from_json(const json& j, FeedbackItem& v) {
  v.trace_id = j.at("trace_id").get<std::string>();
  v.label = j.at("label").get<std::int64_t>();
  v.index = j.contains("index") && !j["index"].is_null()
                ? std::optional<std::int64_t>(j["index"].get<std::int64_t>())
                : std::nullopt;
}

void to_json(json& j, const FeedbackResult& v) {
  j = json{{"received", v.received},
           {"matched", v.matched},
           {"rows_labelled", v.rows_labelled},
           {"unknown", v.unknown},
           {"unknown_trace_ids", v.unknown_trace_ids}};
}

void from_json(const json& j, FeedbackResult& v) {
  v.received = j.at("received").get<std::int64_t>();
  v.matched = j.at("matched").get<std::int64_t>();
  v.rows_labelled = j.at("rows_labelled").get<std::int64_t>();
  v.unknown = j.at("unknown").get<std::int64_t>();
  v.unknown_trace_ids = j.at("unknown_trace_ids").get<std::vector<std::string>>();
}

bool is_trace_id(std::string_view text) {
  if (text.size() != 32) {
    return false;
  }
  bool nonzero = false;
  for (const char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
      return false;
    }
    nonzero = nonzero || c != '0';
  }
  return nonzero;
}

namespace {

std::int64_t non_negative_integer(const json& item, const char* key, const std::string& where) {
  const auto& v = item.at(key);
  // JSON numbers like 7.0 are accepted only when integral.
  if (v.is_number_integer()) {
    const auto n = v.get<std::int64_t>();
    if (n >= 0 && n <= (std::int64_t{1} << 31)) {
      return n;
    }
  } else if (v.is_number_float()) {
    const double d = v.get<double>();
    if (d >= 0 && d <= static_cast<double>(std::int64_t{1} << 31) &&
        d == static_cast<double>(static_cast<std::int64_t>(d))) {
      return static_cast<std::int64_t>(d);
    }
  }
  throw Error(ErrorKind::invalid_input, where + "." + key + ": must be an integer >= 0");
}

} // namespace

std::vector<FeedbackItem> parse_feedback(const json& body) {
  const json items = body.is_array() ? body : json::array({body});
  if (items.size() > k_max_feedback_items) {
    throw Error(ErrorKind::invalid_input, "feedback: " + std::to_string(items.size()) +
                                              " items; at most " +
                                              std::to_string(k_max_feedback_items) + " per call");
  }
  std::vector<FeedbackItem> out;
  out.reserve(items.size());
  for (std::size_t i = 0; i < items.size(); ++i) {
    const auto& item = items[i];
    const std::string where = "feedback[" + std::to_string(i) + "]";
    if (!item.is_object()) {
      throw Error(ErrorKind::invalid_input,
                  where + ": expected an object {\"trace_id\", \"label\", \"index\"?}");
    }
    for (const auto& [key, value] : item.items()) {
      if (key != "trace_id" && key != "label" && key != "index") {
        throw Error(ErrorKind::invalid_input, where + "." + key + ": unknown field");
      }
    }
    if (!item.contains("trace_id") || !item["trace_id"].is_string() ||
        !is_trace_id(item["trace_id"].get<std::string>())) {
      throw Error(ErrorKind::invalid_input, where + ".trace_id: must be 32 lowercase hex digits");
    }
    if (!item.contains("label")) {
      throw Error(ErrorKind::invalid_input, where + ".label: is required");
    }
    FeedbackItem f;
    f.trace_id = item["trace_id"].get<std::string>();
    f.label = non_negative_integer(item, "label", where);
    if (item.contains("index") && !item["index"].is_null()) {
      f.index = non_negative_integer(item, "index", where);
    }
    out.push_back(std::move(f));
  }
  return out;
}

std::optional<std::chrono::system_clock::time_point>
parse_time_or_age(std::string_view text, std::chrono::system_clock::time_point now) {
  if (const auto age = parse_duration(text)) {
    return now - *age;
  }
  return parse_time(text);
}

namespace routes {
std::string application_requests(std::string_view application) {
  return std::string(k_api_prefix) + "/applications/" + url_encode(application) + "/requests";
}
std::string request_trace(std::string_view trace_id) {
  return std::string(k_api_prefix) + "/requests/" + url_encode(trace_id);
}
std::string feedback() {
  return std::string(k_api_prefix) + "/feedback";
}
} // namespace routes

} // namespace mlctl::api
