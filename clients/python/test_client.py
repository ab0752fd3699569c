"""Tests of the Python client: python3 -m unittest discover -s clients/python -v"""

import json
import os
import socket
import struct
import tempfile
import threading
import unittest

import ordergate_client as og
from ordergate_client import (
    FrameReader, Message, OrderState, OrdType, Reason, Side, TimeInForce, VenueState, Wide,
)

HERE = os.path.dirname(os.path.abspath(__file__))
VECTORS = os.path.join(HERE, "..", "..", "tests", "fixtures", "protocol_vectors.json")

I64_MIN, I64_MAX = -(2**63), 2**63 - 1
I128_MIN, I128_MAX = -(2**127), 2**127 - 1
U32_MAX, U64_MAX = 2**32 - 1, 2**64 - 1


def vector_messages():
    """The documented examples, with the same values as vector_messages()
    in tests/protocol_codec.rs."""
    return [
        ("Hello", og.hello("mm1")),
        ("NewOrder", og.new_order(42, 7, Side.BUY, OrdType.LIMIT, TimeInForce.GTC,
                                  5_200_000, 150_000, og.POST_ONLY)),
        ("Cancel", Message("Cancel", order_id=42)),
        ("CancelAll", Message("CancelAll", instrument_id=0)),
        ("ResendFrom", Message("ResendFrom", seq=17)),
        ("Heartbeat(in)", Message("Heartbeat", direction="in")),
        ("HelloAck", Message("HelloAck", version=2, strategy_id=3, next_seq=18, instrument_count=1,
                             installation=12_345_678_901, epoch=7)),
        ("HelloAck(v1)", Message("HelloAck", version=1, strategy_id=3, next_seq=18,
                                 instrument_count=1, installation=0, epoch=0)),
        ("InstrumentInfo", Message("InstrumentInfo", instrument_id=7, venue=1, category=1,
                                   price_scale=2, qty_scale=5, tick=1, lot=1, min_qty=1,
                                   min_notional=50_000_000, symbol="BTCUSDT")),
        ("Accepted", Message("Accepted", seq=18, order_id=42, venue_order_id="28457")),
        ("Rejected", Message("Rejected", seq=19, order_id=43, reason=Reason.PRICE_NOT_ON_TICK,
                             text="price 52000.005")),
        ("Fill", Message("Fill", seq=20, order_id=42, last_qty=100_000, last_price=5_200_000,
                         cum_qty=100_000, cum_notional=520_000_000_000, avg_price=5_200_000,
                         leaves_qty=50_000, fee=Wide(52, 3), fee_asset="USDT", trade_id="9001",
                         venue_time_ms=1_700_000_000_000, is_maker=True)),
        ("Canceled", Message("Canceled", seq=21, order_id=42, cum_qty=100_000)),
        ("CancelRejected", Message("CancelRejected", seq=22, order_id=44,
                                   reason=Reason.UNKNOWN_ORDER, text="")),
        ("Expired", Message("Expired", seq=23, order_id=45, cum_qty=0)),
        ("OrderStatus", Message("OrderStatus", seq=24, order_id=42, state=OrderState.CANCELED,
                                cum_qty=100_000, cum_notional=520_000_000_000,
                                avg_price=5_200_000, leaves_qty=0)),
        ("VenueStatus", Message("VenueStatus", venue=1, state=VenueState.UP, text="")),
        ("Heartbeat(out)", Message("Heartbeat", direction="out")),
        ("Error", Message("Error", reason=Reason.UNKNOWN_ENUM_VALUE,
                          text="NewOrder field side has unknown value 0")),
    ]


