"""e2elib — the unittest glue shared by the end-to-end tests in tests/e2e/ (stdlib only).

relaylab.py is the harness (Postfix instances, CA, relay-milter) and stays usable on its
own (bench/ and scripts/demo import it); this module holds what every test file around it
needed and had written again: the build check, the exit-77 main, a class fixture with one
lab, upstream and relay, AUTH with exactly one mechanism, and waiting for a delivery.

``SKIP``
    77, meson's exit status for "skipped".
``missing_build(*extra)``
    None if the build (``relaylab.default_build_root()``) holds ``admin/relay-admin``,
    ``plugin/librelaydb.so`` and every path in ``extra`` (relative to the build folder,
    e.g. ``'milter/relay-milter'``), else a ``'not built: ...'`` reason.
``require_build(*extra)``
    The same check for a test: under meson (``RELAY_BUILD_ROOT`` set) a missing binary is a
    failure (``AssertionError``); in a run by hand it is a skip (``unittest.SkipTest``).
``main()``
    Runs the calling module's tests (``unittest.main``, verbose) -> exit status: 77 with
    the reason if ``relaylab.need_root()`` says no Postfix instance can run here, else 0 if
    every test passed, 1 otherwise. Use as ``sys.exit(e2elib.main())``.
``LabCase``
    A ``unittest.TestCase`` base whose ``setUpClass`` checks the build
    (``require_build(*cls.needs)``), makes ``cls.lab``, ``cls.up`` (an upstream) and
    ``cls.relay`` (``lab.relay(cls.up, **cls.relay_options)``), then calls the hook
    ``cls.setUpLab()`` for what a subclass adds (users, limits). If any of that raises,
    the lab is stopped before the error propagates; ``tearDownClass`` stops it.
``auth(smtp, mech, user, password)``
    One AUTH with exactly ``mech`` (``'PLAIN'`` with an initial response, or ``'LOGIN'``)
    on a connected ``smtplib`` client -> ``(code, text)``; a refusal is returned, not raised.
``wait_delivered(test, upstream, subject, timeout=60)``
    Waits until a message holding ``subject`` is in ``upstream``'s maildir; otherwise
    fails ``test`` with the tail of the lab's logs.
"""

import os
import smtplib
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import relaylab  # noqa: E402

SKIP = 77


def missing_build(*extra):
    """None if the build holds relay-admin, the plugin and `extra`, else what is missing."""
    root = relaylab.default_build_root()
    need = [os.path.join(root, 'admin', 'relay-admin'),
            os.path.join(root, 'plugin', 'librelaydb.so')]
    need += [os.path.join(root, p) for p in extra]
    missing = [p for p in need if not os.path.exists(p)]
    return ('not built: ' + ', '.join(missing)) if missing else None


def require_build(*extra):
    """Skips a run by hand without a build; under meson (RELAY_BUILD_ROOT set) it fails."""
    why = missing_build(*extra)
    if why and os.environ.get('RELAY_BUILD_ROOT'):
        raise AssertionError(why)
    if why:
        raise unittest.SkipTest(why)


def main():
    """Runs the tests of the __main__ module -> exit status (77: cannot run Postfix here)."""
    why = relaylab.need_root()
    if why:
        print('SKIP: %s' % why)
        return SKIP
    prog = unittest.main(exit=False, verbosity=2)
    return 0 if prog.result.wasSuccessful() else 1


class LabCase(unittest.TestCase):
    """One lab, upstream and relay for all the tests of a class (see the module docstring)."""

    needs = ()             # more build outputs the class needs, e.g. ('milter/relay-milter',)
    relay_options = {}     # keyword options of lab.relay()

    @classmethod
    def setUpClass(cls):
        require_build(*cls.needs)
        cls.lab = relaylab.Lab()
        try:
            cls.up = cls.lab.upstream()
            cls.relay = cls.lab.relay(cls.up, **cls.relay_options)
            cls.setUpLab()
        except BaseException:
            cls.lab.stop()
            raise

    @classmethod
    def setUpLab(cls):
        """Hook: what a subclass adds to the fixture (the lab is stopped if it raises)."""

    @classmethod
    def tearDownClass(cls):
        cls.lab.stop()


def auth(s, mech, user, password):
    """One AUTH with exactly `mech` -> (code, text), never raising on a refusal."""
    s.user, s.password = user, password
    try:
        if mech == 'PLAIN':
            return s.auth('PLAIN', s.auth_plain, initial_response_ok=True)
        return s.auth('LOGIN', s.auth_login, initial_response_ok=False)
    except smtplib.SMTPAuthenticationError as e:
        return e.smtp_code, e.smtp_error


def wait_delivered(test, upstream, subject, timeout=60):
    """Waits until a message with `subject` is in the upstream maildir, else fails `test`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(subject.encode() in m for m in upstream.messages()):
            return
        time.sleep(0.2)
    test.fail('%s never reached the upstream maildir\n%s' % (subject, upstream.lab.logs_tail()))
