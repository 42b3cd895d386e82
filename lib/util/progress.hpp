#pragma once
// lib/ never writes to the terminal: long work reports progress through this callback and
// commands/ decides how to show it (a bar on a TTY, periodic log lines otherwise).

#include <cstdint>
#include <functional>
#include <string>

namespace mlctl::util {

struct Progress {
  std::string stage;       // what is being done, e.g. "download train-images-idx3-ubyte.gz"
  std::uint64_t done = 0;  // units finished so far
  std::uint64_t total = 0; // 0 when unknown
  std::string unit;        // "B", "img", "step", ...
  std::string detail;      // free text shown after the bar, e.g. "loss 0.231 acc 0.934"
};

using ProgressFn = std::function<void(const Progress&)>;

// Messages worth a line on stderr that are not errors (which source served, retries).
using LogFn = std::function<void(const std::string&)>;

} // namespace mlctl::util
