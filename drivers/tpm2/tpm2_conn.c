/* One process-wide connection to the TPM, the storage primary, and the set
 * of keys we keep loaded between operations (so C_Sign costs one TPM2_Sign). */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

#include "../../src/log.h"
#include "../../src/util.h"
#include "tpm2.h"

static struct {
    struct tess_settings settings;
    bool have_settings;
    TSS2_TCTI_CONTEXT *tcti;
    ESYS_CONTEXT *esys;
    ESYS_TR primary;
    struct tpm2_key *loaded;         /* keys we hold in the TPM, newest first */
    uint64_t use_clock;
    time_t failed_at;                /* last connection failure */
} conn = { .primary = ESYS_TR_NONE };

const struct tess_settings *tpm2_settings(void)
{
    return &conn.settings;
}

void tpm2_set_settings(const struct tess_settings *s)
{
    conn.settings = *s;
    conn.have_settings = true;
}

bool tpm2_rc_is(TSS2_RC rc, TSS2_RC base)
{
    /* Format-one codes carry the parameter/handle/session number in bits 6..11. */
    if (rc & TPM2_RC_FMT1)
        return (rc & (TPM2_RC_FMT1 | 0x3f)) == base;
    return (rc & 0xffff) == base;
}

CK_RV tpm2_rv(TSS2_RC rc, const char *what)
{
    if (rc == TSS2_RC_SUCCESS)
        return CKR_OK;
    TESS_ERR("tpm: %s: %s (0x%x)", what, Tss2_RC_Decode(rc), rc);
    if (tpm2_rc_is(rc, TPM2_RC_AUTH_FAIL) || tpm2_rc_is(rc, TPM2_RC_BAD_AUTH))
        return CKR_PIN_INCORRECT;
    if (tpm2_rc_is(rc, TPM2_RC_LOCKOUT))
        return CKR_PIN_LOCKED;
    if (tpm2_rc_is(rc, TPM2_RC_OBJECT_MEMORY) || tpm2_rc_is(rc, TPM2_RC_MEMORY))
        return CKR_DEVICE_MEMORY;
    if ((rc & TSS2_RC_LAYER_MASK) == TSS2_TCTI_RC_LAYER || tpm2_rc_is(rc, TSS2_BASE_RC_IO_ERROR))
        return CKR_DEVICE_ERROR;
    return CKR_DEVICE_ERROR;
}

static CK_RV connect_tpm(void)
{
    TSS2_RC rc;

    if (conn.esys)
        return CKR_OK;
    /* Don't hammer an absent TPM on every call: retry after a few seconds. */
    if (conn.failed_at && time(NULL) - conn.failed_at < 3)
        return CKR_DEVICE_ERROR;
    /* tpm2-tss prints its own errors to stderr; an absent TPM is an
     * ordinary situation for a module loaded by every browser, so keep it
     * quiet unless the user asked for Tessera's debug log or set TSS2_LOG. */
    if (tess_log_level() < TESS_LOG_DEBUG)
        setenv("TSS2_LOG", "all+NONE", 0);
    rc = Tss2_TctiLdr_Initialize(conn.settings.tcti, &conn.tcti);
    if (rc != TSS2_RC_SUCCESS) {
        TESS_WARN("tpm: no TPM at '%s' (%s); set TESSERA_TCTI or 'tcti' in tessera.conf", conn.settings.tcti,
                  Tss2_RC_Decode(rc));
        conn.tcti = NULL;
        conn.failed_at = time(NULL);
        return CKR_DEVICE_ERROR;
    }
    rc = Esys_Initialize(&conn.esys, conn.tcti, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        TESS_WARN("tpm: cannot start a session with the TPM at '%s': %s", conn.settings.tcti, Tss2_RC_Decode(rc));
        Tss2_TctiLdr_Finalize(&conn.tcti);
        conn.esys = NULL;
        conn.failed_at = time(NULL);
        return CKR_DEVICE_ERROR;
    }
    conn.failed_at = 0;
    return CKR_OK;
}

CK_RV tpm2_conn_get(ESYS_CONTEXT **esys)
{
    CK_RV rv = connect_tpm();
    if (rv == CKR_OK)
        *esys = conn.esys;
    return rv;
}

bool tpm2_conn_available(void)
{
    return connect_tpm() == CKR_OK;
}

static TSS2_RC create_primary(ESYS_CONTEXT *esys, ESYS_TR *out)
{
    /* TCG EK/SRK profile "ECC NIST P256 SRK" template: deterministic from the
     * owner seed, so every process re-creates the same parent for our blobs. */
    TPM2B_SENSITIVE_CREATE sens = { 0 };
    TPM2B_PUBLIC tmpl = {
        .publicArea = {
            .type = TPM2_ALG_ECC,
            .nameAlg = TPM2_ALG_SHA256,
            .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
            .parameters.eccDetail = {
                .symmetric = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB },
                .scheme = { .scheme = TPM2_ALG_NULL },
                .curveID = TPM2_ECC_NIST_P256,
                .kdf = { .scheme = TPM2_ALG_NULL },
            },
            .unique.ecc = { .x = { .size = 32 }, .y = { .size = 32 } },
        },
    };
    TPM2B_DATA outside = { 0 };
    TPML_PCR_SELECTION pcrs = { 0 };
    return Esys_CreatePrimary(esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens,
                              &tmpl, &outside, &pcrs, out, NULL, NULL, NULL, NULL);
}

