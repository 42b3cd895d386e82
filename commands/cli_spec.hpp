#pragma once
// A plain description of the command tree, read off the CLI11 definition, from which the
// shell completions and the man page are generated (so they cannot drift from the CLI).

#include <string>
#include <vector>

namespace CLI {
class App;
}

namespace mlctl::cli {

struct OptionSpec {
  std::vector<std::string> flags; // "-o", "--output"
  std::string description;
  std::string value_name;          // "TEXT", "INT", ... empty for flags
  std::vector<std::string> values; // allowed values (from an IsMember check), if any
  std::string envname;
  bool positional = false;
  std::string positional_name;
  // Names the completions fetch from the server (`mlctl __complete <dynamic>`): "applications"
  // for a value named APP, "models" for REF and MODEL; empty otherwise.
  std::string dynamic;
};

struct CommandSpec {
  std::string name;                // "upload"
  std::vector<std::string> path;   // {"catalog", "upload"}; empty for the root
  std::string description;
  std::string footer;              // the example text
  std::vector<OptionSpec> options; // without --help
  std::vector<CommandSpec> subcommands;
};

// Walks `app` (the root) and returns its visible tree; hidden subcommands (empty group) are skipped.
CommandSpec describe_cli(const CLI::App& app);

// Generators: return the whole file text.
std::string bash_completion(const CommandSpec& root);
std::string zsh_completion(const CommandSpec& root);
std::string fish_completion(const CommandSpec& root);
std::string man_page(const CommandSpec& root);

} // namespace mlctl::cli
