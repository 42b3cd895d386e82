#pragma once
// `mlctl catalog ...`: the model registry from the command line. catalog.cpp registers the
// group and holds the printing shared by its subcommands (one file per subcommand).

#include "api/types.hpp"
#include "commands/context.hpp"

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace mlctl::cli {

void register_catalog_upload(CLI::App& catalog, Dispatch& dispatch);
void register_catalog_list(CLI::App& catalog, Dispatch& dispatch);
void register_catalog_get(CLI::App& catalog, Dispatch& dispatch);
void register_catalog_download(CLI::App& catalog, Dispatch& dispatch);
void register_catalog_rm(CLI::App& catalog, Dispatch& dispatch);
void register_catalog_alias(CLI::App& catalog, Dispatch& dispatch);
void register_catalog_tag(CLI::App& catalog, Dispatch& dispatch);
void register_catalog_history(CLI::App& catalog, Dispatch& dispatch);
void register_catalog_gc(CLI::App& catalog, Dispatch& dispatch);

// Returns the first 12 hex digits of a sha256 (for tables).
std::string short_sha(const std::string& sha256);
// Prints versions as a table: VERSION SHA256 SIZE CREATED UPLOADER ALIASES TAGS.
void print_version_table(const std::vector<api::VersionInfo>& versions);
// Prints one version's fields, contract and metrics.
void print_version_details(const api::VersionInfo& version);
// Prints audit-log events as a table: ID TIME ACTION MODEL VERSION ALIAS ACTOR.
void print_event_table(const std::vector<api::Event>& events);

} // namespace mlctl::cli
