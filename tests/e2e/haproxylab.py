"""haproxylab — a real HAProxy in front of relay nodes, for end-to-end tests (stdlib only).

HAProxy (Debian package ``haproxy``) in TCP mode, sending the PROXY protocol v2 header
(``send-proxy-v2``) to its backends, the way a site puts several relays behind one address.
Its configuration lives in a folder of the caller's (a relaylab lab folder); it listens
on loopback high ports picked at run time, runs in the foreground (``-db``) as a child of
this process in a session of its own, logs to its stderr (a file in that folder) and is
stopped by its pid. Nothing outside the folder is written, the system's haproxy service
is never touched.

API
---
``haproxy_available()`` -> bool (the binary is installed).

``HAProxy(folder, frontends, check=False, name='haproxy')``
    ``frontends``: list of ``Frontend``. ``check=True`` adds an SMTP health check
    (``option smtpchk``, the check also sends the PROXY header: ``check-send-proxy``) to
    every server line; off by default so a test decides alone which backend answers.
    ``start(timeout=15)`` returns once every frontend port listens (read from
    /proc/net/tcp: no probe connection reaches a backend); ``stop()`` SIGTERM, then
    SIGKILL, by pid; ``log()`` its output; ``pid``; ``config`` (the file's path).
    A relaylab ``Lab`` stops it with the rest when passed as ``lab=`` (it is tracked).

``Frontend(servers, port=None, host='127.0.0.1', balance='roundrobin', name=None)``
    ``servers``: list of ``(host, port)`` backends (each gets ``send-proxy-v2``);
    ``port``: the listening port (default: a free one); ``balance``: HAProxy's algorithm
    (``roundrobin``: consecutive connections alternate between the servers).

``smtp(host, port, context, source=None, starttls=True, helo=..., timeout=30)`` ->
    a connected ``smtplib.SMTP`` (EHLO and, by default, STARTTLS done, the relay's
    certificate verified with ``context``; the relays' certificates name 127.0.0.1, which
    is where the proxy listens too). ``source``: the client's address (relaylab.REMOTE).
``smtps(host, port, context, source=None, ...)``: the same on an implicit-TLS frontend.
"""

import os
import shutil
import signal
import smtplib
import subprocess
import time

import relaylab

HAPROXY = '/usr/sbin/haproxy'


def haproxy_available():
    return os.access(HAPROXY, os.X_OK) or shutil.which('haproxy') is not None


def _binary():
    return HAPROXY if os.access(HAPROXY, os.X_OK) else shutil.which('haproxy')


def _listening_ports():
    """Ports with a socket in LISTEN state on IPv4 (from /proc/net/tcp)."""
    ports = set()
    with open('/proc/net/tcp') as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[3] == '0A':   # TCP_LISTEN
                ports.add(int(fields[1].rsplit(':', 1)[1], 16))
    return ports


class Frontend:
    _count = 0

    def __init__(self, servers, port=None, host=relaylab.HOST, balance='roundrobin',
                 name=None):
        Frontend._count += 1
        self.servers = list(servers)
        self.host = host
        self.port = port or relaylab.free_port()
        self.balance = balance
        self.name = name or 'relay%d' % Frontend._count


class HAProxy:
    config_dir = None

    def __init__(self, folder, frontends, check=False, name='haproxy', lab=None):
        self.name = name
        self.dir = folder
        os.makedirs(folder, exist_ok=True)
        self.frontends = list(frontends)
        self.check = check
        self.config = os.path.join(folder, 'haproxy.cfg')
        self.logfile = os.path.join(folder, 'haproxy.log')
        self.proc = None
        self.pid = None
        self.lab = lab
        with open(self.config, 'w') as f:
            f.write(self._config_text())

    def _config_text(self):
        out = ['# written by haproxylab.py: TCP mode, PROXY protocol v2 to every backend',
               'global',
               '    log stderr format raw local0 info',
               '    maxconn 500',
               '',
               'defaults',
               '    mode tcp',
               '    log global',
               '    option tcplog',
               '    timeout connect 5s',
               '    timeout client 60s',
               '    timeout server 60s',
               '']
        for fe in self.frontends:
            out += ['frontend %s' % fe.name,
                    '    bind %s:%d' % (fe.host, fe.port),
                    '    default_backend %s_nodes' % fe.name,
                    '',
                    'backend %s_nodes' % fe.name,
                    '    balance %s' % fe.balance]
            if self.check:
                out.append('    option smtpchk EHLO haproxy.relaylab.test')
            for i, (host, port) in enumerate(fe.servers):
                line = '    server node%d %s:%d send-proxy-v2' % (i + 1, host, port)
                if self.check:
                    line += ' check check-send-proxy inter 2s'
                out.append(line)
            out.append('')
        return '\n'.join(out)

    def start(self, timeout=15):
        subprocess.run([_binary(), '-c', '-f', self.config], check=True,
                       capture_output=True, timeout=30)
        with open(self.logfile, 'ab') as log:
            self.proc = subprocess.Popen([_binary(), '-db', '-f', self.config],
                                         stdout=log, stderr=log, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        self.pid = self.proc.pid
        if self.lab is not None:
            self.lab._track(self)
        want = {fe.port for fe in self.frontends}
        deadline = time.monotonic() + timeout
        while not want <= _listening_ports():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError('haproxy did not start:\n' + self.log()[-2000:])
            time.sleep(0.05)
        return self

    @property
    def _pid(self):
        return self.pid

    def log(self):
        try:
            with open(self.logfile, errors='replace') as f:
                return f.read()
        except FileNotFoundError:
            return ''

    def stop(self):
        """SIGTERM (SIGKILL after 10 s) to our haproxy, by pid -> exit status or None."""
        if self.proc is None or self.proc.poll() is not None:
            return None
        os.kill(self.pid, signal.SIGTERM)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            return self.proc.wait(5)


def smtp(host, port, context, source=None, starttls=True, helo='client.relaylab.test',
         timeout=30):
    s = smtplib.SMTP(host, port, local_hostname=helo, timeout=timeout,
                     source_address=(source, 0) if source else None)
    try:
        s.ehlo()
        if starttls:
            s.starttls(context=context)
            s.ehlo()
    except BaseException:
        s.close()
        raise
    return s


def smtps(host, port, context, source=None, helo='client.relaylab.test', timeout=30):
    s = smtplib.SMTP_SSL(host, port, local_hostname=helo, timeout=timeout, context=context,
                         source_address=(source, 0) if source else None)
    try:
        s.ehlo()
    except BaseException:
        s.close()
        raise
    return s
