/* Signing speed through Tessera and through tpm2-pkcs11 on the same TPM,
 * against the floor no module can beat: TPM2_Sign straight through ESYS on a
 * key that is already loaded. Each measurement runs in its own child process
 * (one TPM connection at a time, nothing shared), rounds alternate between
 * the backends, and the median round is reported.
 *
 *   bench-sign --tcti TCTI --tessera MOD:TOKEN --peer MOD:TOKEN [--seconds S] [--rounds R]
 * Both tokens hold a user PIN 123456, an RSA-2048 key labelled "rsa" and an
 * EC P-256 key labelled "ec" (bench/run.sh provisions them). */
#include <dlfcn.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#include "../pkcs11/pk11.h"

#define PIN "123456"

enum alg { RSA2048 = 0, P256 = 1 };
static const char *alg_name[] = { "RSA-2048 PKCS#1 v1.5", "ECDSA P-256" };

struct result {
    double ops_per_s;
    double first_ms;   /* C_Initialize to the first signature; < 0: n/a */
    int ok;
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- through a PKCS#11 module ---- */

static int p11_run(const char *mod, const char *token, enum alg alg, double seconds, struct result *r)
{
    CK_FUNCTION_LIST *f;
    CK_RV (*gfl)(CK_FUNCTION_LIST_PTR_PTR);
    CK_SLOT_ID slots[64];
    CK_ULONG n = 64, found = 0;
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE key;
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    const char *label = alg == RSA2048 ? "rsa" : "ec";
    CK_ATTRIBUTE t[] = { { CKA_CLASS, &cls, sizeof(cls) }, { CKA_LABEL, (void *)label, strlen(label) } };
    uint8_t digest[32], sig[512];
    static const uint8_t msg[] = "benchmark message";
    CK_MECHANISM mech = { alg == RSA2048 ? CKM_SHA256_RSA_PKCS : CKM_ECDSA, NULL, 0 };
    CK_ULONG sl;
    void *lib = dlopen(mod, RTLD_NOW | RTLD_LOCAL);

    memset(digest, 0x5a, sizeof(digest));
    if (!lib) {
        fprintf(stderr, "bench: %s\n", dlerror());
        return -1;
    }
    *(void **)&gfl = dlsym(lib, "C_GetFunctionList");
    if (!gfl || gfl(&f) != CKR_OK)
        return -1;
    double t0 = now();
    if (f->C_Initialize(NULL) != CKR_OK || f->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
        return -1;
    CK_SLOT_ID slot = (CK_SLOT_ID)-1;
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        if (f->C_GetTokenInfo(slots[i], &ti) == CKR_OK && !strncmp((char *)ti.label, token, strlen(token)) &&
            (strlen(token) == 32 || ti.label[strlen(token)] == ' ')) {
            slot = slots[i];
            break;
        }
    }
    if (slot == (CK_SLOT_ID)-1 || f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK ||
        f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)PIN, 6) != CKR_OK)
        return -1;
    if (f->C_FindObjectsInit(s, t, 2) != CKR_OK || f->C_FindObjects(s, &key, 1, &found) != CKR_OK || !found)
        return -1;
    f->C_FindObjectsFinal(s);
    const uint8_t *in = alg == RSA2048 ? msg : digest;
    CK_ULONG inlen = alg == RSA2048 ? sizeof(msg) : sizeof(digest);
    sl = sizeof(sig);
    if (f->C_SignInit(s, &mech, key) != CKR_OK || f->C_Sign(s, (CK_BYTE_PTR)in, inlen, sig, &sl) != CKR_OK)
        return -1;
    r->first_ms = (now() - t0) * 1000;
    long ops = 0;
    double start = now(), end = start + seconds;
    while (now() < end) {
        sl = sizeof(sig);
        if (f->C_SignInit(s, &mech, key) != CKR_OK || f->C_Sign(s, (CK_BYTE_PTR)in, inlen, sig, &sl) != CKR_OK)
            return -1;
        ops++;
    }
    r->ops_per_s = ops / (now() - start);
    f->C_Logout(s);
    f->C_CloseSession(s);
    f->C_Finalize(NULL);
    r->ok = 1;
    return 0;
}

