"""pglab — a private PostgreSQL 15 server for the tests of smtp-relay (stdlib only).

A *lab* is one temporary folder holding a fresh cluster (``initdb``), its log, a unix
socket folder and, on request, a throwaway certificate authority with a server
certificate. The server is ``postgres`` itself, started directly (no ``pg_ctl``) as the
``postgres`` user, so the pid we hold is the postmaster's and a stop is a signal to that
pid. It listens on 127.0.0.1 (and ::1 when ``ipv6=True``) on a free high port picked at
run time, never 5432, and on a unix socket in the lab folder. Nothing outside the lab
folder is written; the system cluster is never touched. Needs root (to become
``postgres``) and the Debian ``postgresql`` package (``/usr/lib/postgresql/15/bin``).

Authentication: unix socket ``trust`` (the harness's own ``psql`` as ``postgres``); TCP
``scram-sha-256`` (a role needs its password, so tests of pg: files, PGPASSFILE and
"unreachable" are real). With ``tls=True``, ``ssl = on`` with a server certificate for
127.0.0.1 and localhost signed by the lab's CA (``lab.ca_cert``), so a client can use
``sslmode=verify-full sslrootcert=<lab.ca_cert>``; ``tls_only=True`` also refuses
TCP connections without TLS (``hostssl`` lines only).

Quick use
---------
::

    import pglab
    with pglab.PgLab(tls=True) as pg:            # initdb + start; stop + remove on exit
        pg.create_role('relay', password='s3cret')
        pg.create_database('relay', owner='relay')
        uri = pg.uri('relay', 'relay')           # postgresql://relay@127.0.0.1:PORT/relay
        path = pg.write_conninfo('/tmp/x/db.conf', 'relay', 'relay', password='s3cret',
                                 sslmode='verify-full')   # -> 'pg:/tmp/x/db.conf' (0600)
        pg.psql("SELECT 1")                      # -> '1' (superuser, unix socket)
        pg.stop(); ...; pg.start()               # "database down" in the middle of a test

API
---
``PgLab(tls=False, tls_only=False, keep=None, dir=None, prefix='pglab-', start=True,
        max_connections=200, ipv6=False, settings=None)``
    Context manager. ``keep=True`` (or env ``PGLAB_KEEP=1``) leaves the folder after stop.
    ``dir``: use this (new or empty) folder instead of a temporary one. ``settings``: extra
    ``postgresql.conf`` lines as a dict.
    Attributes: ``dir``, ``data_dir``, ``socket_dir``, ``log_path``, ``host``
    ('127.0.0.1'), ``port``, ``pid`` (postmaster pid while running, else None),
    ``ca_cert`` / ``server_cert`` (PEM paths; None without tls), ``bindir``.
``start()`` / ``stop(mode='fast')`` (``'fast'``: SIGINT, ends sessions; ``'immediate'``:
    SIGQUIT; ``'smart'``: SIGTERM, waits for clients) / ``restart()`` / ``running()``.
    ``start()`` after ``stop()`` reuses the same port and data, for the "PostgreSQL stopped,
    then back" cases. ``close()`` stops and removes the folder (also on ``__exit__`` and, as
    a safety net, at interpreter exit).
``psql(sql, db='postgres', user='postgres', check=True)`` -> stdout (unaligned, tuples
    only, stripped). The SQL goes through stdin, never argv.
``create_role(name, password=None, login=True, superuser=False, options='')``,
``create_database(name, owner=None)``, ``drop_database(name)``,
``grant(sql)`` (alias of psql for readability).
``conninfo(user, db, password=None, host=None, **params)`` -> libpq ``key=value`` string
    (values quoted); ``host='socket'`` means the lab's unix socket folder.
``uri(user, db, password=None, host=None, **params)`` -> ``postgresql://`` URI (with the
    password only if given: prefer ``write_conninfo`` or ``write_passfile``).
``write_conninfo(path, user, db, password=None, mode=0o600, owner=None, **params)``
    -> ``'pg:' + path``: the conninfo string in a file of that mode (``owner``: user name
    to chown it to, e.g. 'postfix').
``write_passfile(path, user, password, db='*')`` -> path: a ``.pgpass`` line for
    PGPASSFILE (mode 0600).
``need_pg()`` -> None when a lab can run here, else the reason to skip (exit 77).
"""

import atexit
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time

HOST = '127.0.0.1'
PG_USER = 'postgres'
DEFAULT_BINDIR = '/usr/lib/postgresql/15/bin'
SYSTEM_PORT = 5432


def bindir():
    """PostgreSQL's server programs: env ``PGLAB_BINDIR``, else Debian's 15."""
    return os.environ.get('PGLAB_BINDIR') or DEFAULT_BINDIR