def extreme_messages():
    """Every message type again, at the edges of its fields."""
    long_text = "€" * 85  # 255 bytes of 3-byte characters
    return [
        og.hello("é" * 127, 0, 0xFFFF),
        og.new_order(U64_MAX, 0xFFFFFFFF, Side.SELL, OrdType.LIMIT_MAKER, TimeInForce.FOK,
                     I64_MIN, I64_MAX, og.KNOWN_FLAGS),
        Message("Cancel", order_id=0),
        Message("CancelAll", instrument_id=0xFFFFFFFF),
        Message("ResendFrom", seq=U64_MAX),
        Message("HelloAck", version=0xFFFF, strategy_id=0, next_seq=U64_MAX, instrument_count=0,
                installation=U64_MAX, epoch=2**32 - 1),
        Message("HelloAck", version=0, strategy_id=1, next_seq=0, instrument_count=U32_MAX,
                installation=0, epoch=0),
        Message("InstrumentInfo", instrument_id=0, venue=255, category=0, price_scale=255,
                qty_scale=0, tick=I64_MAX, lot=I64_MIN, min_qty=-1, min_notional=I128_MIN,
                symbol=long_text),
        Message("Accepted", seq=U64_MAX, order_id=1, venue_order_id="x" * 255),
        Message("Rejected", seq=1, order_id=1, reason=Reason.WOULD_TAKE_LIQUIDITY, text="😀" * 63),
        Message("Fill", seq=2, order_id=U64_MAX, last_qty=I64_MIN, last_price=I64_MAX, cum_qty=0,
                cum_notional=I128_MAX, avg_price=-1, leaves_qty=I64_MAX, fee=Wide(I128_MIN, 255),
                fee_asset="", trade_id=long_text, venue_time_ms=U64_MAX, is_maker=False),
        Message("Canceled", seq=3, order_id=0, cum_qty=I64_MIN),
        Message("CancelRejected", seq=4, order_id=0, reason=Reason.NONE, text=long_text),
        Message("Expired", seq=5, order_id=0, cum_qty=I64_MAX),
        Message("OrderStatus", seq=6, order_id=0, state=OrderState.UNKNOWN, cum_qty=I64_MIN,
                cum_notional=I128_MIN, avg_price=I64_MIN, leaves_qty=I64_MIN),
        Message("VenueStatus", venue=0, state=VenueState.HALTED, text=long_text),
        Message("Error", reason=Reason.MALFORMED_FRAME, text=""),
    ]


def roundtrip(msg):
    reader = FrameReader()
    reader.feed(og.encode(msg))
    body = reader.next_frame()
    assert reader.next_frame() is None
    return og.decode(body)


def body_of(msg):
    return og.encode(msg)[4:]


