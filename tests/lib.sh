# Shared by the test runners: TAP-style result lines and counting.
# A skipped check (TAP "# SKIP") counts as neither passed nor failed.
# A runner prints "ok - NAME" or "not ok - NAME" per check; tests/run counts them.
tap_pass=0
tap_fail=0
tap_skip=0
tap_failed_names=()
tap_retried_names=() # integration tests that passed on their second try

# tap_count < output: count and echo the ok/not ok lines of a TAP stream, pass the rest through.
tap_count() {
	local line
	while IFS= read -r line; do
		case $line in
		*"# SKIP"*|*"# skip"*) tap_skip=$((tap_skip + 1)); echo "$line" ;;
		"ok "*"second try"*) tap_pass=$((tap_pass + 1)); tap_retried_names+=("${line#ok - }"); echo "$line" ;;
		"ok "*) tap_pass=$((tap_pass + 1)); echo "$line" ;;
		"not ok "*) tap_fail=$((tap_fail + 1)); tap_failed_names+=("${line#not ok }"); echo "$line" ;;
		*) echo "    $line" ;;
		esac
	done
}

tap_result() { # NAME STATUS
	if [ "$2" = 0 ]; then
		tap_pass=$((tap_pass + 1)); echo "ok - $1"
	else
		tap_fail=$((tap_fail + 1)); tap_failed_names+=("$1"); echo "not ok - $1"
	fi
}

# integration_tests [REGEX]: the names of the integration tests (tests/integration/*.sh but
# lib.sh), those matching REGEX if given, in the order the runner runs them.
integration_tests() {
	local t n
	for t in tests/integration/*.sh; do
		n=$(basename "$t" .sh)
		[ "$n" = lib ] && continue
		[ -n "${1:-}" ] && ! [[ $n =~ $1 ]] && continue
		echo "$n"
	done
}
