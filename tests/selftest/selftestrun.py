"""selftestrun.py — one run of `relay-admin --json selftest` for the tests that drive it
(stdlib only): test_selftest_credentials.py here, against a fake relay, and
tests/e2e/test_selftest.py, against a real one. Both need the same care, kept in one place:
the password goes in on stdin (never argv), no password variable of the caller's
environment leaks in, and stdout must be one JSON report.

``run(argv, password, env_extra=None, timeout=120)``
    Runs argv with ``password`` on stdin in the caller's environment less
    RELAY_PASSWORD and RELAY_UPSTREAM_PASSWORD, plus ``env_extra`` ->
    ``(exit status, report dict, stdout, stderr)``. No JSON on stdout fails the test
    (``AssertionError`` with the exit status and both outputs).
"""
import json
import os
import subprocess

_PASSWORD_VARS = ('RELAY_PASSWORD', 'RELAY_UPSTREAM_PASSWORD')


def run(argv, password, env_extra=None, timeout=120):
    env = {k: v for k, v in os.environ.items() if k not in _PASSWORD_VARS}
    env.update(env_extra or {})
    p = subprocess.run(argv, input=(password + '\n').encode(), capture_output=True, env=env,
                       timeout=timeout)
    out = p.stdout.decode(errors='replace')
    err = p.stderr.decode(errors='replace')
    try:
        report = json.loads(out)
    except ValueError:
        raise AssertionError('selftest printed no JSON (exit %d):\n%s\n%s' % (
            p.returncode, out, err))
    return p.returncode, report, out, err
