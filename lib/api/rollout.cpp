#include "api/rollout.hpp"

#include "api/names.hpp"
#include "util/error.hpp"
#include "util/text.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace mlctl::api {
using nlohmann::json;

namespace {

struct MetricInfo {
  std::string_view name;
  double min;
  double max;
};

constexpr std::array k_metrics{
    MetricInfo{"accuracy", 0, 1},        MetricInfo{"error_rate", 0, 1},
    MetricInfo{"p50_ms", 0, 1e9},        MetricInfo{"p99_ms", 0, 1e9},
    MetricInfo{"mean_ms", 0, 1e9},       MetricInfo{"reconstruction", 0, 1e9},
};

std::string_view op_text(GateOp op) {
  switch (op) {
  case GateOp::le:
    return "<=";
  case GateOp::lt:
    return "<";
  case GateOp::ge:
    return ">=";
  case GateOp::gt:
    return ">";
  }
  return "?";
}

// Formats a measured value for the one-line reasons: 4 significant digits.
std::string fmt(double v) {
  std::array<char, 32> buf{};
  std::snprintf(buf.data(), buf.size(), "%.4g", v);
  return buf.data();
}

json opt(const std::optional<double>& v) {
  return v ? json(*v) : json();
}

Error field_error(std::string_view field, std::string_view what) {
  return Error(ErrorKind::invalid_input, std::string(field) + ": " + std::string(what));
}

std::int64_t int_field(const json& doc, const char* key, std::int64_t fallback, std::int64_t min,
                       std::int64_t max) {
  if (!doc.contains(key) || doc[key].is_null()) {
    return fallback;
  }
  if (!doc[key].is_number_integer()) {
    throw field_error(key, "expected an integer");
  }
  const auto v = doc[key].get<std::int64_t>();
  if (v < min || v > max) {
    throw field_error(key, "must be " + std::to_string(min) + ".." + std::to_string(max) +
                               ", got " + std::to_string(v));
  }
  return v;
}

} // namespace

std::string Gate::text() const {
  return metric + std::string(op_text(op)) + (versus_threshold ? std::string("threshold") : fmt(value));
}

bool Gate::holds(double measured, double limit) const {
  switch (op) {
  case GateOp::le:
    return measured <= limit;
  case GateOp::lt:
    return measured < limit;
  case GateOp::ge:
    return measured >= limit;
  case GateOp::gt:
    return measured > limit;
  }
  return false;
}

std::string gate_metrics() {
  std::string out;
  for (const auto& m : k_metrics) {
    out += (out.empty() ? "" : ", ") + std::string(m.name);
  }
  return out;
}

Gate parse_gate(std::string_view text) {
  const auto fail = [&](std::string_view what) {
    return Error(ErrorKind::invalid_input,
                 "gate '" + std::string(text.substr(0, 60)) + "': " + std::string(what));
  };
  const auto pos = text.find_first_of("<>");
  if (pos == std::string_view::npos) {
    throw fail("expected METRIC OP VALUE with OP one of <= < >= >, e.g. 'p99_ms<=20'");
  }
  Gate g;
  g.metric = std::string(util::trim_blanks(text.substr(0, pos)));
  const MetricInfo* info = nullptr;
  for (const auto& m : k_metrics) {
    if (m.name == g.metric) {
      info = &m;
    }
  }
  if (info == nullptr) {
    throw fail("unknown metric '" + g.metric.substr(0, 30) + "' (one of " + gate_metrics() + ")");
  }
  auto rest = text.substr(pos);
  const bool less = rest.front() == '<';
  const bool equal = rest.size() > 1 && rest[1] == '=';
  g.op = less ? (equal ? GateOp::le : GateOp::lt) : (equal ? GateOp::ge : GateOp::gt);
  rest = util::trim_blanks(rest.substr(equal ? 2 : 1));
  if (rest == "threshold") {
    if (g.metric != "reconstruction") {
      throw fail("only reconstruction compares with 'threshold'");
    }
    g.versus_threshold = true;
    return g;
  }
  const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), g.value);
  if (rest.empty() || ec != std::errc() || end != rest.data() + rest.size() ||
      !std::isfinite(g.value)) {
    throw fail("expected a number after " + std::string(op_text(g.op)) +
               (g.metric == "reconstruction" ? " (or 'threshold')" : ""));
  }
  if (g.value < info->min || g.value > info->max) {
    throw fail(g.metric + " must be compared with a value in [" + fmt(info->min) + ", " +
               fmt(info->max) + "]");
  }
  return g;
}

