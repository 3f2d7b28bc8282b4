#!/bin/sh
# Run the system unit under a real systemd and check what it promises.
#
# Boots Debian 12 (systemd 252, the version the units are written for) in a
# systemd-nspawn container, installs calendar-svc from this checkout the way
# docs/operations.md says, and checks, through systemctl and the journal:
#   - Type=notify: active only after READY=1, with a STATUS line;
#   - a reminder goes out through the console notifier into the journal, once,
#     and STATUS counts it within seconds;
#   - `systemctl reload` (SIGHUP) reloads; a broken config is refused on reload
#     and the service keeps running;
#   - kill -9 is restarted (Restart=on-failure) without sending twice;
#   - a stopped main loop (SIGSTOP) is killed by the watchdog and restarted
#     (skipped with --quick: it takes two minutes);
#   - calendar-svc-admin from docs/operations.md runs commands as the service user;
#   - `systemctl stop` ends with exit status 0;
#   - a broken config at start exits 2 and is not restarted in a loop.
#
# Needs root, systemd-nspawn and debootstrap (Debian: apt-get install
# systemd-container debootstrap), and a Debian mirror the first time (the
# container root is kept in $ROOT and reused). Takes 1-4 minutes.
#
#   sudo systemd/check-in-container.sh [--quick]
#
# It prints one line per check and exits 1 at the first that fails.
set -eu

QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
ROOT=${ROOT:-/var/lib/machines/calendar-svc-check}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
SRC=$(cd "$(dirname "$0")/.." && pwd)
UNIT=calendar-svc

for tool in systemd-nspawn debootstrap nsenter python3; do
    command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install systemd-container debootstrap)"; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "needs root (systemd-nspawn)"; exit 2; }

say() { printf '%s\n' "$*"; }
fail() { say "FAIL: $*"; exit 1; }

if [ ! -x "$ROOT/lib/systemd/systemd" ]; then
    say "creating the Debian 12 root in $ROOT (once)"
    debootstrap --variant=minbase \
        --include=systemd,systemd-sysv,dbus,python3,python3-venv,python3-pip,ca-certificates \
        bookworm "$ROOT" "$MIRROR" >/dev/null
fi

# Without a system bus on the host: no machined registration, no own scope unit.
nspawn() { systemd-nspawn -q --register=no --keep-unit -D "$ROOT" "$@" 2>&1 | grep -v "propagate/" || true; }

say "installing from $SRC"
rm -rf "$ROOT/root/wheelhouse" "$ROOT/root/src"
mkdir -p "$ROOT/root/src"
(cd "$SRC" && git archive HEAD | tar -x -C "$ROOT/root/src")
python3 -m pip wheel -q "$SRC" -w "$ROOT/root/wheelhouse" >/dev/null 2>&1 \
    || python3 -m pip wheel -q --no-deps "$SRC" -w "$ROOT/root/wheelhouse" >/dev/null
