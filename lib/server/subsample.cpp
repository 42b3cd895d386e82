#include "server/subsample.hpp"

#include "api/base64.hpp"
#include "api/time.hpp"
#include "nn/rng.hpp"
#include "util/error.hpp"

#include <algorithm>
#include <map>

namespace mlctl::server {

namespace {

constexpr std::size_t k_max_n = 100000;
constexpr std::size_t k_max_classes = 1000;

// What the scan keeps of a row: the sample is chosen from these, the rest is read afterwards
// for the chosen rows only.
struct Candidate {
  std::int64_t id = 0;
  std::int64_t predicted = -1;
  std::int64_t label = -1;
};

// Algorithm R over a stream: after k items, each is in the reservoir with probability n/k.
struct Reservoir {
  std::size_t capacity = 0;
  std::uint64_t seen = 0;
  std::vector<Candidate> items;

  void offer(const Candidate& c, nn::Rng& rng) {
    ++seen;
    if (items.size() < capacity) {
      items.push_back(c);
      return;
    }
    const auto j = rng.below(seen);
    if (j < capacity) {
      items[j] = c;
    }
  }
};

// Splits `n` over classes in proportion to `counts` (largest remainder), never more than a
// class has in its reservoir.
std::vector<std::size_t> shares(const std::vector<std::int64_t>& counts, std::size_t n,
                                const std::vector<std::size_t>& available) {
  double total = 0;
  for (const auto c : counts) {
    total += static_cast<double>(c);
  }
  std::vector<std::size_t> out(counts.size(), 0);
  if (total <= 0) {
    return out;
  }
  std::vector<std::pair<double, std::size_t>> remainders;
  std::size_t given = 0;
  for (std::size_t k = 0; k < counts.size(); ++k) {
    const double exact = static_cast<double>(n) * static_cast<double>(counts[k]) / total;
    out[k] = std::min(static_cast<std::size_t>(exact), available[k]);
    given += out[k];
    remainders.emplace_back(exact - static_cast<double>(out[k]), k);
  }
  std::sort(remainders.begin(), remainders.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second < b.second;
  });
  // Hand out what is left to the largest remainders that still have rows.
  while (given < n) {
    bool progressed = false;
    for (const auto& [r, k] : remainders) {
      if (given < n && out[k] < available[k]) {
        ++out[k];
        ++given;
        progressed = true;
      }
    }
    if (!progressed) {
      break;
    }
  }
  return out;
}

} // namespace

void validate(const SubsampleQuery& q) {
  if (q.n < 1 || q.n > k_max_n) {
    throw Error(ErrorKind::invalid_input, "n: must be 1..100000, got " + std::to_string(q.n));
  }
  if (q.strategy != "reservoir" && q.strategy != "stratified") {
    throw Error(ErrorKind::invalid_input,
                "strategy: must be reservoir or stratified, got '" + q.strategy + "'");
  }
  for (const auto& [name, value] : {std::pair{"since", &q.since}, std::pair{"until", &q.until}}) {
    if (!value->empty() && !api::parse_time(*value)) {
      throw Error(ErrorKind::invalid_input,
                  std::string(name) + ": not an RFC 3339 time: '" + *value + "'");
    }
  }
}

Subsample subsample(RequestStore& store, const SubsampleQuery& q) {
  validate(q);
  RowQuery rq;
  rq.application = q.application;
  rq.since = q.since;
  rq.until = q.until;
  rq.labelled_only = q.labelled_only;

  nn::Rng rng(q.seed);
  Subsample out;
  Reservoir uniform;
  uniform.capacity = q.n;
  std::map<std::int64_t, Reservoir> per_class;
  const bool stratified = q.strategy == "stratified";
  // One pass over the covering index (ids and classes only): memory is the reservoirs.
  store.for_each_class(rq, [&](std::int64_t id, std::int64_t predicted, std::int64_t label) {
    const Candidate c{id, predicted, label};
    const auto cls = label >= 0 ? label : predicted;
    ++out.scanned;
    if (cls >= 0 && static_cast<std::size_t>(cls) < k_max_classes) {
      if (out.class_counts.size() <= static_cast<std::size_t>(cls)) {
        out.class_counts.resize(static_cast<std::size_t>(cls) + 1);
      }
      ++out.class_counts[static_cast<std::size_t>(cls)];
    }
    if (!stratified) {
      uniform.offer(c, rng);
    } else {
      auto& res = per_class[cls];
      res.capacity = q.n;
      res.offer(c, rng);
    }
  });

  std::vector<std::int64_t> chosen;
  if (!stratified) {
    for (const auto& c : uniform.items) {
      chosen.push_back(c.id);
    }
  } else {
    std::vector<std::int64_t> counts;
    std::vector<std::size_t> available;
    std::vector<std::int64_t> classes;
    for (auto& [cls, res] : per_class) {
      classes.push_back(cls);
      counts.push_back(static_cast<std::int64_t>(res.seen));
      available.push_back(res.items.size());
    }
    const auto take = shares(counts, q.n, available);
    for (std::size_t k = 0; k < classes.size(); ++k) {
      const auto& items = per_class[classes[k]].items;
      // A reservoir is a uniform sample of its class: its first `take` items are one too.
      for (std::size_t i = 0; i < take[k]; ++i) {
        chosen.push_back(items[i].id);
      }
    }
  }
  per_class.clear();
  std::sort(chosen.begin(), chosen.end());

  // The chosen rows only, with their images; rows without an image are skipped.
  for (auto& r : store.rows_by_id(chosen, true)) {
    if (r.input.empty()) {
      continue;
    }
    SampledRow row;
    row.id = r.id;
    row.trace_id = std::move(r.trace_id);
    row.index = r.index;
    row.time = std::move(r.time);
    row.model = std::move(r.model);
    row.version = r.version;
    row.predicted = r.predicted.value_or(-1);
    row.label = r.label.value_or(-1);
    row.input = std::move(r.input);
    out.rows.push_back(std::move(row));
  }
  return out;
}

nlohmann::json to_json(const SubsampleQuery& q, const Subsample& s) {
  nlohmann::json rows = nlohmann::json::array();
  for (const auto& r : s.rows) {
    rows.push_back({{"trace_id", r.trace_id},
                    {"index", r.index},
                    {"time", r.time},
                    {"model", r.model},
                    {"version", r.version},
                    {"predicted", r.predicted},
                    {"label", r.label >= 0 ? nlohmann::json(r.label) : nlohmann::json()},
                    {"input", api::base64_encode(r.input.data(), r.input.size())}});
  }
  return {{"application", q.application},
          {"strategy", q.strategy},
          {"labeled", q.labelled_only ? "only" : "any"},
          {"since", q.since.empty() ? nlohmann::json() : nlohmann::json(q.since)},
          {"until", q.until.empty() ? nlohmann::json() : nlohmann::json(q.until)},
          {"seed", q.seed},
          {"scanned", s.scanned},
          {"class_counts", s.class_counts},
          {"count", s.rows.size()},
          {"rows", std::move(rows)}};
}

} // namespace mlctl::server
