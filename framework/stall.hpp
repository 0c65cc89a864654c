// The way out when a wait that must be bounded is not: a thread (the loader's, a
// collective's) has not answered within its limit. Unwinding is no way out (a destructor
// would join the stuck thread, or close a file its library still holds), so the process
// reports and ends. The hubel command installs a handler that also stops the other ranks
// (MPI_Abort); the default prints the message and exits with code 2.
#pragma once

#include <string>

namespace hubel {

using StallHandler = void (*)(const std::string& message);
// Calls the handler; when it returns (tests may throw instead), ends the process.
[[noreturn]] void stall_stop(const std::string& message);
void set_stall_handler(StallHandler handler);  // nullptr: the default

}  // namespace hubel
