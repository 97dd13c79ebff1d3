#!/bin/sh
# `systemd-analyze verify` on every unit in deploy/systemd, with the binary
# paths pointed at this build (verify checks that ExecStart= is executable).
# A deliberately broken copy must fail, so the check is known to bite.
# Works without systemd as PID 1 (verify only loads unit files).
# usage: deploy_systemd_verify.sh SRC BINDIR
set -u
SRC=$1 B=$2
command -v systemd-analyze >/dev/null ||
	{ echo "SKIP: systemd-analyze is not installed (package systemd)"; exit 77; }
T=$(mktemp -d /tmp/spanvm-verify-XXXXXX)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

n=0
for u in "$SRC"/deploy/systemd/*.service; do
	name=$(basename "$u")
	sed "s#/usr/local/bin/#$B/#g" "$u" >"$T/$name"
	inst=$name
	case $name in *@.service) inst=${name%@.service}@1.service ;; esac
	(cd "$T" && systemd-analyze verify --man=no "./$name" >"$T/out" 2>&1) ||
		{ cat "$T/out" >&2; fail "systemd-analyze verify $name"; }
	[ -s "$T/out" ] && { cat "$T/out" >&2; fail "systemd-analyze verify $name printed warnings"; }
	if [ "$inst" != "$name" ]; then # an instance (node 1) loads through the template
		(cd "$T" && systemd-analyze verify --man=no "./$inst" >"$T/out" 2>&1) &&
			[ ! -s "$T/out" ] || { cat "$T/out" >&2; fail "systemd-analyze verify $inst"; }
	fi
	n=$((n + 1))
done
[ "$n" -ge 2 ] || fail "expected at least 2 units in deploy/systemd, found $n"

# negative control: a missing binary must fail, an unknown directive warn
sed -e 's/^Restart=/Restrat=/' -e "s#$B/spanvm-coord#$B/spanvm-nonexistent#" \
	"$T/spanvm-coord.service" >"$T/broken.service"
(cd "$T" && systemd-analyze verify --man=no ./broken.service >"$T/out" 2>&1) &&
	fail "verify accepted a broken unit: $(cat "$T/out")"
grep -q "nonexistent" "$T/out" || fail "verify did not report the missing binary: $(cat "$T/out")"
grep -q "Restrat" "$T/out" || fail "verify did not report the unknown key: $(cat "$T/out")"
# sysusers/tmpfiles snippets apply to an empty root and give the modes
# docs/deploy.md promises (root-only secret, group-readable config)
if [ "$(id -u)" -eq 0 ] && command -v systemd-sysusers >/dev/null &&
	command -v systemd-tmpfiles >/dev/null; then # (chown needs root)
	R=$T/root
	mkdir -p "$R/etc/spanvm"
	systemd-sysusers --root="$R" "$SRC/deploy/systemd/spanvm.sysusers.conf" >/dev/null 2>&1 ||
		fail "systemd-sysusers rejects spanvm.sysusers.conf"
	grep -q "^spanvm:" "$R/etc/passwd" || fail "sysusers did not create user spanvm"
	: >"$R/etc/spanvm/vm.json"
	(umask 022 && : >"$R/etc/spanvm/secret")
	systemd-tmpfiles --root="$R" --create "$SRC/deploy/systemd/spanvm.tmpfiles.conf" >"$T/out" 2>&1 ||
		{ cat "$T/out" >&2; fail "systemd-tmpfiles rejects spanvm.tmpfiles.conf"; }
	[ "$(stat -c %a "$R/etc/spanvm/secret")" = 600 ] || fail "tmpfiles: secret not 0600"
	[ "$(stat -c %a "$R/etc/spanvm/vm.json")" = 640 ] || fail "tmpfiles: vm.json not 0640"
	[ "$(stat -c %a "$R/etc/spanvm")" = 750 ] || fail "tmpfiles: /etc/spanvm not 0750"
fi
echo "systemd-analyze verify passed on $n units"
