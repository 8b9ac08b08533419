#include "config.h"
#include "private_file.h"
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

static int mkdir_p(const char *dir)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s", dir);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) && errno != EEXIST)
            return -1;
        *p = '/';
    }
    if (mkdir(tmp, 0700) && errno != EEXIST)
        return -1;
    return 0;
}

/* The folder must belong to us (or root) and be closed to others:
 * otherwise someone else could swap the file or read it. */
static int check_private_dir(const char *dir, char *err, size_t errlen)
{
    struct stat st;
    if (lstat(dir, &st)) {
        snprintf(err, errlen, "cannot examine %s: %s", dir, strerror(errno));
        return -1;
    }
    if (!S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s is not a folder", dir);
        return -1;
    }
    if ((st.st_uid != geteuid() && st.st_uid != 0) || (st.st_mode & 022)) {
        snprintf(err, errlen, "%s is not private (owner %u, mode %03o): others could change what it holds",
                 dir, (unsigned)st.st_uid, (unsigned)(st.st_mode & 0777));
        return -1;
    }
    return 0;
}

int tess_private_file_create(const char *path, char *err, size_t errlen)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (mkdir_p(dir)) {
            snprintf(err, errlen, "cannot create %s: %s", dir, strerror(errno));
            return -1;
        }
        if (check_private_dir(dir, err, errlen))
            return -1;
    }
    /* Create the file ourselves so its mode is 0600 whatever the umask;
     * O_NOFOLLOW: a link planted in the folder is refused, not followed. */
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    close(fd);
    return 0;
}

int tess_private_file_read(const char *path, char *out, size_t outlen, size_t *len, char *err, size_t errlen)
{
    struct stat st;
    ssize_t n = -1;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC), rc = -1;

    *len = 0;
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (st.st_mode & 077)) {
        snprintf(err, errlen, "%s must be a regular file of mode 0600 or 0400 (others may not read a secret)", path);
        goto out;
    }
    n = read(fd, out, outlen);
    if (n < 0 || (size_t)n >= outlen) {
        snprintf(err, errlen, "%s: %s", path, n < 0 ? strerror(errno) : "too long for the secret it should hold");
        goto out;
    }
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == '\r'))
        n--;
    out[n] = '\0';
    *len = (size_t)n;
    rc = 0;
out:
    if (rc)
        tess_wipe(out, outlen);
    close(fd);
    return rc;
}

int tess_private_file_check(const char *path, char *err, size_t errlen)
{
    struct stat st;
    if (stat(path, &st)) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode) || (st.st_mode & 077)) {
        snprintf(err, errlen, "%s must be a regular file of mode 0600 or 0400 (others may not read a secret)", path);
        return -1;
    }
    return 0;
}
