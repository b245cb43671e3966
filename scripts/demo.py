#!/usr/bin/python3
"""The smtp-relay demo: a complete relay on loopback high ports under ./demo/ (see scripts/demo).

    demo.py start --build DIR --dir DEMO   private Postfix relay (configured by relay-admin
                                           setup, relaydb logins, relay-milter when built),
                                           a local upstream that requires TLS + AUTH and
                                           stores mail in DEMO/lab/upstream/Maildir
    demo.py status --dir DEMO
    demo.py stop --dir DEMO                stops everything by pid, removes DEMO

With UPSTREAM=HOST:PORT in the environment the relay sends to that smarthost instead; its
login comes on stdin, two lines: user, then password (never argv). Stdlib only; uses
tests/e2e/relaylab.py for the Postfix instances.
"""

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'tests', 'e2e'))
import relaylab  # noqa: E402

SENDER = 'demo@demo.example'
RCPT = 'someone@example.net'


def _alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def _state_path(demo):
    return os.path.join(demo, 'state.json')


def _load(demo):
    try:
        with open(_state_path(demo)) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def _postfix_traversable(path):
    """True if user postfix can reach `path` (smtpd opens the users database as postfix)."""
    return subprocess.run(['runuser', '-u', 'postfix', '--', 'test', '-x', path],
                          capture_output=True).returncode == 0


def start(args):
    demo = os.path.abspath(args.dir)
    st = _load(demo)
    if st and any(_alive(pid) for _, pid in st['instances']):
        print('the demo is already running; `scripts/demo stop` first')
        return 1
    if os.path.lexists(demo):
        _teardown(demo, quiet=True)
    os.makedirs(demo)
    os.chmod(demo, 0o755)
    lab_dir = os.path.join(demo, 'lab')
    if not _postfix_traversable(demo):
        # e.g. a clone under /root (0700): Postfix's user cannot reach it, so the
        # instances live under /var/tmp and demo/lab points there
        real = os.path.join('/var/tmp', 'smtp-relay-demo-' + secrets.token_hex(4))
        os.symlink(real, lab_dir)
        lab_dir = real
    external = os.environ.get('UPSTREAM')
    lab = relaylab.Lab(build_root=os.path.abspath(args.build), dir=lab_dir, keep=True)
    try:
        if external:
            host, _, port = external.rpartition(':')
            if not host or not port.isdigit():
                print('UPSTREAM must be HOST:PORT, e.g. smtp.mailgun.org:587')
                return 2
            lines = sys.stdin.read().splitlines()
            if len(lines) < 2 or not lines[0] or not lines[1]:
                print('UPSTREAM: give the upstream login on stdin: user on the first line, '
                      'password on the second')
                return 2
            up = relaylab.ExternalUpstream(host.strip('[]'), int(port), lines[0], lines[1])
        else:
            up = lab.upstream()
        use_milter = os.access(os.path.join(lab.build_root, 'milter', 'relay-milter'),
                               os.X_OK)
        relay = lab.relay(up, cert='generate', milter=use_milter, start=False)
        password = secrets.token_urlsafe(24)            # 192 bits
        relay.add_user('demo', password)
        if use_milter:
            # relay-milter lets a login send only as its allowed senders
            relay.admin('sender', 'add', 'demo', '@demo.example')
        relay.start()
        pwfile = os.path.join(demo, 'demo-password')
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write(password + '\n')
        state = {
            'instances': lab.detach(),
            'relay_port': relay.port, 'relay_tls_port': relay.tls_port,
            'cert': relay.cert, 'password_file': pwfile, 'login': 'demo',
            'maildir': None if external else up.maildir,
            'upstream': external or '[localhost]:%d' % up.port,
            'relay_log': relay.maillog,
            'upstream_log': None if external else up.maillog,
            'milter': relay.milter.sock if relay.milter else None,
            'milter_log': relay.milter.logfile if relay.milter else None,
            # what `relay-admin` needs to look at this relay; real paths: the state
            # database refuses a path through a symbolic link (demo/lab may be one)
            'relay_admin': os.path.join(lab.build_root, 'admin', 'relay-admin'),
            'db': os.path.realpath(relay.db),
            'state_db': os.path.realpath(relay.milter.state_db) if relay.milter else None,
        }
    except BaseException:
        lab.stop()
        raise
    with open(_state_path(demo), 'w') as f:
        json.dump(state, f, indent=1)
    _print_summary(demo, state)
    return 0


