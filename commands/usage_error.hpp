#pragma once
// The message of a command-line usage error, in the terms of the command that was typed: which
// command, which word it did not take, the name that word most likely misspells, and which
// help to read. CLI11's own ("A subcommand is required", "The following arguments were not
// expected: 5 --prot", its words in reverse) names neither the command nor the word.

#include <string>
#include <vector>

namespace CLI {
class App;
class ParseError;
} // namespace CLI

namespace mlctl::cli {

// `root` is the application `error` came from, as the failed parse left it; `args` are the
// words of the command line after the program's name.
std::string usage_error_message(const CLI::App& root, const CLI::ParseError& error,
                                const std::vector<std::string>& args);

} // namespace mlctl::cli
