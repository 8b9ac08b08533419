/* Logging to stderr: errors only, unless TESSERA_LOG (or the config's
 * log_level) asks for more ("none", "warn", "info", "debug").
 * Never pass a PIN, a key, or an unblock challenge/response code to these. */
#ifndef TESSERA_LOG_H
#define TESSERA_LOG_H

enum tess_log_level { TESS_LOG_NONE = 0, TESS_LOG_ERROR, TESS_LOG_WARN, TESS_LOG_INFO, TESS_LOG_DEBUG };

void tess_log_set_level(int level);
int tess_log_level(void);
void tess_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define TESS_ERR(...) tess_log(TESS_LOG_ERROR, __VA_ARGS__)
#define TESS_WARN(...) tess_log(TESS_LOG_WARN, __VA_ARGS__)
#define TESS_INFO(...) tess_log(TESS_LOG_INFO, __VA_ARGS__)
#define TESS_DBG(...) tess_log(TESS_LOG_DEBUG, __VA_ARGS__)

#endif
