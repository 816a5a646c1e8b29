#!/usr/bin/env bash
# Runs the whole pipeline on this machine, on private loopback ports, until Ctrl-C:
#   nginx (deploy/nginx-syslog.conf with the pixel_json format, http 127.0.0.1:18080, also serving
#   deploy/pixel.js and a demo page) --syslog UDP 127.0.0.1:15514--> pixeld ingest (also unix socket
#   .run/pixeld.sock) --> redis-server 127.0.0.1:16379 --> pixeld consume pixel --site localhost
#   --site example.com --archive .run/archive --> pixeld serve --archive .run/archive (dashboard
#   http://127.0.0.1:18088, rows filter)
# Everything lives under ./.run (override with PIXELD_RUN_DIR); logs are .run/*.log.
# Ctrl-C (SIGINT), SIGTERM or SIGHUP stops every process this script started, by PID, front to back
# (nginx, pixeld ingest, pixeld consume, pixeld serve, redis-server last), prints "run-local: stopped"
# and exits 0. The processes run in sessions of their own (setsid), so a terminal's Ctrl-C reaches only
# this script, which then stops them in that order (a second Ctrl-C SIGKILLs what is still running).
# If one of them exits on its own, the rest are stopped and the script exits 1, naming it.
# Readiness is checked without sending a pixel hit (nothing lands in the archive): redis PING, the
# "ready" log lines of pixeld ingest and consume, nginx serving /pixel.js, serve's /healthz.
#
# usage: scripts/run-local.sh [--check]
#   --check   start everything, fire one pixel, wait until the report and the dashboard API count
#             it, stop, exit 0 (a smoke test)
# env: PIXELD_BIN (default: the debug build), PIXELD_RUN_DIR, REDIS_PORT, SYSLOG_PORT, HTTP_PORT,
#      DASHBOARD_PORT
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
run="${PIXELD_RUN_DIR:-$root/.run}"
redis_port="${REDIS_PORT:-16379}"
syslog_port="${SYSLOG_PORT:-15514}"
http_port="${HTTP_PORT:-18080}"
dashboard_port="${DASHBOARD_PORT:-18088}"
check=0
[ "${1:-}" = "--check" ] && check=1

[ -d /opt/swift/usr/bin ] && PATH="/opt/swift/usr/bin:$PATH"
PATH="$PATH:/usr/sbin:/sbin"
pixeld="${PIXELD_BIN:-$(cd "$root" && swift build --show-bin-path)/pixeld}"
for tool in redis-server redis-cli nginx curl; do
    command -v "$tool" >/dev/null || { echo "run-local: $tool not found; run 'make deps-run' (or ./dev run)" >&2; exit 1; }
