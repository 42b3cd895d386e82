#include "client/cluster_config.hpp"

#include "api/names.hpp"
#include "util/error.hpp"
#include "util/fs.hpp"
#include "util/yaml_json.hpp"

#include <cstdlib>
#include <sys/stat.h>
#include <yaml-cpp/yaml.h>

namespace mlctl::client {
namespace fs = std::filesystem;

namespace {

void check_server_url(const std::string& server) {
  if (server.rfind("http://", 0) != 0 && server.rfind("https://", 0) != 0) {
    throw Error(ErrorKind::invalid_input,
                "--server '" + server + "': expected an http:// or https:// URL, e.g. http://127.0.0.1:9090");
  }
}

std::string read_token(const std::string& file) {
  auto text = util::read_file(file);
  const auto first = text.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) {
    throw Error(ErrorKind::invalid_input, file + ": the token file is empty");
  }
  const auto last = text.find_last_not_of(" \t\r\n");
  return text.substr(first, last - first + 1);
}

} // namespace

const Cluster* ClusterConfig::find(std::string_view name) const {
  for (const auto& c : clusters) {
    if (c.name == name) {
      return &c;
    }
  }
  return nullptr;
}

fs::path default_config_path() {
  if (const char* xdg = std::getenv("XDG_CONFIG_HOME"); xdg != nullptr && *xdg == '/') {
    return fs::path(xdg) / "mlctl" / "config.yaml";
  }
  const char* home = std::getenv("HOME");
  return fs::path(home != nullptr ? home : ".") / ".config" / "mlctl" / "config.yaml";
}

ClusterConfig load_cluster_config(const fs::path& path) {
  ClusterConfig config;
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    return config;
  }
  const auto text = util::read_file(path);
  const auto fail = [&](const std::string& field, const std::string& what) {
    return Error(ErrorKind::invalid_input, path.string() + ": " + field + ": " + what);
  };
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw Error(ErrorKind::invalid_input, path.string() + ": " + util::yaml_error(e));
  }
  if (!root || root.IsNull()) {
    return config;
  }
  if (!root.IsMap()) {
    throw fail("(root)", "expected a mapping");
  }
  try {
    if (root["current"]) {
      config.current = root["current"].as<std::string>();
    }
    if (const auto list = root["clusters"]; list) {
      if (!list.IsSequence()) {
        throw fail("clusters", "expected a list");
      }
      for (std::size_t i = 0; i < list.size(); ++i) {
        const auto field = "clusters[" + std::to_string(i) + "]";
        const auto node = list[i];
        if (!node.IsMap() || !node["name"] || !node["server"]) {
          throw fail(field, "expected {name, server, token_file?, ca_file?}");
        }
        Cluster c;
        c.name = node["name"].as<std::string>();
        c.server = node["server"].as<std::string>();
        if (node["token_file"]) {
          c.token_file = node["token_file"].as<std::string>();
        }
        if (node["ca_file"]) {
          c.ca_file = node["ca_file"].as<std::string>();
        }
        config.clusters.push_back(std::move(c));
      }
    }
  } catch (const YAML::Exception& e) {
    throw Error(ErrorKind::invalid_input, path.string() + ": " + util::yaml_error(e));
  }
  return config;
}

void save_cluster_config(const fs::path& path, const ClusterConfig& config) {
  YAML::Emitter out;
  out << YAML::BeginMap;
  out << YAML::Key << "current" << YAML::Value << config.current;
  out << YAML::Key << "clusters" << YAML::Value << YAML::BeginSeq;
  for (const auto& c : config.clusters) {
    out << YAML::BeginMap << YAML::Key << "name" << YAML::Value << c.name << YAML::Key << "server" << YAML::Value
        << c.server;
    if (!c.token_file.empty()) {
      out << YAML::Key << "token_file" << YAML::Value << c.token_file;
    }
    if (!c.ca_file.empty()) {
      out << YAML::Key << "ca_file" << YAML::Value << c.ca_file;
    }
    out << YAML::EndMap;
  }
  out << YAML::EndSeq << YAML::EndMap;
  util::write_file_atomic(path, std::string(out.c_str()) + "\n");
  ::chmod(path.c_str(), 0600);
}

void add_cluster(ClusterConfig& config, Cluster cluster) {
  api::validate_name(cluster.name, "cluster name");
  while (!cluster.server.empty() && cluster.server.back() == '/') {
    cluster.server.pop_back();
  }
  check_server_url(cluster.server);
  for (auto* file : {&cluster.token_file, &cluster.ca_file}) {
    if (!file->empty()) {
      std::error_code ec;
      if (!fs::is_regular_file(*file, ec)) {
        throw Error(ErrorKind::not_found, *file + ": no such file");
      }
      *file = fs::absolute(*file).lexically_normal().string();
    }
  }
  for (auto& c : config.clusters) {
    if (c.name == cluster.name) {
      c = std::move(cluster);
      return;
    }
  }
  if (config.clusters.empty() || config.current.empty()) {
    config.current = cluster.name;
  }
  config.clusters.push_back(std::move(cluster));
}

void use_cluster(ClusterConfig& config, std::string_view name) {
  if (config.find(name) == nullptr) {
    std::string known;
    for (const auto& c : config.clusters) {
      known += (known.empty() ? "" : ", ") + c.name;
    }
    throw Error(ErrorKind::not_found, "cluster '" + std::string(name) + "' not found" +
                                          (known.empty() ? " (none configured: mlctl cluster add NAME --server URL)"
                                                         : " (known: " + known + ")"));
  }
  config.current = std::string(name);
}

Endpoint resolve_endpoint(const std::string& server_flag, const std::string& token_flag,
                          const std::string& ca_flag, const ClusterConfig& config) {
  Endpoint e;
  const Cluster* current = config.current.empty() ? nullptr : config.find(config.current);
  if (!server_flag.empty()) {
    e.server = server_flag;
    e.source = "--server";
  } else if (current != nullptr) {
    e.server = current->server;
    e.source = "cluster '" + current->name + "'";
  } else {
    e.server = std::string(k_default_server);
    e.source = "default";
  }
  // The cluster's token and CAs go only with the cluster's own server.
  const bool own_server =
      current != nullptr && (server_flag.empty() || server_flag == current->server);
  if (!token_flag.empty()) {
    e.token = token_flag;
  } else if (own_server && !current->token_file.empty()) {
    e.token = read_token(current->token_file);
  }
  e.ca_file = !ca_flag.empty() ? ca_flag : own_server ? current->ca_file : "";
  return e;
}

} // namespace mlctl::client