json to_json(const CanarySpec& spec) {
  json gates = json::array();
  for (const auto& g : spec.gates) {
    gates.push_back(g.text());
  }
  return {{"model", spec.model},
          {"weight", spec.weight},
          {"gates", std::move(gates)},
          {"min_requests", spec.min_requests},
          {"min_labelled", spec.min_labelled},
          {"confidence", spec.confidence},
          {"timeout_seconds", spec.timeout_seconds}};
}

CanarySpec canary_spec_from_json(const json& doc) {
  if (!doc.is_object()) {
    throw Error(ErrorKind::invalid_input, "request body: expected a JSON object");
  }
  for (const auto& [key, value] : doc.items()) {
    static constexpr std::array k_known{"model",        "weight",     "gates",          "min_requests",
                                        "min_labelled", "confidence", "timeout_seconds"};
    if (std::find(k_known.begin(), k_known.end(), key) == k_known.end()) {
      throw field_error(key, "unknown field");
    }
  }
  CanarySpec spec;
  if (!doc.contains("model") || !doc["model"].is_string()) {
    throw field_error("model", "expected NAME:VERSION or NAME@ALIAS");
  }
  spec.model = doc["model"].get<std::string>();
  parse_model_ref(spec.model);
  spec.weight = static_cast<int>(int_field(doc, "weight", spec.weight, 1, 50));
  spec.min_requests = int_field(doc, "min_requests", spec.min_requests, 1, 100'000'000);
  spec.min_labelled = int_field(doc, "min_labelled", spec.min_labelled, 0, 100'000'000);
  spec.timeout_seconds = int_field(doc, "timeout_seconds", spec.timeout_seconds, 1, 7 * 86400);
  if (doc.contains("confidence") && !doc["confidence"].is_null()) {
    if (!doc["confidence"].is_number()) {
      throw field_error("confidence", "expected a number");
    }
    spec.confidence = doc["confidence"].get<double>();
    if (!(spec.confidence >= 0.5 && spec.confidence <= 0.9999)) {
      throw field_error("confidence", "must be 0.5..0.9999, got " + fmt(spec.confidence));
    }
  }
  if (doc.contains("gates") && !doc["gates"].is_null()) {
    if (!doc["gates"].is_array()) {
      throw field_error("gates", "expected a list of gates like \"p99_ms<=20\"");
    }
    for (std::size_t i = 0; i < doc["gates"].size(); ++i) {
      const auto& g = doc["gates"][i];
      const auto field = "gates[" + std::to_string(i) + "]";
      if (!g.is_string()) {
        throw field_error(field, "expected a string like \"p99_ms<=20\"");
      }
      try {
        spec.gates.push_back(parse_gate(g.get<std::string>()));
      } catch (const Error& e) {
        throw field_error(field, e.what());
      }
      if (spec.gates.back().metric == "accuracy" && spec.min_labelled == 0) {
        throw field_error(field, "an accuracy gate needs ground truth: min_labelled must be > 0");
      }
    }
  }
  return spec;
}

json to_json(const VariantEvidence& e) {
  return {{"model", e.model},
          {"requests", e.requests},
          {"errors", e.errors},
          {"images", e.images},
          {"p50_ms", opt(e.p50_ms)},
          {"p99_ms", opt(e.p99_ms)},
          {"mean_ms", opt(e.mean_ms)},
          {"reconstruction", opt(e.reconstruction)},
          {"scored", e.scored},
          {"threshold", opt(e.threshold)},
          {"labelled", e.labelled},
          {"correct", e.correct},
          {"accuracy", e.labelled > 0 ? json(static_cast<double>(e.correct) /
                                             static_cast<double>(e.labelled))
                                      : json()}};
}

