#include <sqlite3.h>

/// Turns off SQLite's memory statistics (`SQLITE_CONFIG_MEMSTATUS`), which take a global mutex
/// around every allocation (Debian's build has no lookaside allocator, so every small
/// allocation of a statement goes through it). Only possible before SQLite initializes; returns
/// `SQLITE_MISUSE` afterwards, which changes nothing. (`sqlite3_config` is variadic, so Swift
/// cannot call it directly.)
static inline int omnibase_sqlite3_disable_memstatus(void) {
    return sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}
