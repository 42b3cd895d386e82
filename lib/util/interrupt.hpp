#pragma once
// Cooperative cancellation: `cli/main.cpp` installs SIGINT/SIGTERM handlers that set a flag;
// long loops in lib/ call `throw_if_interrupted()` so destructors still run.

namespace mlctl::util {

// Installs handlers for SIGINT and SIGTERM that set the interrupted flag.
void install_interrupt_handlers();
bool interrupted() noexcept;
// Throws `Error{interrupted}` once a signal has arrived.
void throw_if_interrupted();

} // namespace mlctl::util
