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
void register_apply(CLI::App& parent, Dispatch& dispatch);
void register_get(CLI::App& parent, Dispatch& dispatch);
void register_describe(CLI::App& parent, Dispatch& dispatch);
void register_delete(CLI::App& parent, Dispatch& dispatch);
void register_rollout(CLI::App& parent, Dispatch& dispatch);
void register_test(CLI::App& parent, Dispatch& dispatch);
void register_requests(CLI::App& parent, Dispatch& dispatch);
void register_feedback(CLI::App& parent, Dispatch& dispatch);
void register_monitor(CLI::App& parent, Dispatch& dispatch);
void register_explain(CLI::App& parent, Dispatch& dispatch);
void register_subsample(CLI::App& parent, Dispatch& dispatch);
void register_cluster(CLI::App& parent, Dispatch& dispatch);
void register_reproduce(CLI::App& parent, Dispatch& dispatch);
void register_completion(CLI::App& parent, Dispatch& dispatch);
void register_version(CLI::App& parent, Dispatch& dispatch);

} // namespace mlctl::cli
