# What the card-management tests share: the tool, exit codes, the database
# read by SQL, a request's code, and the check that the TPM and the
# database agree. Sourced after common.sh.
export TESSERA_CMS_DB="$TESSERA_HOME/cms.db"
T() { $TOOL "$@"; }
exit_is() { # exit_is CODE command...: the command exits with CODE
    local want=$1; shift
    "$@"; local got=$?
    [ "$got" = "$want" ] || { echo "exit $got, want $want"; return 1; }
}
sql() { /usr/bin/python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
for r in c.execute(sys.argv[2]): print("|".join("" if v is None else str(v) for v in r))
c.commit()' "$TESSERA_CMS_DB" "$1"; }

request() {   # request HOLDER [options]: the code in $WORK/code, the card's id in $WORK/card-id
    T --json card request --holder "$@" > "$WORK/req" || return 1
    field code < "$WORK/req" > "$WORK/code"
    sed -n 's/.*"card":\([0-9]*\).*/\1/p' "$WORK/req" > "$WORK/card-id"
    [ -s "$WORK/code" ]
}
code() { cat "$WORK/code"; }

# Every card on the TPM is one the database knows (in a state that has a
# card), and every active or suspended card row has its card on the TPM.
consistent() {
    $TOOL --json vsc list | tr '{' '\n' | sed -n 's/.*"serial":"\([^"]*\)".*/\1/p' | sort > "$WORK/on-tpm"
    sql "SELECT serial FROM cards WHERE serial IS NOT NULL AND state NOT IN ('erased', 'cancelled')" | sort > "$WORK/in-db"
    sql "SELECT serial FROM cards WHERE state IN ('active', 'suspended')" | sort > "$WORK/active"
    comm -23 "$WORK/on-tpm" "$WORK/in-db" > "$WORK/orphans"
    comm -13 "$WORK/on-tpm" "$WORK/active" > "$WORK/missing"
    [ ! -s "$WORK/orphans" ] || { echo "cards the database does not know: $(cat "$WORK/orphans")"; return 1; }
    [ ! -s "$WORK/missing" ] || { echo "active cards not on the TPM: $(cat "$WORK/missing")"; return 1; }
    /usr/bin/python3 -c 'import sqlite3, sys
c = sqlite3.connect(sys.argv[1])
assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
assert c.execute("PRAGMA foreign_key_check").fetchall() == []' "$TESSERA_CMS_DB"
}
