#!/usr/bin/env bash
# Regenerates the seed corpora in Fuzz/corpus/<target>/ from real lines: the captures in
# Tests/SyslogIngestTests/Fixtures.swift (nginx 1.22.1, util-linux logger 2.38.1, CPython SysLogHandler,
# rsyslog 8.2302.0, RFC 5424 §6.5) and Tests/PixelEventsTests/NginxFixtures.swift (nginx escape=json and
# default-escaped `$msec,$args` lines), plus a few hand-made edge cases (marked "edge-").
# The files are committed; run this only to change the seeds. File names are stable; contents are raw bytes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

seed() { # seed TARGET NAME PRINTF-FORMAT (printf escapes: \n \x22 …; no other arguments)
    mkdir -p "corpus/$1"
    # shellcheck disable=SC2059
    printf "$3" >"corpus/$1/$2"
}

rm -rf corpus/syslog-route corpus/stream-framer corpus/pixel-decode

# ---------------------------------------------------------------- syslog-route (one datagram per file)
S=syslog-route
seed $S nginx-udp '<158>Nov 22 12:38:13 vm pixel: 1795351093.220,e=pageview&u=https%%3A%%2F%%2Fex.com%%2F'
seed $S nginx-brief '<158>Nov 22 12:38:13 vm pixel: 1763805600.001,e=pageview&u=%%2F'
seed $S nginx-nohostname '<158>Nov 22 12:38:13 pixel: 1795351093.220,e=pageview&u=https%%3A%%2F%%2Fex.com%%2F'
seed $S nginx-utf8-args '<158>Nov 22 12:38:13 vm pixel: 1795351093.230,e=click&u=https%%3A%%2F%%2Fex.com%%2F%%C3%%A9t%%C3%%A9&p=%%22q%%22%%20x'
seed $S nginx-error-log '<155>Nov 22 12:38:13 vm pixelerr: 2026/11/22 12:38:13 [error] 4700#4700: *3 open() "/tmp/pcap/ngx/nonexistent/missing" failed (2: No such file or directory), client: 127.0.0.1, server: , request: "GET /missing HTTP/1.1", host: "127.0.0.1:18081"'
seed $S nginx-escape-json '<158>Nov 22 12:38:19 vm pixel: {"msec":"1795351099.776","id":"dbe9acdfa5e020d63bbc91c18342294c","args":"e=pageview&u=https%%3A%%2F%%2Fex.com%%2F","ua":"Mozilla/5.0 \\"x\\" \xc3\xa9","ref":"https://ref.example/?a=1"}'
seed $S nginx-spaces '<158>Nov 22 12:38:19 vm pixel:   e=pageview&u=https%%3A%%2F%%2Fex.com%%2F '
seed $S nginx-padded-day '<158>Nov  2 09:05:09 vm pixel: 1793610309.120,e=pageview&u=https%%3A%%2F%%2Fex.com%%2F'
seed $S nginx-padded-day-nohostname '<158>Nov  2 09:05:09 pixel: 1793610309.120,e=pageview&u=https%%3A%%2F%%2Fex.com%%2F'
seed $S logger-3164 '<158>Nov 22 12:38:22 vm pixel: hello'
seed $S logger-3164-pid '<158>Nov 22 12:38:22 vm pixel[4809]: hello pid'
seed $S logger-unix-default '<158>Nov 22 12:38:22 pixel: hello unix default'
seed $S logger-3164-utf8 '<158>Nov 22 12:38:26 vm pixel:   two leading spaces, "quotes", \xc3\xa9 \xc3\xbc \xe6\x97\xa5\xe6\x9c\xac'
seed $S logger-5424 '<158>1 2026-11-22T12:38:22.942276+00:00 vm pixel - - [timeQuality tzKnown="1" isSynced="0"] hello 5424'
seed $S logger-5424-notq-nohost '<157>1 2026-11-22T12:38:22.945633+00:00 - pixel - - - hello notq nohost'
seed $S logger-5424-notime '<158>1 - vm pixel - - - hello notime'
seed $S logger-5424-sd '<158>1 2026-11-22T12:38:26.486989+00:00 vm pixel - ID47 [timeQuality tzKnown="1" isSynced="0"][exampleSDID@32473 iut="3" eventSource="Application"] hello sd'
seed $S logger-5424-sd-escapes '<158>1 2026-11-22T12:38:26.489036+00:00 vm pixel - - [timeQuality tzKnown="1" isSynced="0"][x@1 a="q\\"b\\]c\\\\d"] esc sd'
seed $S logger-5424-msgid '<158>1 2026-11-22T12:38:26.492810+00:00 vm pixel - M1 - with msgid'
seed $S logger-5424-pid '<158>1 2026-11-22T12:38:26.494707+00:00 vm pixel 4838 - [timeQuality tzKnown="1" isSynced="0"] with pid'
seed $S python-udp '<158>pixel: hello from python\0'
seed $S python-utf8 '<156>pixel: e=pageview&u=https%%3A%%2F%%2Fex.com%%2F \xc3\xa9\0'
seed $S python-no-tag '<158>hello world\0'
seed $S rsyslog-forward-3339 '<158>2026-11-22T12:38:43+00:00 vm pixel: via rsyslog 1795351093.220,e=pageview'
seed $S rsyslog-protocol23-3164 '<158>1 2026-11-22T12:38:43+00:00 vm pixel - - -  via rsyslog 1795351093.220,e=pageview\n'
seed $S rsyslog-forward-5424-notag '<158>2026-11-22T12:38:50.278946+00:00 vm pixel via rsyslog 5424'
seed $S rsyslog-protocol23-5424 '<158>1 2026-11-22T12:38:50.278946+00:00 vm pixel - - [timeQuality tzKnown="1" isSynced="0"] via rsyslog 5424\n'
seed $S rfc5424-example1-bom '<34>1 2003-10-11T22:14:15.003Z mymachine.example.com su - ID47 - \xef\xbb\xbf'"'"'su root'"'"' failed for lonvick on /dev/pts/8'
seed $S rfc5424-example2 '<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %%%% It'"'"'s time to make the do-nuts.'
seed $S rfc5424-example3 '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] \xef\xbb\xbfAn application event log entry...'
seed $S rfc5424-example4 '<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"][examplePriority@32473 class="high"]'
seed $S edge-empty ''
seed $S edge-newlines '\r\n\0'
seed $S edge-pri-only '<191>'
seed $S edge-pri-192 '<192>x: y'
seed $S edge-5424-nil-appname '<158>1 - - - - - -'
seed $S edge-5424-unterminated-sd '<158>1 - h a - - [x a="\\'
seed $S edge-3164-colon-only '<158>Nov 22 12:38:13 vm : msg'
seed $S edge-3164-pid-unclosed '<158>pixel[12 x: msg'