/* ---- straight through ESYS: the floor ---- */

static int esys_run(const char *tcti, enum alg alg, double seconds, struct result *r)
{
    TSS2_TCTI_CONTEXT *tc = NULL;
    ESYS_CONTEXT *e = NULL;
    ESYS_TR primary, key;
    TPM2B_SENSITIVE_CREATE sens = { 0 };
    TPM2B_DATA outside = { 0 };
    TPML_PCR_SELECTION pcrs = { 0 };
    TPM2B_PUBLIC srk = { .publicArea = {
        .type = TPM2_ALG_ECC, .nameAlg = TPM2_ALG_SHA256,
        .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                            TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT,
        .parameters.eccDetail = { .symmetric = { .algorithm = TPM2_ALG_AES, .keyBits.aes = 128, .mode.aes = TPM2_ALG_CFB },
                                  .scheme = { .scheme = TPM2_ALG_NULL }, .curveID = TPM2_ECC_NIST_P256,
                                  .kdf = { .scheme = TPM2_ALG_NULL } },
        .unique.ecc = { .x = { .size = 32 }, .y = { .size = 32 } } } };
    TPM2B_PUBLIC tmpl = { .publicArea = {
        .nameAlg = TPM2_ALG_SHA256,
        .objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                            TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_NODA | TPMA_OBJECT_SIGN_ENCRYPT } };
    TPM2B_PUBLIC *pub = NULL;
    TPM2B_PRIVATE *priv = NULL;
    TPMT_SIG_SCHEME scheme;
    TPMT_TK_HASHCHECK ticket = { .tag = TPM2_ST_HASHCHECK, .hierarchy = TPM2_RH_NULL };
    TPM2B_DIGEST d = { .size = 32 };
    TPMT_SIGNATURE *sig = NULL;

    if (alg == RSA2048) {
        tmpl.publicArea.type = TPM2_ALG_RSA;
        tmpl.publicArea.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
        tmpl.publicArea.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
        tmpl.publicArea.parameters.rsaDetail.keyBits = 2048;
        scheme.scheme = TPM2_ALG_RSASSA;
        scheme.details.rsassa.hashAlg = TPM2_ALG_SHA256;
    } else {
        tmpl.publicArea.type = TPM2_ALG_ECC;
        tmpl.publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
        tmpl.publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
        tmpl.publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
        tmpl.publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
        scheme.scheme = TPM2_ALG_ECDSA;
        scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    }
    memset(d.buffer, 0x5a, 32);
    if (Tss2_TctiLdr_Initialize(tcti, &tc) || Esys_Initialize(&e, tc, NULL) ||
        Esys_CreatePrimary(e, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &srk, &outside,
                           &pcrs, &primary, NULL, NULL, NULL, NULL) ||
        Esys_Create(e, primary, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens, &tmpl, &outside, &pcrs, &priv,
                    &pub, NULL, NULL, NULL) ||
        Esys_Load(e, primary, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, priv, pub, &key))
        return -1;
    Esys_FlushContext(e, primary);
    r->first_ms = -1;
    long ops = 0;
    double start = now(), end = start + seconds;
    while (now() < end) {
        if (Esys_Sign(e, key, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &d, &scheme, &ticket, &sig))
            return -1;
        Esys_Free(sig);
        ops++;
    }
    r->ops_per_s = ops / (now() - start);
    Esys_FlushContext(e, key);
    Esys_Free(pub);
    Esys_Free(priv);
    Esys_Finalize(&e);
    Tss2_TctiLdr_Finalize(&tc);
    r->ok = 1;
    return 0;
}

/* Run one measurement in a child: no state, connection or library carries
 * over from one backend to the next. */
