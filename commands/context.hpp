#pragma once
// What every command receives: the global options and shared services (output, progress).

#include "util/progress.hpp"

#include <functional>
#include <string>

namespace mlctl::cli {

enum class OutputFormat { table, json, yaml };

// What a command returns when the check it ran failed (a test under its threshold, a model that
// does not reproduce, a canary rolled back); `main` passes it through as the exit code.
inline constexpr int k_exit_check_failed = 3;

struct GlobalOptions {
  std::string output = "table";
  bool verbose = false;
  bool quiet = false;
  std::string server; // --server / MLCTL_SERVER
  std::string token;  // --token / MLCTL_TOKEN
  std::string cacert; // --cacert / MLCTL_CACERT: CAs to trust for https
};

class Context {
public:
  explicit Context(GlobalOptions options) : m_options(std::move(options)) {}
  const GlobalOptions& options() const noexcept { return m_options; }
  OutputFormat format() const;

  // Returns a progress callback: a bar on a TTY, a log line every few seconds otherwise,
  // nothing with --quiet.
  util::ProgressFn progress() const;
  // Returns a callback that prints `mlctl: <message>` on stderr unless --quiet.
  util::LogFn log() const;
  // Prints `mlctl: <message>` on stderr only with --verbose.
  void debug(const std::string& message) const;

private:
  GlobalOptions m_options;
};

// The CLI11 callback of a subcommand records here what to run; `main` runs it after parsing,
// so parse errors and runtime errors land in different `catch` blocks.
struct Dispatch {
  std::function<int(Context&)> run;
};

} // namespace mlctl::cli
