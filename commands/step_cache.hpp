#pragma once
// Step caching for the workflow commands (fetch-mnist, train, catalog upload): the shared
// flags (--cache-dir / MLCTL_CACHE_DIR, --no-cache / MLCTL_NO_CACHE) and the run wrapper that
// logs "<step>: cached (...)". The logic lives in lib/pipeline/step_cache.hpp.

#include "commands/context.hpp"
#include "pipeline/step_cache.hpp"

#include <filesystem>
#include <functional>
#include <string>

namespace CLI {
class App;
}

namespace mlctl::cli {

// Adds `--cache-dir DIR` (env MLCTL_CACHE_DIR): the cache root whose `steps/` holds records.
void add_cache_dir_option(CLI::App& cmd, std::string& cache_dir);
// Adds `--no-cache` (env MLCTL_NO_CACHE=1): run the step even when a record matches.
void add_no_cache_flag(CLI::App& cmd, bool& no_cache);

// Returns the step cache rooted at `root` (empty: data::default_cache_dir()).
pipeline::StepCache step_cache(const std::filesystem::path& root, bool no_cache);

// Runs `body` through `cache` (see `pipeline::run_step`) with the context's log and debug.
pipeline::StepRun run_cached_step(
    const Context& ctx, const pipeline::StepCache& cache, const pipeline::StepSpec& spec,
    const std::function<pipeline::StepOutcome()>& body,
    const std::function<bool(const pipeline::StepRecord&)>& still_valid = {});

} // namespace mlctl::cli
