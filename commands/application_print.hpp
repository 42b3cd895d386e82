#pragma once
// Printing shared by the application commands (get, describe, rollout): the JSON shapes are
// those of the platform API (see lib/server/applications.hpp).

#include <nlohmann/json.hpp>
#include <string>

namespace mlctl::cli {

// Returns `answer`, from `url`, when it is a JSON object whose member `list` is an array (the
// applications, an application's stages, its revisions); throws otherwise: the answer of
// another server at that address would print as an empty table.
const nlohmann::json& require_list(const nlohmann::json& answer, const char* list,
                                   const std::string& url);

// Returns "mnist:3 70%, mnist:4 30%, mnist:5 shadow 10%" (stages joined by " -> ") from an
// application's `stages`, or from a revision's `variants`.
std::string models_summary(const nlohmann::json& application_or_revision);

// Prints `mlctl describe application`: fields, endpoints (absolute with `server`), stages and
// variants with their counters, and health when the server reports it.
void print_application_details(const nlohmann::json& application, const std::string& server);

} // namespace mlctl::cli
