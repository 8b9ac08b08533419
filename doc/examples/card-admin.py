#!/usr/bin/python3
"""A small card-management tool built on Tessera, in Python.

The standard PKCS#11 functions come from PyKCS11 (Debian: python3-pykcs11);
Tessera's vendor interface, "Tessera Management" (tessera/pkcs11-tessera.h,
doc/tessera-management.md), is reached through ctypes, in the same process
and on the same sessions: PyKCS11 and ctypes load the one module.

  card-admin.py MODULE list
  card-admin.py MODULE challenge SERIAL
  card-admin.py MODULE unblock SERIAL RESPONSE-HEX        (the new PIN on stdin)
  card-admin.py MODULE sign SERIAL KEY-LABEL FILE          (the PIN on stdin;
                                                            the signature to stdout)

The helpdesk computes a response with `tessera unblock response`, from the
challenge and the master key; this program never sees an admin key.
"""
import ctypes
import sys

import PyKCS11

CK_RV = ctypes.c_ulong
CK_ULONG = ctypes.c_ulong
CKR_OK = 0
CKK_DES3 = 0x15
CKF_INTERFACE_FORK_SAFE = 0x1

CKR_TESSERA_BASE = 0x80000000 | 0x54450000
CKR_TESSERA_NO_CHALLENGE = CKR_TESSERA_BASE + 2
CKR_TESSERA_RESPONSE_INCORRECT = CKR_TESSERA_BASE + 3
CKR_TESSERA_UNBLOCK_LOCKED = CKR_TESSERA_BASE + 4
CKT_TESSERA = {1: "TPM virtual card", 2: "PIV card"}
CKF_TESSERA_ADMIN_KEY_SET = 0x1
CKF_TESSERA_ADMIN_KEY_DEFAULT = 0x2
CKF_TESSERA_UNBLOCK_LOCKED = 0x8


