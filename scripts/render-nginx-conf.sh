#!/usr/bin/env bash
# Renders deploy/nginx-syslog.conf for another address, syslog target or extra file log, following
# the marker contract documented at the top of that file (Tests/Support/NginxServer.swift
# implements the same rules in Swift).
#
# usage: scripts/render-nginx-conf.sh [--listen HOST:PORT] [--udp HOST:PORT | --no-udp]
#                                     [--unix PATH] [--file-log PATH] [--json] [--static DIR]
#                                     [CONF] > rendered.conf
#   --listen    address for the "# pixeld:listen" line        (default: as in the file)
#   --udp       UDP target for the "# pixeld:syslog-udp" line  (default: as in the file)
#   --no-udp    comment the UDP line out
#   --unix      enable the "# pixeld:syslog-unix" line with this socket path
#   --file-log  also log the same format to this file (with --json it keeps IP addresses and user
#               agents on disk: for tests and demos, not for a real site)
#   --json      log the recommended pixel_json format instead of pixel (what the analytics want)
#   --static    also serve /pixel.js and /demo.html from DIR (for a local demo)
#   CONF        input file (default: deploy/nginx-syslog.conf next to this script)
set -euo pipefail

listen="" udp="" no_udp=0 unix="" file_log="" format="pixel" static=""
conf="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/deploy/nginx-syslog.conf"
while [ $# -gt 0 ]; do
    case "$1" in
        --listen) listen="$2"; shift 2 ;;
        --udp) udp="$2"; shift 2 ;;
        --no-udp) no_udp=1; shift ;;
        --unix) unix="$2"; shift 2 ;;
        --file-log) file_log="$2"; shift 2 ;;
        --json) format="pixel_json"; shift ;;
        --static) static="$2"; shift 2 ;;
        -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}"; exit 0 ;;
        -*) echo "render-nginx-conf.sh: unknown option $1" >&2; exit 2 ;;
        *) conf="$1"; shift ;;
    esac
done

for marker in pixeld:listen pixeld:syslog-udp pixeld:syslog-unix; do
    count=$(grep -c -- "# ${marker}\$" "$conf" || true)
    if [ "$count" != 1 ]; then
        echo "render-nginx-conf.sh: $conf: expected one line ending in \"# ${marker}\", found ${count}" >&2
        exit 1
    fi
done

awk -v listen="$listen" -v udp="$udp" -v no_udp="$no_udp" -v unix="$unix" -v file_log="$file_log" \
    -v format="$format" -v static="$static" '
function indent_of(line) { match(line, /^ */); return substr(line, 1, RLENGTH) }
/# pixeld:listen$/ {
    if (listen != "") sub(/listen [^;]*;/, "listen " listen ";")
}
/# pixeld:syslog-(udp|unix)$/ { sub(/ pixel;  # pixeld:syslog-/, " " format ";  # pixeld:syslog-") }
/# pixeld:syslog-udp$/ {
    udp_indent = indent_of($0)
    if (no_udp == "1") $0 = udp_indent "# " substr($0, length(udp_indent) + 1)
    else if (udp != "") sub(/server=[^,]*/, "server=" udp)
}
/# pixeld:syslog-unix$/ {
    if (unix != "") {
        ind = indent_of($0)
        body = substr($0, length(ind) + 1)
        sub(/^#+ */, "", body)
        sub(/server=unix:[^,]*/, "server=unix:" unix, body)
        $0 = ind body
    }
    print
    if (file_log != "") print udp_indent "access_log " file_log " " format ";  # added by render-nginx-conf.sh"
    next
}
/^    location \/ \{$/ && static != "" {
    print "    location = /pixel.js { root " static "; default_type application/javascript; }  # added by render-nginx-conf.sh"
    print "    location = /demo.html { root " static "; default_type text/html; }  # added by render-nginx-conf.sh"
}
{ print }
' "$conf"
