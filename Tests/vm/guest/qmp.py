#!/usr/bin/env python3
"""The suite's QMP client (standard library only).
usage: qmp.py SOCKET COMMAND [key=value ...] [--wait EVENT] [--timeout S]
Runs one QMP command (values that look like integers or true/false are sent as
such) and prints its JSON answer; with --wait, then waits for EVENT (up to
--timeout seconds, default 30) and prints it. Exit 1 on a QMP error or timeout."""
import json, socket, sys, time

def main(argv):
    if len(argv) < 3:
        sys.exit(__doc__)
    path, command, rest = argv[1], argv[2], argv[3:]
    wait, timeout, args = None, 30.0, {}
    i = 0
    while i < len(rest):
        if rest[i] == '--wait':
            wait = rest[i + 1]; i += 2; continue
        if rest[i] == '--timeout':
            timeout = float(rest[i + 1]); i += 2; continue
        key, _, value = rest[i].partition('=')
        if value in ('true', 'false'):
            args[key] = value == 'true'
        elif value.isdigit():
            args[key] = int(value)
        else:
            args[key] = value
        i += 1
    s = socket.socket(socket.AF_UNIX)
    s.connect(path)
    f = s.makefile('rw')
    json.loads(f.readline())                       # greeting
    def send(obj):
        f.write(json.dumps(obj) + '\n'); f.flush()
    send({'execute': 'qmp_capabilities'})
    pending = []
    def answer():
        while True:
            msg = json.loads(f.readline())
            if 'event' in msg:
                pending.append(msg); continue
            return msg
    answer()
    send({'execute': command, 'arguments': args} if args else {'execute': command})
    reply = answer()
    print(json.dumps(reply))
    if 'error' in reply:
        return 1
    if wait:
        deadline = time.time() + timeout
        while True:
            for msg in pending:
                if msg['event'] == wait:
                    print(json.dumps(msg)); return 0
            pending.clear()
            left = deadline - time.time()
            if left <= 0:
                print(f'qmp.py: no {wait} event within {timeout}s', file=sys.stderr); return 1
            s.settimeout(left)
            try:
                pending.append(json.loads(f.readline()))
            except (socket.timeout, ValueError):
                print(f'qmp.py: no {wait} event within {timeout}s', file=sys.stderr); return 1
    return 0

sys.exit(main(sys.argv))
