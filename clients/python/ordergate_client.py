#!/usr/bin/env python3
"""Python client for the ordergate strategy protocol (stdlib only).

The byte layout is specified in docs/PROTOCOL.md; this module follows it
field by field, as the Rust codec in crates/ordergate-proto/src/codec.rs does. Prices and
quantities are integer mantissas at the instrument's scales: never floats.

Typical use::

    with Client("/run/ordergate.sock", "mm1") as c:
        btc = c.instrument_by_symbol("BTCUSDT")
        c.new_order(1, btc.instrument_id, Side.BUY, OrdType.LIMIT,
                    TimeInForce.GTC, price=5_200_000, qty=100)
        msg = c.recv(timeout=1.0)

``python3 ordergate_client.py --roundtrip`` reads frames of either
direction on stdin, decodes and re-encodes each, and writes them to stdout
(the cross-language test in crates/ordergate-proto/tests/protocol_codec.rs
drives it).
"""

import enum
import socket
import struct
import sys
from collections import namedtuple

VERSION_MIN = 1
VERSION_MAX = 2
# From this version on HelloAck ends with the sidecar's identity
# (installation, epoch); an older HelloAck stops at instrument_count and
# decodes them as 0.
IDENTITY_VERSION = 2
MAX_FRAME = 4096
MAX_STR = 255


class Side(enum.IntEnum):
    BUY = 1
    SELL = 2


class OrdType(enum.IntEnum):
    LIMIT = 1
    MARKET = 2
    LIMIT_MAKER = 3


class TimeInForce(enum.IntEnum):
    GTC = 1
    IOC = 2
    FOK = 3


class OrderState(enum.IntEnum):
    PENDING_NEW = 1
    NEW = 2
    PARTIALLY_FILLED = 3
    FILLED = 4
    PENDING_CANCEL = 5
    CANCELED = 6
    REJECTED = 7
    EXPIRED = 8
    UNKNOWN = 9


class VenueState(enum.IntEnum):
    DOWN = 1
    CONNECTING = 2
    UP = 3
    HALTED = 4


class Reason(enum.IntEnum):
    NONE = 0
    MALFORMED_FRAME = 1
    FRAME_TOO_LARGE = 2
    UNKNOWN_MESSAGE_TYPE = 3
    UNKNOWN_ENUM_VALUE = 4
    UNSUPPORTED_VERSION = 5
    HELLO_REQUIRED = 6
    UNKNOWN_STRATEGY = 7
    STRATEGY_ALREADY_CONNECTED = 8
    SLOW_CONSUMER = 9
    NOT_IMPLEMENTED = 10
    RESEND_UNAVAILABLE = 11
    UNKNOWN_INSTRUMENT = 100
    INVALID_PRICE = 101
    INVALID_QTY = 102
    PRICE_NOT_ON_TICK = 103
    QTY_NOT_ON_LOT = 104
    BELOW_MIN_QTY = 105
    BELOW_MIN_NOTIONAL = 106
    INVALID_FLAGS = 107
    DUPLICATE_ORDER_ID = 108
    UNKNOWN_ORDER = 109
    ORDER_NOT_OPEN = 110
    QUEUE_FULL = 111
    THROTTLED = 112
    VENUE_DOWN = 200
    VENUE_REJECTED = 201
    VENUE_RATE_LIMITED = 202
    VENUE_TIMESTAMP = 203
    VENUE_AUTH = 204
    VENUE_UNKNOWN_ORDER = 205
    VENUE_INSUFFICIENT_BALANCE = 206
    VENUE_FILTER = 207
    WOULD_TAKE_LIQUIDITY = 208


# NewOrder flag bits.
REDUCE_ONLY = 1 << 0
POST_ONLY = 1 << 1
QUOTE_QTY = 1 << 2
KNOWN_FLAGS = REDUCE_ONLY | POST_ONLY | QUOTE_QTY


class Wide(namedtuple("Wide", "mantissa scale")):
    """A venue-reported amount: ``mantissa / 10**scale`` (i128, u8)."""

    __slots__ = ()

    def __str__(self):
        neg = self.mantissa < 0
        digits = str(abs(self.mantissa)).rjust(self.scale + 1, "0")
        if self.scale:
            digits = digits[: -self.scale] + "." + digits[-self.scale:]
        return ("-" if neg else "") + digits


# --- errors -----------------------------------------------------------------


