/* Files only their owner may read or change: the token store and the
 * card-management database. */
#ifndef TESSERA_PRIVATE_FILE_H
#define TESSERA_PRIVATE_FILE_H

#include <stddef.h>

/* Make path's folder (0700, with its parents) if missing, refuse a folder
 * others may write to or that belongs to someone else, and create the file
 * with mode 0600 if missing (a symbolic link in its place is refused).
 * 0, or -1 with a message in err. */
int tess_private_file_create(const char *path, char *err, size_t errlen);

#endif
