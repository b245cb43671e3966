"""setuplib — what the tests of `relay-admin setup` on a lab relay share (stdlib only).

test_setup.py and test_setup_files.py both run setup again on a relay the lab has set up
but not started, with the lab's own arguments (or those and one change); this base class
holds that once, so both files run setup the same way.

``SetupCase``
    An ``e2elib.LabCase`` whose relay is not started. ``setup_cmd(*args, password=None,
    env=None)`` runs ``relay-admin --db DB setup --postfix-config DIR *args`` with the
    password (if any) on stdin -> ``(exit status, stdout + stderr)``;
    ``lab_args(*extra)`` is the lab's own setup of the relay (ports, certificate, plugin
    folder, upstream with STARTTLS and the lab CA, no milter) followed by ``extra``.
"""
import subprocess

from e2elib import LabCase


class SetupCase(LabCase):

    relay_options = {'start': False}

    def setup_cmd(self, *args, password=None, env=None):
        r = self.relay
        argv = [self.lab.relay_admin, '--db', r.db, 'setup', '--postfix-config',
                r.config_dir] + list(args)
        p = subprocess.run(argv, input=(password + '\n').encode() if password else b'',
                           capture_output=True, env=env, timeout=120)
        return p.returncode, p.stdout.decode() + p.stderr.decode()

    def lab_args(self, *extra):
        r, up = self.relay, self.up
        return ['--port', '%s:%d' % (r.host, r.port), '--tls-port', '%s:%d' % (r.host, r.tls_port),
                '--cert', r.cert, '--key', r.key, '--sasl-plugin-dir', self.lab.plugin_dir,
                '--upstream', '[%s]:%d' % (up.hostname, up.port), '--upstream-tls', 'starttls',
                '--upstream-user', up.user, '--upstream-ca', self.lab.ca.cert,
                '--no-milter'] + list(extra)
