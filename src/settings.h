/* Runtime settings: TESSERA_HOME, the configuration file, environment overrides.
 * Read once per C_Initialize (or tool run); read-only afterwards. */
#ifndef TESSERA_SETTINGS_H
#define TESSERA_SETTINGS_H

#include <stdbool.h>

#include "pin_policy.h"

#define TESS_PATH_MAX 4096

struct tess_settings {
    char home[TESS_PATH_MAX];        /* folder of the config file and the store */
    char config_path[TESS_PATH_MAX + 32];/* file actually read, "" if none */
    char store_path[TESS_PATH_MAX + 32];/* SQLite database */
    char tcti[1024];                 /* tpm2-tss TCTI string */
    bool tcti_from_env;
    int max_vsc;                     /* VSCs one TPM may hold */
    int user_retries;                /* per-card user PIN tries (default 5) */
    int so_retries;                  /* per-card SO PIN tries */
    bool spare_slot;                 /* show an uninitialised slot for C_InitToken */
    int spare_index;                 /* ... at this index when free; -1: the lowest free */
    bool tpm_enabled;
    bool pcsc_enabled;               /* cards in PC/SC readers (PIV) */
    char piv_mgmt_key[65];           /* hex; "" = the factory default 3DES key */
    char piv_mgmt_alg[8];            /* 3des, aes128, aes192, aes256 */
    struct tess_pin_policy pin_policy; /* default policy for new VSCs */
    int log_level;                   /* -1: from TESSERA_LOG */
};

/* Fill *s from defaults, the config file, then the environment.
 * On a malformed file returns -1 with a message in err. */
int tess_settings_load(struct tess_settings *s, char *err, size_t errlen);

#endif
