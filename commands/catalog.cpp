// `mlctl catalog`: the group, and the printing its subcommands share.
#include "commands/catalog.hpp"

#include "commands/commands.hpp"
#include "commands/output.hpp"

#include <CLI/CLI.hpp>
#include <iostream>

namespace mlctl::cli {

namespace {

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) {
    out += (out.empty() ? "" : ",") + s;
  }
  return out.empty() ? "-" : out;
}

std::string tensors(const nlohmann::json& list) {
  if (!list.is_array()) {
    return "-";
  }
  std::string out;
  for (const auto& t : list) {
    if (!t.is_object()) {
      continue;
    }
    std::string shape;
    for (const auto& d : t.value("shape", nlohmann::json::array())) {
      shape += (shape.empty() ? "" : ",") + d.dump();
    }
    out += (out.empty() ? "" : "; ") + t.value("name", std::string("?")) + " " +
           t.value("datatype", std::string("?")) + " [" + shape + "]";
  }
  return out.empty() ? "-" : out;
}

std::string number(const nlohmann::json& v) {
  return v.is_number_float() ? format_fixed(v.get<double>(), 4) : (v.is_null() ? "-" : v.dump());
}

} // namespace

std::string short_sha(const std::string& sha256) { return sha256.substr(0, 12); }

void print_version_table(const std::vector<api::VersionInfo>& versions) {
  Table table({"VERSION", "SHA256", "SIZE", "CREATED", "UPLOADER", "ALIASES", "TAGS"});
  for (const auto& v : versions) {
    std::vector<std::string> tags;
    for (const auto& [k, val] : v.tags) {
      tags.push_back(k + "=" + val);
    }
    table.add({v.ref(), short_sha(v.sha256), format_bytes(static_cast<double>(v.size)), v.created_at, v.uploader,
               join(v.aliases), join(tags)});
  }
  table.print();
}

void print_version_details(const api::VersionInfo& v) {
  std::vector<std::string> tags;
  for (const auto& [k, val] : v.tags) {
    tags.push_back(k + "=" + val);
  }
  std::vector<std::pair<std::string, std::string>> fields{
      {"model", v.ref()},
      {"sha256", v.sha256},
      {"size", format_bytes(static_cast<double>(v.size))},
      {"created", v.created_at},
      {"uploader", v.uploader},
      {"aliases", join(v.aliases)},
      {"tags", join(tags)},
      {"files", join(v.files)},
      {"used by", join(v.used_by)},
  };
  if (v.artifact_missing) {
    fields.emplace_back("artifact", "MISSING from the server's data directory (an upload of the "
                                    "same model restores it: mlctl catalog upload DIR)");
  }
  if (v.contract.is_object()) {
    fields.emplace_back("inputs", tensors(v.contract.value("inputs", nlohmann::json())));
    fields.emplace_back("outputs", tensors(v.contract.value("outputs", nlohmann::json())));
  }
  if (v.lineage.is_object()) {
    if (v.lineage.value("imported", false)) {
      fields.emplace_back("lineage", "imported (a bare ONNX file)");
    } else if (v.lineage.contains("dataset") && v.lineage["dataset"].is_object()) {
      fields.emplace_back("dataset", v.lineage["dataset"].value("digest", std::string("-")));
    }
  }
  if (v.metrics.is_object()) {
    fields.emplace_back("test accuracy", number(v.metrics.value("test_accuracy", nlohmann::json())));
    fields.emplace_back("train accuracy", number(v.metrics.value("train_accuracy", nlohmann::json())));
  }
  print_fields(fields);
}

void print_event_table(const std::vector<api::Event>& events) {
  Table table({"ID", "TIME", "ACTION", "MODEL", "VERSION", "ALIAS", "ACTOR"});
  for (const auto& e : events) {
    table.add({std::to_string(e.id), e.time, e.action, e.name.empty() ? "-" : e.name,
               e.version ? std::to_string(*e.version) : "-", e.alias.empty() ? "-" : e.alias, e.actor});
  }
  table.print();
}

void register_catalog(CLI::App& parent, Dispatch& dispatch) {
  auto* catalog = parent.add_subcommand("catalog", "Upload, list, fetch and manage model versions in the registry");
  catalog->require_subcommand(1);
  catalog->footer("Example:\n  mlctl catalog upload models/mnist --version-file model_version.txt");
  register_catalog_upload(*catalog, dispatch);
  register_catalog_list(*catalog, dispatch);
  register_catalog_get(*catalog, dispatch);
  register_catalog_download(*catalog, dispatch);
  register_catalog_alias(*catalog, dispatch);
  register_catalog_tag(*catalog, dispatch);
  register_catalog_history(*catalog, dispatch);
  register_catalog_rm(*catalog, dispatch);
  register_catalog_gc(*catalog, dispatch);
}

} // namespace mlctl::cli
