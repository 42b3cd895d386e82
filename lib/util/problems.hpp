#pragma once
// The problems found in one input, gathered so that one message names them all (a manifest
// with two bad fields says both, as kubectl does): `check` runs one independent part of the
// validation and keeps the message of an `Error{invalid_input}` it throws (other errors pass
// through); `raise` throws them joined by "; ".

#include "util/error.hpp"

#include <string>
#include <utility>
#include <vector>

namespace mlctl {

class Problems {
public:
  // Runs `fn`; returns false when it threw `Error{invalid_input}`, whose message is kept.
  template <class Fn> bool check(Fn&& fn) {
    try {
      fn();
      return true;
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::invalid_input) {
        throw;
      }
      add(e.what());
      return false;
    }
  }
  void add(std::string message) { m_messages.push_back(std::move(message)); }
  // Throws `Error{invalid_input}` with the messages joined by "; ", if there are any.
  void raise() const {
    if (m_messages.empty()) {
      return;
    }
    std::string joined;
    for (const auto& m : m_messages) {
      joined += (joined.empty() ? "" : "; ") + m;
    }
    throw Error(ErrorKind::invalid_input, joined);
  }

private:
  std::vector<std::string> m_messages;
};

} // namespace mlctl
