#include "commands/application_print.hpp"

#include "commands/output.hpp"
#include "util/error.hpp"

#include <iostream>

namespace mlctl::cli {

namespace {

std::string percent(double v) {
  return format_fixed(v, v == static_cast<double>(static_cast<long long>(v)) ? 0 : 1) + "%";
}

std::string variant_text(const nlohmann::json& v) {
  std::string s = v.value("model", std::string("?"));
  if (v.contains("shadow")) {
    return s + " shadow " + percent(v["shadow"].get<double>());
  }
  return s + " " + percent(v.value("weight", 0));
}

} // namespace

const nlohmann::json& require_list(const nlohmann::json& answer, const char* list,
                                   const std::string& url) {
  if (!answer.is_object() || !answer.contains(list) || !answer[list].is_array()) {
    throw Error(ErrorKind::internal, url + ": unexpected JSON in the answer: no \"" +
                                         std::string(list) +
                                         "\" list (is the server an mlctl serve?)");
  }
  return answer;
}

std::string models_summary(const nlohmann::json& a) {
  std::string out;
  if (a.contains("stages")) {
    for (const auto& stage : a["stages"]) {
      std::string part;
      for (const auto& v : stage.value("variants", nlohmann::json::array())) {
        part += (part.empty() ? "" : ", ") + variant_text(v);
      }
      out += (out.empty() ? "" : " -> ") + part;
    }
  } else if (a.contains("variants")) {
    std::int64_t stage = 0;
    for (const auto& v : a["variants"]) {
      const auto s = v.value("stage", std::int64_t{0});
      out += out.empty() ? "" : (s != stage ? " -> " : ", ");
      stage = s;
      out += variant_text(v);
    }
  }
  return out.empty() ? "-" : out;
}

void print_application_details(const nlohmann::json& a, const std::string& server) {
  const auto& endpoints = a.value("endpoints", nlohmann::json::object());
  const auto monitoring = a.value("monitoring", nlohmann::json());
  std::string monitoring_text = "-";
  if (monitoring.is_object() && !monitoring.empty()) {
    monitoring_text.clear();
    for (const auto& [k, v] : monitoring.items()) {
      monitoring_text += (monitoring_text.empty() ? "" : ", ") + k + "=" + v.dump();
    }
  }
  std::vector<std::pair<std::string, std::string>> fields{
      {"name", a.value("name", std::string("?"))},
      {"revision", std::to_string(a.value("revision", 0))},
      {"kind", a.value("singular", false) ? "singular" : "stages"},
      {"created", a.value("created_at", std::string("-"))},
      {"updated", a.value("updated_at", std::string("-"))},
      {"ready", a.value("ready", false) ? "yes" : "no (models not loaded; see the server log)"},
      {"capture sample",
       format_fixed(a.value("capture", nlohmann::json::object()).value("sample", 1.0), 2)},
      {"monitoring", monitoring_text},
      {"predict", server + endpoints.value("predict", std::string())},
      {"v2 infer", server + endpoints.value("v2_infer", std::string())},
      {"v2 metadata", server + endpoints.value("v2_metadata", std::string())},
  };
  // Health (the monitors): the application's state, then each version's monitors and the
  // latest transitions.
  const auto number = [](const nlohmann::json& v, int digits) {
    return v.is_number() ? format_fixed(v.get<double>(), digits) : std::string("-");
  };
  if (const auto h = a.value("health", nlohmann::json()); h.is_object()) {
    fields.emplace_back("health", h.value("state", std::string("unknown")));
    for (const auto& v : h.value("versions", nlohmann::json::array())) {
      const auto rec = v.value("reconstruction", nlohmann::json::object());
      const auto acc = v.value("accuracy", nlohmann::json::object());
      // Unknown until the monitor has its evidence: say how far it is.
      std::string waiting;
      const auto scored = rec.value("samples", std::size_t{0});
      const auto needed = rec.value("samples_needed", std::size_t{0});
      if (v.value("state", std::string()) == "unknown" && rec.value("autoencoder", false) &&
          scored < needed) {
        waiting = " (" + std::to_string(scored) + " of the " + std::to_string(needed) +
                  " scored images it is judged on)";
      }
      fields.emplace_back("  " + v.value("ref", std::string("?")),
                          v.value("state", std::string("unknown")) + waiting + ": reconstruction " +
                              number(rec.value("mean", nlohmann::json()), 5) + " (threshold " +
                              number(rec.value("threshold", nlohmann::json()), 5) + "), accuracy " +
                              number(acc.value("value", nlohmann::json()), 4) + " over " +
                              std::to_string(acc.value("labelled", 0)) + " labelled");
    }
    for (const auto& ev : h.value("events", nlohmann::json::array())) {
      fields.emplace_back("  event", ev.value("time", std::string()) + " " + ev.value("ref", std::string()) +
                                         " " + ev.value("from", std::string()) + " -> " +
                                         ev.value("to", std::string()) + " (" +
                                         ev.value("monitor", std::string()) + " " +
                                         number(ev.value("value", nlohmann::json()), 5) + ")");
    }
  }
  // The table is read before anything is printed: an answer of another shape fails whole.
  Table table(
      {"STAGE", "MODEL", "REQUESTED", "ROLE", "WEIGHT", "REQUESTS", "ERRORS", "MEAN LATENCY"});
  std::size_t s = 0;
  for (const auto& stage : a.value("stages", nlohmann::json::array())) {
    for (const auto& v : stage.value("variants", nlohmann::json::array())) {
      const bool shadow = v.contains("shadow");
      table.add(
          {std::to_string(s), v.value("model", std::string("?")),
           v.value("requested", std::string("-")), v.value("role", std::string("-")),
           shadow ? "shadow " + percent(v["shadow"].get<double>()) : percent(v.value("weight", 0)),
           v.contains("requests") ? std::to_string(v["requests"].get<std::uint64_t>()) : "-",
           v.contains("errors") ? std::to_string(v["errors"].get<std::uint64_t>()) : "-",
           v.contains("mean_latency_ms")
               ? format_fixed(v["mean_latency_ms"].get<double>(), 3) + " ms"
               : "-"});
    }
    ++s;
  }
  print_fields(fields);
  std::cout << "\n";
  table.print();
}

} // namespace mlctl::cli
