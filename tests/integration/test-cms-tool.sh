# The card-management verbs of the tool: a database, operators and roles
# (refusals exit 7 and are audited), holders from CSV and LDIF, credential
# profiles with versions, the audit trail searched and verified, and
# tampering found (exit 8) whether a record is edited, removed or reordered.
. "$TESSERA_SRCDIR/tests/lib/common.sh"

export TESSERA_CMS_DB="$WORK/cms.db"
T() { $TOOL "$@"; }
py_sql() { /usr/bin/python3 -c 'import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.executescript(sys.argv[2]); c.commit()' "$TESSERA_CMS_DB" "$1"; }
exit_is() { # exit_is CODE command...: the command exits with CODE
    local want=$1; shift
    "$@"; local got=$?
    [ "$got" = "$want" ] || { echo "exit $got, want $want"; return 1; }
}

t_fail "no database yet: a clear error" T holder list --as alice
t_ok "  which says how to make one" grep -q "tessera db init" "$WORK/last.out"
t_ok "db init with a first administrator" T db init --admin alice
t_ok "  the file is 0600" test "$(stat -c %a "$TESSERA_CMS_DB")" = 600
t_fail "db init twice" T db init --admin eve
t_ok "alice adds bob, an issuer and helpdesk operator" T operator add bob --roles issuer,helpdesk --as alice
t_ok "  and carol, an auditor" T operator add carol --roles auditor --as alice
t_ok "bob may not add operators (exit 7)" exit_is 7 T operator add eve --roles administrator --as bob
t_ok "  and is told which role it needs" grep -q "needs the role administrator" "$WORK/last.out"
t_ok "an unknown role is a usage error (exit 2)" exit_is 2 T operator add dave --roles wizard --as alice
t_ok "operator list" T operator list --as bob
t_is "  three operators" "$(grep -c . "$WORK/last.out")" 3

t_ok "bob imports the holders of a CSV file" T holder import "$TESSERA_SRCDIR/doc/examples/holders.csv" --as bob
t_ok "  2 new" grep -q "2 new, 0 updated, 0 unchanged" "$WORK/last.out"
cat > "$WORK/people.ldif" <<'EOF'
version: 1

dn: uid=lars,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: lars
cn: Lars Larsen
mail: lars@example.org
departmentNumber: 7

dn: uid=jdoe,ou=people,dc=example,dc=org
uid: jdoe
cn: Jane Doe
mail: jane.doe@example.org
EOF
t_ok "and an LDIF export" T holder import "$WORK/people.ldif" --as bob
t_ok "  1 new, jdoe's name updated" grep -q "1 new, 1 updated, 0 unchanged" "$WORK/last.out"
t_ok "holder show jdoe (--json)" T --json holder show jdoe --as bob
t_ok "  her name from the LDIF" grep -q '"name":"Jane Doe"' "$WORK/last.out"
t_ok "holder find by e-mail" T holder find LARS@example.org --as bob
t_ok "  Lars" grep -q "^lars " "$WORK/last.out"
t_ok "holder find nobody: exit 5" exit_is 5 T holder find nobody@nowhere --as bob
printf 'uid,name\nx1,One\nx2\n' > "$WORK/bad.csv"
t_ok "a bad CSV line is named, nothing imported (exit 2)" exit_is 2 T holder import "$WORK/bad.csv" --as bob
t_ok "  line 3" grep -q "line 3" "$WORK/last.out"
t_ok "  x1 not kept" exit_is 5 T holder show x1 --as bob