# ---------------------------------------------------------------- stream-framer (2 config bytes + stream)
F=stream-framer
# config byte 0: bits 0-2 max (1 2 5 16 64 300 4096 65535);
# byte 1 bits 0-1: chunk sizes (1, 1-8, 1-300, 1-70000)
seed $F lf-nginx-whole '\x06\x03<158>Nov 22 12:38:13 vm pixel: 1795351093.220,e=pageview\n<158>Nov 22 12:38:13 vm pixel: 1795351093.230,e=click\n'
seed $F lf-nginx-bytewise '\x06\x00<158>Nov 22 12:38:13 vm pixel: 1795351093.220,e=pageview\n\n\n<158>pixel: hi\n<158>partial'
seed $F lf-oversize-max16 '\x03\x01<158>pixel: this line is longer than sixteen bytes\n<158>a: ok\n<158>another very long line without end'
seed $F lf-5424-max300 '\x05\x02<158>1 2026-11-22T12:38:22.942276+00:00 vm pixel - - [timeQuality tzKnown="1" isSynced="0"] hello 5424\n<158>1 - vm pixel - - - hello notime\n'
seed $F octet-rsyslog '\x06\x02101 <158>1 2026-11-22T12:38:22.942276+00:00 vm pixel - - [timeQuality tzKnown="1" isSynced="0"] hello 5424 x\n36 <158>1 - vm pixel - - - hello notime'
seed $F octet-small '\x06\x0111 <158>pixel: a5 <1>ab3 <2>'
seed $F octet-oversize-max5 '\x02\x0111 <158>pixel: a3 <1>9 <2>abcdef'
seed $F octet-zero-length '\x06\x000 <158>a'
seed $F octet-long-length '\x07\x011234567890 x'
seed $F octet-small-max4096 '\x06\x0312 <158>pixel: 1'
seed $F lf-max65535 '\x07\x02<158>pixel: 1795351093.220,e=pageview&u=%%2F\n'
seed $F malformed-first-byte '\x06\x01hello\n'
# Regression (fixed in 305d229): nextLine() recursed once per empty line; 4,000 are enough to overflow the
# stack of the -Onone + ASan build (FUZZ_FLAVOR=debug). Kept under -max_len=4096 so libFuzzer loads it whole.
seed $F regression-newline-recursion "\x07\x03<158>a: x\n$(head -c 4000 /dev/zero | tr '\0' '\n' | sed 's/$/\\n/' | tr -d '\n')<158>a: y\n"