class CK_VERSION(ctypes.Structure):
    _fields_ = [("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte)]


class CK_INTERFACE(ctypes.Structure):
    _fields_ = [("pInterfaceName", ctypes.c_char_p), ("pFunctionList", ctypes.c_void_p),
                ("flags", CK_ULONG)]


class CK_TESSERA_CARD_INFO(ctypes.Structure):
    _fields_ = [("cardType", CK_ULONG), ("serialNumber", ctypes.c_char * 32),
                ("adminKeyType", CK_ULONG), ("adminKeyLen", CK_ULONG),
                ("adminKeyCheck", ctypes.c_ubyte * 3), ("challengeLen", CK_ULONG),
                ("challengesLeft", CK_ULONG), ("unblockTriesLeft", CK_ULONG),
                ("unblockTriesMax", CK_ULONG), ("flags", CK_ULONG)]


BYTES = ctypes.POINTER(ctypes.c_ubyte)


class CK_TESSERA_FUNCTION_LIST(ctypes.Structure):
    """Interface 1.0's functions: the only ones this program uses (1.x only appends)."""
    _fields_ = [
        ("version", CK_VERSION),
        ("T_GetCardInfo", ctypes.CFUNCTYPE(CK_RV, CK_ULONG, ctypes.POINTER(CK_TESSERA_CARD_INFO))),
        ("T_GetChallenge", ctypes.CFUNCTYPE(CK_RV, CK_ULONG, CK_ULONG, BYTES, ctypes.POINTER(CK_ULONG))),
        ("T_UnblockPIN", ctypes.CFUNCTYPE(CK_RV, CK_ULONG, BYTES, CK_ULONG, BYTES, CK_ULONG)),
    ]


class Tessera:
    """The module, once: PyKCS11 for the standard functions, ctypes for the vendor ones."""

    def __init__(self, module):
        self.p11 = PyKCS11.PyKCS11Lib()
        self.p11.load(module)
        lib = ctypes.CDLL(module)
        get_interface = lib.C_GetInterface
        get_interface.restype = CK_RV
        get_interface.argtypes = [ctypes.c_char_p, ctypes.POINTER(CK_VERSION),
                                  ctypes.POINTER(ctypes.POINTER(CK_INTERFACE)), CK_ULONG]
        iface = ctypes.POINTER(CK_INTERFACE)()
        rv = get_interface(b"Tessera Management", ctypes.byref(CK_VERSION(1, 0)), ctypes.byref(iface), 0)
        if rv != CKR_OK:
            raise SystemExit("this module has no Tessera Management interface (0x%x)" % rv)
        self.mgmt = ctypes.cast(iface.contents.pFunctionList, ctypes.POINTER(CK_TESSERA_FUNCTION_LIST)).contents

    def card_info(self, slot):
        info = CK_TESSERA_CARD_INFO()
        if self.mgmt.T_GetCardInfo(slot, ctypes.byref(info)) != CKR_OK:
            return None   # not a card Tessera manages
        return info

    def slot_of(self, serial):
        for slot in self.p11.getSlotList(tokenPresent=True):
            info = self.card_info(slot)
            if info is not None and info.serialNumber.decode().strip() == serial:
                return slot
        raise SystemExit("no card with serial %s" % serial)


def hex_of(data):
    return "".join("%02X" % b for b in data)


def cmd_list(t):
    for slot in t.p11.getSlotList(tokenPresent=True):
        info = t.card_info(slot)
        if info is None:
            continue
        token = t.p11.getTokenInfo(slot)
        print("%s \"%s\": serial %s" % (CKT_TESSERA.get(info.cardType, "card"), token.label.strip(),
                                        info.serialNumber.decode().strip()))
        if not info.flags & CKF_TESSERA_ADMIN_KEY_SET:
            print("  no admin key")
            continue
        print("  admin key %s-%d, KCV %s%s" % ("3DES" if info.adminKeyType == CKK_DES3 else "AES",
                                               info.adminKeyLen * 8, hex_of(info.adminKeyCheck),
                                               " (default key!)" if info.flags & CKF_TESSERA_ADMIN_KEY_DEFAULT else ""))
        print("  unblock: %d of %d tries left%s" % (info.unblockTriesLeft, info.unblockTriesMax,
                                                   ", LOCKED" if info.flags & CKF_TESSERA_UNBLOCK_LOCKED else ""))
    return 0


def cmd_challenge(t, serial):
    session = t.p11.openSession(t.slot_of(serial))
    buf = (ctypes.c_ubyte * 32)()
    length = CK_ULONG(len(buf))
    rv = t.mgmt.T_GetChallenge(session.session.value(), 0, buf, ctypes.byref(length))
    session.closeSession()
    if rv != CKR_OK:
        print("no challenge: 0x%x" % rv, file=sys.stderr)
        return 1
    print(hex_of(buf[:length.value]))
    return 0


def cmd_unblock(t, serial, response_hex):
    response = bytes.fromhex(response_hex)
    new_pin = sys.stdin.readline().rstrip("\n").encode()
    session = t.p11.openSession(t.slot_of(serial), PyKCS11.CKF_SERIAL_SESSION | PyKCS11.CKF_RW_SESSION)
    resp = (ctypes.c_ubyte * len(response)).from_buffer_copy(response)
    pin = (ctypes.c_ubyte * len(new_pin)).from_buffer_copy(new_pin)
    rv = t.mgmt.T_UnblockPIN(session.session.value(), resp, len(response), pin, len(new_pin))
    ctypes.memset(pin, 0, len(new_pin))   # the copy ctypes made; Python's own strings cannot be wiped
    session.closeSession()
    messages = {CKR_OK: "unblocked",
                CKR_TESSERA_RESPONSE_INCORRECT: "wrong response; ask for a new challenge",
                CKR_TESSERA_NO_CHALLENGE: "no challenge pending (already answered?)",
                CKR_TESSERA_UNBLOCK_LOCKED: "unblock is locked on this card",
                PyKCS11.CKR_PIN_LEN_RANGE: "the PIN breaks the card's policy",
                PyKCS11.CKR_PIN_INVALID: "the PIN breaks the card's policy"}
    print(messages.get(rv, "failed: 0x%x" % rv), file=sys.stdout if rv == CKR_OK else sys.stderr)
    return 0 if rv == CKR_OK else 1


def cmd_sign(t, serial, label, path):
    """Standard PKCS#11 through PyKCS11: log in, find the key by label, sign."""
    pin = sys.stdin.readline().rstrip("\n")
    session = t.p11.openSession(t.slot_of(serial))
    try:
        session.login(pin)
        keys = session.findObjects([(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY), (PyKCS11.CKA_LABEL, label)])
        if not keys:
            print("no private key labelled %s" % label, file=sys.stderr)
            return 1
        key_type = session.getAttributeValue(keys[0], [PyKCS11.CKA_KEY_TYPE])[0]
        mech = PyKCS11.Mechanism(PyKCS11.CKM_SHA256_RSA_PKCS if key_type == PyKCS11.CKK_RSA else PyKCS11.CKM_ECDSA_SHA256)
        with open(path, "rb") as f:
            signature = bytes(session.sign(keys[0], f.read(), mech))
        sys.stdout.buffer.write(signature)
        session.logout()
        return 0
    except PyKCS11.PyKCS11Error as e:
        print("failed: %s" % e, file=sys.stderr)
        return 1
    finally:
        session.closeSession()


def main(argv):
    commands = {"list": (cmd_list, 0), "challenge": (cmd_challenge, 1), "unblock": (cmd_unblock, 2),
                "sign": (cmd_sign, 3)}
    if len(argv) < 3 or argv[2] not in commands or len(argv) != 3 + commands[argv[2]][1]:
        print(__doc__.split("\n\n")[2], file=sys.stderr)
        return 2
    func, _ = commands[argv[2]]
    return func(Tessera(argv[1]), *argv[3:])


if __name__ == "__main__":
    sys.exit(main(sys.argv))
