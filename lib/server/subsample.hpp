#pragma once
// A representative sample of an application's stored requests, for retraining: uniform
// reservoir sampling (Vitter's algorithm R) or stratified by class (one reservoir per class,
// then each class takes its share of the sample in its production proportion). Streams the
// store's covering index once (ids and classes only, no row read; memory bounded by the sample
// size times the classes), then reads the chosen rows and their images only.

#include "server/request_store.hpp"

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace mlctl::server {

struct SubsampleQuery {
  std::string application;
  std::size_t n = 1000;               // 1..100000
  std::string since;                  // RFC 3339, inclusive; empty: from the first row
  std::string until;                  // RFC 3339, exclusive; empty: to the last row
  std::string strategy = "reservoir"; // "reservoir" | "stratified"
  bool labelled_only = true;          // rows with a ground-truth label only
  std::uint64_t seed = 42;
};

struct SampledRow {
  std::int64_t id = 0;
  std::string trace_id;
  std::int64_t index = 0;
  std::string time;
  std::string model;
  std::int64_t version = 0;
  std::int64_t predicted = -1;
  std::int64_t label = -1;         // -1: none
  std::vector<std::uint8_t> input; // 784 pixels
};

struct Subsample {
  std::int64_t scanned = 0;               // rows that matched the query
  std::vector<std::int64_t> class_counts; // of the scanned rows (class = label, else prediction)
  std::vector<SampledRow> rows;           // oldest first
};

// Checks `query`. Throws `Error{invalid_input}` "n: must be 1..100000, got 0", "strategy: must
// be reservoir or stratified, got 'x'", "since: not an RFC 3339 time: 'x'".
void validate(const SubsampleQuery& query);

// Draws the sample. Deterministic for the same rows and seed. Rows without an input (refused
// before decoding) and failed requests are skipped. Throws like `validate` and the store.
Subsample subsample(RequestStore& store, const SubsampleQuery& query);

// Returns the JSON of a sample: {application, strategy, labeled, since, until, seed, scanned,
// class_counts, count, rows: [{trace_id, index, time, model, version, predicted, label, input
// (the pixels, base64)}]}.
nlohmann::json to_json(const SubsampleQuery& query, const Subsample& sample);

} // namespace mlctl::server
