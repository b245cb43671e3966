"""nodelab — two relay nodes behind HAProxy sharing their databases, for end-to-end tests
and bench/e2e (stdlib only; builds on relaylab, haproxylab and tests/lib/pglab).

A *two-node relay* is what a site runs when one machine is not enough: two private Postfix
instances, each with the relaydb plugin and its own relay-milter, configured by
``relay-admin setup --proxy-protocol``, one upstream smarthost, and one HAProxy in TCP mode
sending PROXY v2. Both nodes use the same users database and the same state database:

* ``engine='postgresql'``: one private PostgreSQL 15 (pglab) with a database for the users
  and one for the state; the nodes, the milters and relay-admin reach them through ``pg:``
  conninfo files (0600, owned by postfix: smtpd and the milters read them as postfix; the
  password is in the file, never in argv); PostgreSQL's folder is pglab's own temporary
  one, stopped by ``close()`` after the nodes;
* ``engine='sqlite'``: the two nodes share one users file and one state file on this
  machine — the harness before the PostgreSQL engine, and the baseline for the benchmark.

Frontends of the proxy (all on 127.0.0.1, STARTTLS services of the nodes):
``both`` (``balance roundrobin`` over node A and node B), ``a`` and ``b`` (one node each:
to reach a given node through the proxy). Each node's ``myhostname`` is ``node-a.relaylab.test``
/ ``node-b.relaylab.test``, so the EHLO reply says which node answered (``node_of``).

API
---
``postgres_ready(build_root=None)`` -> None when the build speaks PostgreSQL in the plugin,
    the milter and relay-admin (they link libpq), else the reason (for a skip).
``TwoNodes(lab, engine='postgresql', milter_conf='', setup_args=(), pg_settings=None,
users_db=None, state_db=None, proxy=True)``
    ``engine='external'``: ``users_db`` / ``state_db`` made by the caller (the nodes' plugin
    uses ``users_db``; ``milter_conf`` may give the milters their own ``users_db`` and
    ``state_db`` lines); ``proxy=False``: no HAProxy (the caller brings its own).
    ``lab``: a relaylab ``Lab``; everything started (stopped with the lab; ``close()``
    also stops PostgreSQL). Attributes: ``up`` (upstream), ``nodes`` ([A, B] ``Relay``),
    ``pg`` (``pglab.PgLab`` or None), ``users_db``, ``state_db`` (the names everything
    uses), ``proxy`` (``haproxylab.HAProxy``), ``frontends`` ({'both', 'a', 'b'} ->
    ``haproxylab.Frontend``).
    ``admin(*args, input=None, check=True)``: relay-admin on the shared databases.
    PostgreSQL: ``users_uri`` (``postgresql://relay@127.0.0.1:PORT/relay_users``, no
    password) and ``passfile`` (a .pgpass for it, for ``PGPASSFILE``) reach the users
    database the way an admin's shell would.
    ``add_user(name, password=None)`` -> password (with sender ``NAME@example.org``).
    ``smtp(frontend='both', source=relaylab.REMOTE)`` -> ``smtplib.SMTP`` through the proxy,
    STARTTLS done (the lab CA verified).
    ``node_of(smtp)`` -> 'node-a' / 'node-b' from the EHLO reply.
    ``audit(login)`` -> the audit records of `login` (``relay-admin --json log``).
    ``close()``.
"""

import json
import os
import subprocess
import sys

import haproxylab
import relaylab

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(_HERE), 'lib'))
import pglab  # noqa: E402

NODE_NAMES = ('node-a', 'node-b')