def _send_command(demo, st):
    script = (
        'import smtplib, ssl\n'
        'ctx = ssl.create_default_context(cafile="{cert}")\n'
        'pw = open("{pwfile}").read().strip()\n'
        'with smtplib.SMTP("localhost", {port}) as s:\n'
        '    s.starttls(context=ctx)\n'
        '    s.login("demo", pw)\n'
        '    s.sendmail("{frm}", ["{to}"], "From: {frm}\\r\\nTo: {to}\\r\\n"\n'
        '               "Subject: hello from the smtp-relay demo\\r\\n\\r\\nIt works.\\r\\n")\n'
        'print("sent")\n').format(cert=st['cert'], pwfile=st['password_file'],
                                  port=st['relay_port'], frm=SENDER, to=RCPT)
    return "/usr/bin/python3 - <<'EOF'\n" + script + "EOF"


def _swaks_command(st):
    return ('swaks --server localhost:%d --tls --tls-verify --tls-ca-path %s --auth PLAIN '
            '--auth-user demo --from %s --to %s < %s' % (
                st['relay_port'], st['cert'], SENDER, RCPT, st['password_file']))


def _admin_command(st):
    """A shell line that sets A to relay-admin with the demo's databases."""
    if not st.get('relay_admin'):       # a demo started by an older version
        return 'A="build-demo/admin/relay-admin --db demo/lab/relay/db/users.db"'
    cmd = '%s --db %s' % (st['relay_admin'], st['db'])
    if st.get('state_db'):
        cmd += ' --state-db %s' % st['state_db']
    return 'A="%s"' % cmd


def _print_summary(demo, st):
    print('')
    print('smtp-relay demo is running (everything on 127.0.0.1, under %s)' % demo)
    print('')
    print('  relay, STARTTLS:     localhost:%d   (TLS and AUTH required)' % st['relay_port'])
    print('  relay, implicit TLS: localhost:%d' % st['relay_tls_port'])
    print('  login:               demo')
    print('  password:            %s   (also in %s)' % (
        open(st['password_file']).read().strip(), st['password_file']))
    print('  relay certificate:   %s (self-signed, for "localhost")' % st['cert'])
    print('  upstream:            %s%s' % (st['upstream'], '' if st['maildir'] else
                                            ' (your smarthost)'))
    print('  relay-milter:        %s' % (st['milter'] or 'not used (not built)'))
    print('')
    print('Send a test message (paste this):')
    print('')
    print(_send_command(demo, st))
    print('')
    if st['maildir']:
        print('It appears in the upstream maildir within a second or two:')
        print('  ls %s/new/' % st['maildir'])
    else:
        print('It goes to %s for %s; see the relay log.' % (st['upstream'], RCPT))
    print('Logs: %s' % ', '.join(x for x in (st['relay_log'], st['upstream_log'],
                                             st['milter_log']) if x))
    print('')
    print('The same with swaks (it reads the password on stdin, never from the command line):')
    print(_swaks_command(st))
    print('')
    print('Look at the relay with relay-admin (its users and state databases; then e.g. '
          '`$A log`):')
    print(_admin_command(st))
    print('$A user list')
    print('')
    print('Stop everything: scripts/demo stop')


def _teardown(demo, quiet=False):
    st = _load(demo) or {'instances': []}
    # Postfix instances first (they talk to the milter), then relay-milter (config_dir None)
    for config_dir, pid in sorted(st['instances'], key=lambda x: x[0] is None):
        if config_dir is None:
            if _alive(pid):
                os.kill(pid, signal.SIGTERM)
        elif os.path.isdir(config_dir):
            subprocess.run(['postfix', '-c', config_dir, 'stop'], capture_output=True)
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            for child in [pid] + relaylab._children(pid):
                try:
                    os.kill(child, signal.SIGKILL)
                except ProcessLookupError:
                    pass
    lab = os.path.join(demo, 'lab')
    if os.path.islink(lab):
        shutil.rmtree(os.path.realpath(lab), ignore_errors=True)
    shutil.rmtree(demo, ignore_errors=True)
    if not quiet:
        print('demo stopped; %s removed' % demo)


def stop(args):
    demo = os.path.abspath(args.dir)
    if not os.path.lexists(demo):
        print('no demo in %s' % demo)
        return 0
    _teardown(demo)
    return 0


def status(args):
    demo = os.path.abspath(args.dir)
    st = _load(demo)
    if not st:
        print('the demo is not running')
        return 3
    up = [(c or 'relay-milter', _alive(pid)) for c, pid in st['instances']]
    for what, alive in up:
        print('%-60s %s' % (what, 'running' if alive else 'STOPPED'))
    if not all(a for _, a in up):
        return 1
    _print_summary(demo, st)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('command', choices=['start', 'stop', 'status'])
    ap.add_argument('--dir', default='demo')
    ap.add_argument('--build', default='build-demo')
    args = ap.parse_args()
    if os.geteuid() != 0:
        print('the demo needs root (Postfix master runs as root)')
        return 1
    return {'start': start, 'stop': stop, 'status': status}[args.command](args)


if __name__ == '__main__':
    sys.exit(main())
