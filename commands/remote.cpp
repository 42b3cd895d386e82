#include "commands/remote.hpp"

#include "client/cluster_config.hpp"

#include <cstdlib>

namespace mlctl::cli {

client::ApiClient api_client(const Context& ctx) { return client::ApiClient(api_client_options(ctx)); }

client::ApiClientOptions api_client_options(const Context& ctx) {
  const auto config = client::load_cluster_config(client::default_config_path());
  const auto endpoint = client::resolve_endpoint(ctx.options().server, ctx.options().token,
                                                 ctx.options().cacert, config);
  ctx.debug("server " + endpoint.server + " (from " + endpoint.source + ")");
  client::ApiClientOptions o;
  o.server = endpoint.server;
  o.server_source = endpoint.source;
  o.token = endpoint.token;
  o.ca_file = endpoint.ca_file;
  if (const char* user = std::getenv("USER"); user != nullptr) {
    o.user = user;
  }
  o.log = ctx.log();
  o.progress = ctx.progress();
  return o;
}

} // namespace mlctl::cli
