#include "config.h"
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static int log_level = -1;

static int level_from_env(void)
{
    const char *v = getenv("TESSERA_LOG");
    if (!v || !*v)
        return TESS_LOG_ERROR;
    switch (v[0]) {
    case 'n': return TESS_LOG_NONE;
    case 'e': return TESS_LOG_ERROR;
    case 'w': return TESS_LOG_WARN;
    case 'i': return TESS_LOG_INFO;
    case 'd': return TESS_LOG_DEBUG;
    default: return atoi(v);
    }
}

void tess_log_set_level(int level)
{
    log_level = level;
}

int tess_log_level(void)
{
    if (log_level < 0)
        log_level = level_from_env();
    return log_level;
}

void tess_log(int level, const char *fmt, ...)
{
    static const char *names[] = { "", "error", "warning", "info", "debug" };
    va_list ap;

    if (level > tess_log_level())
        return;
    fprintf(stderr, "tessera[%ld] %s: ", (long)getpid(), names[level]);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}
