"""relaylab — private Postfix instances for end-to-end tests of smtp-relay (stdlib only).

A *lab* is one temporary folder holding a throwaway certificate authority and the
private Postfix instances (and relay-milter) of one test. Each instance is started with
``postfix -c DIR start`` from its own config folder, queue and data folders, listening
on 127.0.0.1 only, on free high ports picked at run time. Nothing outside the lab folder
is written; nothing global is configured. Needs root (Postfix's master runs as root and
drops to ``mail_owner = postfix``).

Roles
-----
* ``Upstream`` — the smarthost. Requires STARTTLS and AUTH (Cyrus ``sasldb``, users made
  with ``saslpasswd2``), delivers everything it receives into ``<dir>/Maildir/`` (a
  catch-all virtual mailbox).
* ``Relay`` — the instance under test, configured by ``relay-admin setup --postfix-config``
  (the harness only writes the instance basics: queue/data folders, loopback, log file).
  Submission service with mandatory STARTTLS on ``relay.port``, implicit TLS on
  ``relay.tls_port``, logins from the relaydb users database (``relay.add_user``), relaying
  to the upstream over verified TLS with upstream AUTH.

Quick use
---------
::

    import relaylab
    with relaylab.Lab() as lab:                 # temp folder + CA; lab.stop() on exit
        up = lab.upstream()                      # started
        relay = lab.relay(up)                    # started, relaying to `up`
        pw = relay.add_user('alice')             # relay-admin user add; returns the password
        with relay.smtp() as s:                  # smtplib.SMTP, STARTTLS done (CA verified)
            s.login('alice', pw)
            s.sendmail('a@example.org', ['b@example.net'], b'Subject: x\\r\\n\\r\\nhi\\r\\n')
        up.wait_messages(1)                      # -> list of bytes (maildir files)

API
---
``Lab(build_root=None, keep=False, prefix='relaylab-', dir=None, installed=None)``
    Context manager. ``build_root`` is the meson build folder holding ``admin/relay-admin``
    and ``plugin/librelaydb.so`` (default: env ``RELAY_BUILD_ROOT``, else ``<repo>/build``).
    ``installed='/usr'`` uses the installed programs instead (``<prefix>/sbin/relay-admin``,
    ``<prefix>/sbin/relay-milter``) and the plugin from libsasl2's own folder: ``setup``
    gets no ``--sasl-plugin-dir``, so smtpd has no SASL_PATH (tests/package/).
    ``keep=True`` (or env ``RELAYLAB_KEEP=1``) leaves the folder for inspection after stop.
    Attributes: ``dir``, ``build_root``, ``relay_admin`` (path of the binary),
    ``plugin_dir`` (folder with librelaydb.so; None with ``installed``), ``relay_milter``
    (path of the milter binary), ``ca`` (a ``CA``).
    ``dir`` — use this (new or empty) folder instead of a temporary one (the demo does).
    ``lab.upstream(**kw)`` -> started ``Upstream``; ``lab.relay(upstream, **kw)`` -> started
    ``Relay``; ``lab.stop()`` stops every instance (also called on ``__exit__`` and, as a
    safety net, at interpreter exit); ``lab.detach()`` leaves them running and returns
    ``[(config_dir, master_pid), ...]`` for a later stop (scripts/demo).

``CA``: ``ca.cert`` (PEM path), ``ca.issue(name, hosts=('localhost', '127.0.0.1'))`` ->
    ``(cert_path, key_path)`` for a server certificate signed by this CA;
    ``ca.context()`` -> ``ssl.SSLContext`` trusting only this CA.
    ``make_ca(dir, name)`` makes another, independent CA (e.g. one the relay does not trust).

``Instance`` (both roles):
    ``name`` ('upstream', 'relay'; '-2', '-3' ... appended when a lab holds several of a
    role), ``dir`` (its folder), ``config_dir`` (main.cf, master.cf), ``queue_dir``, ``data_dir``,
    ``maillog`` (path of the log file), ``host`` ('127.0.0.1'),
    ``postconf(*args)`` -> stdout of ``postconf -c config_dir *args``,
    ``set_main(**params)`` / ``set_main_dict(d)`` (``postconf -e``), ``start()``, ``stop()``,
    ``reload()``, ``running()``, ``master_pid()`` (from its pid file, or None),
    ``log()`` (the whole maillog as str),
    ``wait_log(regex, timeout=30)`` -> the ``re.Match`` of the first matching line (raises
    ``TimeoutError``), ``log_mark()`` / ``wait_log(regex, since=mark)`` to look only at lines
    written after a point.

``Upstream(lab, user='upstream-user', password=<random>, cert=None, start=True)``:
    ``port`` (STARTTLS, AUTH required), ``user``, ``password``, ``hostname`` ('localhost',
    the name in its certificate; the relay connects to ``[localhost]:port``), ``cert``/``key``,
    ``maildir`` (``<dir>/Maildir``), ``messages()`` -> list of bytes (new/ and cur/),
    ``wait_messages(n, timeout=60)``. ``cert=(cert, key)`` lets a test use a certificate from
    another CA (an *unverifiable* upstream).

``Relay(lab, upstream, ...)`` keyword options (all optional):
    ``milter`` — ``True``: start the built relay-milter for this relay (``relay.milter``)
        and register it with ``relay-admin setup --milter``; or a socket spec
        (``unix:/path``, ``inet:127.0.0.1:PORT``) of a milter you run; default: ``--no-milter``.
    ``tls_port`` — True (default) to add an implicit-TLS service on a second free port.
    ``upstream_password`` — what the relay uses to log in upstream (default: the right one;
        give a wrong one for a *wrong upstream password* variant).
    ``upstream_ca`` — CA file the relay trusts for the upstream (default the lab CA; give
        another CA's file for an *unverifiable upstream certificate* variant).
    ``upstream_insecure`` — pass ``--upstream-insecure`` (no upstream verification).
    ``setup_args`` — extra arguments appended to ``relay-admin setup``.
    ``main_before_setup`` — dict applied with ``postconf -e`` *before* setup: the machine's
        own configuration that setup finds (e.g. a ``relayhost`` for its own mail).
    ``main_overrides`` — dict applied with ``postconf -e`` after setup (main.cf).
    ``service_overrides`` — dict applied with ``postconf -P`` to the submission service(s)
        after setup, e.g. ``{'smtpd_tls_security_level': 'may', 'smtpd_tls_auth_only':
        'no'}`` (*no TLS required*). See ``BROKEN`` for ready-made sets.
    ``cert`` — ``'lab'`` (default: a certificate from the lab CA) or ``'generate'`` (no
        --cert/--key: relay-admin setup makes a self-signed one for 'localhost').
    ``start`` — False to only configure (call ``relay.start()`` yourself).
    ``db`` — a users database the caller made (``relay-admin init`` done), e.g. one several
        relays share (a ``pg:`` file or ``postgresql://`` URI); default: its own SQLite file.
    ``state_db`` — with ``milter=True``: a state database the caller made, for the milter
        (shared by several milters); default: its own SQLite file.
    Attributes: ``port`` (STARTTLS service), ``tls_port`` (implicit TLS, or None), ``db``
    (users database), ``cert``/``key`` (its server certificate), ``sasl_dir`` (smtpd.conf),
    ``setup_output`` (stdout+stderr of relay-admin setup), ``upstream``.
    ``admin(*args, input=None, check=True)`` runs relay-admin with ``--db`` set ->
    ``CompletedProcess``; ``add_user(name, password=None)`` -> password (generated if None);
    ``smtp(starttls=True, source=None, helo=...)`` / ``smtps(source=None, helo=...)`` ->
    connected ``smtplib`` clients (EHLO done, CA verified); ``source=relaylab.REMOTE``
    (127.0.0.2) sends from an address Postfix does not count as local, as a remote client; ``client_context()`` -> SSLContext trusting the relay's certificate;
    ``service_name``/``tls_service_name`` (master.cf names).
    With the build's plugin and another librelaydb.so in libsasl2's own folder (a package,
    ``meson install``), the relay's SASL_PATH is narrowed to a lab folder holding the build's
    plugin and links to the other plugins, so the build's relaydb is the only one loaded.
    ``upstream`` may also be an ``ExternalUpstream(host, port, user, password, tls=None)``:
    a real smarthost, verified against the system CAs.

``BROKEN``: dict of named ``service_overrides`` sets for deliberately broken relays:
    ``'no_tls'`` (STARTTLS optional, AUTH offered in plaintext) and ``'open_relay'`` (RCPT
    accepted without AUTH from loopback clients, i.e. from the tests). The other two broken
    variants are keyword options: ``upstream_password='wrong'`` (the upstream answers 535
    to the relay; mail stays queued) and ``upstream_ca=make_ca(dir).cert`` (the relay does
    not trust the upstream's certificate: "certificate verification failed", mail stays
    queued). Example::

        relay = lab.relay(up, service_overrides=relaylab.BROKEN['open_relay'])
        relay = lab.relay(up, upstream_ca=relaylab.make_ca(lab.dir + '/other').cert)

``Milter`` (made by ``Relay(milter=True)``, reachable as ``relay.milter``): relay-milter
    from the build (or the installed one: ``Lab(installed=...)``), run as user postfix with the relay's users database and its own state
    database (``state_db``, made by ``relay-admin --state-db ... init --milter-user
    postfix``); ``sock`` ('unix:/...'), ``log()``, ``start()`` (returns once the socket
    accepts; a socket left by a killed milter is removed first), ``stop(sig=SIGTERM)`` ->
    exit status (``stop(signal.SIGKILL)`` for a crash). Extra relay-milter.conf lines:
    ``Relay(milter=True, milter_conf='policy_refresh_ms = 0\\n')``.

``Sink`` (``lab.sink()``, started): a plain SMTP server on a free loopback port that
    accepts everything, offers neither STARTTLS nor AUTH, and keeps what it got:
    ``port``, ``messages()`` -> list of bytes (DATA as received), ``auth_seen``
    (True if a client sent AUTH), ``wait_for(needle, timeout=60)`` -> bool; ``stop()``.
    A stand-in for wherever the machine's own mail went before setup.

Helpers: ``free_port()``, ``need_root()`` (returns a reason string or None),
``postfix_available()``, ``default_build_root()`` (what ``Lab()`` uses without
``build_root``). The unittest glue the tests share (build check, exit-77 main, a class
fixture, AUTH with one mechanism) is in ``e2elib.py``.
"""