done
[ -x "$pixeld" ] || { echo "run-local: $pixeld not found; run 'make build'" >&2; exit 1; }
# A unix socket's path holds at most 107 bytes (sun_path); a deep checkout would fail to bind.
[ ${#run} -le 90 ] || { echo "run-local: $run is too long for the unix socket's path (107 bytes at most); set PIXELD_RUN_DIR to a shorter directory" >&2; exit 1; }

# udp_port_in_use PORT: whether any UDP socket on this machine (any address, IPv4 or IPv6) has PORT.
udp_port_in_use() {
    local hex
    hex="$(printf '%04X' "$1")"
    awk -v port="$hex" 'FNR > 1 { n = split($2, local_address, ":"); if (local_address[n] == port) found = 1 }
        END { exit !found }' /proc/net/udp /proc/net/udp6 2>/dev/null
}
# in_use PROTOCOL PORT WHAT VARIABLE: the line that says which port is taken, and exit 1.
in_use() {
    echo "run-local: $1 127.0.0.1:$2 ($3) is already in use (an earlier run still going?" \
        "see: ss -l${1:0:1}np 'sport = :$2'); stop it or set $4 to another port" >&2
    exit 1
}
tcp_port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
tcp_port_in_use "$redis_port" && in_use tcp "$redis_port" redis-server REDIS_PORT
udp_port_in_use "$syslog_port" && in_use udp "$syslog_port" "syslog for pixeld ingest" SYSLOG_PORT
tcp_port_in_use "$http_port" && in_use tcp "$http_port" nginx HTTP_PORT
tcp_port_in_use "$dashboard_port" && in_use tcp "$dashboard_port" "pixeld serve" DASHBOARD_PORT

mkdir -p "$run/redis" "$run/nginx" "$run/archive"
# The demo site in a directory of its own outside the checkout: nginx's workers run as nobody, who
# may not enter the checkout's parents (a clone under /root, whose mode is 0700 on Debian).
site=$(mktemp -d "${TMPDIR:-/tmp}/pixeld-run-site.XXXXXX")
trap 'rm -rf "$site"' EXIT  # (until stop_all takes over below)
chmod 755 "$site"
cp "$root/deploy/pixel.js" "$site/pixel.js"
cat >"$site/demo.html" <<'HTML'
<!doctype html>
<html><head><meta charset="utf-8"><title>pixeld demo page</title>
<script defer src="/pixel.js"></script></head>
<body><h1>pixeld demo page</h1><p>Loading this page sent a pageview to pixeld. <a href="?again">Again</a>.</p>
<noscript><img src="/pixel.gif?e=pageview&amp;u=http%3A%2F%2Flocalhost%2Fdemo.html" alt="" width="1" height="1"></noscript>
</body></html>
HTML
chmod 644 "$site/pixel.js" "$site/demo.html"
redis_url="redis://127.0.0.1:$redis_port/0"

# PIDs of what we started, by name, and the order to stop them in: the front
# door first so that no new hit comes in, then each stage after the one feeding it (ingest flushes to
# redis before consume stops), redis-server last so that no pixeld process sees it go away.
declare -A pid_of=()
stop_order=(nginx "pixeld ingest" "pixeld consume" "pixeld serve" redis-server)
stopping=0
hurry=0
# shellcheck disable=SC2317  # called from the traps below
stop_all() {
    [ "$stopping" = 0 ] || return 0
    stopping=1
    set +e  # keep stopping even if a line cannot be printed (a closed terminal)
    trap 'hurry=1' INT TERM HUP  # a second Ctrl-C: SIGKILL what is still running
    local name pid
    for name in "${stop_order[@]}"; do
        pid="${pid_of[$name]:-}"
        [ -n "$pid" ] || continue
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 1 100); do
                kill -0 "$pid" 2>/dev/null || break
                [ "$hurry" = 0 ] || break
                sleep 0.1
            done
            if kill -0 "$pid" 2>/dev/null; then
                [ "$hurry" = 1 ] || echo "run-local: $name (pid $pid) ignored SIGTERM for 10 s; SIGKILL" >&2
                kill -KILL "$pid" 2>/dev/null || true
            fi
        fi
        wait "$pid" 2>/dev/null || true
    done
    [ -z "${site:-}" ] || rm -rf "$site"
    echo "run-local: stopped"
}
# Ctrl-C, SIGTERM, SIGHUP: what the user asked for, so exit 0. Any other exit (an error, a process
# that died, the end of --check) keeps its own status; the EXIT trap stops the rest either way.
trap 'stop_all; exit 0' INT TERM HUP
trap stop_all EXIT

# start NAME COMMAND...: runs COMMAND in the background in a session of its own, so that a terminal's
# Ctrl-C (SIGINT to the whole foreground process group) reaches this script only and not the servers,
# which this script then stops in order. $! is COMMAND's own PID: setsid(1) execs it directly, as a
# child of a script is never a process group leader.
start() {
    local name="$1"
    shift
    setsid "$@" &
    pid_of[$name]=$!
}

# wait_for DESCRIPTION PID COMMAND...: polls COMMAND for at most 10 s while PID lives.
wait_for() {
    local what="$1" pid="$2"
    shift 2
    for _ in $(seq 1 100); do
        "$@" >/dev/null 2>&1 && return 0
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "run-local: $what did not come up; see $run/*.log" >&2
    exit 1
}

start redis-server redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly yes \
    --dir "$run/redis" --daemonize no --logfile "$run/redis.log"
wait_for redis-server "${pid_of[redis-server]}" redis-cli -p "$redis_port" ping

: >"$run/ingest.log"
start "pixeld ingest" "$pixeld" ingest --udp "127.0.0.1:$syslog_port" --unix "$run/pixeld.sock" \
    --redis "$redis_url" 2>>"$run/ingest.log"
wait_for "pixeld ingest" "${pid_of[pixeld ingest]}" grep -q "ingest ready" "$run/ingest.log"

"$root/scripts/render-nginx-conf.sh" --listen "127.0.0.1:$http_port" --udp "127.0.0.1:$syslog_port" \
    --json --static "$site" "$root/deploy/nginx-syslog.conf" >"$run/nginx/pixel.conf"
cat >"$run/nginx/nginx.conf" <<CONF
# Written by scripts/run-local.sh.
daemon off;
master_process on;
worker_processes 1;
pid $run/nginx/nginx.pid;
error_log $run/nginx.log notice;
events { worker_connections 1024; }
http {
    client_body_temp_path $run/nginx/client_body_temp;
    proxy_temp_path $run/nginx/proxy_temp;
    fastcgi_temp_path $run/nginx/fastcgi_temp;
    uwsgi_temp_path $run/nginx/uwsgi_temp;
    scgi_temp_path $run/nginx/scgi_temp;
    access_log off;
    include $run/nginx/pixel.conf;
}
CONF
nginx_args=(-p "$run/nginx/" -e "$run/nginx.log" -c "$run/nginx/nginx.conf")
nginx -t -q "${nginx_args[@]}"
start nginx nginx "${nginx_args[@]}"
# A static file, not pixel.gif: a probe hit would reach the archive as a dropped event.
wait_for nginx "${pid_of[nginx]}" curl -sf -o /dev/null "http://127.0.0.1:$http_port/pixel.js"

: >"$run/consume.log"
start "pixeld consume" "$pixeld" consume pixel --redis "$redis_url" --site localhost --site example.com \
    --archive "$run/archive" --consumer-id local 2>>"$run/consume.log"
wait_for "pixeld consume" "${pid_of[pixeld consume]}" grep -q "consume ready" "$run/consume.log"

: >"$run/serve.log"
start "pixeld serve" "$pixeld" serve --redis "$redis_url" --listen "127.0.0.1:$dashboard_port" \
    --archive "$run/archive" 2>>"$run/serve.log"
wait_for "pixeld serve" "${pid_of[pixeld serve]}" curl -sf -o /dev/null "http://127.0.0.1:$dashboard_port/healthz"

browser="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"
cat <<INFO
pixeld is running: redis 127.0.0.1:$redis_port, syslog udp 127.0.0.1:$syslog_port and unix $run/pixeld.sock,
nginx http://127.0.0.1:$http_port, dashboard http://127.0.0.1:$dashboard_port/

Send a pageview — open http://localhost:$http_port/demo.html in a browser (it loads pixel.js), or:
  curl -A '$browser' 'http://127.0.0.1:$http_port/pixel.gif?e=pageview&u=https%3A%2F%2Fexample.com%2Fhello&r=https%3A%2F%2Fnews.ycombinator.com%2F'
(curl's own user agent is a bot: such hits are dropped, with reason, as they should be.)
See it:
  http://127.0.0.1:$dashboard_port/                                  the dashboard
  $pixeld report --redis $redis_url --site example.com
  curl -N 'http://127.0.0.1:$dashboard_port/api/live?site=example.com'  the live feed
  redis-cli -p $redis_port --scan --pattern 'pixeld:*'                 the rollups
  jq . $run/archive/*.jsonl                                          the archive
Logs: $run/{redis,ingest,nginx,consume,serve}.log

Ctrl-C stops everything.
INFO

if [ "$check" = 1 ]; then
    curl -sf -o /dev/null -A "$browser" \
        "http://127.0.0.1:$http_port/pixel.gif?e=pageview&u=https%3A%2F%2Fexample.com%2Fcheck-$$&r=https%3A%2F%2Fnews.ycombinator.com%2F"
    for _ in $(seq 1 100); do
        curl -sf "http://127.0.0.1:$dashboard_port/api/breakdown?site=example.com&dimension=pages" | grep -q "/check-$$" && break
        sleep 0.1
    done
    if curl -sf "http://127.0.0.1:$dashboard_port/api/breakdown?site=example.com&dimension=pages" | grep -q "/check-$$" &&
        "$pixeld" report --redis "$redis_url" --site example.com --json | grep -q "/check-$$"; then
        echo "run-local --check: ok (the pageview is in pixeld report and in the dashboard API)"
        exit 0
    fi
    echo "run-local --check: the pageview did not reach the report within 10 s; see $run/*.log" >&2
    exit 1
fi

# Until Ctrl-C/SIGTERM/SIGHUP (the trap stops everything and exits 0), or until one of the processes
# exits on its own: then name it, stop the rest and exit 1.
set +e
exited=""
wait -n -p exited "${pid_of[@]}" 2>/dev/null  # (not bash's own "Killed setsid ..." line: ours names it)
status=$?
name="a process"
for candidate in "${!pid_of[@]}"; do
    [ "${pid_of[$candidate]}" = "$exited" ] && name="$candidate"
done
how="with status $status"
[ "$status" -gt 128 ] && how="killed by SIG$(kill -l "$((status - 128))" 2>/dev/null || echo "$((status - 128))")"
echo "run-local: $name (pid ${exited:-?}) exited on its own ($how); stopping the rest, see $run/*.log" >&2
exit 1