t_ok "bob may not import profiles (exit 7)" exit_is 7 T profile import "$TESSERA_SRCDIR/doc/examples/profile-staff.ini" --as bob
t_ok "alice imports the staff profile" T profile import "$TESSERA_SRCDIR/doc/examples/profile-staff.ini" --as alice
t_ok "  version 1" grep -q "profile version 1$" "$WORK/last.out"
t_ok "the same file again: unchanged" T profile import "$TESSERA_SRCDIR/doc/examples/profile-staff.ini" --as alice
t_ok "  still version 1" grep -q "version 1 (unchanged)" "$WORK/last.out"
sed 's/^tries = 5/tries = 3/' "$TESSERA_SRCDIR/doc/examples/profile-staff.ini" > "$WORK/staff.ini"
t_ok "a changed file: version 2" T profile import "$WORK/staff.ini" --as alice
t_ok "  says so" grep -q "profile version 2$" "$WORK/last.out"
t_ok "profile show staff: the latest" T profile show staff --as bob
t_ok "  tries = 3" grep -q "^tries = 3$" "$WORK/last.out"
t_ok "profile show staff --version 1" T profile show staff --version 1 --as bob
t_ok "  tries = 5" grep -q "^tries = 5$" "$WORK/last.out"
printf '[profile]\nname = broken\ncard-types = piv\n[key a]\ntype = p256\nusage = sign\n' > "$WORK/broken.ini"
t_ok "a profile for PIV without a piv-slot is refused (exit 2)" exit_is 2 T profile import "$WORK/broken.ini" --as alice

t_ok "bob may not read the audit trail (exit 7)" exit_is 7 T audit --as bob
t_ok "carol reads it" T audit --as carol
cp "$WORK/last.out" "$WORK/trail"
t_ok "  the first administrator" grep -q "alice db.init ok" "$WORK/trail"
t_ok "  bob's refusals" grep -q "bob operator.add denied" "$WORK/trail"
t_ok "  the imports" grep -q "bob holder.import ok" "$WORK/trail"
t_ok "audit --operator alice --action profile.import" T audit --operator alice --action profile.import --as carol
t_is "  two versions" "$(grep -c "profile.import ok" "$WORK/last.out")" 2
t_ok "dave, no operator, may not look at jdoe (exit 7)" exit_is 7 T holder show jdoe --as dave
t_ok "audit --holder jdoe" T --json audit --holder jdoe --as carol
t_ok "  has dave's attempt" grep -q '"operator":"dave","action":"holder.show","result":"denied' "$WORK/last.out"
t_ok "audit --last 1" T audit --last 1 --as carol
t_is "  one record" "$(grep -c . "$WORK/last.out")" 1
t_ok "audit verify: intact" T audit verify --as carol
t_ok "  says so" grep -q "audit trail intact" "$WORK/last.out"

cp "$TESSERA_CMS_DB" "$WORK/good.db"
restore() { cp "$WORK/good.db" "$TESSERA_CMS_DB"; rm -f "$TESSERA_CMS_DB-wal" "$TESSERA_CMS_DB-shm"; }
py_sql "UPDATE audit SET operator = 'alice' WHERE operator = 'bob' AND result LIKE 'denied%'"
t_ok "an edited record: exit 8" exit_is 8 T audit verify --as carol
t_ok "  named" grep -q "was changed after it was written" "$WORK/last.out"
restore
py_sql "DELETE FROM audit WHERE id = 4"
t_ok "a removed record: exit 8" exit_is 8 T audit verify --as carol
t_ok "  named" grep -q "record 5 does not follow record 3" "$WORK/last.out"
restore
py_sql "UPDATE audit SET id = 1000 WHERE id = 2; UPDATE audit SET id = 2 WHERE id = 3; UPDATE audit SET id = 3 WHERE id = 1000"
t_ok "two records swapped: exit 8" exit_is 8 T audit verify --as carol
restore
py_sql "DELETE FROM audit WHERE id = (SELECT max(id) FROM audit)"
t_ok "the last record cut: exit 8" exit_is 8 T --json audit verify --as carol
t_ok "  named" grep -q '"intact":false' "$WORK/last.out"
restore
t_ok "the original verifies again" T audit verify --as carol
t_ok "db status" T db status --as alice
cp "$WORK/last.out" "$WORK/status"
t_ok "  schema 8" grep -q "^schema 8$" "$WORK/status"
t_ok "  3 holders" grep -q "^holders 3$" "$WORK/status"
t_done