class CodecTest(unittest.TestCase):
    def test_every_message_round_trips(self):
        for name, msg in vector_messages():
            with self.subTest(name):
                self.assertEqual(roundtrip(msg), msg)
        for msg in extreme_messages():
            with self.subTest(msg.type):
                self.assertEqual(roundtrip(msg), msg)

    def test_golden_vectors_match_rust(self):
        with open(VECTORS) as f:
            vectors = json.load(f)["vectors"]
        ours = [(name, og.encode(msg).hex()) for name, msg in vector_messages()]
        self.assertEqual(ours, [(v["name"], v["frame"]) for v in vectors])
        for v in vectors:
            frame = bytes.fromhex(v["frame"])
            self.assertEqual(og.encode(og.decode(frame[4:])), frame)

    def test_hello_ack_layout_follows_its_version(self):
        v2 = Message("HelloAck", version=2, strategy_id=3, next_seq=18, instrument_count=1,
                     installation=12_345_678_901, epoch=7)
        self.assertEqual(len(body_of(v2)), 40)
        # Version 1 has no room for the identity: it is left out, and
        # decodes as 0.
        v1 = Message("HelloAck", **dict(v2.fields(), version=1))
        self.assertEqual(body_of(v1)[12:], body_of(v2)[12:28])
        self.assertEqual(og.decode_outbound(body_of(v1)),
                         Message("HelloAck", **dict(v1.fields(), installation=0, epoch=0)))

    def test_oversized_frame_rejected_before_its_body(self):
        reader = FrameReader()
        reader.feed(struct.pack("<I", og.MAX_FRAME))
        self.assertIsNone(reader.next_frame())  # exactly MAX_FRAME is allowed
        reader = FrameReader()
        reader.feed(struct.pack("<I", og.MAX_FRAME + 1))
        with self.assertRaises(og.FrameTooLarge) as cm:
            reader.next_frame()
        self.assertTrue(cm.exception.fatal)
        self.assertEqual(cm.exception.reason, Reason.FRAME_TOO_LARGE)

    def test_bad_enum_rejected_but_not_fatal(self):
        body = bytearray(body_of(vector_messages()[1][1]))
        for offset, field, value in [(14, "side", 0), (15, "ord_type", 4), (16, "tif", 9),
                                     (17, "flags", 0x08)]:
            bad = bytearray(body)
            bad[offset] = value
            with self.subTest(field):
                with self.assertRaises(og.UnknownEnumValue) as cm:
                    og.decode_inbound(bytes(bad))
                self.assertFalse(cm.exception.fatal)
                self.assertIn("field %s has unknown value %d" % (field, value), str(cm.exception))
                # A truncated frame is fatal whatever its enum bytes say.
                with self.assertRaises(og.Malformed):
                    og.decode_inbound(bytes(bad[:-1]))
        err = bytearray(body_of(Message("Error", reason=Reason.NONE, text="")))
        err[10] = 99
        with self.assertRaises(og.UnknownEnumValue):
            og.decode_outbound(bytes(err))
        with self.assertRaises(ValueError):
            og.encode(og.new_order(1, 1, Side.BUY, OrdType.LIMIT, TimeInForce.GTC, 1, 1, 0x80))

    def test_truncation_and_trailing_bytes_are_fatal(self):
        for name, msg in vector_messages():
            body = body_of(msg)
            with self.subTest(name):
                for cut in range(len(body)):
                    with self.assertRaises(og.Malformed):
                        og.decode(body[:cut])
                with self.assertRaises(og.Malformed):
                    og.decode(body + b"\0")

    def test_unknown_and_reserved_types(self):
        for t in (0x0000, 0x0007, 0x0100):
            with self.assertRaises(og.UnknownMessageType):
                og.decode_inbound(struct.pack("<H", t))
        with self.assertRaises(og.UnknownMessageType):
            og.decode_outbound(struct.pack("<HQ", 0x008D, 0))
        for t in (0x0010, 0x0011, 0x0012, 0x0013):
            with self.assertRaises(og.Reserved) as cm:
                og.decode_inbound(struct.pack("<H", t) + b"\1\2")
            self.assertEqual(cm.exception.reason, Reason.NOT_IMPLEMENTED)
            self.assertFalse(cm.exception.fatal)

    def test_bad_utf8_and_sequence_are_fatal(self):
        body = bytearray(body_of(og.hello("ab")))
        body[-1] = 0xFF
        with self.assertRaises(og.Malformed):
            og.decode_inbound(bytes(body))
        hb = bytearray(body_of(Message("Heartbeat", direction="out")))
        hb[2] = 1  # an unsequenced message with seq 1
        with self.assertRaises(og.Malformed):
            og.decode_outbound(bytes(hb))

    def test_long_strings_cut_at_a_character_boundary(self):
        msg = roundtrip(og.hello("é" * 200))
        self.assertEqual(msg.name, "é" * 127)

    def test_wide_formats_exactly(self):
        self.assertEqual(str(Wide(52, 3)), "0.052")
        self.assertEqual(str(Wide(-5, 3)), "-0.005")
        self.assertEqual(str(Wide(12, 0)), "12")


class FakeSidecar:
    """A sidecar stand-in on a temp Unix socket, speaking the Python codec."""

    def __init__(self, script):
        self.dir = tempfile.TemporaryDirectory()
        self.path = os.path.join(self.dir.name, "og.sock")
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(1)
        self.listener.settimeout(10)
        self.error = None
        self.thread = threading.Thread(target=self._run, args=(script,))
        self.thread.start()

    def _run(self, script):
        try:
            conn, _ = self.listener.accept()
            conn.settimeout(10)
            with conn:
                script(conn, FrameReader())
        except Exception as e:  # reported by join()
            self.error = e

    def join(self):
        self.thread.join(10)
        self.listener.close()
        self.dir.cleanup()
        if self.error:
            raise self.error


