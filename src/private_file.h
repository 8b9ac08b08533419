/* Files only their owner may read or change: the token store and the
 * card-management database; and files of secrets given to Tessera (a
 * webhook's secret, a CA server's auth key or TLS client key). */
#ifndef TESSERA_PRIVATE_FILE_H
#define TESSERA_PRIVATE_FILE_H

#include <stddef.h>

/* Make path's folder (0700, with its parents) if missing, refuse a folder
 * others may write to or that belongs to someone else, and create the file
 * with mode 0600 if missing (a symbolic link in its place is refused).
 * 0, or -1 with a message in err. */
int tess_private_file_create(const char *path, char *err, size_t errlen);

/* A secret from a file of its owner's alone (regular, not a symbolic link,
 * mode 0600 or 0400), without its trailing newline, NUL-terminated; 0, or
 * -1 with a message in err (out wiped). The caller wipes out after use. */
int tess_private_file_read(const char *path, char *out, size_t outlen, size_t *len, char *err, size_t errlen);
/* Is path such a file? (For a secret another library reads.) */
int tess_private_file_check(const char *path, char *err, size_t errlen);

#endif
