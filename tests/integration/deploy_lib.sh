# Shared helpers for the deploy tests (sourced; POSIX sh).
# Needs: SRC (source tree), B (binary dir), T (temp dir).

ms() { echo $(($(date +%s%N) / 1000000)); }
alive() { # pid -> 0 if it runs (zombies count as gone: our init may not reap)
	[ -r "/proc/$1/stat" ] || return 1
	st=$(sed 's/.*) \(.\).*/\1/' "/proc/$1/stat" 2>/dev/null) || return 1
	[ "$st" != Z ] && [ "$st" != X ]
}
expect_in() { # file text what
	grep -qF -- "$2" "$1" || { echo "--- $1:" >&2; cat "$1" >&2; fail "$3: expected '$2'"; }
}
need_netns() { # skip (77) with the reason when namespaces cannot be made here
	if [ "$(id -u)" -ne 0 ]; then
		echo "SKIP: needs root to build network namespaces (run as root)"; exit 77
	fi
	for c in ip nft; do
		command -v $c >/dev/null || { echo "SKIP: '$c' is not installed"; exit 77; }
	done
	if ! ip netns add "spanvm-probe$$" 2>/dev/null; then
		echo "SKIP: cannot create network namespaces here (no CAP_SYS_ADMIN?)"; exit 77
	fi
	ip netns del "spanvm-probe$$"
}

# unit_cmd UNITFILE INSTANCE ETC CRED: the unit's ExecStart= line exactly as
# written, with the install paths substituted (/usr/local/bin -> $B,
# /etc/spanvm -> ETC, /run/spanvm-coord (RuntimeDirectory=) -> ETC,
# %i -> INSTANCE, ${CREDENTIALS_DIRECTORY} -> CRED, the directory systemd's
# LoadCredential= would make).
unit_cmd() {
	sed -n 's/^ExecStart=//p' "$1" | sed -e "s#/usr/local/bin/#$B/#g" -e "s#/etc/spanvm/#$3/#g" \
		-e "s#/run/spanvm-coord/#$3/#g" \
		-e "s#%i#$2#g" -e "s#\${CREDENTIALS_DIRECTORY}#$4#g"
}
# unit_envfiles UNITFILE INSTANCE ETC: the EnvironmentFile= paths (substituted),
# "-" prefix (optional) kept.
unit_envfiles() {
	sed -n 's/^EnvironmentFile=//p' "$1" | sed -e "s#/etc/spanvm/#$3/#g" -e "s#%i#$2#g"
}
# unit_run UNITFILE INSTANCE ETC CRED [NETNS]: runs the ExecStart line as
# systemd would (environment files loaded, $VAR split into words) in the
# foreground; stdout/stderr are the caller's.
unit_run() {
	(
		nsname=${5:-}
		for f in $(unit_envfiles "$1" "$2" "$3"); do
			case $f in
			-*) f=${f#-}; [ -f "$f" ] || continue ;;
			*) [ -f "$f" ] || { echo "unit_run: environment file $f missing" >&2; exit 1; } ;;
			esac
			set -a; . "$f"; set +a
		done
		cmd=$(unit_cmd "$1" "$2" "$3" "$4")
		set -f +u # unset variables expand to nothing, as in systemd
		eval "set -- $cmd"
		[ -x "$1" ] || { echo "unit_run: ExecStart binary $1 missing" >&2; exit 1; }
		if [ -n "$nsname" ]; then exec ip netns exec "$nsname" "$@"; else exec "$@"; fi
	)
}