START=$(date -u -d '+3 min' +%Y-%m-%dT%H:%M:00)
nspawn --pipe /bin/sh -ec "
    rm -rf /opt/calendar-svc /var/lib/private/calendar-svc /etc/calendar-svc
    python3 -m venv /opt/calendar-svc/venv
    # The wheels built here when the host's Python matches; the index otherwise.
    /opt/calendar-svc/venv/bin/pip install -q --disable-pip-version-check --no-index \
        --find-links /root/wheelhouse calendar-svc 2>/dev/null \
    || /opt/calendar-svc/venv/bin/pip install -q --disable-pip-version-check \
        --find-links /root/wheelhouse calendar-svc
    cd /root/src
    install -m 0644 systemd/calendar-svc.service /etc/systemd/system/
    install -D -m 0644 systemd/config.example.toml /etc/calendar-svc/config.toml
    install -d -m 0755 /etc/calendar-svc/schedules
    install -m 0644 schedules/*.toml /etc/calendar-svc/schedules/
    systemctl enable $UNIT 2>/dev/null
"
cat > "$ROOT/etc/calendar-svc/schedules/check.toml" <<EOF
[calendar]
slug = "check"
name = "Check"
timezone = "UTC"

[[entries]]
uid = "under-systemd"
title = "Check under systemd"
start = $START
reminders = ["PT2M"]
EOF
chmod 0644 "$ROOT/etc/calendar-svc/schedules/check.toml"
cp "$ROOT/etc/calendar-svc/config.toml" "$ROOT/root/good-config.toml"
awk '/^cat > \/usr\/local\/sbin\/calendar-svc-admin/{f=1;next} /^EOF$/{f=0} f' \
    "$SRC/docs/operations.md" > "$ROOT/usr/local/sbin/calendar-svc-admin"
chmod 0755 "$ROOT/usr/local/sbin/calendar-svc-admin"

say "booting the container"
systemd-nspawn -q --register=no --keep-unit -D "$ROOT" --boot >/tmp/calendar-svc-check.console 2>&1 &
NSPAWN=$!
cleanup() { kill "$NSPAWN" 2>/dev/null || true; wait "$NSPAWN" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

# poll SECONDS COMMAND...: run COMMAND every second until it succeeds.
poll() {
    limit=$1; shift
    i=0
    while [ "$i" -lt "$limit" ]; do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 1; i=$((i + 1))
    done
    return 1
}
init_pid() { pgrep -P "$NSPAWN" | head -n 1; }
poll 30 init_pid || fail "the container did not boot"
PID1=$(init_pid)
in_ct() { nsenter -t "$PID1" -a "$@"; }
prop() { in_ct systemctl show "$UNIT" -p "$1" --value; }
journal() { in_ct journalctl -b -u "$UNIT" --no-pager -o cat; }  # this boot only: the root is reused
is_active() { [ "$(prop ActiveState)" = active ]; }
sent_count() { journal | grep -c "msg=reminder.sent.*uid=under-systemd" || true; }

poll 60 is_active || fail "$UNIT did not become active: $(journal | tail -n 5)"
systemd_version=$(in_ct systemctl --version | head -n 1)
say "ok: $UNIT active under $systemd_version, STATUS: $(prop StatusText)"
journal | grep -q "msg=daemon.ready" || fail "no daemon.ready in the journal"
[ "$(prop User)" = calendar-svc ] || fail "not running as the dynamic user calendar-svc"

has_sent() { [ "$(sent_count)" -ge 1 ]; }
poll 150 has_sent || fail "the reminder was not sent: $(journal | tail -n 5)"
say "ok: reminder sent: $(journal | grep 'Check under systemd' | head -n 1)"
counts_sent() { prop StatusText | grep -q "1 sent"; }
poll 10 counts_sent || fail "STATUS does not count the send: $(prop StatusText)"
say "ok: STATUS follows the send: $(prop StatusText)"

in_journal() { journal | grep -q "$1"; }
in_ct systemctl reload "$UNIT" || fail "systemctl reload failed: $(journal | tail -n 5)"
poll 10 in_journal "msg=config.reloaded" || fail "no config.reloaded after reload"
say "ok: systemctl reload -> config.reloaded"

echo 'unknown_key = 1' >> "$ROOT/etc/calendar-svc/config.toml"
in_ct systemctl reload "$UNIT" || true
poll 10 in_journal "msg=config.reload_failed" || fail "a broken config was not refused on reload"
is_active || fail "a broken config on reload stopped the service"
cp "$ROOT/root/good-config.toml" "$ROOT/etc/calendar-svc/config.toml"
say "ok: broken config on reload refused, still active, STATUS: $(prop StatusText)"

in_ct systemctl kill -s KILL "$UNIT"
restarted_once() { [ "$(prop NRestarts)" = 1 ] && is_active; }
poll 30 restarted_once || fail "not restarted after kill -9"
[ "$(sent_count)" = 1 ] || fail "the reminder was sent again after the restart"
say "ok: kill -9 -> restarted (NRestarts=1), reminder still sent once"

if [ "$QUICK" = 0 ]; then
    in_ct systemctl kill -s STOP "$UNIT"
    restarted_twice() { [ "$(prop NRestarts)" = 2 ] && is_active; }
    poll 180 restarted_twice || fail "the watchdog did not restart a stopped daemon"
    journal | grep -q "Watchdog timeout" || say "note: restarted, but no 'Watchdog timeout' line"
    say "ok: SIGSTOP -> watchdog timeout -> restarted (NRestarts=2)"
fi

admin=$(in_ct /usr/local/sbin/calendar-svc-admin status)
echo "$admin" | grep -q "1 sent" || fail "calendar-svc-admin status: $admin"
say "ok: calendar-svc-admin status: $(echo "$admin" | sed -n 2p)"

in_ct systemctl stop "$UNIT"
[ "$(prop ExecMainStatus)" = 0 ] && [ "$(prop Result)" = success ] \
    || fail "stop: status $(prop ExecMainStatus), result $(prop Result)"
say "ok: systemctl stop -> exit 0"

printf '[reminders]\ngrace = "ten minutes"\n' >> "$ROOT/etc/calendar-svc/config.toml"
in_ct systemctl start "$UNIT" 2>/dev/null && fail "started with a broken config"
sleep 7  # longer than RestartSec=5s: a restart would have happened by now
[ "$(prop ExecMainStatus)" = 2 ] || fail "broken config: exit status $(prop ExecMainStatus), not 2"
[ "$(prop ActiveState)" = failed ] || fail "broken config: $(prop ActiveState), not failed"
exits=$(journal | grep -c "status=2/INVALIDARGUMENT" || true)
[ "$exits" = 1 ] || fail "a config error was restarted ($exits exits with status 2)"
cp "$ROOT/root/good-config.toml" "$ROOT/etc/calendar-svc/config.toml"
say "ok: broken config at start -> exit 2, not restarted ($(journal | grep 'error:' | tail -n 1))"

in_ct systemctl poweroff >/dev/null 2>&1 || true
say "all checks passed"
