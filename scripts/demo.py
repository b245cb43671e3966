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


def _start_milter(build, lab_dir, relay):
    """Starts relay-milter (if built) for the relay; -> (socket spec, pid) or (None, None)."""
    binary = os.path.join(build, 'milter', 'relay-milter')
    if not os.access(binary, os.X_OK):
        return None, None
    mdir = os.path.join(lab_dir, 'milter')
    os.makedirs(mdir, exist_ok=True)
    uid, gid = relaylab._postfix_ids()
    os.chown(mdir, uid, gid)
    os.chmod(mdir, 0o750)
    state_db = os.path.join(lab_dir, 'state', 'state.db')
    relay.admin('--state-db', state_db, 'init', '--milter-user', 'postfix')
    sock = os.path.join(mdir, 'milter.sock')
    conf = os.path.join(lab_dir, 'milter.conf')
    with open(conf, 'w') as f:
        f.write('socket = unix:%s\nuser = postfix\nusers_db = %s\nstate_db = %s\n'
                'log = stderr\n' % (sock, relay.db, state_db))
    check = subprocess.run([binary, '-n', '-c', conf], capture_output=True)
    if check.returncode != 0:
        print('note: relay-milter is built but refuses the demo configuration, running '
              'without it:\n  %s' % (check.stderr.decode(errors='replace').strip()))
        return None, None
    log = open(os.path.join(mdir, 'milter.log'), 'ab')
    proc = subprocess.Popen([binary, '-f', '-c', conf], stdout=log, stderr=log,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    log.close()
    deadline = time.monotonic() + 15
    while not os.path.exists(sock):
        if proc.poll() is not None or time.monotonic() > deadline:
            with open(os.path.join(mdir, 'milter.log'), errors='replace') as f:
                tail = f.read()[-1500:]
            if proc.poll() is None:
                proc.kill()
            print('note: relay-milter did not start, running without it:\n' + tail)
            return None, None
        time.sleep(0.05)
    return 'unix:' + sock, proc.pid


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
    milter_pid = None
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
        relay = lab.relay(up, cert='generate', start=False)
        password = secrets.token_urlsafe(24)            # 192 bits
        relay.add_user('demo', password)
        milter, milter_pid = _start_milter(os.path.abspath(args.build), lab_dir, relay)
        if milter:
            relay.admin('sender', 'add', 'demo', '@demo.example')
            p = subprocess.run([lab.relay_admin, '--db', relay.db, 'setup',
                                '--postfix-config', relay.config_dir,
                                '--port', '%s:%d' % (relay.host, relay.port),
                                '--tls-port', '%s:%d' % (relay.host, relay.tls_port),
                                '--hostname', relay.hostname, '--milter', milter,
                                '--sasl-plugin-dir', lab.plugin_dir, '--no-reload'],
                               capture_output=True)
            if p.returncode != 0:
                raise RuntimeError('relay-admin setup --milter failed:\n' +
                                   p.stderr.decode(errors='replace'))
        relay.start()
        pwfile = os.path.join(demo, 'demo-password')
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write(password + '\n')
        state = {
            'instances': lab.detach(),
            'milter_pid': milter_pid,
            'relay_port': relay.port, 'relay_tls_port': relay.tls_port,
            'cert': relay.cert, 'password_file': pwfile, 'login': 'demo',
            'maildir': None if external else up.maildir,
            'upstream': external or '[localhost]:%d' % up.port,
            'relay_log': relay.maillog,
            'upstream_log': None if external else up.maillog,
            'milter': milter,
        }
    except BaseException:
        if milter_pid and _alive(milter_pid):
            os.kill(milter_pid, signal.SIGTERM)
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
    print('Logs: %s%s' % (st['relay_log'],
                          (' and ' + st['upstream_log']) if st['upstream_log'] else ''))
    print('With swaks (the password visible in ps): swaks --server localhost:%d --tls '
          '--auth-user demo --auth-password "$(cat %s)" --from %s --to %s' % (
              st['relay_port'], st['password_file'], SENDER, RCPT))
    print('Stop everything: scripts/demo stop')


def _teardown(demo, quiet=False):
    st = _load(demo) or {'instances': [], 'milter_pid': None}
    for config_dir, pid in st['instances']:
        if os.path.isdir(config_dir):
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
    mpid = st.get('milter_pid')
    if mpid and _alive(mpid):
        os.kill(mpid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while _alive(mpid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(mpid):
            os.kill(mpid, signal.SIGKILL)
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
    up = [(c, _alive(pid)) for c, pid in st['instances']]
    for config_dir, alive in up:
        print('%-60s %s' % (config_dir, 'running' if alive else 'STOPPED'))
    if st.get('milter_pid'):
        print('%-60s %s' % ('relay-milter', 'running' if _alive(st['milter_pid'])
                            else 'STOPPED'))
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