# ---------------------------------------------------------------- pixel-decode (one Redis value per file)
P=pixel-decode
seed $P json-plain '{"ts":1795351090.287,"rid":"e05ce8a6719199b13e14164e663f8c20","args":"foo=bar&baz=1","ip":"127.0.0.1","ua":"curl/7.88.1","ref":"","dnt":"","gpc":""}'
seed $P classic-plain '1795351090.287,foo=bar&baz=1'
seed $P json-quotes-backslash '{"ts":1795351090.297,"rid":"940f63d2e4d90adf2868db07d5080d2a","args":"e=pageview&u=https%%3A%%2F%%2Fex.com%%2F&w=1280","ip":"127.0.0.1","ua":"Mozilla/5.0 \\"quoted\\" back\\\\slash","ref":"https://google.com/","dnt":"1","gpc":"1"}'
seed $P classic-brief '1763805600.001,e=pageview&u=%%2F'
seed $P json-controls '{"ts":1795351090.307,"rid":"352701036bf9db937ae36d9fe1ca5fec","args":"e=click&p=%%E2%%9C%%93+ok&x=%%zz&k=1&k=2&flag","ip":"127.0.0.1","ua":"tab\\there\\u0001ctl\\u001F","ref":"","dnt":"","gpc":""}'
seed $P classic-controls '1795351090.307,e=click&p=%%E2%%9C%%93+ok&x=%%zz&k=1&k=2&flag'
seed $P json-raw-bytes '{"ts":1795351090.317,"rid":"92d9558c163b207e8e114043a71f8d4c","args":"q=\\"quo\\\\te\\"","ip":"127.0.0.1","ua":"caf\xc3\xa9 \xff\xfe raw","ref":"","dnt":"","gpc":""}'
seed $P classic-x-escapes '1795351090.317,q=\\x22quo\\x5Cte\\x22'
seed $P json-no-args '{"ts":1795351090.327,"rid":"b4b22741cd17f9936850bf49a62bac69","args":"","ip":"127.0.0.1","ua":"curl/7.88.1","ref":"","dnt":"","gpc":""}'
seed $P classic-no-args '1795351090.327,-'
seed $P json-percent-newline '{"ts":1795351090.336,"rid":"afd6b28f31df503a8fae4d3e1d4112df","args":"a=%%22%%5C%%0A&b=%%C3%%A9","ip":"127.0.0.1","ua":"","ref":"","dnt":"","gpc":""}'
seed $P json-4byte-del '{"ts":1795351090.346,"rid":"8fd7266e55845997e0a43b8fed700bfd","args":"u=%%F0%%9F%%98%%80","ip":"127.0.0.1","ua":"\x7f del","ref":"","dnt":"","gpc":""}'
seed $P json-raw-utf8-args '{"ts":1795351096.529,"rid":"e40ee840540123142143f642afb47cf2","args":"t=caf\xc3\xa9&bad=\xff","ip":"127.0.0.1","ua":"curl/7.88.1","ref":"","dnt":"","gpc":""}'
seed $P classic-raw-utf8-args '1795351096.529,t=caf\\xC3\\xA9&bad=\\xFF'
seed $P json-nul-esc '{"ts":1795351099.258,"rid":"82ba5f78fba11ec7a96cb69718e893ba","args":"%%00=1&k=%%ZZ%%4","ip":"127.0.0.1","ua":"\xe2\x9c\x93 a\\u001B[1m\\b\\f","ref":"","dnt":"","gpc":""}'
seed $P classic-nul-esc '1795351099.258,%%00=1&k=%%ZZ%%4'
seed $P json-msec-string '{"ts":"1795351099.776","id":"dbe9acdfa5e020d63bbc91c18342294c","args":"e=pageview&u=https%%3A%%2F%%2Fex.com%%2F","ua":"Mozilla/5.0 \\"x\\" \xc3\xa9","ref":"https://ref.example/?a=1"}\n'
seed $P edge-json-surrogates '{"ts":1,"a":"\\ud83d\\ude00 \\ud800 \\udc00x \\u00e9","args":null,"b":true,"c":false,"d":null,"e":-1.5e+3}'
seed $P edge-json-x-escapes '\xef\xbb\xbf {"ts":"007.50","args":"a=\\x41&a=2&a=3","\\x22k":"\\q\\x4"}\r\n\0'
seed $P edge-many-args '1.5,a=1&b=2&c=3&d=4&e=5&f=6&g=7&h=8&i=9&j=10&k=11&l=12&m=13&n=14&o=15&p=16&q=17&a=18&%%FF=x&%%FE=y'
seed $P edge-long-ts '123456789012345678901234567890.1,x'
seed $P edge-empty ''
# Regression (fixed in 305d229): two member names that become U+FFFD only after decoding were both kept.
seed $P regression-duplicate-fffd-key '{"ts":1,"\xff":0,"\xfe":0}'
seed $P regression-duplicate-fffd-key-escaped '{"ts":1,"\\ufffd":0,"\xff":0}'
# Regression (fixed in f69aa44): precomposed and decomposed é are two argument names, not one.
seed $P regression-canonically-equivalent-names '1,%%C3%%A9=1&e\xcc\x81=2&e%%CC%%81=3'
