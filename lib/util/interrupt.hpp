#pragma once
// Cooperative cancellation: `cli/main.cpp` installs SIGINT/SIGTERM handlers that set a flag;
// long loops in lib/ call `throw_if_interrupted()` so destructors still run.

namespace mlctl::util {

// Installs handlers for SIGINT and SIGTERM that set the interrupted flag.
void install_interrupt_handlers();
bool interrupted() noexcept;
// Throws `Error{interrupted}` once a signal has arrived.
void throw_if_interrupted();

// Installs a handler for SIGUSR1 (nginx's "reopen the log files") that sets a flag.
void install_reopen_handler();
// True once per SIGUSR1 received since the last call (several may count as one).
bool take_reopen_request() noexcept;

} // namespace mlctl::util
