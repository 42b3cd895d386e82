#pragma once
// Wire types of the request store: the stored requests of an application (one row per image
// of a request), ground-truth feedback joined by trace id, and their routes. Server and
// client both use these; neither defines the JSON shapes.
//
//   GET  /api/v1/applications/{app}/requests?since=&until=&limit=&page_token=&order=&include=input
//   GET  /api/v1/requests/{trace_id}?include=input
//   POST /api/v1/feedback?application=   body: [{"trace_id", "label", "index"?}]

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace mlctl::api {

inline constexpr std::size_t k_image_pixels = 784; // stored inputs are 28×28 uint8
inline constexpr std::size_t k_max_feedback_items = 10000;

// One image of one stored inference (a request of N images gives N rows per variant call).
struct StoredRequest {
  std::int64_t id = 0;    // store order (oldest first); retention deletes the smallest
  std::string trace_id;   // 32 lowercase hex
  std::int64_t index = 0; // position of the image in the request's batch
  std::string application;
  std::int64_t stage = 0;
  std::string model;          // empty when refused before any model ran (bad input)
  std::int64_t version = 0;   // 0 then
  std::string variant;        // primary | canary | shadow; empty then
  std::string time;           // RFC 3339 UTC, milliseconds: when the request arrived
  double latency_seconds = 0; // of the whole request
  int status = 200;
  std::string error;                     // empty when status is 200
  std::optional<std::int64_t> predicted; // class index; none on error
  std::vector<float> probabilities;      // empty on error
  std::vector<std::uint8_t> input;       // 784 pixels round(x*255); empty unless asked for
  std::optional<std::int64_t> label;     // ground truth, once fed back
  std::string labelled_at;               // RFC 3339, empty without a label

  // Returns `model:version`, or "-" for a request refused before any model ran.
  std::string model_ref() const {
    return model.empty() ? "-" : model + ":" + std::to_string(version);
  }
};

struct RequestList {
  std::string application;
  std::vector<StoredRequest> requests;
  std::string next_page_token; // empty on the last page
};

// All stored rows of one trace id (every image, every variant call).
struct TraceRequests {
  std::string trace_id;
  std::vector<StoredRequest> requests;
};

struct FeedbackItem {
  std::string trace_id;
  std::int64_t label = 0;
  std::optional<std::int64_t> index; // image in the batch; absent = 0
};

struct FeedbackResult {
  std::int64_t received = 0;                  // items in the request
  std::int64_t matched = 0;                   // items that labelled at least one stored row
  std::int64_t rows_labelled = 0;             // rows updated (a shadow call stores its own rows)
  std::int64_t unknown = 0;                   // items whose trace id (and index) is not stored
  std::vector<std::string> unknown_trace_ids; // the first 100 of them
};

void to_json(nlohmann::json& j, const StoredRequest& v);
void from_json(const nlohmann::json& j, StoredRequest& v);
void to_json(nlohmann::json& j, const RequestList& v);
void from_json(const nlohmann::json& j, RequestList& v);
void to_json(nlohmann::json& j, const TraceRequests& v);
void from_json(const nlohmann::json& j, TraceRequests& v);
void to_json(nlohmann::json& j, const FeedbackItem& v);
void from_json(const nlohmann::json& j, FeedbackItem& v);
void to_json(nlohmann::json& j, const FeedbackResult& v);
void from_json(const nlohmann::json& j, FeedbackResult& v);

// Returns whether `text` is a W3C trace id: 32 lowercase hex digits, not all zero.
bool is_trace_id(std::string_view text);

// Parses a feedback body (a JSON array of items, or one item). Throws `Error{invalid_input}`
// "feedback[3].label: must be an integer >= 0" (and the like) for the first bad item, and for
// more than `k_max_feedback_items` items.
std::vector<FeedbackItem> parse_feedback(const nlohmann::json& body);

// Parses a time bound of a listing: an RFC 3339 time (see `parse_time`) or an age before
// `now`: an integer with `s`, `m`, `h` or `d` ("10m" = ten minutes ago). Returns nothing for
// anything else.
std::optional<std::chrono::system_clock::time_point>
parse_time_or_age(std::string_view text, std::chrono::system_clock::time_point now);

namespace routes {
// Each returns the path (no query); names must be valid already.
std::string application_requests(std::string_view application);
std::string request_trace(std::string_view trace_id);
std::string feedback();
namespace pattern {
inline constexpr const char* k_application_requests = R"(/api/v1/applications/([^/]+)/requests)";
inline constexpr const char* k_request_trace = R"(/api/v1/requests/([^/]+))";
inline constexpr const char* k_feedback = R"(/api/v1/feedback)";
} // namespace pattern
} // namespace routes

} // namespace mlctl::api
