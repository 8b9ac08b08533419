/* A master key inside an HSM, named by a PKCS#11 URI (RFC 7512): the SP
 * 800-108 KDF runs here, but each PRF block is computed by the HSM
 * (C_Sign with CKM_AES_CMAC or CKM_SHA256_HMAC on the master key object),
 * so the master key never leaves it. The per-card keys are the same as
 * from the same master key in a file (tess_kbkdf_external). */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/uri.h>

#include "../util.h"
#include "tool.h"

struct hsm_prf {
    CK_FUNCTION_LIST *f;
    CK_SESSION_HANDLE session;
    CK_OBJECT_HANDLE key;
    CK_MECHANISM_TYPE mech;
    size_t block_len;
};

static CK_RV hsm_prf(void *ctx, const uint8_t *in, size_t len, uint8_t *out)
{
    struct hsm_prf *h = ctx;
    CK_MECHANISM m = { h->mech, NULL, 0 };
    CK_ULONG outl = (CK_ULONG)h->block_len;
    CK_RV rv = h->f->C_SignInit(h->session, &m, h->key);
    if (rv == CKR_OK)
        rv = h->f->C_Sign(h->session, (CK_BYTE_PTR)in, (CK_ULONG)len, out, &outl);
    if (rv == CKR_OK && outl != h->block_len)
        rv = CKR_GENERAL_ERROR;
    return rv;
}

/* The HSM user's PIN: in the URI (pin-value, pin-source), a file, or the
 * terminal. */
static int hsm_pin(P11KitUri *uri, const char *pin_file, char *pin, size_t len)
{
    const char *value = p11_kit_uri_get_pin_value(uri), *source = p11_kit_uri_get_pin_source(uri);
    if (value) {
        snprintf(pin, len, "%s", value);
        return 0;
    }
    if (source && !strncmp(source, "file:", 5))
        source += 5;
    return tool_read_secret(source ? source : pin_file, "HSM user PIN", pin, len);
}

static int find_slot(CK_FUNCTION_LIST *f, P11KitUri *uri, CK_SLOT_ID *out)
{
    CK_SLOT_ID slots[64];
    CK_ULONG n = TESS_ARRAY_SIZE(slots);
    if (f->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
        return -1;
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        if (f->C_GetTokenInfo(slots[i], &ti) == CKR_OK && p11_kit_uri_match_token_info(uri, &ti)) {
            *out = slots[i];
            return 0;
        }
    }
    return -1;
}

/* The one secret key the URI names, fit for the PRF. */
static int find_key(struct tool_hsm *hsm, enum tess_prf prf, CK_OBJECT_HANDLE *out)
{
    CK_FUNCTION_LIST *f = hsm->f;
    CK_SESSION_HANDLE s = hsm->session;
    CK_OBJECT_HANDLE keys[1];
    CK_ULONG found = 0;
    CK_KEY_TYPE type = 0;
    CK_ULONG value_len = 0;

    if (tool_hsm_find(hsm, CKO_SECRET_KEY, &keys[0], &found) != EX_OK) {
        fprintf(stderr, "tessera: the master key URI names %s secret key in the HSM\n", found ? "more than one" : "no");
        return -1;
    }
    CK_ATTRIBUTE get_type = { CKA_KEY_TYPE, &type, sizeof(type) }, get_len = { CKA_VALUE_LEN, &value_len, sizeof(value_len) };
    f->C_GetAttributeValue(s, keys[0], &get_type, 1);
    /* Some HSMs (SoftHSM's own import) leave CKA_VALUE_LEN out: then the
     * HSM's CMAC is trusted to refuse a key of the wrong size. */
    if (f->C_GetAttributeValue(s, keys[0], &get_len, 1) != CKR_OK || get_len.ulValueLen == CK_UNAVAILABLE_INFORMATION)
        value_len = 0;
    bool fits = prf == TESS_PRF_HMAC_SHA256
                    ? (type == CKK_GENERIC_SECRET || type == CKK_SHA256_HMAC)
                    : type == CKK_AES && (!value_len || value_len == (prf == TESS_PRF_CMAC_AES128 ? 16 : 32));
    if (!fits) {
        fprintf(stderr, "tessera: the HSM's master key does not fit --prf %s (an AES-%d key for CMAC, a generic "
                        "secret for HMAC)\n",
                prf == TESS_PRF_HMAC_SHA256 ? "hmac-sha256" : prf == TESS_PRF_CMAC_AES128 ? "cmac-aes128" : "cmac-aes256",
                prf == TESS_PRF_CMAC_AES128 ? 128 : 256);
        return -1;
    }
    *out = keys[0];
    return 0;
}

