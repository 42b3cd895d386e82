#pragma once
// `mlctl rollout ...`: an application's revisions over time. rollout.cpp registers the group
// and its `history` and `undo` subcommands; `canary` lives in rollout_canary.cpp (with the
// follow-and-print code `status` shares), `status` and `abort` in rollout_status.cpp.

#include "commands/context.hpp"

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

namespace CLI {
class App;
}

namespace mlctl::cli {

void register_rollout_history(CLI::App& rollout, Dispatch& dispatch);
void register_rollout_undo(CLI::App& rollout, Dispatch& dispatch);
void register_rollout_canary(CLI::App& rollout, Dispatch& dispatch);
void register_rollout_status(CLI::App& rollout, Dispatch& dispatch);
void register_rollout_abort(CLI::App& rollout, Dispatch& dispatch);

// Prints a rollout (api/rollout.hpp) as tables: the decision, each gate, the comparison and the
// evidence of both variants.
void print_rollout(const nlohmann::json& rollout);
// Polls rollout `id` of `app` until it ends, logging its progress, then prints it; returns 0
// when promoted, `k_exit_check_failed` when rolled back or aborted. Throws `Error{conflict}`
// when it failed, was superseded or is no longer the latest, `Error{interrupted}` on Ctrl-C
// (the rollout goes on on the server).
int follow_rollout(Context& ctx, std::string_view app, std::int64_t id);

} // namespace mlctl::cli