CK_RV tpm2_primary(ESYS_CONTEXT *esys, ESYS_TR *handle)
{
    TSS2_RC rc;
    if (conn.primary != ESYS_TR_NONE) {
        *handle = conn.primary;
        return CKR_OK;
    }
    rc = create_primary(esys, &conn.primary);
    while (tpm2_rc_is(rc, TPM2_RC_OBJECT_MEMORY) && tpm2_conn_evict_one(esys))
        rc = create_primary(esys, &conn.primary);
    if (rc != TSS2_RC_SUCCESS) {
        conn.primary = ESYS_TR_NONE;
        if (tpm2_rc_is(rc, TPM2_RC_BAD_AUTH) || tpm2_rc_is(rc, TPM2_RC_AUTH_FAIL)) {
            TESS_ERR("tpm: the owner hierarchy has a password; Tessera needs an empty owner auth");
            return CKR_DEVICE_ERROR;
        }
        return tpm2_rv(rc, "create storage primary");
    }
    *handle = conn.primary;
    return CKR_OK;
}

/* Flush sessions left in the TPM by a process killed mid-operation (on a TPM
 * without a resource manager they stay until a reboot, and swtpm has room
 * for three). Tessera never keeps a session between calls, so any session
 * visible here and not in use is a leftover; under /dev/tpmrm0 or
 * tpm2-abrmd only our own are visible. */
static bool reclaim_sessions(ESYS_CONTEXT *esys)
{
    static const TPM2_HANDLE firsts[] = { UINT32_C(0x02000000), UINT32_C(0x03000000) };   /* loaded, saved */
    bool freed = false;
    for (size_t f = 0; f < TESS_ARRAY_SIZE(firsts); f++) {
        TPMS_CAPABILITY_DATA *cap = NULL;
        TPMI_YES_NO more;
        if (Esys_GetCapability(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES, firsts[f], 16,
                               &more, &cap) != TSS2_RC_SUCCESS)
            continue;
        for (UINT32 i = 0; i < cap->data.handles.count; i++) {
            ESYS_TR tr;
            if (Esys_TR_FromTPMPublic(esys, cap->data.handles.handle[i], ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                      &tr) == TSS2_RC_SUCCESS &&
                Esys_FlushContext(esys, tr) == TSS2_RC_SUCCESS) {
                TESS_WARN("tpm: flushed a session 0x%x left behind by another process", cap->data.handles.handle[i]);
                freed = true;
            }
        }
        Esys_Free(cap);
    }
    return freed;
}

CK_RV tpm2_param_session(ESYS_CONTEXT *esys, ESYS_TR salt_key, ESYS_TR bind, TPMA_SESSION attrs, ESYS_TR *out)
{
    static bool warned;
    TPMT_SYM_DEF sym = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB };
    TSS2_RC rc = Esys_StartAuthSession(esys, salt_key, bind, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL,
                                       TPM2_SE_HMAC, &sym, TPM2_ALG_SHA256, out);
    if ((tpm2_rc_is(rc, TPM2_RC_SESSION_MEMORY) || tpm2_rc_is(rc, TPM2_RC_SESSION_HANDLES)) && reclaim_sessions(esys))
        rc = Esys_StartAuthSession(esys, salt_key, bind, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, NULL,
                                   TPM2_SE_HMAC, &sym, TPM2_ALG_SHA256, out);
    if (rc == TSS2_ESYS_RC_GENERAL_FAILURE && salt_key != ESYS_TR_NONE) {
        /* tpm2-tss 3.x salts with OpenSSL's default EC methods; in a process
         * where an OpenSSL engine took those over (openssl -engine pkcs11,
         * tpm2-tss#3151) that fails. A session bound to a secret object still
         * hides what it carries from a passive eavesdropper who lacks the
         * store; with nothing to bind, go on without encryption. Say so once. */
        if (!warned)
            TESS_WARN("tpm: no salted session in this process (an OpenSSL engine holds the EC methods); "
                      "TPM parameter encryption is weaker here");
        warned = true;
        if (bind != ESYS_TR_NONE)
            return tpm2_param_session(esys, ESYS_TR_NONE, bind, attrs, out);
        *out = ESYS_TR_NONE;
        return CKR_OK;
    }
    if (rc != TSS2_RC_SUCCESS)
        return tpm2_rv(rc, "start an encrypted session");
    rc = Esys_TRSess_SetAttributes(esys, *out, attrs | TPMA_SESSION_CONTINUESESSION, 0xff);
    if (rc != TSS2_RC_SUCCESS) {
        tpm2_session_end(esys, *out);
        return tpm2_rv(rc, "set session attributes");
    }
    return CKR_OK;
}

