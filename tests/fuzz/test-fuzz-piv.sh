# The PIV response parsers under libFuzzer for a short while (make check);
# run it longer by hand: tests/fuzz/fuzz-piv-parse -max_total_time=3600 DIR
. "$TESSERA_SRCDIR/tests/lib/common.sh"

fuzzer=${TESSERA_FUZZ_PIV:-}
if [ -z "$fuzzer" ] || [ ! -x "$fuzzer" ]; then
    echo "1..0 # SKIP no libFuzzer build (configure found no clang with -fsanitize=fuzzer)"
    exit 0
fi
mkdir -p "$WORK/corpus"
cp "$TESSERA_SRCDIR"/tests/fuzz/corpus/piv/* "$WORK/corpus/"
t_ok "fuzz the PIV parsers for ${TESSERA_FUZZ_SECONDS:-20} s" \
    "$fuzzer" -max_total_time="${TESSERA_FUZZ_SECONDS:-20}" -seed=1 -rss_limit_mb=1024 -print_final_stats=1 "$WORK/corpus"
grep -E "stat::number_of_executed_units|Done" "$WORK/last.out" | sed 's/^/# /'
t_ok "  with no crash" sh -c "! grep -q 'ERROR: \\|SUMMARY: ' '$WORK/last.out'"
t_done
