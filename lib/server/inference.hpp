#pragma once
// What the gateway reports about every inference it ran, and the interface of those who
// listen (the request store, the metrics and the health monitors). The gateway builds one
// `InferenceRecord` per variant call (a shadow call is a record of its own) after the answer
// is known and hands the same shared record to every sink; sinks must return quickly (queue
// the work) and never throw.

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mlctl::server {

struct InferenceRecord {
  std::string trace_id;          // 32 lowercase hex (W3C trace id)
  std::string application;
  int stage = 0;                 // index in spec.stages (0 for a singular application)
  std::string model;             // model name
  std::int64_t version = 0;
  std::string variant;           // "primary" | "canary" | "shadow"
  std::string time;              // RFC 3339 UTC with milliseconds, when the request arrived
  double latency_seconds = 0;    // model time plus routing, without network
  int status = 200;              // HTTP status given (for a shadow: what it would have given)
  std::string error;             // the message when status != 200
  std::size_t batch = 0;         // images in the request
  std::vector<float> input;      // batch * 784 floats in [0, 1] (empty when refused before decoding)
  std::vector<std::int64_t> classes;  // predicted class per image (empty on error)
  std::vector<float> probabilities;   // batch * classes, row-major (empty on error)
  double capture_sample = 1.0;   // spec.capture.sample of the application: share of requests to store
};

class InferenceSink {
public:
  virtual ~InferenceSink() = default;
  // Called on the request's thread once per record; must not block on I/O nor throw.
  virtual void on_inference(const std::shared_ptr<const InferenceRecord>& record) noexcept = 0;
};

} // namespace mlctl::server
