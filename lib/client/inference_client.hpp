#pragma once
// The client of the inference gateway's simple form, `POST /api/v1/applications/{app}/predict`
// with `{"images": [...]}`: sends images, returns the answer with its HTTP status, round-trip
// time, model version and trace id. HTTP error statuses are answers here, not exceptions (the
// integration test checks them).

#include "client/api_client.hpp"

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace mlctl::client {

struct InferenceReply {
  long status = 0;
  double seconds = 0;                            // round trip, request sent to answer read
  std::vector<std::int64_t> classes;             // per image (200 only)
  std::vector<std::vector<float>> probabilities; // per image (200 only)
  std::string model;                             // "mnist:3", the version that answered
  std::string variant;                           // primary | canary (when the server says)
  std::string trace_id;                          // from the body, else the traceparent header
  std::string error;                             // the server's message when status != 200
};

// Returns `{"images": [[...], ...]}` for `images` (count × `pixels` bytes), each value
// written as a float in [0, 1] (byte / 255, 5 decimals; 0 and 1 as "0.0" and "1.0").
std::string images_body(std::span<const std::uint8_t> images, std::size_t pixels);

class InferenceClient {
public:
  // Uses the server, token, user and timeouts of `options`. Throws `Error{invalid_input}` for
  // a malformed server URL.
  explicit InferenceClient(ApiClientOptions options);

  // POSTs `body` (JSON text, sent as is) to the predict route of `application`. Retries only
  // connection failures. Throws `Error{unavailable}` when the server cannot be reached,
  // `Error{corrupt}` "<url>: ..." for a 200 answer that is not the documented shape.
  InferenceReply post_predict(std::string_view application, const std::string& body);
  // Sends `images` (count × `pixels` bytes, values 0-255) in one request.
  InferenceReply predict(std::string_view application, std::span<const std::uint8_t> images,
                         std::size_t pixels);

private:
  ApiClientOptions m_options;
};

} // namespace mlctl::client