class ProtocolError(Exception):
    """A frame that could not be decoded. ``fatal`` errors mean the byte
    stream is out of sync and the connection must be closed."""

    fatal = True
    reason = Reason.MALFORMED_FRAME


class Malformed(ProtocolError):
    """Truncated, trailing bytes, bad UTF-8 or wrong sequence number."""


class FrameTooLarge(ProtocolError):
    reason = Reason.FRAME_TOO_LARGE


class UnknownMessageType(ProtocolError):
    fatal = False
    reason = Reason.UNKNOWN_MESSAGE_TYPE


class UnknownEnumValue(ProtocolError):
    fatal = False
    reason = Reason.UNKNOWN_ENUM_VALUE


class Reserved(ProtocolError):
    """A reserved message type (Amend, CancelReplace, ...)."""

    fatal = False
    reason = Reason.NOT_IMPLEMENTED


# --- message schemas ----------------------------------------------------------

# Field kinds: fixed-size integers by struct code, plus the composite ones.
_INT = {"u8": "<B", "u16": "<H", "u32": "<I", "u64": "<Q", "i64": "<q"}

_INBOUND = {
    0x0001: ("Hello", [("min_version", "u16"), ("max_version", "u16"), ("name", "str")]),
    0x0002: (
        "NewOrder",
        [
            ("order_id", "u64"),
            ("instrument_id", "u32"),
            ("side", Side),
            ("ord_type", OrdType),
            ("tif", TimeInForce),
            ("flags", "flags"),
            ("price", "i64"),
            ("qty", "i64"),
        ],
    ),
    0x0003: ("Cancel", [("order_id", "u64")]),
    0x0004: ("CancelAll", [("instrument_id", "u32")]),
    0x0005: ("ResendFrom", [("seq", "u64")]),
    0x0006: ("Heartbeat", []),
}
_RESERVED = {0x0010: "Amend", 0x0011: "CancelReplace", 0x0012: "MassCancel", 0x0013: "AccountQuery"}

_OUTBOUND = {
    0x0081: (
        "HelloAck",
        [
            ("version", "u16"),
            ("strategy_id", "u32"),
            ("next_seq", "u64"),
            ("instrument_count", "u32"),
            ("installation", "u64"),  # IDENTITY_VERSION and later
            ("epoch", "u32"),  # IDENTITY_VERSION and later
        ],
    ),
    0x0082: (
        "InstrumentInfo",
        [
            ("instrument_id", "u32"),
            ("venue", "u8"),
            ("category", "u8"),
            ("price_scale", "u8"),
            ("qty_scale", "u8"),
            ("tick", "i64"),
            ("lot", "i64"),
            ("min_qty", "i64"),
            ("min_notional", "i128"),
            ("symbol", "str"),
        ],
    ),
    0x0083: ("Accepted", [("order_id", "u64"), ("venue_order_id", "str")]),
    0x0084: ("Rejected", [("order_id", "u64"), ("reason", Reason), ("text", "str")]),
    0x0085: (
        "Fill",
        [
            ("order_id", "u64"),
            ("last_qty", "i64"),
            ("last_price", "i64"),
            ("cum_qty", "i64"),
            ("cum_notional", "i128"),
            ("avg_price", "i64"),
            ("leaves_qty", "i64"),
            ("fee", "wide"),
            ("fee_asset", "str"),
            ("trade_id", "str"),
            ("venue_time_ms", "u64"),
            ("is_maker", "bool"),
        ],
    ),
    0x0086: ("Canceled", [("order_id", "u64"), ("cum_qty", "i64")]),
    0x0087: ("CancelRejected", [("order_id", "u64"), ("reason", Reason), ("text", "str")]),
    0x0088: ("Expired", [("order_id", "u64"), ("cum_qty", "i64")]),
    0x0089: (
        "OrderStatus",
        [
            ("order_id", "u64"),
            ("state", OrderState),
            ("cum_qty", "i64"),
            ("cum_notional", "i128"),
            ("avg_price", "i64"),
            ("leaves_qty", "i64"),
        ],
    ),
    0x008A: ("VenueStatus", [("venue", "u8"), ("state", VenueState), ("text", "str")]),
    0x008B: ("Heartbeat", []),
    0x008C: ("Error", [("reason", Reason), ("text", "str")]),
}

# Sequenced (order-related) messages carry seq >= 1, the others seq 0.
SEQUENCED = {"Accepted", "Rejected", "Fill", "Canceled", "CancelRejected", "Expired", "OrderStatus"}

