#include "commands/step_cache.hpp"

#include "data/sources.hpp"

#include <CLI/CLI.hpp>

namespace mlctl::cli {

void add_cache_dir_option(CLI::App& cmd, std::string& cache_dir) {
  cmd.add_option("--cache-dir", cache_dir,
                 "Cache root: step-cache records go to DIR/steps (default $XDG_CACHE_HOME/mlctl "
                 "or ~/.cache/mlctl)")
      ->envname("MLCTL_CACHE_DIR")
      ->type_name("DIR");
}

void add_no_cache_flag(CLI::App& cmd, bool& no_cache) {
  cmd.add_flag("--no-cache", no_cache,
               "Run the step even when a recorded run has the same inputs and parameters")
      ->envname("MLCTL_NO_CACHE");
}

pipeline::StepCache step_cache(const std::filesystem::path& root, bool no_cache) {
  return pipeline::StepCache(root.empty() ? data::default_cache_dir() : root, !no_cache);
}

pipeline::StepRun run_cached_step(
    const Context& ctx, const pipeline::StepCache& cache, const pipeline::StepSpec& spec,
    const std::function<pipeline::StepOutcome()>& body,
    const std::function<bool(const pipeline::StepRecord&)>& still_valid) {
  const util::LogFn debug = [&ctx](const std::string& m) { ctx.debug(m); };
  return pipeline::run_step(cache, spec, body, still_valid, ctx.log(), debug);
}

} // namespace mlctl::cli