json to_json(const Verdict& v) {
  json gates = json::array();
  for (const auto& g : v.gates) {
    gates.push_back({{"gate", g.gate},
                     {"status", g.status},
                     {"value", opt(g.value)},
                     {"limit", opt(g.limit)},
                     {"detail", g.detail}});
  }
  const auto& c = v.comparison;
  return {{"decision", v.decision},
          {"reason", v.reason},
          {"gates", std::move(gates)},
          {"comparison",
           {{"status", c.status},
            {"canary_accuracy", opt(c.canary_accuracy)},
            {"primary_accuracy", opt(c.primary_accuracy)},
            {"z", opt(c.z)},
            {"p_value", opt(c.p_value)},
            {"z_critical", c.z_critical},
            {"detail", c.detail}}},
          {"evidence", {{"canary", to_json(v.canary)}, {"primary", to_json(v.primary)}}}};
}

std::optional<double> two_proportion_z(std::int64_t c1, std::int64_t n1, std::int64_t c2,
                                       std::int64_t n2) {
  if (n1 <= 0 || n2 <= 0) {
    return std::nullopt;
  }
  const double p1 = static_cast<double>(c1) / static_cast<double>(n1);
  const double p2 = static_cast<double>(c2) / static_cast<double>(n2);
  const double pooled = static_cast<double>(c1 + c2) / static_cast<double>(n1 + n2);
  const double var =
      pooled * (1 - pooled) * (1.0 / static_cast<double>(n1) + 1.0 / static_cast<double>(n2));
  if (!(var > 0)) {
    return std::nullopt;
  }
  return (p1 - p2) / std::sqrt(var);
}

double normal_cdf(double z) {
  return 0.5 * std::erfc(-z / std::sqrt(2.0));
}

double normal_quantile(double p) {
  // Bisection on the CDF: 200 halvings of [-40, 40] reach double precision; speed is no concern.
  double lo = -40;
  double hi = 40;
  for (int i = 0; i < 200 && hi - lo > 1e-12; ++i) {
    const double mid = (lo + hi) / 2;
    (normal_cdf(mid) < p ? lo : hi) = mid;
  }
  return (lo + hi) / 2;
}