_IDENTITY = ("installation", "epoch")

_IN_BY_NAME = {name: (t, fields) for t, (name, fields) in _INBOUND.items()}
_OUT_BY_NAME = {name: (t, fields) for t, (name, fields) in _OUTBOUND.items()}


class Message:
    """One protocol message: ``type`` is its name ("NewOrder", "Fill"...),
    ``direction`` is "in" (strategy → sidecar) or "out", and its fields are
    attributes. Outbound messages also have ``seq`` (0 when unsequenced),
    the header field every sidecar → strategy frame carries. ``direction``
    is only needed to tell the two Heartbeats apart.
    """

    def __init__(self, type, direction=None, **fields):
        if direction is None:
            direction = "in" if type in _IN_BY_NAME else "out"
        if direction == "out":
            fields.setdefault("seq", 0)
        self.__dict__.update(fields)
        self.type = type
        self.direction = direction

    def fields(self):
        return {k: v for k, v in self.__dict__.items() if k not in ("type", "direction")}

    def __eq__(self, other):
        return isinstance(other, Message) and self.__dict__ == other.__dict__

    def __repr__(self):
        body = ", ".join("%s=%r" % kv for kv in self.fields().items())
        return "<%s %s>" % (self.type, body)


# --- encoding -------------------------------------------------------------------


def _put_str(out, s):
    """u8 length + UTF-8, cut to MAX_STR bytes at a character boundary
    (as the Rust encoder does)."""
    b = s.encode("utf-8")
    if len(b) > MAX_STR:
        end = MAX_STR
        while b[end] & 0xC0 == 0x80:  # never split a multi-byte character
            end -= 1
        b = b[:end]
    out.append(len(b))
    out += b


def _put(out, kind, value, where):
    try:
        if kind in _INT:
            out += struct.pack(_INT[kind], value)
        elif kind == "i128":
            out += int(value).to_bytes(16, "little", signed=True)
        elif kind == "str":
            _put_str(out, value)
        elif kind == "wide":
            out += int(value[0]).to_bytes(16, "little", signed=True)
            out += struct.pack("<B", value[1])
        elif kind == "bool":
            out.append(1 if value else 0)
        elif kind == "flags":
            if value & ~KNOWN_FLAGS:
                raise ValueError("unknown flag bits 0x%02x" % value)
            out += struct.pack("<B", value)
        else:  # an enum class: u16 for Reason, u8 for the others
            kind(value)  # refuses values the enum does not have
            out += struct.pack("<H" if kind is Reason else "<B", value)
    except (struct.error, OverflowError, TypeError, ValueError) as e:
        raise ValueError("cannot encode %s: %s" % (where, e)) from None


def encode(msg):
    """The complete frame (length prefix included) for a message."""
    if msg.direction == "in":
        t, fields = _IN_BY_NAME[msg.type]
        body = bytearray(struct.pack("<H", t))
    else:
        t, fields = _OUT_BY_NAME[msg.type]
        if (msg.seq != 0) != (msg.type in SEQUENCED):
            raise ValueError("%s cannot carry seq %d" % (msg.type, msg.seq))
        if msg.type == "HelloAck":
            fields = _hello_ack_fields(msg.version)
        body = bytearray(struct.pack("<HQ", t, msg.seq))
    for field, kind in fields:
        _put(body, kind, getattr(msg, field), msg.type + "." + field)
    return struct.pack("<I", len(body)) + bytes(body)


# --- decoding ---------------------------------------------------------------------


