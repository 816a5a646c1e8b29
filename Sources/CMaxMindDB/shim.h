#ifndef CMAXMINDDB_SHIM_H
#define CMAXMINDDB_SHIM_H
// Debian 12 ships libmaxminddb 1.7.1 as <maxminddb.h> (pkg-config adds -I/usr/include/<triplet>).
#include <maxminddb.h>

/// `MMDB_get_value(entry, data, key, subkey, NULL)`: Swift cannot call the variadic original.
static inline int cmaxminddb_get_value2(MMDB_entry_s *entry, MMDB_entry_data_s *data, const char *key,
                                        const char *subkey) {
    return MMDB_get_value(entry, data, key, subkey, NULL);
}
#endif