import atexit
import os
import re
import secrets
import shutil
import signal
import smtplib
import ssl
import subprocess
import tempfile
import time

HOST = '127.0.0.1'
# A client address that is not one of Postfix's inet_interfaces: what a laptop on the
# internet looks like to the relay (Linux routes all of 127.0.0.0/8 to lo, so a client
# socket can bind it without any setup).
REMOTE = '127.0.0.2'
POSTFIX_USER = 'postfix'

BROKEN = {
    'no_tls': {'smtpd_tls_security_level': 'may', 'smtpd_tls_auth_only': 'no'},
    # Postfix refuses restriction lists without any reject; permit_mynetworks opens the
    # relay to the loopback clients of the tests (mynetworks = 127.0.0.0/8).
    'open_relay': {'smtpd_client_restrictions': 'permit',
                   'smtpd_recipient_restrictions': 'permit_mynetworks,reject',
                   'smtpd_relay_restrictions': 'permit_mynetworks,reject'},
}


def _repo_root():
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def default_build_root():
    """The build folder a ``Lab()`` uses without ``build_root``: env ``RELAY_BUILD_ROOT``,
    else ``<repo>/build`` (absolute)."""
    return os.path.abspath(os.environ.get('RELAY_BUILD_ROOT')
                           or os.path.join(_repo_root(), 'build'))


