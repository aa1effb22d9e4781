// The system SQLite (Debian: libsqlite3-dev), for reading the official node host's state
// database (SupervisorCore/Migration).
#include <sqlite3.h>