bool tpm2_session_mismatch(ESYS_TR session, TSS2_RC rc)
{
    if (session == ESYS_TR_NONE || !(tpm2_rc_is(rc, TPM2_RC_BAD_AUTH) || tpm2_rc_is(rc, TPM2_RC_AUTH_FAIL)))
        return false;
    TESS_INFO("tpm: a salted session's key did not match the TPM's; starting another");
    return true;
}

void tpm2_session_end(ESYS_CONTEXT *esys, ESYS_TR session)
{
    if (session != ESYS_TR_NONE)
        Esys_FlushContext(esys, session);
}

void tpm2_conn_track(struct tpm2_key *key)
{
    key->last_use = ++conn.use_clock;
    key->lru_next = conn.loaded;
    conn.loaded = key;
}

void tpm2_conn_untrack(struct tpm2_key *key)
{
    for (struct tpm2_key **pp = &conn.loaded; *pp; pp = &(*pp)->lru_next) {
        if (*pp == key) {
            *pp = key->lru_next;
            key->lru_next = NULL;
            return;
        }
    }
}

/* Flush transient objects we did not load (left by a killed process on a TPM
 * without a resource manager). With /dev/tpmrm0 or tpm2-abrmd only our own
 * handles are visible, so this never touches another live process's objects. */
static bool reclaim_foreign(ESYS_CONTEXT *esys)
{
    TPMS_CAPABILITY_DATA *cap = NULL;
    TPMI_YES_NO more;
    bool freed = false;

    /* 0x80000000 is TPM2_TRANSIENT_FIRST; tss2's macro shifts a signed int
     * into the sign bit, which UBSan rightly rejects. */
    if (Esys_GetCapability(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES,
                           UINT32_C(0x80000000), 16, &more, &cap) != TSS2_RC_SUCCESS)
        return false;
    for (UINT32 i = 0; i < cap->data.handles.count; i++) {
        TPM2_HANDLE h = cap->data.handles.handle[i];
        ESYS_TR tr;
        bool ours = false;
        if (conn.primary != ESYS_TR_NONE) {
            TPM2_HANDLE ph;
            if (Esys_TR_GetTpmHandle(esys, conn.primary, &ph) == TSS2_RC_SUCCESS && ph == h)
                ours = true;
        }
        for (struct tpm2_key *k = conn.loaded; k && !ours; k = k->lru_next) {
            TPM2_HANDLE kh;
            if (Esys_TR_GetTpmHandle(esys, k->handle, &kh) == TSS2_RC_SUCCESS && kh == h)
                ours = true;
        }
        if (ours)
            continue;
        if (Esys_TR_FromTPMPublic(esys, h, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &tr) == TSS2_RC_SUCCESS &&
            Esys_FlushContext(esys, tr) == TSS2_RC_SUCCESS) {
            TESS_WARN("tpm: flushed a transient object 0x%x left behind by another process", h);
            freed = true;
        }
    }
    Esys_Free(cap);
    return freed;
}

bool tpm2_conn_evict_one(ESYS_CONTEXT *esys)
{
    struct tpm2_key *victim = NULL;
    for (struct tpm2_key *k = conn.loaded; k; k = k->lru_next)
        if (!victim || k->last_use < victim->last_use)
            victim = k;
    if (victim) {
        tpm2_key_unload(victim);
        return true;
    }
    return reclaim_foreign(esys);
}

void tpm2_key_touch(struct tpm2_key *key);
void tpm2_key_touch(struct tpm2_key *key)
{
    key->last_use = ++conn.use_clock;
}

CK_RV tpm2_store(struct tess_store **out, bool create)
{
    return tess_store_shared(conn.settings.store_path, create, out);
}

void tpm2_conn_close(bool in_child)
{
    if (in_child) {
        /* The parent's objects and socket are not ours: forget them. The TCTI
         * is finalised for direct connections (that only closes our copy of
         * the fd); a D-Bus (tabrmd) connection is shared state, so leave it. */
        for (struct tpm2_key *k = conn.loaded; k; k = k->lru_next)
            k->handle = ESYS_TR_NONE;
        conn.loaded = NULL;
        conn.primary = ESYS_TR_NONE;
        if (conn.esys && strncmp(conn.settings.tcti, "tabrmd", 6)) {
            Esys_Finalize(&conn.esys);
            Tss2_TctiLdr_Finalize(&conn.tcti);
        }
        conn.esys = NULL;
        conn.tcti = NULL;
        return;
    }
    while (conn.loaded)
        tpm2_key_unload(conn.loaded);
    if (conn.esys && conn.primary != ESYS_TR_NONE)
        Esys_FlushContext(conn.esys, conn.primary);
    conn.primary = ESYS_TR_NONE;
    if (conn.esys)
        Esys_Finalize(&conn.esys);
    if (conn.tcti)
        Tss2_TctiLdr_Finalize(&conn.tcti);
    conn.esys = NULL;
    conn.tcti = NULL;
    conn.failed_at = 0;
}