static struct result measure(int backend, const char *tcti, const char *mod, const char *token, enum alg alg,
                             double seconds)
{
    struct result r = { 0 };
    int fd[2];
    if (pipe(fd))
        return r;
    pid_t pid = fork();
    if (pid == 0) {
        close(fd[0]);
        struct result mine = { 0 };
        if (backend == 0)
            esys_run(tcti, alg, seconds, &mine);
        else
            p11_run(mod, token, alg, seconds, &mine);
        if (write(fd[1], &mine, sizeof(mine)) != sizeof(mine))
            _exit(1);
        _exit(0);
    }
    close(fd[1]);
    if (read(fd[0], &r, sizeof(r)) != sizeof(r))
        r.ok = 0;
    close(fd[0]);
    waitpid(pid, NULL, 0);
    return r;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "tcti", required_argument, 0, 't' }, { "tessera", required_argument, 0, 'a' },
        { "peer", required_argument, 0, 'b' }, { "seconds", required_argument, 0, 's' },
        { "rounds", required_argument, 0, 'r' }, { 0, 0, 0, 0 },
    };
    const char *tcti = NULL;
    char *mods[3] = { NULL, NULL, NULL }, *tokens[3] = { NULL, NULL, NULL };
    static const char *names[3] = { "ESYS TPM2_Sign (floor)", "Tessera", "tpm2-pkcs11" };
    double seconds = 2;
    int rounds = 3, c;

    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 't': tcti = optarg; break;
        case 'a': case 'b': {
            int i = c == 'a' ? 1 : 2;
            mods[i] = optarg;
            char *colon = strrchr(optarg, ':');
            if (!colon) {
                fprintf(stderr, "bench: --%s MODULE:TOKEN\n", c == 'a' ? "tessera" : "peer");
                return 2;
            }
            *colon = '\0';
            tokens[i] = colon + 1;
            break;
        }
        case 's': seconds = atof(optarg); break;
        case 'r': rounds = atoi(optarg); break;
        default: return 2;
        }
    }
    if (!tcti || !mods[1] || !mods[2] || rounds < 1 || rounds > 50) {
        fprintf(stderr, "usage: bench-sign --tcti TCTI --tessera MOD:TOKEN --peer MOD:TOKEN [--seconds S] [--rounds R]\n");
        return 2;
    }

    printf("%d rounds of %.1f s per backend and algorithm; median round shown\n\n", rounds, seconds);
    printf("%-22s %-22s %10s %17s %10s %16s\n", "backend", "algorithm", "ops/s", "(rounds min-max)", "of floor",
           "init->1st sign");
    int status = 0;
    for (int a = RSA2048; a <= P256; a++) {
        double ops[3][50], first[3][50], med[3], fmed[3];
        int okc[3] = { 0 };
        for (int r = 0; r < rounds; r++) {
            for (int b = 0; b < 3; b++) {
                struct result res = measure(b, tcti, mods[b], tokens[b], (enum alg)a, seconds);
                if (!res.ok) {
                    fprintf(stderr, "bench: %s / %s failed\n", names[b], alg_name[a]);
                    status = 1;
                    continue;
                }
                ops[b][okc[b]] = res.ops_per_s;
                first[b][okc[b]++] = res.first_ms;
            }
        }
        double lo[3], hi[3];
        for (int b = 0; b < 3; b++) {
            med[b] = okc[b] ? median(ops[b], okc[b]) : 0;   /* sorts ops[b] */
            lo[b] = okc[b] ? ops[b][0] : 0;
            hi[b] = okc[b] ? ops[b][okc[b] - 1] : 0;
            fmed[b] = okc[b] ? median(first[b], okc[b]) : 0;
        }
        for (int b = 0; b < 3; b++) {
            char fs[32] = "n/a";
            if (b && okc[b])
                snprintf(fs, sizeof(fs), "%.1f ms", fmed[b]);
            char range[32];
            snprintf(range, sizeof(range), "(%.0f-%.0f)", lo[b], hi[b]);
            printf("%-22s %-22s %10.1f %17s %10.2f %16s\n", names[b], alg_name[a], med[b], range,
                   med[0] ? med[b] / med[0] : 0, fs);
        }
        printf("%-22s %-22s %10s %17s %10.2f\n\n", "Tessera / tpm2-pkcs11", alg_name[a], "", "",
               med[2] ? med[1] / med[2] : 0);
    }
    return status;
}
