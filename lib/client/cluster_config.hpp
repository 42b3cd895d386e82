#pragma once
// Named platform endpoints ("clusters", as `hs cluster` had them) in
// `$XDG_CONFIG_HOME/mlctl/config.yaml` (default `~/.config/mlctl/config.yaml`):
//
//   current: local
//   clusters:
//     - {name: local, server: "http://127.0.0.1:9090", token_file: /home/me/.mlctl-token}
//     - {name: prod, server: "https://mlctl.example:9090", ca_file: /etc/mlctl/ca.pem}
//
// and the resolution of the endpoint a command talks to: --server/--token (or MLCTL_SERVER /
// MLCTL_TOKEN) first, then the current cluster, then http://127.0.0.1:9090.

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace mlctl::client {

inline constexpr std::string_view k_default_server = "http://127.0.0.1:9090";

struct Cluster {
  std::string name;
  std::string server;     // http(s)://host:port
  std::string token_file; // absolute path; empty = no token
  std::string ca_file;    // absolute path of the CAs to trust for its https; empty = the system's
};

struct ClusterConfig {
  std::string current;
  std::vector<Cluster> clusters;

  const Cluster* find(std::string_view name) const;
};

// Returns `$XDG_CONFIG_HOME/mlctl/config.yaml`, or `$HOME/.config/mlctl/config.yaml`.
std::filesystem::path default_config_path();

// Reads the file; a missing file is an empty config. Throws `Error{invalid_input}`
// "<path>: clusters[1].server: ..." for a malformed one, `Error{io}`.
ClusterConfig load_cluster_config(const std::filesystem::path& path);
// Writes the file atomically (mode 0600). Throws `Error{io}`.
void save_cluster_config(const std::filesystem::path& path, const ClusterConfig& config);

// Adds or replaces the cluster `cluster.name` (validated like every name; `server` must be
// an http(s) URL; `token_file` and `ca_file` must exist and are made absolute); becomes current
// when it is the first. Throws `Error{invalid_input}` / `Error{not_found}`.
void add_cluster(ClusterConfig& config, Cluster cluster);
// Throws `Error{not_found}` "cluster 'x' not found (known: a, b)".
void use_cluster(ClusterConfig& config, std::string_view name);

struct Endpoint {
  std::string server;
  std::string token;
  std::string ca_file; // empty = the system's CAs
  std::string source; // "--server", "cluster 'prod'", "default"
};

// Resolves the endpoint from the flags (empty = not given) and the config, reading the
// cluster's token file; --cacert (`ca_flag`) wins over the cluster's CA file, which applies to
// the cluster's own server only, as its token. Throws `Error{not_found|io}` for an unreadable
// token file.
Endpoint resolve_endpoint(const std::string& server_flag, const std::string& token_flag,
                          const std::string& ca_flag, const ClusterConfig& config);

} // namespace mlctl::client