def _links_libpq(path):
    try:
        out = subprocess.run(['ldd', path], capture_output=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return False
    return b'libpq.so' in out


def postgres_ready(build_root=None):
    """None if plugin, milter and relay-admin of the build speak PostgreSQL, else why not."""
    root = build_root or relaylab.default_build_root()
    parts = {'plugin': os.path.join(root, 'plugin', 'librelaydb.so'),
             'relay-milter': os.path.join(root, 'milter', 'relay-milter'),
             'relay-admin': os.path.join(root, 'admin', 'relay-admin')}
    missing = [name for name, path in parts.items() if not _links_libpq(path)]
    if missing:
        return ('the build has no PostgreSQL engine in %s (branches pg-engine and pg-admit)'
                % ', '.join(missing))
    return pglab.need_pg()


class TwoNodes:

    def __init__(self, lab, engine='postgresql', milter_conf='', setup_args=(),
                 pg_settings=None, users_db=None, state_db=None, proxy=True):
        self.lab = lab
        self.engine = engine
        self.pg = None
        self.dir = os.path.join(lab.dir, 'shared')
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        try:
            if engine == 'external':
                # databases the caller made (its own roles and grants); users_db is the
                # plugin's, milter_conf may name the milter's own users_db / state_db
                self.users_db, self.state_db = users_db, state_db
            elif engine == 'postgresql':
                self._postgres(pg_settings)
            else:
                self._sqlite()
            self.up = lab.upstream()
            self.nodes = []
            for name in NODE_NAMES:
                self.nodes.append(lab.relay(
                    self.up, milter=True, db=self.users_db, state_db=self.state_db,
                    milter_conf=milter_conf,
                    setup_args=('--proxy-protocol',) + tuple(setup_args),
                    main_overrides={'myhostname': name + '.relaylab.test'}))
            a, b = self.nodes
            self.frontends = {}
            self.proxy = None
            if not proxy:   # the caller runs its own HAProxy
                return
            self.frontends = {
                'both': haproxylab.Frontend([(relaylab.HOST, a.port), (relaylab.HOST, b.port)],
                                            name='both'),
                'a': haproxylab.Frontend([(relaylab.HOST, a.port)], name='a'),
                'b': haproxylab.Frontend([(relaylab.HOST, b.port)], name='b'),
            }
            self.proxy = haproxylab.HAProxy(os.path.join(lab.dir, 'haproxy'),
                                            list(self.frontends.values()), lab=lab).start()
        except BaseException:
            self.close()
            raise

    # -- the shared databases
    def _admin_raw(self, *args, input=None, check=True, state=True):
        argv = [self.lab.relay_admin, '--db', self.users_db]
        argv += ['--state-db', self.state_db] if state else []
        if isinstance(input, str):
            input = input.encode()
        p = subprocess.run(argv + list(args), input=input, capture_output=True, timeout=120)
        if check and p.returncode != 0:
            raise RuntimeError('relay-admin %s failed (exit %d): %s%s' % (
                ' '.join(args), p.returncode, p.stdout.decode(errors='replace'),
                p.stderr.decode(errors='replace')))
        return p

    def _sqlite(self):
        dbdir = os.path.join(self.dir, 'db')
        os.makedirs(dbdir)
        relaylab._chown_postfix(dbdir, 0o750)
        self.users_db = os.path.join(dbdir, 'users.db')
        self.state_db = os.path.join(self.dir, 'state', 'state.db')
        self._admin_raw('init', state=False)
        relaylab._chown_postfix(self.users_db, 0o640)
        self._admin_raw('init', '--milter-user', relaylab.POSTFIX_USER)

    def _postgres(self, settings):
        import secrets
        # its own temporary folder, outside the lab's: the lab removes its folder once the
        # nodes are stopped, and PostgreSQL must be stopped (close()) before its data goes
        self.pg = pglab.PgLab(settings=settings)
        password = secrets.token_urlsafe(24)
        self.pg.create_role('relay', password=password)
        self.pg.create_database('relay_users', owner='relay')
        self.pg.create_database('relay_state', owner='relay')
        # relay-admin by URI, the password from PGPASSFILE (neither in argv nor in the URI)
        self.passfile = self.pg.write_passfile(os.path.join(self.dir, 'admin.pgpass'), 'relay',
                                               password)
        self.users_uri = self.pg.uri('relay', 'relay_users')
        for db, var in (('relay_users', 'users_db'), ('relay_state', 'state_db')):
            path = os.path.join(self.dir, db + '.pg')
            setattr(self, var, self.pg.write_conninfo(path, 'relay', db, password=password,
                                                      owner=relaylab.POSTFIX_USER))
        self._admin_raw('init', state=False)
        self._admin_raw('init')   # the state schema (no file, so no --milter-user)

    # -- use
    def admin(self, *args, input=None, check=True):
        return self._admin_raw(*args, input=input, check=check)

    def add_user(self, name, password=None):
        import secrets
        password = password or secrets.token_urlsafe(24)
        self.admin('user', 'add', name, '--password-stdin', input=password + '\n')
        self.admin('sender', 'add', name, '%s@example.org' % name)
        return password

    def smtp(self, frontend='both', source=relaylab.REMOTE, timeout=30):
        fe = self.frontends[frontend]
        return haproxylab.smtp(fe.host, fe.port, self.nodes[0].client_context(),
                               source=source, timeout=timeout)

    @staticmethod
    def node_of(s):
        first = s.ehlo_resp.decode(errors='replace').split('\n', 1)[0]
        return first.split('.', 1)[0]

    def audit(self, login):
        p = self.admin('--json', 'log', '--user', login)
        return json.loads(p.stdout)

    def logs_tail(self):
        out = [self.lab.logs_tail()]
        for r in self.nodes:
            if r.milter is not None:
                out.append('--- %s milter ---\n%s' % (r.name, r.milter.log()[-3000:]))
        out.append('--- haproxy ---\n' + self.proxy.log()[-2000:] if getattr(self, 'proxy', None)
                   else '')
        return '\n'.join(out)

    def close(self):
        self.lab.stop()
        if self.pg is not None:
            self.pg.close()
            self.pg = None
