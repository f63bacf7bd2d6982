// The C API of RocksDB, as Debian's librocksdb-dev installs it.
#include <rocksdb/c.h>
