#include "util/interrupt.hpp"

#include "util/error.hpp"

#include <atomic>
#include <csignal>

namespace mlctl::util {

namespace {
volatile std::sig_atomic_t g_interrupted = 0;
extern "C" void on_signal(int) { g_interrupted = 1; }
std::atomic<bool> g_reopen{false};
static_assert(std::atomic<bool>::is_always_lock_free); // may be set in a signal handler
extern "C" void on_reopen(int) {
  g_reopen.store(true);
}
} // namespace

void install_interrupt_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

bool interrupted() noexcept { return g_interrupted != 0; }

void install_reopen_handler() {
  struct sigaction sa {};
  sa.sa_handler = on_reopen;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, nullptr);
}

bool take_reopen_request() noexcept {
  return g_reopen.exchange(false);
}

void throw_if_interrupted() {
  if (interrupted()) {
    throw Error(ErrorKind::interrupted, "interrupted");
  }
}

} // namespace mlctl::util