def need_pg():
    """None if this process can run a lab, else a reason to skip."""
    if os.geteuid() != 0:
        return 'pglab needs root (the server runs as the postgres user)'
    if not os.access(os.path.join(bindir(), 'postgres'), os.X_OK):
        return 'PostgreSQL 15 is not installed (apt-get install postgresql)'
    try:
        pwd.getpwnam(PG_USER)
    except KeyError:
        return 'there is no postgres user'
    return None


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago, never the system cluster's."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
        if port != SYSTEM_PORT:
            return port


def _run(argv, input=None, check=True, env=None, timeout=120, user=None):
    kw = {}
    if user is not None:
        pw = pwd.getpwnam(user)
        kw = {'user': pw.pw_uid, 'group': pw.pw_gid, 'extra_groups': []}
    p = subprocess.run(argv, input=input, capture_output=True, env=env, timeout=timeout, **kw)
    if check and p.returncode != 0:
        raise RuntimeError('%s failed (exit %d):\n%s%s' % (
            ' '.join(argv), p.returncode, p.stdout.decode(errors='replace'),
            p.stderr.decode(errors='replace')))
    return p


def quote_ident(name):
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value):
    return "'" + value.replace("'", "''") + "'"


def _conninfo_value(v):
    v = str(v)
    return "'" + v.replace('\\', '\\\\').replace("'", "\\'") + "'"


def _exit_on_sigterm():
    """meson stops a test past its timeout with SIGTERM, which kills Python without
    running atexit: turn it into SystemExit so the server is stopped (main thread only,
    and only if nobody installed a handler)."""
    import threading
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL):
        def _raise(signum, frame):
            raise SystemExit(128 + signum)
        signal.signal(signal.SIGTERM, _raise)


