#pragma once
// The REST client for commands that talk to the platform, built on demand (local commands
// never read server settings): endpoint from --server/--token (MLCTL_SERVER/MLCTL_TOKEN), else
// the current cluster of the config file, else http://127.0.0.1:9090.

#include "client/api_client.hpp"
#include "commands/context.hpp"

namespace mlctl::cli {

// Returns a client for the resolved endpoint, with retry notes and transfer progress wired
// to the context. Throws `Error` for a malformed config or an unreadable token file.
client::ApiClient api_client(const Context& ctx);

// Returns the options `api_client` uses (resolved endpoint, token, user, log, progress), for
// clients other than the REST one (the inference client). Throws as `api_client`.
client::ApiClientOptions api_client_options(const Context& ctx);

} // namespace mlctl::cli