def read_msg(conn, reader):
    while True:
        body = reader.next_frame()
        if body is not None:
            return og.decode_inbound(body)
        data = conn.recv(4096)
        if not data:
            raise EOFError("client hung up")
        reader.feed(data)


def instrument(iid, symbol):
    return Message("InstrumentInfo", instrument_id=iid, venue=1, category=1, price_scale=2,
                   qty_scale=5, tick=1, lot=1, min_qty=1, min_notional=500_000, symbol=symbol)


class ClientTest(unittest.TestCase):
    def test_session(self):
        seen = []

        def script(conn, reader):
            seen.append(read_msg(conn, reader))
            conn.sendall(og.encode(Message("HelloAck", version=2, strategy_id=3, next_seq=18,
                                           instrument_count=2, installation=12_345, epoch=4)))
            conn.sendall(og.encode(instrument(7, "BTCUSDT")) + og.encode(instrument(8, "ETHUSDT")))
            seen.append(read_msg(conn, reader))
            conn.sendall(og.encode(Message("Accepted", seq=18, order_id=42, venue_order_id="1")))
            for _ in range(4):
                seen.append(read_msg(conn, reader))
            conn.sendall(og.encode(Message("Heartbeat", direction="out")))

        server = FakeSidecar(script)
        with og.Client(server.path, "mm1") as c:
            self.assertEqual((c.version, c.strategy_id, c.next_seq), (2, 3, 18))
            self.assertEqual((c.installation, c.epoch), (12_345, 4))
            self.assertEqual(sorted(c.instruments), [7, 8])
            self.assertEqual(c.instrument_by_symbol("ETHUSDT").instrument_id, 8)
            c.new_order(42, 7, Side.BUY, OrdType.LIMIT, TimeInForce.GTC, 5_200_000, 100_000)
            acc = c.recv(timeout=10)
            self.assertEqual((acc.type, acc.seq, acc.order_id), ("Accepted", 18, 42))
            self.assertEqual(c.last_seq, 18)
            c.cancel(42)
            c.cancel_all()
            c.resend_from(18)
            c.heartbeat()
            self.assertEqual(c.recv(timeout=10), Message("Heartbeat", direction="out"))
            server.join()
            with self.assertRaises(og.ClientError):
                c.recv(timeout=10)
        self.assertEqual([m.type for m in seen],
                         ["Hello", "NewOrder", "Cancel", "CancelAll", "ResendFrom", "Heartbeat"])
        self.assertEqual(seen[0].name, "mm1")
        self.assertEqual((seen[1].price, seen[1].qty), (5_200_000, 100_000))

    def test_try_recv_returns_none_when_idle(self):
        done = threading.Event()

        def script(conn, reader):
            read_msg(conn, reader)
            # A version-1 sidecar: no identity in its HelloAck.
            conn.sendall(og.encode(Message("HelloAck", version=1, strategy_id=3, next_seq=1,
                                           instrument_count=0)))
            done.wait(10)

        server = FakeSidecar(script)
        with og.Client(server.path, "mm1") as c:
            self.assertEqual((c.version, c.installation, c.epoch), (1, 0, 0))
            self.assertIsNone(c.try_recv())
            self.assertIsNone(c.recv(timeout=0.02))
            done.set()
        server.join()

    def test_refusal(self):
        def script(conn, reader):
            read_msg(conn, reader)
            conn.sendall(og.encode(Message("Error", reason=Reason.UNKNOWN_STRATEGY,
                                           text="no strategy named mm1")))

        server = FakeSidecar(script)
        with self.assertRaises(og.Refused) as cm:
            og.Client(server.path, "mm1")
        server.join()
        self.assertEqual(cm.exception.reason, Reason.UNKNOWN_STRATEGY)


if __name__ == "__main__":
    unittest.main()