class PgLab:
    """A private PostgreSQL cluster in a temporary folder (see the module docstring)."""

    def __init__(self, tls=False, tls_only=False, keep=None, dir=None, prefix='pglab-',
                 start=True, max_connections=200, ipv6=False, settings=None):
        why = need_pg()
        if why:
            raise RuntimeError(why)
        self.bindir = bindir()
        self.keep = keep if keep is not None else os.environ.get('PGLAB_KEEP') == '1'
        if dir is None:
            self.dir = tempfile.mkdtemp(prefix=prefix)
        else:
            self.dir = os.path.abspath(dir)
            os.makedirs(self.dir, exist_ok=True)
            if os.listdir(self.dir):
                raise RuntimeError('%s is not empty' % self.dir)
        # the server (postgres) and clients running as other users (postfix's smtpd)
        # must reach the socket folder and the CA certificate
        os.chmod(self.dir, 0o755)
        self.host = HOST
        self.ipv6 = ipv6
        self.tls = tls or tls_only
        self.tls_only = tls_only
        self.data_dir = os.path.join(self.dir, 'data')
        self.socket_dir = os.path.join(self.dir, 'run')
        self.log_path = os.path.join(self.dir, 'postgres.log')
        self.ca_cert = self.server_cert = None
        self.port = None
        self.pid = None
        self._proc = None
        self._closed = False
        pw = pwd.getpwnam(PG_USER)
        self._uid, self._gid = pw.pw_uid, pw.pw_gid
        atexit.register(self.close)
        _exit_on_sigterm()
        self._initdb(max_connections, settings or {})
        if start:
            self.start()

    # ---- set-up -----------------------------------------------------------------------

    def _mkdir_pg(self, path, mode):
        os.makedirs(path, exist_ok=True)
        os.chown(path, self._uid, self._gid)
        os.chmod(path, mode)

    def _initdb(self, max_connections, settings):
        self._mkdir_pg(self.data_dir, 0o700)
        self._mkdir_pg(self.socket_dir, 0o755)
        _run([os.path.join(self.bindir, 'initdb'), '-D', self.data_dir, '-U', PG_USER,
              '--auth-local=trust', '--auth-host=scram-sha-256', '-E', 'UTF8',
              '--locale=C', '--no-sync'], user=PG_USER)
        conf = {
            'listen_addresses': "'%s'" % (HOST + (',::1' if self.ipv6 else '')),
            'unix_socket_directories': "'%s'" % self.socket_dir,
            'unix_socket_permissions': '0777',
            'max_connections': str(max_connections),
            'shared_buffers': "'16MB'",
            # a throwaway cluster: durability buys nothing and costs the shared CPU
            'fsync': 'off', 'synchronous_commit': 'off', 'full_page_writes': 'off',
            'logging_collector': 'off', 'log_line_prefix': "'%m [%p] %u@%d '",
            'password_encryption': "'scram-sha-256'",
        }
        if self.tls:
            self._make_certs()
            conf.update({'ssl': 'on', 'ssl_cert_file': "'%s'" % self.server_cert,
                         'ssl_key_file': "'%s'" % self._server_key})
        conf.update({k: str(v) for k, v in settings.items()})
        with open(os.path.join(self.data_dir, 'postgresql.auto.conf'), 'a') as f:
            f.write('# pglab\n')
            for k, v in conf.items():
                f.write('%s = %s\n' % (k, v))
        host = 'hostssl' if self.tls_only else 'host'
        with open(os.path.join(self.data_dir, 'pg_hba.conf'), 'w') as f:
            f.write('# pglab: superuser by socket, every TCP role by password\n'
                    'local all all trust\n'
                    '%s all all 127.0.0.1/32 scram-sha-256\n'
                    '%s all all ::1/128 scram-sha-256\n' % (host, host))

    def _make_certs(self):
        ca_dir = os.path.join(self.dir, 'ca')
        os.makedirs(ca_dir, exist_ok=True)
        os.chmod(ca_dir, 0o755)
        ca_key = os.path.join(ca_dir, 'ca.key')
        self.ca_cert = os.path.join(ca_dir, 'ca.pem')
        _run(['openssl', 'req', '-x509', '-new', '-nodes', '-newkey', 'ec',
              '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-keyout', ca_key,
              '-out', self.ca_cert, '-days', '30', '-subj', '/CN=pglab test CA',
              '-addext', 'basicConstraints=critical,CA:TRUE',
              '-addext', 'keyUsage=critical,keyCertSign,cRLSign'])
        os.chmod(self.ca_cert, 0o644)
        key = os.path.join(ca_dir, 'server.key')
        csr = os.path.join(ca_dir, 'server.csr')
        ext = os.path.join(ca_dir, 'server.ext')
        self.server_cert = os.path.join(ca_dir, 'server.pem')
        with open(ext, 'w') as f:
            f.write('subjectAltName=IP:127.0.0.1,DNS:localhost,IP:::1\n'
                    'extendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n')
        _run(['openssl', 'req', '-new', '-nodes', '-newkey', 'ec',
              '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-keyout', key, '-out', csr,
              '-subj', '/CN=127.0.0.1'])
        _run(['openssl', 'x509', '-req', '-in', csr, '-CA', self.ca_cert, '-CAkey', ca_key,
              '-set_serial', str(int(time.time())), '-days', '30', '-out', self.server_cert,
              '-extfile', ext])
        os.chmod(self.server_cert, 0o644)
        # PostgreSQL refuses a key others can read
        os.chown(key, self._uid, self._gid)
        os.chmod(key, 0o600)
        self._server_key = key

    # ---- running ----------------------------------------------------------------------

    def running(self):
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout=60):
        """Starts the postmaster (same port and data after a stop) and waits until it
        accepts connections."""
        if self.running():
            return
        attempts = 5 if self.port is None else 1
        for _ in range(attempts):
            port = self.port or free_port()
            if self._start_on(port, timeout):
                self.port = port
                return
        raise RuntimeError('PostgreSQL did not start; see %s:\n%s' % (
            self.log_path, self._log_tail()))

    def _start_on(self, port, timeout):
        log = open(self.log_path, 'ab')
        try:
            self._proc = subprocess.Popen(
                [os.path.join(self.bindir, 'postgres'), '-D', self.data_dir, '-p', str(port)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, user=self._uid,
                group=self._gid, extra_groups=[], cwd=self.data_dir,
                start_new_session=True)
        finally:
            log.close()
        self.pid = self._proc.pid
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                # e.g. the port was taken between free_port() and the bind
                self._proc = None
                self.pid = None
                return False
            if self._ready(port):
                return True
            time.sleep(0.05)
        self.stop(mode='immediate')
        raise RuntimeError('PostgreSQL not ready after %ds; see %s' % (timeout, self.log_path))

    def _ready(self, port):
        p = _run([os.path.join(self.bindir, 'pg_isready'), '-q', '-h', self.socket_dir,
                  '-p', str(port), '-U', PG_USER, '-d', 'postgres'], check=False, timeout=10)
        return p.returncode == 0

    def stop(self, mode='fast', timeout=60):
        """Stops the postmaster by its pid: 'fast' (SIGINT: ends client sessions),
        'immediate' (SIGQUIT) or 'smart' (SIGTERM: waits for clients)."""
        if self._proc is None:
            return
        sig = {'fast': signal.SIGINT, 'immediate': signal.SIGQUIT,
               'smart': signal.SIGTERM}[mode]
        if self._proc.poll() is None:
            try:
                os.kill(self._proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                self._proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self._proc.pid, signal.SIGKILL)
                self._proc.wait(10)
        self._proc = None
        self.pid = None

    def restart(self):
        self.stop()
        self.start()

    def close(self):
        """Stops the server and removes the folder (unless keep)."""
        if self._closed:
            return
        self._closed = True
        try:
            self.stop()
        finally:
            atexit.unregister(self.close)
            if not self.keep:
                shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _log_tail(self, n=30):
        try:
            with open(self.log_path, errors='replace') as f:
                return ''.join(f.readlines()[-n:])
        except OSError:
            return ''

    def log(self):
        with open(self.log_path, errors='replace') as f:
            return f.read()

    # ---- administration ---------------------------------------------------------------

    def psql(self, sql, db='postgres', user=PG_USER, check=True):
        """Runs SQL as `user` over the unix socket (trust); returns stdout, stripped.
        The text goes through stdin, so a password in it never shows in argv."""
        env = dict(os.environ)
        for k in list(env):
            if k.startswith('PG'):
                del env[k]
        p = _run([os.path.join(self.bindir, 'psql'), '-X', '-q', '-A', '-t',
                  '-v', 'ON_ERROR_STOP=1', '-h', self.socket_dir, '-p', str(self.port),
                  '-U', user, '-d', db, '-f', '-'],
                 input=sql.encode(), check=check, env=env, timeout=120)
        if not check and p.returncode != 0:
            raise subprocess.CalledProcessError(p.returncode, 'psql', p.stdout, p.stderr)
        return p.stdout.decode().strip()

    grant = psql

    def create_role(self, name, password=None, login=True, superuser=False, options=''):
        sql = 'CREATE ROLE %s %s %s' % (quote_ident(name), 'LOGIN' if login else 'NOLOGIN',
                                        'SUPERUSER' if superuser else '')
        if password is not None:
            sql += ' PASSWORD ' + quote_literal(password)
        self.psql(sql + ' ' + options + ';')

    def create_database(self, name, owner=None):
        sql = 'CREATE DATABASE %s' % quote_ident(name)
        if owner:
            sql += ' OWNER %s' % quote_ident(owner)
        self.psql(sql + ';')

    def drop_database(self, name):
        self.psql('DROP DATABASE IF EXISTS %s WITH (FORCE);' % quote_ident(name))

    # ---- client strings ---------------------------------------------------------------

    def _host(self, host):
        if host == 'socket':
            return self.socket_dir
        return host or self.host

    def conninfo(self, user, db, password=None, host=None, **params):
        """A libpq keyword/value string for this server."""
        kv = {'host': self._host(host), 'port': self.port, 'user': user, 'dbname': db}
        if password is not None:
            kv['password'] = password
        if self.tls and params.get('sslmode') in ('verify-ca', 'verify-full'):
            kv['sslrootcert'] = self.ca_cert
        kv.update(params)
        return ' '.join('%s=%s' % (k, _conninfo_value(v)) for k, v in kv.items())

    def uri(self, user, db, password=None, host=None, **params):
        """A postgresql:// URI for this server (the password only if given)."""
        from urllib.parse import quote
        h = self._host(host)
        cred = quote(user, safe='')
        if password is not None:
            cred += ':' + quote(password, safe='')
        if h.startswith('/'):
            url = 'postgresql://%s@:%d/%s' % (cred, self.port, quote(db, safe=''))
            params = dict(params, host=h)
        else:
            url = 'postgresql://%s@%s:%d/%s' % (cred, '[%s]' % h if ':' in h else h,
                                                 self.port, quote(db, safe=''))
        if self.tls and params.get('sslmode') in ('verify-ca', 'verify-full'):
            params.setdefault('sslrootcert', self.ca_cert)
        if params:
            url += '?' + '&'.join('%s=%s' % (k, quote(str(v), safe='/'))
                                  for k, v in params.items())
        return url

    def write_conninfo(self, path, user, db, password=None, mode=0o600, owner=None,
                       **params):
        """Writes the conninfo string to `path` with `mode`; returns 'pg:' + path."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as f:
            f.write(self.conninfo(user, db, password=password, **params) + '\n')
        if owner is not None:
            pw = pwd.getpwnam(owner)
            os.chown(path, pw.pw_uid, pw.pw_gid)
        os.chmod(path, mode)
        return 'pg:' + path

    def write_passfile(self, path, user, password, db='*'):
        """A .pgpass file (for PGPASSFILE) for `user` on this server; returns path."""
        def esc(s):
            return s.replace('\\', '\\\\').replace(':', '\\:')
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, 'w') as f:
            for h in (self.host, 'localhost', self.socket_dir):
                f.write('%s:%d:%s:%s:%s\n' % (esc(h), self.port, esc(db), esc(user),
                                               esc(password)))
        return path
