#pragma once
// Every subcommand registers itself here; `cli/main.cpp` calls these in workflow order.

#include "commands/context.hpp"

namespace CLI {
class App;
}

namespace mlctl::cli {

void register_fetch_mnist(CLI::App& parent, Dispatch& dispatch);
void register_data(CLI::App& parent, Dispatch& dispatch);
void register_train(CLI::App& parent, Dispatch& dispatch);
void register_predict(CLI::App& parent, Dispatch& dispatch);
void register_serve(CLI::App& parent, Dispatch& dispatch);
void register_catalog(CLI::App& parent, Dispatch& dispatch);
void register_cluster(CLI::App& parent, Dispatch& dispatch);
void register_completion(CLI::App& parent, Dispatch& dispatch);
void register_version(CLI::App& parent, Dispatch& dispatch);

} // namespace mlctl::cli