class _Cursor:
    def __init__(self, body, name):
        self.body = body
        self.pos = 0
        self.name = name
        # The first unknown enum value, reported only once the frame proved
        # well-formed: truncation always wins.
        self.bad_value = None

    def take(self, n, field):
        if self.pos + n > len(self.body):
            raise Malformed("%s frame truncated while reading %s" % (self.name, field))
        b = self.body[self.pos:self.pos + n]
        self.pos += n
        return b

    def unknown(self, field, value):
        if self.bad_value is None:
            self.bad_value = UnknownEnumValue(
                "%s field %s has unknown value %d" % (self.name, field, value))

    def get(self, kind, field):
        if kind in _INT:
            code = _INT[kind]
            return struct.unpack(code, self.take(struct.calcsize(code), field))[0]
        if kind == "i128":
            return int.from_bytes(self.take(16, field), "little", signed=True)
        if kind == "str":
            n = self.take(1, field)[0]
            raw = self.take(n, field)
            try:
                return raw.decode("utf-8")
            except UnicodeDecodeError:
                raise Malformed("%s field %s is not valid UTF-8" % (self.name, field)) from None
        if kind == "wide":
            m = int.from_bytes(self.take(16, field), "little", signed=True)
            return Wide(m, self.take(1, field)[0])
        if kind == "bool":
            v = self.take(1, field)[0]
            if v > 1:
                self.unknown(field, v)
            return v == 1
        if kind == "flags":
            v = self.take(1, field)[0]
            if v & ~KNOWN_FLAGS:
                self.unknown(field, v)
            return v
        if kind is Reason:
            v = struct.unpack("<H", self.take(2, field))[0]
        else:
            v = self.take(1, field)[0]
        try:
            return kind(v)
        except ValueError:
            self.unknown(field, v)
            return v

    def end(self):
        extra = len(self.body) - self.pos
        if extra:
            raise Malformed("%s frame has %d trailing bytes after its last field" % (self.name, extra))
        if self.bad_value is not None:
            raise self.bad_value


def _hello_ack_fields(version):
    """HelloAck's layout follows the version it announces: the identity
    fields are left out before IDENTITY_VERSION."""
    fields = _OUTBOUND[0x0081][1]
    return fields if version >= IDENTITY_VERSION else [f for f in fields if f[0] not in _IDENTITY]


def _read_type(body):
    if len(body) < 2:
        raise Malformed("frame truncated while reading message type")
    return struct.unpack_from("<H", body)[0]


def _decode_fields(body, pos, name, fields):
    c = _Cursor(body, name)
    c.pos = pos
    values = {field: c.get(kind, field) for field, kind in fields}
    c.end()
    return values


def decode_inbound(body):
    """Decodes a strategy → sidecar frame body (after the length prefix)."""
    t = _read_type(body)
    if t in _RESERVED:
        raise Reserved("message type %s (0x%04x) is reserved and not implemented" % (_RESERVED[t], t))
    if t not in _INBOUND:
        raise UnknownMessageType("unknown message type 0x%04x" % t)
    name, fields = _INBOUND[t]
    return Message(name, direction="in", **_decode_fields(body, 2, name, fields))


def decode_outbound(body):
    """Decodes a sidecar → strategy frame body; the Message carries seq."""
    t = _read_type(body)
    if t not in _OUTBOUND:
        raise UnknownMessageType("unknown message type 0x%04x" % t)
    name, fields = _OUTBOUND[t]
    seq = struct.unpack("<Q", _Cursor(body, name).take(10, "seq")[2:])[0]
    values = {}
    if name == "HelloAck":
        version = struct.unpack("<H", _Cursor(body, name).take(12, "version")[10:])[0]
        fields = _hello_ack_fields(version)
        values = dict.fromkeys(_IDENTITY, 0)
    values.update(_decode_fields(body, 10, name, fields))
    if (seq != 0) != (name in SEQUENCED):
        raise Malformed(
            "%s carries sequence number %d: sequenced messages need seq >= 1, others 0" % (name, seq))
    return Message(name, direction="out", seq=seq, **values)


def decode(body):
    """Decodes a body of either direction: bit 7 of the type id is set for
    sidecar → strategy messages."""
    return decode_outbound(body) if _read_type(body) & 0x80 else decode_inbound(body)


class FrameReader:
    """Splits a byte stream into frame bodies; the length prefix is checked
    against MAX_FRAME before any of the body is awaited."""

    def __init__(self):
        self.buf = bytearray()

    def feed(self, data):
        self.buf += data

    def next_frame(self):
        """The next complete body, or None when more bytes are needed."""
        if len(self.buf) < 4:
            return None
        n = struct.unpack_from("<I", self.buf)[0]
        if n > MAX_FRAME:
            raise FrameTooLarge("frame length %d exceeds the maximum of %d bytes" % (n, MAX_FRAME))
        if len(self.buf) < 4 + n:
            return None
        body = bytes(self.buf[4:4 + n])
        del self.buf[:4 + n]
        return body


# --- message constructors (strategy → sidecar) -------------------------------------


def hello(name, min_version=VERSION_MIN, max_version=VERSION_MAX):
    return Message("Hello", min_version=min_version, max_version=max_version, name=name)