int tool_hsm_open(struct tool_hsm *h, const char *uri_text, const char *module, const char *pin_file, bool rw)
{
    CK_SLOT_ID slot;
    char pin[256] = "";
    int rc = EX_FAIL, r;
    CK_RV rv;

    memset(h, 0, sizeof(*h));
    h->session = CK_INVALID_HANDLE;
    h->uri = p11_kit_uri_new();
    if (!h->uri)
        return EX_FAIL;
    r = p11_kit_uri_parse(uri_text, P11_KIT_URI_FOR_OBJECT_ON_TOKEN_AND_MODULE, h->uri);
    if (r != P11_KIT_URI_OK) {
        fprintf(stderr, "tessera: %s: %s\n", uri_text, p11_kit_uri_message(r));
        rc = EX_USAGE;
        goto out;
    }
    if (p11_kit_uri_get_module_path(h->uri))
        module = p11_kit_uri_get_module_path(h->uri);
    else if (!module)
        module = getenv("TESSERA_HSM_MODULE");
    if (!module) {
        fprintf(stderr, "tessera: which HSM? Give --hsm-module, module-path= in the URI, or TESSERA_HSM_MODULE\n");
        rc = EX_USAGE;
        goto out;
    }
    h->f = p11_kit_module_load(module, 0);
    if (!h->f) {
        fprintf(stderr, "tessera: cannot load the HSM module %s\n", module);
        goto out;
    }
    rv = p11_kit_module_initialize(h->f);
    if (rv != CKR_OK) {
        fprintf(stderr, "tessera: the HSM module did not initialise (0x%lx)\n", (unsigned long)rv);
        goto out;
    }
    h->initialized = true;
    if (find_slot(h->f, h->uri, &slot)) {
        fprintf(stderr, "tessera: no HSM token matches %s\n", uri_text);
        rc = EX_NOTFOUND;
        goto out;
    }
    rv = h->f->C_OpenSession(slot, CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0), NULL, NULL, &h->session);
    if (rv != CKR_OK) {
        fprintf(stderr, "tessera: no session with the HSM (0x%lx)\n", (unsigned long)rv);
        goto out;
    }
    if (hsm_pin(h->uri, pin_file, pin, sizeof(pin))) {
        rc = EX_USAGE;
        goto out;
    }
    rv = h->f->C_Login(h->session, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin));
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
        fprintf(stderr, "tessera: the HSM refused its PIN (0x%lx)\n", (unsigned long)rv);
        rc = EX_PIN;
        goto out;
    }
    rc = EX_OK;
out:
    tess_wipe(pin, sizeof(pin));
    if (rc != EX_OK)
        tool_hsm_close(h);
    return rc;
}

void tool_hsm_close(struct tool_hsm *h)
{
    if (h->f && h->session != CK_INVALID_HANDLE)
        h->f->C_CloseSession(h->session);
    if (h->initialized)
        p11_kit_module_finalize(h->f);
    if (h->f)
        p11_kit_module_release(h->f);
    if (h->uri)
        p11_kit_uri_free(h->uri);
    memset(h, 0, sizeof(*h));
    h->session = CK_INVALID_HANDLE;
}

int tool_hsm_find(struct tool_hsm *h, CK_OBJECT_CLASS cls, CK_OBJECT_HANDLE *out, CK_ULONG *found)
{
    CK_ATTRIBUTE tmpl[8];
    CK_ULONG n = 0, nattrs = 0;
    CK_ATTRIBUTE *attrs = p11_kit_uri_get_attributes(h->uri, &nattrs);
    CK_OBJECT_HANDLE keys[2];

    *found = 0;
    for (CK_ULONG i = 0; i < nattrs && n < 6; i++)
        if (attrs[i].type == CKA_LABEL || attrs[i].type == CKA_ID)
            tmpl[n++] = attrs[i];
    tmpl[n++] = (CK_ATTRIBUTE){ CKA_CLASS, &cls, sizeof(cls) };
    if (h->f->C_FindObjectsInit(h->session, tmpl, n) != CKR_OK)
        return EX_FAIL;
    h->f->C_FindObjects(h->session, keys, 2, found);
    h->f->C_FindObjectsFinal(h->session);
    if (*found != 1)
        return EX_NOTFOUND;
    *out = keys[0];
    return EX_OK;
}

int tool_hsm_diversify(const struct tool_key_source *ks, const char *serial, uint8_t *key, size_t *len)
{
    struct tool_hsm hsm;
    struct hsm_prf h = { 0 };
    int rc = tool_hsm_open(&hsm, ks->master_uri, ks->hsm_module, ks->hsm_pin_file, false);
    CK_RV rv;

    if (rc != EX_OK)
        return rc;
    rc = EX_NOTFOUND;
    if (find_key(&hsm, ks->prf, &h.key))
        goto out;
    h.f = hsm.f;
    h.session = hsm.session;
    h.mech = ks->prf == TESS_PRF_HMAC_SHA256 ? CKM_SHA256_HMAC : CKM_AES_CMAC;
    h.block_len = ks->prf == TESS_PRF_HMAC_SHA256 ? 32 : 16;
    *len = 32;
    rv = tess_admin_key_diversify_external(hsm_prf, &h, h.block_len, serial, ks->alg, key, len);
    if (rv != CKR_OK) {
        fprintf(stderr, "tessera: the HSM could not compute the KDF (0x%lx): does its key allow signing "
                        "(CKA_SIGN)?\n", (unsigned long)rv);
        rc = EX_FAIL;
        goto out;
    }
    rc = EX_OK;
out:
    tool_hsm_close(&hsm);
    return rc;
}
