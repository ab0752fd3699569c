#!/usr/bin/env python3
"""A first strategy: one resting order, its cancel, one marketable order.

Run it against the README's Quickstart (``ordergate sim`` and
``ordergate run --config examples/sim.toml``)::

    python3 clients/python/examples/quickstart.py

It connects to the sidecar's socket, says Hello as the strategy
``quickstart``, waits until the venue is Up, then

1. places a limit buy at half the market price and prints Accepted,
2. cancels it and prints Canceled,
3. places a small MARKET buy and prints every fill,

and exits 0 (1 on any failure, with the reason on stderr). Standard library
only; it uses ``clients/python/ordergate_client.py``.

Prices and quantities are integer mantissas at the instrument's scales
(InstrumentInfo ``price_scale`` / ``qty_scale``): "30000.00" at price scale 2
is 3000000. This file converts decimal strings to mantissas and back exactly;
money never goes through a float.
"""

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # clients/python

import ordergate_client as og  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
# examples/sim.toml puts the socket in the repository's state/ directory.
DEFAULT_SOCKET = os.path.join(REPO, "state", "ordergate.sock")

VENUES = {1: "binance-spot", 2: "binance-usdm", 3: "bybit-spot", 4: "bybit-linear"}

# The protocol carries no market data: a real strategy knows the market from
# its own feed. The simulator's market stands still at these prices.
SIM_MARKETS = {"BTCUSDT": "60000.00", "ETHUSDT": "3000.00"}


class Failure(Exception):
    """Something the quickstart cannot go on from; the text says what."""


# --- exact decimals ----------------------------------------------------------


def to_mantissa(text, scale):
    """The mantissa of the decimal string ``text`` at ``scale``, exactly:
    "30000.5" at scale 2 is 3000050. More decimals than the scale allows is
    an error, never a rounding."""
    s = text.strip()
    neg = s.startswith("-")
    if s[:1] in "+-":
        s = s[1:]
    whole, _, frac = s.partition(".")
    digits = whole + frac
    if not digits or not (digits.isascii() and digits.isdigit()):
        raise ValueError("%r is not a plain decimal number" % text)
    if len(frac) > scale:
        raise ValueError("%r has more than %d decimals" % (text, scale))
    m = int((whole or "0") + frac.ljust(scale, "0"))
    return -m if neg else m


def reason_name(r):
    """A Reason's name, or its number when this client does not know it."""
    try:
        return og.Reason(r).name
    except ValueError:
        return "reason %d" % r


def fmt(mantissa, scale):
    """A mantissa at ``scale`` as a decimal string: fmt(3000050, 2) is
    "30000.50"."""
    return str(og.Wide(mantissa, scale))


