"""milterproto.py — a minimal milter protocol (version 6) client, the MTA side, for tests.

Speaks the wire format libmilter expects: 4-byte big-endian length, one command byte,
data. Honours what the filter negotiates: steps it switched off are not sent, steps
marked "no reply" are not waited for. Standard library only.

    m = MilterClient("/path/milter.sock")      # or ("127.0.0.1", port)
    m.negotiate()
    r = m.mail("<alice@example.com>", macros={"{auth_authen}": "alice", ...})
    r.code   -> 'c' continue, 'r' reject, 't' tempfail, 'y' reply (r.text = "550 5.7.1 ...")
"""
import socket
import struct

SMFIP_NOCONNECT = 0x1
SMFIP_NOHELO = 0x2
SMFIP_NOMAIL = 0x4
SMFIP_NORCPT = 0x8
SMFIP_NOBODY = 0x10
SMFIP_NOHDRS = 0x20
SMFIP_NOEOH = 0x40
SMFIP_NR_HDR = 0x80
SMFIP_NOUNKNOWN = 0x100
SMFIP_NODATA = 0x200
SMFIP_NR_CONN = 0x1000
SMFIP_NR_HELO = 0x2000
SMFIP_NR_MAIL = 0x4000
SMFIP_NR_RCPT = 0x8000
SMFIP_NR_DATA = 0x10000
SMFIP_NR_EOH = 0x40000
SMFIP_NR_BODY = 0x80000
ALL_STEPS = 0x1FFFFF  # what Postfix 3.7 offers with milter_protocol = 6
ALL_ACTIONS = 0x1FF


class Reply:
    def __init__(self, code, text="", actions=None):
        self.code = code
        self.text = text
        self.actions = actions or []

    @property
    def smtp(self):
        """The SMTP reply the MTA would give: 'continue', or the code and text."""
        if self.code == "c" or self.code == "a":
            return "continue"
        if self.code == "y":
            return self.text
        if self.code == "r":
            return "550 5.7.1 Command rejected"
        if self.code == "t":
            return "451 4.7.1 Service unavailable - try again later"
        return "?" + self.code

    def __repr__(self):
        return "Reply(%r, %r, %r)" % (self.code, self.text, self.actions)


class MilterError(Exception):
    pass


class MilterClient:
    def __init__(self, address, timeout=10.0):
        if isinstance(address, str):
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(address)
        self.steps = 0
        self.actions = 0
        self.macro_lists = {}

    def close(self):
        try:
            self._send(b"Q")
        except OSError:
            pass
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _send(self, cmd, data=b""):
        self.sock.sendall(struct.pack(">I", len(data) + 1) + cmd + data)

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise MilterError("milter closed the connection")
            buf += chunk
        return buf

    def _recv(self):
        (n,) = struct.unpack(">I", self._recv_exact(4))
        if n < 1 or n > 1 << 20:
            raise MilterError("bad packet length %d" % n)
        body = self._recv_exact(n)
        return chr(body[0]), body[1:]

    def _reply(self):
        """Reads modification actions until a final reply."""
        actions = []
        while True:
            code, data = self._recv()
            if code in "crtay":
                text = data.rstrip(b"\0").decode("ascii", "replace") if code == "y" else ""
                return Reply(code, text, actions)
            if code == "p":  # progress
                continue
            actions.append((code, data.rstrip(b"\0").decode("ascii", "replace")))

    def negotiate(self, offer_actions=ALL_ACTIONS, offer_steps=ALL_STEPS):
        self._send(b"O", struct.pack(">III", 6, offer_actions, offer_steps))
        code, data = self._recv()
        if code != "O" or len(data) < 12:
            raise MilterError("bad negotiate reply %r" % code)
        _version, self.actions, self.steps = struct.unpack(">III", data[:12])
        rest = data[12:]
        while len(rest) >= 4:
            (stage,) = struct.unpack(">I", rest[:4])
            end = rest.index(b"\0", 4)
            self.macro_lists[stage] = rest[4:end].decode()
            rest = rest[end + 1:]
        return self.actions, self.steps

    def _macros(self, cmd, macros):
        if not macros:
            return
        data = cmd
        for k, v in macros.items():
            data += k.encode() + b"\0" + v.encode() + b"\0"
        self._send(b"D", data)

    def connect(self, host="client.example", addr="127.0.0.1", port=12345, macros=None):
        if self.steps & SMFIP_NOCONNECT:
            return None
        self._macros(b"C", macros)
        self._send(b"C", host.encode() + b"\0" + b"4" + struct.pack(">H", port)
                   + addr.encode() + b"\0")
        return None if self.steps & SMFIP_NR_CONN else self._reply()

    def helo(self, name="client.example", macros=None):
        if self.steps & SMFIP_NOHELO:
            return None
        self._macros(b"H", macros)
        self._send(b"H", name.encode() + b"\0")
        return None if self.steps & SMFIP_NR_HELO else self._reply()

    def mail(self, sender, args=(), macros=None):
        self._macros(b"M", macros)
        data = sender.encode() + b"\0" + b"".join(a.encode() + b"\0" for a in args)
        self._send(b"M", data)
        return self._reply()

    def rcpt(self, rcpt, macros=None):
        """The RCPT reply, or None when the filter negotiated RCPT away or asked for no
        reply (NR_RCPT): the MTA then accepts the recipient as far as the filter goes."""
        if self.steps & SMFIP_NORCPT:
            return None
        self._macros(b"R", macros)
        self._send(b"R", rcpt.encode() + b"\0")
        return None if self.steps & SMFIP_NR_RCPT else self._reply()

    def data(self):
        if self.steps & SMFIP_NODATA:
            return None
        self._send(b"T")
        return None if self.steps & SMFIP_NR_DATA else self._reply()

    def header(self, name, value):
        if self.steps & SMFIP_NOHDRS:
            return None
        self._send(b"L", name.encode() + b"\0" + value.encode() + b"\0")
        return None if self.steps & SMFIP_NR_HDR else self._reply()

    def eoh(self):
        if self.steps & SMFIP_NOEOH:
            return None
        self._send(b"N")
        return None if self.steps & SMFIP_NR_EOH else self._reply()

    def body(self, chunk):
        if self.steps & SMFIP_NOBODY:
            return None
        self._send(b"B", chunk)
        return None if self.steps & SMFIP_NR_BODY else self._reply()

    def eom(self, macros=None):
        self._macros(b"E", macros)
        self._send(b"E")
        return self._reply()

    def abort(self):
        self._send(b"A")

    def message(self, headers, body=b"Hello.\r\n", eom_macros=None):
        """Sends DATA, headers, end of headers, body and end of message; returns the EOM
        reply, or the first non-continue reply of an earlier stage."""
        for r in (self.data(),):
            if r is not None and r.code != "c":
                return r
        for name, value in headers:
            r = self.header(name, value)
            if r is not None and r.code != "c":
                return r
        r = self.eoh()
        if r is not None and r.code != "c":
            return r
        r = self.body(body)
        if r is not None and r.code != "c":
            return r
        return self.eom(eom_macros)
