/* What the TPM says about itself, and its dictionary-attack settings. */
#include "config.h"

#include <stdio.h>
#include <string.h>

#include "../../src/log.h"
#include "tpm2.h"

static void text4(char *out, uint32_t v)
{
    for (int i = 0; i < 4; i++) {
        char c = (char)(v >> (24 - 8 * i));
        out[i] = c >= 0x20 && c < 0x7f ? c : ' ';
    }
    out[4] = '\0';
}

static CK_RV read_props(ESYS_CONTEXT *esys, TPM2_PT first, UINT32 count, TPMS_CAPABILITY_DATA **cap)
{
    TPMI_YES_NO more;
    TSS2_RC rc = Esys_GetCapability(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_TPM_PROPERTIES, first,
                                    count, &more, cap);
    return tpm2_rv(rc, "read TPM properties");
}

CK_RV tpm2_get_status(struct tpm2_status *st)
{
    ESYS_CONTEXT *esys;
    TPMS_CAPABILITY_DATA *cap = NULL;
    CK_RV rv;

    memset(st, 0, sizeof(*st));
    rv = tpm2_conn_get(&esys);
    if (rv != CKR_OK) {
        snprintf(st->why, sizeof(st->why), "no TPM answers at '%s'", tpm2_settings()->tcti);
        return rv;
    }
    st->reachable = true;
    rv = read_props(esys, TPM2_PT_FIXED, TPM2_MAX_TPM_PROPERTIES, &cap);
    if (rv != CKR_OK) {
        snprintf(st->why, sizeof(st->why), "the TPM does not answer GetCapability (not started up?)");
        return rv;
    }
    for (UINT32 i = 0; i < cap->data.tpmProperties.count; i++) {
        TPMS_TAGGED_PROPERTY *p = &cap->data.tpmProperties.tpmProperty[i];
        switch (p->property) {
        case TPM2_PT_MANUFACTURER: text4(st->manufacturer, p->value); break;
        case TPM2_PT_VENDOR_STRING_1: text4(st->vendor, p->value); break;
        case TPM2_PT_VENDOR_STRING_2: text4(st->vendor + 4, p->value); break;
        case TPM2_PT_VENDOR_STRING_3: text4(st->vendor + 8, p->value); break;
        case TPM2_PT_VENDOR_STRING_4: text4(st->vendor + 12, p->value); break;
        case TPM2_PT_FIRMWARE_VERSION_1: st->fw1 = p->value; break;
        case TPM2_PT_FIRMWARE_VERSION_2: st->fw2 = p->value; break;
        case TPM2_PT_LEVEL: st->spec_level = p->value; break;
        case TPM2_PT_REVISION: st->spec_revision = p->value; break;
        case TPM2_PT_HR_TRANSIENT_MIN: st->transient_slots = p->value; break;
        default: break;
        }
    }
    Esys_Free(cap);
    cap = NULL;
    rv = read_props(esys, TPM2_PT_VAR, TPM2_MAX_TPM_PROPERTIES, &cap);
    if (rv != CKR_OK)
        return rv;
    for (UINT32 i = 0; i < cap->data.tpmProperties.count; i++) {
        TPMS_TAGGED_PROPERTY *p = &cap->data.tpmProperties.tpmProperty[i];
        switch (p->property) {
        case TPM2_PT_PERMANENT:
            st->owner_auth_set = p->value & TPMA_PERMANENT_OWNERAUTHSET;
            st->lockout_auth_set = p->value & TPMA_PERMANENT_LOCKOUTAUTHSET;
            st->in_lockout = p->value & TPMA_PERMANENT_INLOCKOUT;
            break;
        case TPM2_PT_LOCKOUT_COUNTER: st->lockout_counter = p->value; break;
        case TPM2_PT_MAX_AUTH_FAIL: st->max_tries = p->value; break;
        case TPM2_PT_LOCKOUT_INTERVAL: st->recovery_time = p->value; break;
        case TPM2_PT_LOCKOUT_RECOVERY: st->lockout_recovery = p->value; break;
        default: break;
        }
    }
    Esys_Free(cap);
    if (st->owner_auth_set)
        snprintf(st->why, sizeof(st->why), "the owner hierarchy has a password: Tessera cannot create its storage key");
    else if (st->in_lockout)
        snprintf(st->why, sizeof(st->why), "in dictionary-attack lockout: no PIN can be checked for %u s at most",
                 st->recovery_time);
    return CKR_OK;
}

CK_RV tpm2_set_da(uint32_t max_tries, uint32_t recovery, uint32_t lockout_recovery)
{
    ESYS_CONTEXT *esys;
    CK_RV rv = tpm2_conn_get(&esys);
    if (rv != CKR_OK)
        return rv;
    TSS2_RC rc = Esys_DictionaryAttackParameters(esys, ESYS_TR_RH_LOCKOUT, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                                 ESYS_TR_NONE, max_tries, recovery, lockout_recovery);
    return tpm2_rv(rc, "set dictionary-attack parameters (needs the lockout hierarchy's auth, empty here)");
}

CK_RV tpm2_clear_da_lockout(void)
{
    ESYS_CONTEXT *esys;
    CK_RV rv = tpm2_conn_get(&esys);
    if (rv != CKR_OK)
        return rv;
    TSS2_RC rc = Esys_DictionaryAttackLockReset(esys, ESYS_TR_RH_LOCKOUT, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                                                ESYS_TR_NONE);
    return tpm2_rv(rc, "reset dictionary-attack lockout");
}