def size_for(price, inst, times=2):
    """The smallest quantity on the lot, and at least min_qty, worth
    `times` the instrument's min notional at `price` (notionals are at
    price_scale + qty_scale, so price * qty compares with min_notional
    as it is)."""
    want = times * inst.min_notional
    qty = -(-want // price)  # ceiling division, exact on integers
    qty = -(-qty // inst.lot) * inst.lot
    return max(qty, inst.min_qty)


# --- talking to the sidecar --------------------------------------------------


def connect(path, name):
    """Connects and says Hello; the errors a newcomer meets, in words."""
    if not os.path.exists(path):
        raise Failure(
            "no sidecar socket at %s: start the sidecar first "
            "(README, Quickstart step 2), or pass --socket PATH" % path)
    try:
        return og.Client(path, name, timeout=5.0)
    except ConnectionRefusedError:
        raise Failure(
            "nothing is listening on %s (a socket file left by a stopped "
            "sidecar?): start the sidecar" % path) from None
    except og.Refused as e:
        hint = ""
        if e.reason == og.Reason.UNKNOWN_STRATEGY:
            hint = " (the name must be a [[strategy]] name of the sidecar's config; see --strategy)"
        raise Failure("the sidecar refused the session: %s: %s%s"
                      % (reason_name(e.reason), e.text, hint)) from None
    except (OSError, og.ClientError) as e:
        raise Failure("cannot connect to the sidecar at %s: %s" % (path, e)) from None


class Session:
    """Receives messages, handles the unsequenced ones (venue status,
    heartbeats, errors) and hands out each order message once."""

    def __init__(self, client):
        self.c = client
        self.venues = {}  # venue id -> (VenueState, text)
        self.last_seq = 0  # highest sequence number processed

    def poll(self, deadline, waiting_for):
        """The next sequenced message, or None after about a second of
        quiet. A quiet second sends a Heartbeat: the sidecar answers each
        one, so a dead sidecar shows up as a closed connection."""
        left = deadline - time.monotonic()
        if left <= 0:
            raise Failure("nothing came within the timeout while waiting for %s" % waiting_for)
        try:
            msg = self.c.recv(timeout=min(left, 1.0))
            if msg is None:
                self.c.heartbeat()
                return None
        except (og.ClientError, og.ProtocolError, OSError) as e:
            raise Failure("lost the sidecar while waiting for %s: %s" % (waiting_for, e)) from None
        if msg.type == "VenueStatus":
            state = og.VenueState(msg.state)
            if self.venues.get(msg.venue, (None, None))[0] != state:
                print("venue %s: %s (%s)" % (VENUES.get(msg.venue, msg.venue), state.name, msg.text))
            self.venues[msg.venue] = (state, msg.text)
        elif msg.type == "Error":
            print("sidecar error: %s: %s" % (reason_name(msg.reason), msg.text))
        elif msg.seq > self.last_seq:  # a lower one was processed already
            self.last_seq = msg.seq
            return msg
        return None

    def wait_up(self, venue, timeout):
        """Returns once `venue` is Up: orders sent before would be refused
        (Rejected VenueDown)."""
        deadline = time.monotonic() + timeout
        while self.venues.get(venue, (None,))[0] != og.VenueState.UP:
            if time.monotonic() >= deadline:
                state, text = self.venues.get(venue, (None, "no status received"))
                raise Failure(
                    "venue %s did not come Up within %gs (last status: %s: %s); is `ordergate sim` "
                    "running, and what does the sidecar's log say?"
                    % (VENUES.get(venue, venue), timeout, state.name if state else "none", text))
            # Order messages from before this connection (an earlier run's
            # orders) are not this example's business.
            self.poll(deadline + 1.0, "the venue")

    def for_order(self, order_id, deadline, waiting_for):
        """The next message about `order_id` (others are shown and skipped)."""
        while True:
            msg = self.poll(deadline, waiting_for)
            if msg is None:
                continue
            if getattr(msg, "order_id", None) == order_id:
                return msg
            print("(a message for another order: %r)" % msg)


def describe_fill(f, inst, symbol):
    ps, qs = inst.price_scale, inst.qty_scale
    return (
        "Fill      order %d: %s %s at %s (%s, trade %s, fee %s %s)\n"
        "          filled %s, avg price %s, notional %s, leaves %s"
        % (f.order_id, fmt(f.last_qty, qs), symbol, fmt(f.last_price, ps),
           "maker" if f.is_maker else "taker", f.trade_id, f.fee, f.fee_asset,
           fmt(f.cum_qty, qs), fmt(f.avg_price, ps), fmt(f.cum_notional, ps + qs),
           fmt(f.leaves_qty, qs)))


def not_as_planned(what, msg):
    if msg.type in ("Rejected", "CancelRejected"):
        return Failure("%s: %s %s: %s" % (what, msg.type, reason_name(msg.reason), msg.text))
    return Failure("%s: unexpected answer %r" % (what, msg))


# --- the strategy ------------------------------------------------------------


def run(args):
    c = connect(args.socket, args.strategy)
    s = Session(c)
    open_order = None
    try:
        try:
            inst = c.instrument_by_symbol(args.symbol)
        except KeyError:
            have = ", ".join(sorted(i.symbol for i in c.instruments.values())) or "none"
            raise Failure("strategy %r may not trade %s (its instruments: %s)"
                          % (args.strategy, args.symbol, have)) from None
        ps, qs = inst.price_scale, inst.qty_scale
        print("connected as %r (strategy id %d, protocol v%d, next seq %d)"
              % (args.strategy, c.strategy_id, c.version, c.next_seq))
        print("instrument %d %s: tick %s, lot %s, min qty %s, min notional %s"
              % (inst.instrument_id, inst.symbol, fmt(inst.tick, ps), fmt(inst.lot, qs),
                 fmt(inst.min_qty, qs), fmt(inst.min_notional, ps + qs)))
        s.wait_up(inst.venue, args.timeout)

        market_text = args.market or SIM_MARKETS.get(inst.symbol)
        if market_text is None:
            raise Failure("no market price known for %s: pass --market PRICE" % inst.symbol)
        try:
            market = to_mantissa(market_text, ps)
        except ValueError as e:
            raise Failure("--market: %s (prices on %s have %d decimals)" % (e, inst.symbol, ps)) from None
        # A bid at half the market rests; both orders are worth twice the
        # min notional, so neither the gateway nor the venue refuses them.
        bid = market // 2 // inst.tick * inst.tick
        qty = size_for(bid, inst)
        market_qty = size_for(market, inst)

        # Order ids are the strategy's own and idempotency keys: a NewOrder
        # repeating an id the sidecar has seen is answered with OrderStatus
        # and never sent again. Fresh ids per run (microseconds) keep a
        # second run from meeting the first one's orders.
        base = time.time_ns() // 1000
        limit_id, market_id = base + 1, base + 2

        # 1. A limit buy that rests, at half the market.
        c.new_order(limit_id, inst.instrument_id, og.Side.BUY, og.OrdType.LIMIT,
                    og.TimeInForce.GTC, price=bid, qty=qty)
        open_order = limit_id
        deadline = time.monotonic() + args.order_timeout
        msg = s.for_order(limit_id, deadline, "the limit order's answer")
        if msg.type != "Accepted":
            open_order = None
            raise not_as_planned("the limit order was not accepted", msg)
        print("Accepted  order %d: buy %s %s at %s, limit GTC (venue order id %s)"
              % (limit_id, fmt(qty, qs), inst.symbol, fmt(bid, ps), msg.venue_order_id))

        # 2. Cancel it.
        c.cancel(limit_id)
        deadline = time.monotonic() + args.order_timeout
        while True:
            msg = s.for_order(limit_id, deadline, "the cancel's answer")
            if msg.type == "Fill":  # the market came down to the bid meanwhile
                print(describe_fill(msg, inst, inst.symbol))
                continue
            break
        open_order = None
        if msg.type != "Canceled":
            raise not_as_planned("the cancel did not go through", msg)
        print("Canceled  order %d (%s filled before the cancel)" % (limit_id, fmt(msg.cum_qty, qs)))

        # 3. A small marketable order: MARKET never rests; whatever the
        # venue cannot fill at once ends Expired.
        c.new_order(market_id, inst.instrument_id, og.Side.BUY, og.OrdType.MARKET,
                    og.TimeInForce.IOC, price=0, qty=market_qty)
        deadline = time.monotonic() + args.order_timeout
        msg = s.for_order(market_id, deadline, "the market order's answer")
        if msg.type != "Accepted":
            raise not_as_planned("the market order was not accepted", msg)
        print("Accepted  order %d: buy %s %s at market (venue order id %s)"
              % (market_id, fmt(market_qty, qs), inst.symbol, msg.venue_order_id))
        last = None
        while True:
            msg = s.for_order(market_id, deadline, "the market order's fills")
            if msg.type == "Fill":
                print(describe_fill(msg, inst, inst.symbol))
                last = msg
                if msg.leaves_qty == 0:
                    print("Filled    order %d: %s %s at an average %s"
                          % (market_id, fmt(msg.cum_qty, qs), inst.symbol, fmt(msg.avg_price, ps)))
                    break
            elif msg.type == "Expired":
                filled = "%s %s at an average %s" % (fmt(last.cum_qty, qs), inst.symbol,
                                                     fmt(last.avg_price, ps)) if last else "nothing"
                print("Expired   order %d: the venue filled %s and expired the rest"
                      % (market_id, filled))
                break
            else:
                raise Failure("unexpected message for the market order: %r" % msg)
        return 0
    finally:
        if open_order is not None:
            # Do not leave the bid resting when something went wrong.
            try:
                c.cancel(open_order)
            except OSError:
                pass
        c.close()


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--socket", default=DEFAULT_SOCKET,
                   help="the sidecar's Unix socket (default: %(default)s, as in examples/sim.toml)")
    p.add_argument("--strategy", default="quickstart",
                   help="strategy name from the sidecar's config (default: %(default)s)")
    p.add_argument("--symbol", default="BTCUSDT", help="instrument to trade (default: %(default)s)")
    p.add_argument("--market", metavar="PRICE",
                   help="the instrument's market price, for pricing the orders (default: the "
                        "simulator's, e.g. 60000.00 for BTCUSDT)")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="seconds to wait for the venue to be Up (default: %(default)s)")
    p.add_argument("--order-timeout", type=float, default=10.0,
                   help="seconds to wait for each order's answers (default: %(default)s)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run(args)
    except Failure as e:
        print("quickstart: error: %s" % e, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