Verdict evaluate(const CanarySpec& spec, const VariantEvidence& canary,
                 const VariantEvidence& primary, bool timed_out) {
  Verdict v;
  v.canary = canary;
  v.primary = primary;
  const bool enough_requests = canary.requests >= spec.min_requests;
  const auto requests_awaited = "canary requests " + std::to_string(canary.requests) + "/" +
                                std::to_string(spec.min_requests);
  const auto labelled_awaited = "labelled canary images " + std::to_string(canary.labelled) + "/" +
                                std::to_string(spec.min_labelled);
  std::vector<std::string> awaited;
  if (!enough_requests) {
    awaited.push_back(requests_awaited);
  }
  for (const auto& gate : spec.gates) {
    GateResult r;
    r.gate = gate.text();
    r.limit = gate.value;
    if (gate.metric == "accuracy") {
      if (canary.labelled >= spec.min_labelled && canary.labelled > 0) {
        r.value = static_cast<double>(canary.correct) / static_cast<double>(canary.labelled);
        r.detail = std::to_string(canary.correct) + "/" + std::to_string(canary.labelled) +
                   " labelled images correct";
      } else {
        r.detail = labelled_awaited;
      }
    } else if (enough_requests) {
      if (gate.metric == "error_rate") {
        r.value = static_cast<double>(canary.errors) / static_cast<double>(canary.requests);
        r.detail = std::to_string(canary.errors) + " errors in " + std::to_string(canary.requests) +
                   " requests";
      } else if (gate.metric == "reconstruction") {
        if (gate.versus_threshold) {
          r.limit = canary.threshold;
        }
        if (!r.limit) {
          r.status = "fail";
          r.detail = canary.model + " has no reconstruction threshold (no autoencoder in its model "
                                    "directory, no spec.monitoring.reconstruction_threshold)";
        } else if (canary.scored > 0) {
          r.value = canary.reconstruction;
          r.detail = "mean over " + std::to_string(canary.scored) + " scored images";
        } else {
          r.detail = "no canary image scored yet";
        }
      } else {
        r.value = gate.metric == "p50_ms" ? canary.p50_ms
                  : gate.metric == "p99_ms" ? canary.p99_ms
                                            : canary.mean_ms;
        r.detail = r.value ? "over " + std::to_string(canary.requests) + " requests"
                           : "no latency measured yet";
      }
    } else {
      r.detail = requests_awaited;
    }
    if (r.status.empty()) {
      r.status = !r.value ? "pending" : gate.holds(*r.value, *r.limit) ? "pass" : "fail";
    }
    // Requests and labels are awaited once each (the comparison names the labels).
    if (r.status == "pending" && r.detail != requests_awaited && r.detail != labelled_awaited) {
      awaited.push_back(r.detail);
    }
    v.gates.push_back(std::move(r));
  }

  auto& c = v.comparison;
  c.z_critical = normal_quantile(spec.confidence);
  if (spec.min_labelled == 0) {
    c.status = "skipped";
    c.detail = "no ground truth required (min_labelled 0)";
  } else if (canary.labelled < spec.min_labelled || primary.labelled < spec.min_labelled) {
    c.status = "pending";
    c.detail = "labelled images: canary " + std::to_string(canary.labelled) + "/" +
               std::to_string(spec.min_labelled) + ", primary " + std::to_string(primary.labelled) +
               "/" + std::to_string(spec.min_labelled);
    awaited.push_back(c.detail);
  } else {
    c.canary_accuracy = static_cast<double>(canary.correct) / static_cast<double>(canary.labelled);
    c.primary_accuracy =
        static_cast<double>(primary.correct) / static_cast<double>(primary.labelled);
    c.z = two_proportion_z(canary.correct, canary.labelled, primary.correct, primary.labelled);
    const auto accuracies = "canary " + fmt(*c.canary_accuracy) + " (" +
                            std::to_string(canary.labelled) + " labelled) vs primary " +
                            fmt(*c.primary_accuracy) + " (" + std::to_string(primary.labelled) +
                            " labelled)";
    if (!c.z) {
      c.status = "pass";
      c.detail = accuracies + ": identical";
    } else {
      c.p_value = normal_cdf(*c.z);
      const bool worse = *c.z < -c.z_critical;
      c.status = worse ? "fail" : "pass";
      c.detail = accuracies + ": z = " + fmt(*c.z) + (worse ? " < " : " >= ") +
                 fmt(-c.z_critical) + " (one-sided p = " + fmt(*c.p_value) + ", confidence " +
                 fmt(spec.confidence) + ")";
    }
  }

  std::string failed;
  for (const auto& g : v.gates) {
    if (g.status == "fail") {
      failed += (failed.empty() ? "" : "; ") + g.gate + " failed: " +
                (g.value ? fmt(*g.value) + " (" + g.detail + ")" : g.detail);
    }
  }
  if (c.status == "fail") {
    failed += (failed.empty() ? "" : "; ") + std::string("canary significantly less accurate: ") +
              c.detail;
  }
  if (!failed.empty()) {
    v.decision = "rollback";
    v.reason = failed;
  } else if (awaited.empty()) {
    v.decision = "promote";
    v.reason = std::to_string(v.gates.size()) + " gate(s) passed over " +
               std::to_string(canary.requests) + " canary requests" +
               (c.status == "pass" ? "; canary not significantly less accurate: " + c.detail : "");
  } else {
    std::string waiting;
    for (const auto& a : awaited) {
      waiting += (waiting.empty() ? "" : ", ") + a;
    }
    v.decision = timed_out ? "rollback" : "pending";
    v.reason = (timed_out ? "timed out waiting for " : "waiting for ") + waiting;
  }
  return v;
}

namespace routes {
std::string application_rollouts(std::string_view name) {
  return "/api/v1/applications/" + std::string(name) + "/rollouts";
}
std::string application_rollout(std::string_view name) {
  return "/api/v1/applications/" + std::string(name) + "/rollout";
}
std::string application_rollout_abort(std::string_view name) {
  return "/api/v1/applications/" + std::string(name) + "/rollout/abort";
}
} // namespace routes

} // namespace mlctl::api
