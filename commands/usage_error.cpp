#include "commands/usage_error.hpp"

#include "util/text.hpp"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdlib>
#include <string_view>
#include <vector>

namespace mlctl::cli {

namespace {

// The command the parse got to: the deepest subcommand it selected, or the root.
const CLI::App& selected_command(const CLI::App& root) {
  const CLI::App* app = &root;
  for (auto chosen = app->get_subcommands(); !chosen.empty(); chosen = app->get_subcommands()) {
    app = chosen.front();
  }
  return *app;
}

// "mlctl catalog upload": the names from the root to `app`.
std::string command_path(const CLI::App& app) {
  std::vector<const CLI::App*> chain;
  for (const CLI::App* a = &app; a != nullptr; a = a->get_parent()) {
    chain.push_back(a);
  }
  std::string path;
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    path += (path.empty() ? "" : " ") + (*it)->get_name();
  }
  return path;
}

// The subcommands `app` lists in its help (a hidden one has no group).
std::vector<const CLI::App*> visible_subcommands(const CLI::App& app) {
  return app.get_subcommands([](const CLI::App* s) { return !s->get_group().empty(); });
}

// Their names and aliases.
std::vector<std::string> subcommand_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* sub : visible_subcommands(app)) {
    names.push_back(sub->get_name());
    const auto& aliases = sub->get_aliases();
    names.insert(names.end(), aliases.begin(), aliases.end());
  }
  return names;
}

// The options `app` takes as typed ("--listen", "-o"), its parents' included: every command
// takes the global options after its name.
std::vector<std::string> option_names(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::App* a = &app; a != nullptr; a = a->get_parent()) {
    for (const CLI::Option* option : a->get_options()) {
      for (const auto& name : option->get_lnames()) {
        names.push_back("--" + name);
      }
      for (const auto& name : option->get_snames()) {
        names.push_back("-" + name);
      }
    }
  }
  return names;
}

std::string did_you_mean(const std::string& nearest) {
  return nearest.empty() ? "" : " (did you mean '" + nearest + "'?)";
}

// The option of `names` that `option` most likely misspells, compared without the dashes, so
// that how near is near enough goes by the name's own length ("--size" is not "--since").
std::string nearest_option(std::string_view option, const std::vector<std::string>& names) {
  const auto bare = [](std::string_view s) {
    const auto start = s.find_first_not_of('-');
    return start == std::string_view::npos ? std::string() : std::string(s.substr(start));
  };
  std::vector<std::string> bare_names;
  for (const auto& name : names) {
    bare_names.push_back(bare(name));
  }
  const auto nearest = util::nearest_name(bare(option), bare_names);
  const auto it = std::find(bare_names.begin(), bare_names.end(), nearest);
  return nearest.empty() ? "" : names[static_cast<std::size_t>(it - bare_names.begin())];
}

// Whether one of `args` gives `option`: "--name", "--name=v", "-n", "-nv".
bool given(const CLI::Option& option, const std::vector<std::string>& args) {
  return std::any_of(args.begin(), args.end(), [&](const std::string& arg) {
    for (const auto& name : option.get_lnames()) {
      if (arg == "--" + name || arg.starts_with("--" + name + "=")) {
        return true;
      }
    }
    for (const auto& name : option.get_snames()) {
      if (arg.starts_with("-" + name) && !arg.starts_with("--")) {
        return true;
      }
    }
    return false;
  });
}

} // namespace

std::string usage_error_message(const CLI::App& root, const CLI::ParseError& error,
                                const std::vector<std::string>& args) {
  const CLI::App& command = selected_command(root);
  const std::string path = command_path(command);
  const std::string help = "; see '" + path + " --help'";
  const auto left = root.remaining(true); // the words no command took, as typed
  const bool needs_command =
      command.get_require_subcommand_min() > 0 && command.get_subcommands().empty();

  if (!left.empty()) {
    const std::string& word = left.front();
    if (word.size() > 1 && word.front() == '-') {
      const std::string name = word.substr(0, word.find('='));
      return "unknown option '" + name + "' for '" + path + "'" +
             did_you_mean(nearest_option(name, option_names(command))) + help;
    }
    if (needs_command) {
      return "unknown command '" + word + "' for '" + path + "'" +
             did_you_mean(util::nearest_name(word, subcommand_names(command))) + help;
    }
    return "unexpected argument '" + word + "' for '" + path + "'" + help;
  }
  if (needs_command) {
    std::string list;
    for (const CLI::App* sub : visible_subcommands(command)) {
      list += (list.empty() ? "" : ", ") + sub->get_name();
    }
    return "'" + path + "' needs a command: " + list + help;
  }
  std::string message = error.what();
  // CLI11's "Could not convert: --samples = abc" for an option without a check of its own.
  constexpr std::string_view k_conversion = "Could not convert: ";
  if (const auto eq = message.find(" = ");
      message.starts_with(k_conversion) && eq != std::string::npos) {
    const auto name = message.substr(k_conversion.size(), eq - k_conversion.size());
    const auto* option = command.get_option_no_throw(name);
    const std::string type = option != nullptr ? option->get_type_name() : "";
    const std::string expected = type.starts_with("UINT")    ? "a whole number >= 0"
                                 : type.starts_with("INT")   ? "a whole number"
                                 : type.starts_with("FLOAT") ? "a number"
                                                             : "a value of type " + type;
    message = name + ": must be " + expected + ", got " + message.substr(eq + 3);
  }
  // A bad value from an option's environment variable (a step container's settings) names the
  // variable: the command line has no such option to look for.
  if (const auto colon = message.find(": ");
      message.starts_with("--") && colon != std::string::npos) {
    const auto* option = command.get_option_no_throw(message.substr(0, colon));
    const std::string env = option != nullptr ? option->get_envname() : "";
    const char* value = env.empty() ? nullptr : std::getenv(env.c_str());
    if (value != nullptr && !given(*option, args) &&
        message.ends_with(", got " + std::string(value))) {
      message += " (from the environment variable " + env + ")";
    }
  }
  // `-o DIR` typed for a command's --out: -o is everyone's output format.
  if (message.starts_with("--output: ") && command.get_option_no_throw("--out") != nullptr) {
    message += " (-o is the output format; the path goes to '--out')";
  }
  return message + help;
}

} // namespace mlctl::cli