def unix_socket_accepts(path):
    """True when something listens on the unix socket at `path` (a milter that answers)."""
    import socket
    if not os.path.exists(path):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(path)
            return True
        except OSError:
            return False


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (bind port 0)."""
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def need_root():
    """None if this process can run Postfix instances, else a reason to skip."""
    if os.geteuid() != 0:
        return 'the Postfix end-to-end tests need root (postfix master runs as root)'
    if not postfix_available():
        return 'Postfix is not installed (apt-get install postfix)'
    return None


def postfix_available():
    return shutil.which('postfix') is not None and shutil.which('postconf') is not None


def _run(argv, input=None, check=True, env=None, timeout=120):
    p = subprocess.run(argv, input=input, capture_output=True, env=env, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError('%s failed (exit %d):\n%s%s' % (
            ' '.join(argv), p.returncode, p.stdout.decode(errors='replace'),
            p.stderr.decode(errors='replace')))
    return p


def _postfix_ids():
    import pwd
    pw = pwd.getpwnam(POSTFIX_USER)
    return pw.pw_uid, pw.pw_gid


def _chown_postfix(path, mode):
    uid, gid = _postfix_ids()
    os.chown(path, 0, gid)
    os.chmod(path, mode)


# ---- certificates ---------------------------------------------------------------------

class CA:
    """A throwaway certificate authority made with the openssl command (EC P-256 keys)."""

    def __init__(self, folder, name='relaylab test CA'):
        self.dir = folder
        os.makedirs(folder, exist_ok=True)
        self.key = os.path.join(folder, 'ca.key')
        self.cert = os.path.join(folder, 'ca.pem')
        _run(['openssl', 'req', '-x509', '-new', '-nodes', '-newkey', 'ec',
              '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-keyout', self.key,
              '-out', self.cert, '-days', '90', '-subj', '/CN=' + name,
              '-addext', 'basicConstraints=critical,CA:TRUE',
              '-addext', 'keyUsage=critical,keyCertSign,cRLSign'])
        os.chmod(self.cert, 0o644)
        self._serial = 1

    def issue(self, name, hosts=('localhost', HOST)):
        """A server certificate for `hosts` (DNS names and IPs) -> (cert_path, key_path)."""
        self._serial += 1
        base = os.path.join(self.dir, '%s-%d' % (name, self._serial))
        key, csr, crt, ext = base + '.key', base + '.csr', base + '.pem', base + '.ext'
        sans = ','.join(('IP:' if re.fullmatch(r'[0-9.]+|[0-9a-fA-F:]+:[0-9a-fA-F:]*', h)
                         else 'DNS:') + h for h in hosts)
        with open(ext, 'w') as f:
            f.write('subjectAltName=%s\nextendedKeyUsage=serverAuth\n'
                    'basicConstraints=CA:FALSE\n' % sans)
        _run(['openssl', 'req', '-new', '-nodes', '-newkey', 'ec',
              '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-keyout', key, '-out', csr,
              '-subj', '/CN=' + hosts[0]])
        _run(['openssl', 'x509', '-req', '-in', csr, '-CA', self.cert, '-CAkey', self.key,
              '-set_serial', str(self._serial + int(time.time())), '-days', '60',
              '-out', crt, '-extfile', ext])
        _chown_postfix(key, 0o640)
        os.chmod(crt, 0o644)
        return crt, key

    def context(self):
        ctx = ssl.create_default_context(cafile=self.cert)
        return ctx


def make_ca(folder, name='relaylab other CA'):
    return CA(folder, name)


# ---- instances ------------------------------------------------------------------------

# Only the services a relay or a smarthost needs; chroot off everywhere (a private queue
# folder holds no copy of /etc), so we need no chroot set-up.
_MASTER_CF = """\
# private relaylab instance: written by relaylab.py
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class Instance:
    """A private Postfix instance under `folder` (see the module docstring)."""

    host = HOST

    def __init__(self, lab, name, hostname):
        self.lab = lab
        self.name = lab._unique_name(name)   # upstream, upstream-2, ... in one lab
        self.hostname = hostname
        self.dir = os.path.join(lab.dir, self.name)
        self.config_dir = os.path.join(self.dir, 'etc')
        self.queue_dir = os.path.join(self.dir, 'queue')
        self.data_dir = os.path.join(self.dir, 'data')
        self.maillog = os.path.join(self.dir, 'maillog')
        self._started = False
        self._pid = None
        for d in (self.dir, self.config_dir, self.queue_dir):
            os.makedirs(d, exist_ok=True)
            os.chmod(d, 0o755)
        os.makedirs(self.data_dir, exist_ok=True)
        uid, gid = _postfix_ids()
        os.chown(self.data_dir, uid, gid)
        os.chmod(self.data_dir, 0o700)
        with open(os.path.join(self.config_dir, 'master.cf'), 'w') as f:
            f.write(_MASTER_CF)
        with open(os.path.join(self.config_dir, 'main.cf'), 'w') as f:
            f.write('# private relaylab instance %s: written by relaylab.py\n' % name)
        self.set_main_dict({
            'compatibility_level': '3.6',
            'queue_directory': self.queue_dir,
            'data_directory': self.data_dir,
            'meta_directory': '/etc/postfix',
            'mail_owner': POSTFIX_USER,
            'setgid_group': 'postdrop',
            'myhostname': hostname,
            'mydomain': 'relaylab.test',
            'myorigin': '$myhostname',
            'inet_interfaces': HOST,
            'inet_protocols': 'ipv4',
            'mynetworks': '127.0.0.0/8',
            'mydestination': '',
            'relay_domains': '',
            'local_recipient_maps': '',
            'alias_maps': '',
            'alias_database': '',
            'smtp_host_lookup': 'native',
            'smtp_dns_support_level': 'disabled',
            'disable_dns_lookups': 'yes',
            'maillog_file': self.maillog,
            'maillog_file_prefixes': self.dir,
            'smtputf8_enable': 'no',
            'smtp_tls_loglevel': '1',
            'biff': 'no',
            'delay_warning_time': '0',
            'smtpd_banner': '$myhostname ESMTP',
            # retry quickly so a message held by a transient upstream failure moves on
            'queue_run_delay': '5s',
            'minimal_backoff_time': '5s',
            'maximal_backoff_time': '10s',
        })

    # -- configuration
    def postconf(self, *args, check=True):
        return _run(['postconf', '-c', self.config_dir] + list(args),
                    check=check).stdout.decode()

    def set_main(self, **params):
        self.set_main_dict(params)

    def set_main_dict(self, params):
        if params:
            self.postconf('-e', *['%s=%s' % kv for kv in params.items()])

    # -- life cycle
    def start(self):
        _run(['postfix', '-c', self.config_dir, 'check'])
        self._started = True
        self.lab._track(self)
        _run(['postfix', '-c', self.config_dir, 'start'])
        # remember the master's pid now: stop() must be able to kill it even if the
        # folder (and its pid file) is gone by then
        deadline = time.monotonic() + 10
        while self._pid is None and time.monotonic() < deadline:
            self._pid = self.master_pid()
            if self._pid is None:
                time.sleep(0.05)
        self._wait_listening()

    def _ports(self):
        return []

    def _wait_listening(self, timeout=30):
        import socket
        deadline = time.monotonic() + timeout
        for port in self._ports():
            while True:
                try:
                    with socket.create_connection((HOST, port), timeout=2):
                        break
                except OSError:
                    if time.monotonic() > deadline:
                        raise TimeoutError('%s: nothing listens on %s:%d\n%s' % (
                            self.name, HOST, port, self.log()[-3000:]))
                    time.sleep(0.1)

    def reload(self):
        _run(['postfix', '-c', self.config_dir, 'reload'])

    def master_pid(self):
        """The pid in the instance's master.pid file now, or None (not running, no file)."""
        try:
            with open(os.path.join(self.queue_dir, 'pid', 'master.pid')) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    _master_pid = master_pid   # its earlier, private name: kept for callers that used it

    def running(self):
        return _run(['postfix', '-c', self.config_dir, 'status'], check=False).returncode == 0

    def stop(self):
        """Stops the instance; kills by pid what does not stop (master and its children)."""
        if not self._started:
            return
        self._started = False
        pid = self.master_pid() or self._pid
        if os.path.isdir(self.config_dir):
            _run(['postfix', '-c', self.config_dir, 'stop'], check=False)
        if pid is None:
            return
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.1)
        for child in [pid] + _children(pid):
            if _pid_alive(child):
                try:
                    os.kill(child, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    # -- logs
    def log(self):
        try:
            with open(self.maillog, encoding='utf-8', errors='replace') as f:
                return f.read()
        except FileNotFoundError:
            return ''

    def log_mark(self):
        try:
            return os.path.getsize(self.maillog)
        except OSError:
            return 0

    def wait_log(self, regex, timeout=30, since=0):
        rx = re.compile(regex)
        deadline = time.monotonic() + timeout
        while True:
            text = self.log()[since:] if since else self.log()
            for line in text.splitlines():
                m = rx.search(line)
                if m:
                    return m
            if time.monotonic() > deadline:
                raise TimeoutError('%s: no log line matching %r within %ss; log tail:\n%s' % (
                    self.name, regex, timeout, text[-3000:]))
            time.sleep(0.2)


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _children(pid):
    """Direct children of `pid` from /proc (the master's daemons)."""
    out = []
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as f:
                fields = f.read().rsplit(')', 1)[1].split()
            if int(fields[1]) == pid:
                out.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    return out


class Upstream(Instance):
    """The smarthost: STARTTLS + AUTH (sasldb) required, everything into <dir>/Maildir/."""

    tls = 'starttls'   # how the relay talks to it (relay-admin setup --upstream-tls)

    def __init__(self, lab, user='upstream-user', password=None, cert=None, start=True):
        super().__init__(lab, 'upstream', 'localhost')
        self.user = user
        self.password = password or secrets.token_urlsafe(18)
        self.port = free_port()
        self.cert, self.key = cert or lab.ca.issue('upstream')
        self.maildir = os.path.join(self.dir, 'Maildir')
        # Debian's smtpd reads <config_directory>/sasl/smtpd.conf (its GETCONFPATH
        # callback); cyrus_sasl_config_path points there too for other builds.
        self.sasl_dir = os.path.join(self.config_dir, 'sasl')
        os.makedirs(self.sasl_dir, exist_ok=True)
        os.chmod(self.sasl_dir, 0o755)
        self.sasldb = os.path.join(self.sasl_dir, 'sasldb2')
        # The realm libsasl2 uses with an empty smtpd_sasl_local_domain is $myhostname.
        _run(['saslpasswd2', '-c', '-p', '-f', self.sasldb, '-u', self.hostname, self.user],
             input=self.password.encode())
        _chown_postfix(self.sasldb, 0o640)
        with open(os.path.join(self.sasl_dir, 'smtpd.conf'), 'w') as f:
            f.write('pwcheck_method: auxprop\nauxprop_plugin: sasldb\n'
                    'sasldb_path: %s\nmech_list: plain login\n' % self.sasldb)
        uid, gid = _postfix_ids()
        mail_base = os.path.join(self.dir, 'mail')
        os.makedirs(mail_base, exist_ok=True)
        os.chown(mail_base, uid, gid)
        # virtual_mailbox_base + 'Maildir/' -> <dir>/mail/Maildir; expose it as <dir>/Maildir
        os.symlink(os.path.join(mail_base, 'Maildir'), self.maildir)
        self.set_main_dict({
            'cyrus_sasl_config_path': self.sasl_dir,
            'smtpd_sasl_path': 'smtpd',
            'smtpd_sasl_auth_enable': 'yes',
            'smtpd_sasl_security_options': 'noanonymous',
            'smtpd_tls_security_level': 'encrypt',
            'smtpd_tls_auth_only': 'yes',
            'smtpd_tls_cert_file': self.cert,
            'smtpd_tls_key_file': self.key,
            'smtpd_client_restrictions': 'permit_sasl_authenticated, reject',
            'smtpd_relay_restrictions': 'permit_sasl_authenticated, reject',
            'smtpd_recipient_restrictions': 'permit_sasl_authenticated, reject',
            'virtual_mailbox_domains': 'static:all',
            'virtual_mailbox_base': mail_base,
            'virtual_mailbox_maps': 'static:Maildir/',
            'virtual_uid_maps': 'static:%d' % uid,
            'virtual_gid_maps': 'static:%d' % gid,
            'virtual_minimum_uid': str(min(uid, 100)),
        })
        self.postconf('-M', '%s:%d/inet=%s:%d inet n - n - - smtpd' % (
            HOST, self.port, HOST, self.port))
        if start:
            self.start()

    def _ports(self):
        return [self.port]

    def messages(self):
        out = []
        for sub in ('new', 'cur'):
            d = os.path.join(self.maildir, sub)
            if not os.path.isdir(d):
                continue
            for name in sorted(os.listdir(d)):
                with open(os.path.join(d, name), 'rb') as f:
                    out.append(f.read())
        return out

    def wait_messages(self, n=1, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            msgs = self.messages()
            if len(msgs) >= n:
                return msgs
            if time.monotonic() > deadline:
                raise TimeoutError('upstream: %d of %d messages after %ss; logs:\n%s' % (
                    len(msgs), n, timeout, self.lab.logs_tail()))
            time.sleep(0.2)


class ExternalUpstream:
    """A real smarthost for Relay(upstream=...): verified against the system CAs."""

    external = True

    def __init__(self, host, port, user, password, tls=None):
        self.hostname, self.port, self.user, self.password = host, int(port), user, password
        self.tls = tls   # None: relay-admin decides (465 implicit, else STARTTLS)


class Relay(Instance):
    """The relay under test (see the module docstring for the options)."""

    def __init__(self, lab, upstream, milter=None, tls_port=True, upstream_password=None,
                 upstream_ca=None, upstream_insecure=False, setup_args=(),
                 main_overrides=None, service_overrides=None, cert='lab', milter_conf='',
                 start=True, main_before_setup=None, db=None, state_db=None):
        super().__init__(lab, 'relay', 'localhost')
        self.upstream = upstream
        self.port = free_port()
        self.tls_port = free_port() if tls_port else None
        while self.tls_port == self.port:
            self.tls_port = free_port()
        self.service_name = '%s:%d/inet' % (HOST, self.port)
        self.tls_service_name = ('%s:%d/inet' % (HOST, self.tls_port)) if self.tls_port else None
        if cert == 'lab':
            self.cert, self.key = lab.ca.issue('relay')
            self.cafile = lab.ca.cert
        else:   # 'generate': relay-admin setup makes a self-signed certificate
            self.cert = os.path.join(self.config_dir, 'relay-cert.pem')
            self.key = os.path.join(self.config_dir, 'relay-key.pem')
            self.cafile = self.cert
        self.sasl_dir = os.path.join(self.dir, 'sasl')
        dbdir = os.path.join(self.dir, 'db')
        os.makedirs(dbdir, exist_ok=True)
        _chown_postfix(dbdir, 0o750)
        self.set_main_dict(main_before_setup or {})
        if db is None:
            self.db = os.path.join(dbdir, 'users.db')
            self.admin('init')
            if os.path.exists(self.db):
                _chown_postfix(self.db, 0o640)
        else:   # a database the caller made (shared by several relays, PostgreSQL)
            self.db = db
        self.sasl_dir = os.path.join(self.config_dir, 'sasl')
        self.milter = None
        if milter is True:
            self.milter = Milter(lab, self, milter_conf, state_db=state_db)
            milter = self.milter.sock
        argv = [lab.relay_admin, '--db', self.db, 'setup', '--postfix-config', self.config_dir,
                '--port', '%s:%d' % (HOST, self.port),
                '--upstream', '[%s]:%d' % (upstream.hostname, upstream.port),
                '--upstream-user', upstream.user]
        if lab.plugin_dir:
            argv += ['--sasl-plugin-dir', lab.plugin_dir]
        argv += (['--cert', self.cert, '--key', self.key] if cert == 'lab'
                 else ['--hostname', self.hostname])
        if upstream_insecure:
            argv.append('--upstream-insecure')
        elif upstream_ca or not getattr(upstream, 'external', False):
            argv += ['--upstream-ca', upstream_ca or lab.ca.cert]
        if getattr(upstream, 'tls', None):
            argv += ['--upstream-tls', upstream.tls]
        if self.tls_port:
            argv += ['--tls-port', '%s:%d' % (HOST, self.tls_port)]
        argv += ['--milter', milter] if milter else ['--no-milter']
        argv += list(setup_args)
        pw = upstream.password if upstream_password is None else upstream_password
        p = _run(argv, input=(pw + '\n').encode())
        self.setup_output = p.stdout.decode(errors='replace') + p.stderr.decode(errors='replace')
        self._only_the_build_plugin()
        self.set_main_dict(main_overrides or {})
        for svc in filter(None, (self.service_name, self.tls_service_name)):
            for k, v in (service_overrides or {}).items():
                self.postconf('-P', '%s/%s=%s' % (svc, k, v))
        if start:
            self.start()

    def _ports(self):
        return [p for p in (self.port, self.tls_port) if p]

    def _only_the_build_plugin(self):
        """setup keeps libsasl2's own folder after --sasl-plugin-dir in SASL_PATH (for the
        mechanism plugins). If a relaydb is installed there too (the Debian package, or
        `meson install`), libsasl2 loads both, puts the one loaded last first and asks it
        first: smtpd would authenticate through the installed copy, not the build's. Then
        SASL_PATH becomes one lab folder: the build's librelaydb.so and links to every
        other plugin of those folders, so the build's relaydb is the only one."""
        if not self.lab.plugin_dir:
            return
        env = self.postconf('-h', 'import_environment').split()
        path = next((w[len('SASL_PATH='):] for w in env if w.startswith('SASL_PATH=')), '')
        system = [d for d in path.split(':') if d and d != self.lab.plugin_dir]
        if not any(os.path.exists(os.path.join(d, 'librelaydb.so')) for d in system):
            return
        folder = os.path.join(self.dir, 'sasl-plugins')
        os.makedirs(folder, exist_ok=True)
        os.chmod(folder, 0o755)
        os.symlink(os.path.join(self.lab.plugin_dir, 'librelaydb.so'),
                   os.path.join(folder, 'librelaydb.so'))
        for d in system:
            for name in sorted(os.listdir(d)):
                if not name.startswith('librelaydb') and \
                        not os.path.lexists(os.path.join(folder, name)):
                    os.symlink(os.path.join(d, name), os.path.join(folder, name))
        env = [w for w in env if not w.startswith('SASL_PATH=')] + ['SASL_PATH=' + folder]
        self.set_main(import_environment=' '.join(env))

    def start(self):
        if self.milter is not None and self.milter.pid is None:
            self.milter.start()
        super().start()

    def admin(self, *args, input=None, check=True):
        argv = [self.lab.relay_admin, '--db', self.db] + list(args)
        if isinstance(input, str):
            input = input.encode()
        return _run(argv, input=input, check=check)

    def add_user(self, name, password=None):
        if password is None:
            password = secrets.token_urlsafe(24)
        self.admin('user', 'add', name, '--password-stdin', input=password + '\n')
        return password

    def client_context(self):
        """An SSLContext that trusts this relay's certificate (lab CA or self-signed)."""
        return ssl.create_default_context(cafile=self.cafile)

    def smtp(self, starttls=True, timeout=30, source=None, helo='client.relaylab.test'):
        """A client of the relay's STARTTLS port; `source`: the address it sends from
        (REMOTE: a client Postfix does not count as local), `helo`: its EHLO name."""
        s = smtplib.SMTP(HOST, self.port, local_hostname=helo, timeout=timeout,
                         source_address=(source, 0) if source else None)
        try:
            s.ehlo()
            if starttls:
                s.starttls(context=self.client_context())
                s.ehlo()
        except BaseException:
            s.close()
            raise
        return s

    def smtps(self, timeout=30, source=None, helo='client.relaylab.test'):
        s = smtplib.SMTP_SSL(HOST, self.tls_port, local_hostname=helo, timeout=timeout,
                             context=self.client_context(),
                             source_address=(source, 0) if source else None)
        try:
            s.ehlo()
        except BaseException:
            s.close()
            raise
        return s


class Milter:
    """relay-milter from the build, for a relay of this lab (see the module docstring).

    Runs in the foreground as a child of this process (its own session, so it outlives a
    detached lab), as user postfix, on a unix socket in <lab>/milter/, with the relay's
    users database and a state database made by ``relay-admin init``. ``sock`` is the
    spec for ``Relay(milter=...)``; ``log()`` its stderr; ``stop()`` SIGTERM then SIGKILL.
    """

    def __init__(self, lab, relay, extra='', state_db=None):
        self.lab = lab
        self.binary = lab.relay_milter
        self.dir = os.path.join(lab.dir, lab._unique_name('milter'))
        os.makedirs(self.dir)
        uid, gid = _postfix_ids()
        os.chown(self.dir, uid, gid)
        os.chmod(self.dir, 0o750)
        if state_db is None:
            self.state_db = os.path.join(lab.dir, 'state-' + os.path.basename(self.dir),
                                         'state.db')
            relay.admin('--state-db', self.state_db, 'init', '--milter-user', POSTFIX_USER)
        else:   # made by the caller (shared by several milters, PostgreSQL)
            self.state_db = state_db
        self.socket = os.path.join(self.dir, 'milter.sock')
        self.sock = 'unix:' + self.socket
        self.conf = os.path.join(self.dir, 'milter.conf')
        self.logfile = os.path.join(self.dir, 'milter.log')
        # a database key the caller's lines give replaces the default (relay-milter refuses
        # a key given twice): a README block names its own state_db / users_db
        base = [('users_db', relay.db), ('state_db', self.state_db)]
        base = ''.join('%s = %s\n' % (k, v) for k, v in base
                       if not re.search(r'(?m)^\s*%s\s*=' % k, extra))
        with open(self.conf, 'w') as f:
            f.write('socket = %s\nuser = %s\n%slog = stderr\n%s'
                    % (self.sock, POSTFIX_USER, base, extra))
        self.proc = None
        self.pid = None

    def start(self, timeout=15):
        """Starts relay-milter and returns once its socket accepts connections. A socket
        left behind by a killed milter is removed first, so it cannot pass for this one."""
        if os.path.exists(self.socket) and (self.pid is None or not _pid_alive(self.pid)):
            os.unlink(self.socket)
        with open(self.logfile, 'ab') as log:
            self.proc = subprocess.Popen([self.binary, '-f', '-c', self.conf], stdout=log,
                                         stderr=log, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        self.pid = self.proc.pid
        self.lab._track(self)
        deadline = time.monotonic() + timeout
        while not self._accepts():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError('relay-milter did not start:\n' + self.log()[-2000:])
            time.sleep(0.05)
        return self

    def _accepts(self):
        return unix_socket_accepts(self.socket)

    def log(self):
        try:
            with open(self.logfile, errors='replace') as f:
                return f.read()
        except FileNotFoundError:
            return ''

    name = 'relay-milter'
    config_dir = None

    @property
    def _pid(self):
        return self.pid

    def stop(self, sig=signal.SIGTERM):
        """Sends `sig` (SIGKILL after 10 s if it is still running) -> the exit status
        (negative: killed by that signal), or None if it was not running or not our child."""
        if self.pid is None or not _pid_alive(self.pid):
            return None
        os.kill(self.pid, sig)
        deadline = time.monotonic() + 10
        while _pid_alive(self.pid) and time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                break
            time.sleep(0.05)
        if _pid_alive(self.pid) and (self.proc is None or self.proc.poll() is None):
            os.kill(self.pid, signal.SIGKILL)
        if self.proc is not None:
            try:
                return self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        return None


class Sink:
    """A plain SMTP server in a thread of this process (see the module docstring)."""

    name = 'sink'
    config_dir = None
    _pid = None

    def __init__(self, lab):
        import socket
        import threading
        self.lab = lab
        self._msgs = []
        self.auth_seen = False
        self._lock = threading.Lock()
        self._srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._srv.bind((HOST, 0))
        self._srv.listen(8)
        self._srv.settimeout(0.5)
        self.port = self._srv.getsockname()[1]
        self._stopping = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        lab._track(self)

    def _serve(self):
        while not self._stopping:
            try:
                conn, _ = self._srv.accept()
            except OSError:
                continue
            try:
                conn.settimeout(30)
                self._session(conn.makefile('rwb'))
            except OSError:
                pass
            finally:
                conn.close()

    def _session(self, f):
        def reply(text):
            f.write(text.encode() + b'\r\n')
            f.flush()
        reply('220 sink.relaylab.test ESMTP')
        while True:
            line = f.readline()
            if not line:
                return
            verb = line.split(b' ', 1)[0].strip().upper()
            if verb in (b'EHLO', b'HELO'):
                reply('250 sink.relaylab.test')
            elif verb == b'AUTH':
                with self._lock:
                    self.auth_seen = True
                reply('502 5.5.1 no AUTH here')
            elif verb == b'DATA':
                reply('354 go ahead')
                data = []
                while True:
                    dl = f.readline()
                    if not dl or dl == b'.\r\n':
                        break
                    data.append(dl)
                with self._lock:
                    self._msgs.append(b''.join(data))
                reply('250 2.0.0 kept')
            elif verb == b'QUIT':
                reply('221 bye')
                return
            else:
                reply('250 ok')

    def messages(self):
        with self._lock:
            return list(self._msgs)

    def log(self):
        return '%d messages, AUTH %s' % (len(self.messages()),
                                         'seen' if self.auth_seen else 'never seen')

    def wait_for(self, needle, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(needle in m for m in self.messages()):
                return True
            time.sleep(0.2)
        return False

    def stop(self):
        self._stopping = True
        self._srv.close()
        self._thread.join(5)


def _exit_on_sigterm():
    """meson stops a test that runs past its timeout with SIGTERM, which by default kills
    Python without running finally blocks or atexit: turn it into SystemExit so every lab
    stops its instances. Only if nobody installed a handler, and only in the main thread."""
    import threading
    if (threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL):
        def _raise(signum, frame):
            raise SystemExit(128 + signum)
        signal.signal(signal.SIGTERM, _raise)


class Lab:
    """A temporary folder with a CA and the instances started in it (see module docstring)."""

    def __init__(self, build_root=None, keep=None, prefix='relaylab-', dir=None,
                 installed=None):
        self.build_root = (os.path.abspath(build_root) if build_root
                           else default_build_root())
        if installed:
            # what a package or `meson install` put on this machine; libsasl2 finds the
            # plugin in its own folder, so no SASL_PATH at all
            self.relay_admin = os.path.join(installed, 'sbin', 'relay-admin')
            self.relay_milter = os.path.join(installed, 'sbin', 'relay-milter')
            self.plugin_dir = None
        else:
            self.relay_admin = os.path.join(self.build_root, 'admin', 'relay-admin')
            self.relay_milter = os.path.join(self.build_root, 'milter', 'relay-milter')
            self.plugin_dir = os.path.join(self.build_root, 'plugin')
        self.keep = keep if keep is not None else os.environ.get('RELAYLAB_KEEP') == '1'
        if dir is None:
            self.dir = tempfile.mkdtemp(prefix=prefix)
        else:
            self.dir = os.path.abspath(dir)
            os.makedirs(self.dir, exist_ok=True)
            if os.listdir(self.dir):
                raise RuntimeError('%s is not empty' % self.dir)
        # smtpd runs as `postfix` and must reach the files below (sasldb, users.db, certs)
        os.chmod(self.dir, 0o755)
        self._instances = []
        # stop what we started even if the caller forgets (or an exception skips) stop()
        atexit.register(self.stop)
        _exit_on_sigterm()
        self.ca = CA(os.path.join(self.dir, 'ca'))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    def _unique_name(self, name):
        n, candidate = 1, name
        while os.path.exists(os.path.join(self.dir, candidate)):
            n += 1
            candidate = '%s-%d' % (name, n)
        return candidate

    def _track(self, inst):
        if inst not in self._instances:
            self._instances.append(inst)

    def upstream(self, **kw):
        return Upstream(self, **kw)

    def relay(self, upstream, **kw):
        return Relay(self, upstream, **kw)

    def sink(self):
        return Sink(self)



    def detach(self):
        """Leaves the instances running after this process exits (no atexit stop, no
        folder removal) -> list of (config_dir, master pid) to stop them later."""
        atexit.unregister(self.stop)
        out = [(i.config_dir, i._pid) for i in self._instances]
        self._instances = []
        self.keep = True
        return out

    def logs_tail(self, n=4000):
        return '\n'.join('--- %s log ---\n%s' % (i.name, i.log()[-n:])
                         for i in self._instances)

    def stop(self):
        for inst in reversed(self._instances):
            try:
                inst.stop()
            except Exception:  # keep stopping the others
                pass
        self._instances = []
        if not self.keep and os.path.isdir(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)