def new_order(order_id, instrument_id, side, ord_type, tif, price, qty, flags=0):
    return Message("NewOrder", order_id=order_id, instrument_id=instrument_id, side=Side(side),
                   ord_type=OrdType(ord_type), tif=TimeInForce(tif), flags=flags, price=price, qty=qty)


# --- client ---------------------------------------------------------------------------


class ClientError(Exception):
    pass


class Refused(ClientError):
    """The sidecar answered Hello with an Error frame."""

    def __init__(self, reason, text):
        super().__init__("sidecar refused the session: %s: %s" % (reason.name, text))
        self.reason = reason
        self.text = text


class Client:
    """A blocking client: connects, says Hello, collects the instrument
    table, then sends orders and receives the sidecar's messages."""

    def __init__(self, path, strategy_name, timeout=10.0):
        if len(strategy_name.encode("utf-8")) > MAX_STR:
            raise ValueError("strategy name is longer than %d bytes" % MAX_STR)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.reader = FrameReader()
        self.instruments = {}
        self.last_seq = 0
        try:
            self.sock.settimeout(timeout)
            self.sock.connect(path)
            self.send(hello(strategy_name))
            ack = self._handshake_msg(timeout)
            if ack.type != "HelloAck":
                raise ClientError("expected HelloAck, got %r" % ack)
            self.version = ack.version
            self.strategy_id = ack.strategy_id
            self.next_seq = ack.next_seq
            # The sidecar's identity (0 from a version-1 sidecar): a new
            # epoch means it restarted, a new installation that it is
            # another sidecar.
            self.installation = ack.installation
            self.epoch = ack.epoch
            for _ in range(ack.instrument_count):
                info = self._handshake_msg(timeout)
                if info.type != "InstrumentInfo":
                    raise ClientError("expected InstrumentInfo, got %r" % info)
                self.instruments[info.instrument_id] = info
        except BaseException:
            self.sock.close()
            raise

    def _handshake_msg(self, timeout):
        msg = self.recv(timeout)
        if msg is None:
            raise ClientError("no answer to Hello within %ss" % timeout)
        if msg.type == "Error":
            raise Refused(msg.reason, msg.text)
        return msg

    def instrument_by_symbol(self, symbol):
        for info in self.instruments.values():
            if info.symbol == symbol:
                return info
        raise KeyError(symbol)

    def send(self, msg):
        self.sock.settimeout(None)
        self.sock.sendall(encode(msg))

    def new_order(self, order_id, instrument_id, side, ord_type, tif, price, qty, flags=0):
        self.send(new_order(order_id, instrument_id, side, ord_type, tif, price, qty, flags))

    def cancel(self, order_id):
        self.send(Message("Cancel", order_id=order_id))

    def cancel_all(self, instrument_id=0):
        """Cancels every open order of this strategy (0 = all instruments)."""
        self.send(Message("CancelAll", instrument_id=instrument_id))

    def resend_from(self, seq):
        self.send(Message("ResendFrom", seq=seq))

    def heartbeat(self):
        self.send(Message("Heartbeat", direction="in"))

    def recv(self, timeout=None):
        """The next message; blocks for at most ``timeout`` seconds (None:
        forever, 0: not at all) and returns None if nothing came."""
        while True:
            body = self.reader.next_frame()
            if body is not None:
                msg = decode_outbound(body)
                self.last_seq = max(self.last_seq, msg.seq)
                return msg
            self.sock.settimeout(timeout)
            try:
                data = self.sock.recv(8192)
            except (socket.timeout, BlockingIOError):
                return None
            if not data:
                raise ClientError("sidecar closed the connection")
            self.reader.feed(data)

    def try_recv(self):
        return self.recv(timeout=0)

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _roundtrip(src, dst):
    """Decode and re-encode every frame of src (either direction)."""
    reader = FrameReader()
    reader.feed(src.read())
    n = 0
    while True:
        body = reader.next_frame()
        if body is None:
            break
        try:
            dst.write(encode(decode(body)))
        except (ProtocolError, ValueError) as e:
            raise SystemExit("frame %d (%s): %s" % (n, body.hex(), e))
        n += 1
    if reader.buf:
        raise SystemExit("%d bytes of an incomplete frame at end of input" % len(reader.buf))
    dst.flush()


if __name__ == "__main__":
    if sys.argv[1:] == ["--roundtrip"]:
        _roundtrip(sys.stdin.buffer, sys.stdout.buffer)
    else:
        sys.exit("usage: ordergate_client.py --roundtrip  (or import it as a module)")
