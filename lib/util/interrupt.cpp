#include "util/interrupt.hpp"

#include "util/error.hpp"

#include <atomic>
#include <csignal>

namespace mlctl::util {

namespace {
volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_signal(int) { g_interrupted = 1; }
} // namespace

void install_interrupt_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool interrupted() noexcept { return g_interrupted != 0; }

void throw_if_interrupted() {
  if (interrupted()) {
    throw Error(ErrorKind::interrupted, "interrupted");
  }
}

} // namespace mlctl::util
