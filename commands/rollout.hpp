#pragma once
// `mlctl rollout ...`: an application's revisions over time. rollout.cpp registers the group
// and its `history` and `undo` subcommands; other subcommands (e.g. `rollout canary`,
// `rollout status`) live in rollout_<name>.cpp, are declared here and registered by one line
// in `register_rollout`.

#include "commands/context.hpp"

namespace CLI {
class App;
}

namespace mlctl::cli {

void register_rollout_history(CLI::App& rollout, Dispatch& dispatch);
void register_rollout_undo(CLI::App& rollout, Dispatch& dispatch);

} // namespace mlctl::cli
