/* Minimal TAP producer for Tessera's C tests (run by automake's tap-driver).
 *   plan_lazy();  ok(cond, "name %d", n);  is_rv(rv, CKR_OK, "what");  return done_testing(); */
#ifndef TESSERA_TAP_H
#define TESSERA_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* The counters live in the test's main file; a helper file of the same
 * test program defines TAP_EXTERN before including this. */
#ifdef TAP_EXTERN
extern int tap_n, tap_failed;
#else
int tap_n, tap_failed;
#endif

static inline void plan_lazy(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
}

static inline int ok_(int cond, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static inline int ok_(int cond, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    tap_n++;
    printf("%s %d - ", cond ? "ok" : "not ok", tap_n);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    if (!cond) {
        tap_failed++;
        printf("#   failed at %s:%d\n", file, line);
    }
    fflush(stdout);
    return cond;
}
#define ok(cond, ...) ok_(!!(cond), __FILE__, __LINE__, __VA_ARGS__)
/* Evaluates `got` once: it is usually the call under test. */
static inline int is_rv_(unsigned long got, unsigned long want, const char *file, int line, const char *what)
{
    return ok_(got == want, file, line, "%s: rv 0x%lx (want 0x%lx)", what, got, want);
}
#define is_rv(got, want, what) is_rv_((unsigned long)(got), (unsigned long)(want), __FILE__, __LINE__, (what))

static inline void bail_out(const char *why)
{
    printf("Bail out! %s\n", why);
    fflush(stdout);
    exit(1);
}

static inline int done_testing(void)
{
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}

#endif
