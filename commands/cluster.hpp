#pragma once
// `mlctl cluster ...`: named platform endpoints in the config file. cluster.cpp registers the
// group; one file per subcommand.

#include "commands/context.hpp"

namespace CLI {
class App;
}

namespace mlctl::cli {

void register_cluster_add(CLI::App& cluster, Dispatch& dispatch);
void register_cluster_use(CLI::App& cluster, Dispatch& dispatch);
void register_cluster_list(CLI::App& cluster, Dispatch& dispatch);

} // namespace mlctl::cli
