#!/usr/bin/env python3
"""Drive a Binance Spot endpoint with the official Binance Spot Python SDK.

The simulator is only as good as its agreement with clients nobody here
wrote. This script uses `binance-sdk-spot` exactly as a user would (REST and
WebSocket API, HMAC keys), checks every answer against the documented
behaviour and the doc samples in tests/fixtures, and prints one line per
check. It stops at the first failure with the request and the response.

Usage:
    binance_sdk_check.py REST_BASE_URL WS_API_URL API_KEY API_SECRET
        [--symbol BTCUSDT] [--reference-price 30000] [--quantity 0.01]
        [--fixtures DIR] [--fills full|partial|any]

At the end it prints one `order <clientOrderId> orderId=<id> status=<status>
executedQty=<qty> cummulativeQuoteQty=<qty>` line per order it placed (the
state the SDK last saw), so a caller can cross-check the venue's own records.

Only ASCII parameter values are used: the SDK percent-encodes non-ASCII
values before signing WebSocket requests, which the docs do not.
"""

import argparse
import asyncio
import json
import logging
import os
import re
import sys
import time
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import binance_common.websocket as sdk_websocket
from binance_common.configuration import (
    ConfigurationRestAPI,
    ConfigurationWebSocketAPI,
)
from binance_common.errors import Error as SdkError
from binance_sdk_spot.rest_api.models import (
    NewOrderNewOrderRespTypeEnum,
    NewOrderSideEnum,
    NewOrderTimeInForceEnum,
    NewOrderTypeEnum,
)
from binance_sdk_spot.spot import Spot
from binance_sdk_spot.websocket_api.models import (
    OrderPlaceSideEnum,
    OrderPlaceTimeInForceEnum,
    OrderPlaceTypeEnum,
)

# Response fields the docs list as conditional ("appear only if ..."), so a
# doc sample carrying them does not make them mandatory.
CONDITIONAL_ORDER_FIELDS = {
    "icebergQty",
    "preventedMatchId",
    "preventedQuantity",
    "stopPrice",
    "strategyId",
    "strategyType",
    "trailingDelta",
    "trailingTime",
    "usedSor",
    "workingFloor",
    "pegPriceType",
    "pegOffsetType",
    "pegOffsetValue",
    "peggedPrice",
    "expiryReason",
}
CONDITIONAL_EVENT_FIELDS = {
    "d", "D", "j", "J", "v", "A", "B", "u", "U", "Cs", "pl", "pL", "pY",
    "b", "a", "k", "uS", "gP", "gOT", "gOV", "gp", "eR",
}  # fmt: skip
# The query-order doc sample is a plain LIMIT order that still carries
# stopPrice and icebergQty, so order queries must always return them.
QUERY_ORDER_FIELDS = {"stopPrice", "icebergQty"}

DECIMAL_RE = re.compile(r"^-?[0-9]+(\.[0-9]+)?$")
EVENT_WAIT_SECONDS = 10.0


class CheckFailed(Exception):
    """A check failed; carries what was sent and what came back."""

    def __init__(self, check, reason, request=None, response=None):
        super().__init__(reason)
        self.check = check
        self.reason = reason
        self.request = request
        self.response = response


class Wire:
    """Observes the SDK's own traffic (it is never altered) so that a
    failure can show the exact request and response."""

    def __init__(self):
        self.last_request = None
        self.last_response = None
        self.events = []  # raw user-data events, in arrival order

    def rest_hook(self, response, *args, **kwargs):
        req = response.request
        body = req.body.decode() if isinstance(req.body, bytes) else req.body
        self.last_request = f"{req.method} {req.url}" + (f" body={body}" if body else "")
        self.last_response = f"HTTP {response.status_code} {response.text}"

    def install_ws(self):
        wire = self
        original_send = sdk_websocket.WebSocketCommon.send_message
        original_parse = sdk_websocket.parse_user_event

        async def send_message(self, payload, connection):
            wire.last_request = json.dumps(payload)
            wire.last_response = None
            future = await original_send(self, payload, connection)

            def done(f):
                if f.cancelled():
                    return
                exc = f.exception()
                wire.last_response = json.dumps(
                    {"error": exc.args[0]} if exc else f.result()
                )

            future.add_done_callback(done)
            return future

        def parse_user_event(payload, response_model):
            wire.events.append(payload)
            return original_parse(payload, response_model)

        sdk_websocket.WebSocketCommon.send_message = send_message
        sdk_websocket.parse_user_event = parse_user_event


class SdkComplaints(logging.Handler):
    """The SDK logs (rather than raises) when a response does not fit its
    models or the server reports an error; any such line is a failure."""

    def __init__(self):
        super().__init__(level=logging.WARNING)
        self.lines = []
        self.expecting_errors = False

    def emit(self, record):
        if not self.expecting_errors:
            self.lines.append(record.getMessage())


class Checker:
    def __init__(self, args):
        self.args = args
        self.wire = Wire()
        self.complaints = SdkComplaints()
        logging.getLogger().addHandler(self.complaints)
        logging.getLogger().setLevel(logging.WARNING)
        self.fixtures = args.fixtures
        self.orders = {}  # clientOrderId -> (orderId, status, executedQty, quote qty)

    # ---- reporting -------------------------------------------------------

    def ok(self, check, detail):
        if self.complaints.lines:
            self.fail(check, "the SDK complained: " + " | ".join(self.complaints.lines))
        print(f"ok {check} {detail}", flush=True)

    def fail(self, check, reason):
        raise CheckFailed(check, reason, self.wire.last_request, self.wire.last_response)

    def expect(self, check, cond, reason):
        if not cond:
            self.fail(check, reason)

    def record(self, order):
        self.orders[order["clientOrderId"]] = (
            order["orderId"],
            order["status"],
            order["executedQty"],
            order["cummulativeQuoteQty"],
        )

    # ---- doc-sample shapes ----------------------------------------------

    def sample(self, name):
        if not self.fixtures:
            return None
        with open(os.path.join(self.fixtures, name + ".json")) as f:
            payload = json.load(f)["payload"]
        # The user data samples come wrapped as the WebSocket API pushes
        # them; the checks look at the event itself.
        if isinstance(payload, dict) and set(payload) == {"subscriptionId", "event"}:
            return payload["event"]
        return payload

    def shape(self, check, actual, sample_name, optional=CONDITIONAL_ORDER_FIELDS, required=()):
        """Every field of the doc sample (less the conditional ones) must be
        present with the same JSON type; decimal strings stay decimal."""
        sample = self.sample(sample_name)
        if sample is None:
            return
        problems = []
        _compare(actual, sample, "$", set(optional) - set(required), problems)
        if problems:
            self.fail(check, f"differs from doc sample {sample_name}: " + "; ".join(problems))

    # ---- helpers ---------------------------------------------------------

    def rest_call(self, check, fn, **kwargs):
        try:
            response = fn(**kwargs)
            data = response.data()
        except SdkError as e:
            self.fail(check, f"SDK raised {type(e).__name__}: {e}")
        # The docs: every response carries X-MBX-USED-WEIGHT-(n)(unit), and
        # accepted orders X-MBX-ORDER-COUNT-(n)(unit); the SDK reads both.
        kinds = {r.rateLimitType for r in response.rate_limits}
        self.expect(check, "REQUEST_WEIGHT" in kinds, "no X-MBX-USED-WEIGHT-* header")
        if fn.__name__ == "new_order":
            self.expect(check, "ORDERS" in kinds, "no X-MBX-ORDER-COUNT-* header on an accepted order")
        return data

    async def ws_call(self, check, fn, **kwargs):
        response = await fn(**kwargs)
        data = response.data()
        if isinstance(data, dict):
            self.fail(check, f"no result: {data}")
        raw = json.loads(self.wire.last_response or "null")
        self.expect(check, isinstance(raw, dict) and raw.get("status") == 200, "status is not 200")
        # rateLimits are returned unless the request turns them off.
        kinds = {r.rateLimitType for r in response.rate_limits}
        self.expect(check, "REQUEST_WEIGHT" in kinds, "no REQUEST_WEIGHT in rateLimits")
        if fn.__name__ == "order_place":
            self.expect(check, "ORDERS" in kinds, "no ORDERS in rateLimits of an accepted order")
        return raw

    async def wait_events(self, check, pred, what):
        deadline = time.monotonic() + EVENT_WAIT_SECONDS
        while time.monotonic() < deadline:
            found = [e for e in self.wire.events if pred(e)]
            if found:
                return found
            await asyncio.sleep(0.05)
        self.fail(check, f"no {what} within {EVENT_WAIT_SECONDS}s; events seen: {self.wire.events}")

    # ---- REST ------------------------------------------------------------

    def run_rest(self):
        a = self.args
        config = ConfigurationRestAPI(
            api_key=a.api_key,
            api_secret=a.api_secret,
            base_path=a.rest_url,
            timeout=10000,
            # No silent retries: a retried POST could place a second order.
            retries=0,
        )
        rest = Spot(config_rest_api=config).rest_api
        rest._session.hooks["response"].append(self.wire.rest_hook)

        check = "rest.time"
        server_time = self.rest_call(check, rest.time).server_time
        skew = abs(server_time - int(time.time() * 1000))
        self.expect(check, isinstance(server_time, int) and skew < 10_000, f"serverTime {server_time} is {skew} ms off")
        self.ok(check, f"serverTime={server_time}")

        check = "rest.exchangeInfo"
        info = self.rest_call(check, rest.exchange_info, symbol=a.symbol)
        raw = json.loads(self.wire.last_response.split(" ", 2)[2])
        symbols = [s for s in raw.get("symbols", []) if s.get("symbol") == a.symbol]
        self.expect(check, len(symbols) == 1, f"{a.symbol} not listed once")
        sym = symbols[0]
        self.expect(check, sym.get("status") == "TRADING", f"status {sym.get('status')}")
        for t in ("LIMIT", "MARKET"):
            self.expect(check, t in sym.get("orderTypes", []), f"orderTypes lacks {t}")
        filters = {f["filterType"]: f for f in sym.get("filters", [])}
        for name in ("PRICE_FILTER", "LOT_SIZE"):
            self.expect(check, name in filters, f"no {name} filter")
        for key in ("timezone", "serverTime", "rateLimits", "symbols"):
            self.expect(check, key in raw, f"no {key}")
        self.expect(check, info.symbols is not None, "the SDK could not read symbols")
        tick = Decimal(filters["PRICE_FILTER"]["tickSize"])
        step = Decimal(filters["LOT_SIZE"]["stepSize"])
        self.ok(check, f"{a.symbol} tickSize={tick.normalize()} stepSize={step.normalize()}")

        qty = Decimal(a.quantity)
        ref = Decimal(a.reference_price)
        self.expect(check, step == 0 or qty % step == 0, f"--quantity {qty} is not a multiple of stepSize {step}")
        self.resting = (ref * Decimal("0.9") / tick).to_integral_value(ROUND_FLOOR) * tick
        self.crossing = (ref * Decimal("1.1") / tick).to_integral_value(ROUND_CEILING) * tick
        self.qty = qty

        # A resting LIMIT BUY below the reference price.
        check = "rest.order.place LIMIT"
        self.rest_call(
            check,
            rest.new_order,
            symbol=a.symbol,
            side=NewOrderSideEnum["BUY"].value,
            type=NewOrderTypeEnum["LIMIT"].value,
            time_in_force=NewOrderTimeInForceEnum["GTC"].value,
            quantity=float(qty),
            price=float(self.resting),
            new_client_order_id="sdk-rest-limit-1",
        )
        placed = self.rest_raw()
        self.shape(check, placed, "binance_spot_order_response_full")
        self.expect(check, placed["status"] == "NEW", "a LIMIT below the market must rest (status NEW)")
        self.expect(check, placed["clientOrderId"] == "sdk-rest-limit-1", "clientOrderId not echoed")
        self.expect(check, Decimal(placed["price"]) == self.resting, "price differs from the one sent")
        self.expect(check, Decimal(placed["origQty"]) == qty, "origQty differs from the quantity sent")
        self.expect(check, Decimal(placed["executedQty"]) == 0 and placed["fills"] == [], "a resting order has no fills")
        self.record(placed)
        order_id = placed["orderId"]
        self.ok(check, f"orderId={order_id} status=NEW price={placed['price']}")

        check = "rest.order.query"
        self.rest_call(check, rest.get_order, symbol=a.symbol, order_id=order_id)
        queried = self.rest_raw()
        self.shape(check, queried, "binance_spot_query_order_response", required=QUERY_ORDER_FIELDS)
        self.expect(check, queried["status"] == "NEW" and queried["isWorking"] is True, "expected a working NEW order")
        self.expect(check, queried["clientOrderId"] == "sdk-rest-limit-1", "clientOrderId differs")
        # recvWindow may carry up to three decimals ("6000.346" in the docs).
        self.rest_call(check, rest.get_order, symbol=a.symbol, orig_client_order_id="sdk-rest-limit-1", recv_window=6000.346)
        self.expect(check, self.rest_raw()["orderId"] == order_id, "lookup by origClientOrderId found another order")
        self.ok(check, f"orderId={order_id} status=NEW (by orderId; by origClientOrderId with recvWindow=6000.346)")

        check = "rest.openOrders"
        self.rest_call(check, rest.get_open_orders, symbol=a.symbol)
        open_orders = self.rest_raw()
        self.expect(check, isinstance(open_orders, list), "not a list")
        self.shape(check, open_orders, "binance_spot_open_orders_response", required=QUERY_ORDER_FIELDS)
        self.expect(check, [o["orderId"] for o in open_orders] == [order_id], f"expected exactly order {order_id}")
        self.ok(check, f"{len(open_orders)} open: {order_id}")

        check = "rest.order.cancel"
        self.rest_call(check, rest.delete_order, symbol=a.symbol, order_id=order_id)
        canceled = self.rest_raw()
        self.shape(check, canceled, "binance_spot_cancel_order_response")
        self.expect(check, canceled["status"] == "CANCELED", "status is not CANCELED")
        self.expect(check, canceled["origClientOrderId"] == "sdk-rest-limit-1", "origClientOrderId is not the order's id")
        self.expect(check, canceled["orderId"] == order_id, "orderId differs")
        self.rest_call(check, rest.get_order, symbol=a.symbol, order_id=order_id)
        after = self.rest_raw()
        self.expect(check, after["status"] == "CANCELED", "a query after the cancel does not say CANCELED")
        self.rest_call(check, rest.get_open_orders, symbol=a.symbol)
        self.expect(check, self.rest_raw() == [], "the canceled order is still listed as open")
        self.record(after | {"clientOrderId": "sdk-rest-limit-1"})
        self.ok(check, f"orderId={order_id} status=CANCELED, no open orders left")

        check = "rest.order.place MARKET"
        self.rest_call(
            check,
            rest.new_order,
            symbol=a.symbol,
            side=NewOrderSideEnum["BUY"].value,
            type=NewOrderTypeEnum["MARKET"].value,
            quantity=float(qty),
            new_client_order_id="sdk-rest-market-1",
            new_order_resp_type=NewOrderNewOrderRespTypeEnum["FULL"].value,
        )
        market = self.rest_raw()
        self.shape(check, market, "binance_spot_order_response_full")
        status = self.check_taker(check, market, qty, limit=None)
        self.record(market)
        self.ok(check, f"orderId={market['orderId']} status={status} executedQty={market['executedQty']} fills={len(market['fills'])} cummulativeQuoteQty={market['cummulativeQuoteQty']}")

        check = "rest.order.place LIMIT crossing"
        self.rest_call(
            check,
            rest.new_order,
            symbol=a.symbol,
            side=NewOrderSideEnum["BUY"].value,
            type=NewOrderTypeEnum["LIMIT"].value,
            time_in_force=NewOrderTimeInForceEnum["GTC"].value,
            quantity=float(qty),
            price=float(self.crossing),
            new_client_order_id="sdk-rest-cross-1",
        )
        cross = self.rest_raw()
        self.shape(check, cross, "binance_spot_order_response_full")
        status = self.check_taker(check, cross, qty, limit=self.crossing)
        self.record(cross)
        self.ok(check, f"orderId={cross['orderId']} status={status} at {[f['price'] for f in cross['fills']]} (limit {self.crossing:f})")
        if status == "PARTIALLY_FILLED":
            check = "rest.order.cancel partially filled"
            self.rest_call(check, rest.delete_order, symbol=a.symbol, orig_client_order_id="sdk-rest-cross-1")
            rest_of = self.rest_raw()
            self.expect(check, rest_of["status"] == "CANCELED", "status is not CANCELED")
            self.expect(check, rest_of["executedQty"] == cross["executedQty"], "executedQty changed by the cancel")
            self.record(rest_of | {"clientOrderId": "sdk-rest-cross-1"})
            self.ok(check, f"orderId={cross['orderId']} status=CANCELED executedQty={rest_of['executedQty']}")

        # A request signed with the wrong secret must be refused: otherwise
        # every check above proves nothing about signing.
        check = "rest.signature.rejected"
        bad = Spot(
            config_rest_api=ConfigurationRestAPI(
                api_key=a.api_key,
                api_secret=a.api_secret + "x",
                base_path=a.rest_url,
                timeout=10000,
                retries=0,
            )
        ).rest_api
        bad._session.hooks["response"].append(self.wire.rest_hook)
        self.complaints.expecting_errors = True
        try:
            bad.new_order(
                symbol=a.symbol,
                side=NewOrderSideEnum["BUY"].value,
                type=NewOrderTypeEnum["MARKET"].value,
                quantity=float(qty),
                new_client_order_id="sdk-rest-badsig-1",
            )
            self.fail(check, "an order signed with the wrong secret was accepted")
        except SdkError as e:
            self.expect(check, getattr(e, "status_code", None) == -1022, f"expected code -1022, got {e!r}")
        finally:
            self.complaints.expecting_errors = False
        self.ok(check, "wrong secret -> -1022")

    def rest_raw(self):
        return json.loads(self.wire.last_response.split(" ", 2)[2])

    def check_taker(self, check, order, qty, limit):
        """A taker BUY: its fills add up to the executed and quote
        quantities, none above the limit price. It fills completely, or
        (when the venue finds too little liquidity) a MARKET order expires
        with the rest and a GTC LIMIT order rests with it, as the docs
        describe. Returns the status."""
        status = order["status"]
        executed = Decimal(order["executedQty"])
        partial = "EXPIRED" if limit is None else "PARTIALLY_FILLED"
        allowed = {"full": ("FILLED",), "partial": (partial,), "any": ("FILLED", partial)}[self.args.fills]
        self.expect(check, status in allowed, f"status {status}, expected {' or '.join(allowed)}")
        if status == "FILLED":
            self.expect(check, executed == qty, f"FILLED with executedQty {executed}, sent {qty}")
        else:
            self.expect(check, 0 < executed < qty, f"{status} with executedQty {executed} of {qty}")
        fills = order["fills"]
        self.expect(check, len(fills) > 0, "FULL response without fills")
        filled = sum(Decimal(f["qty"]) for f in fills)
        quote = sum(Decimal(f["price"]) * Decimal(f["qty"]) for f in fills)
        self.expect(check, filled == executed, f"fills add up to {filled}, executedQty is {executed}")
        self.expect(check, quote == Decimal(order["cummulativeQuoteQty"]), f"fills' quote sum {quote} != cummulativeQuoteQty {order['cummulativeQuoteQty']}")
        if limit is not None:
            self.expect(check, all(Decimal(f["price"]) <= limit for f in fills), "a BUY filled above its limit price")
        trade_ids = [f["tradeId"] for f in fills]
        self.expect(check, len(set(trade_ids)) == len(trade_ids), "duplicate tradeIds")
        return status

    # ---- WebSocket API ---------------------------------------------------

    async def run_ws(self):
        a = self.args
        config = ConfigurationWebSocketAPI(
            api_key=a.api_key,
            api_secret=a.api_secret,
            stream_url=a.ws_url,
            timeout=10000,
            reconnect_attempts=1,
        )
        self.wire.install_ws()
        ws = await Spot(config_ws_api=config).websocket_api.create_connection()
        self.expect("ws.connect", ws is not None and ws.connections, f"could not connect to {a.ws_url}")
        self.ok("ws.connect", a.ws_url)
        try:
            await self.run_ws_checks(ws)
        finally:
            await ws.close_connection(close_session=True)

    async def run_ws_checks(self, ws):
        a = self.args
        qty = self.qty

        check = "ws.userDataStream.subscribe.signature"
        try:
            sub = await ws.user_data_stream_subscribe_signature()
        except ValueError as e:
            self.fail(check, f"refused: {e}")
        raw = json.loads(self.wire.last_response)
        self.shape(check, raw, "binance_ws_user_data_stream_subscribe_response")
        sub_id = raw["result"]["subscriptionId"]
        # The SDK parses events into its models only for a listener.
        self.parsed_events = []
        sub.stream.on("message", self.parsed_events.append)
        self.ok(check, f"subscriptionId={sub_id}")

        check = "ws.order.place LIMIT"
        resp = await self.ws_call(
            check,
            ws.order_place,
            symbol=a.symbol,
            side=OrderPlaceSideEnum["BUY"].value,
            type=OrderPlaceTypeEnum["LIMIT"].value,
            time_in_force=OrderPlaceTimeInForceEnum["GTC"].value,
            quantity=float(qty),
            price=float(self.resting),
            new_client_order_id="sdk-ws-limit-1",
        )
        self.shape(check, resp, "binance_ws_order_place_response")
        placed = resp["result"]
        self.expect(check, placed["status"] == "NEW" and placed["fills"] == [], "a LIMIT below the market must rest")
        self.expect(check, placed["clientOrderId"] == "sdk-ws-limit-1", "clientOrderId not echoed")
        self.record(placed)
        order_id = placed["orderId"]
        self.ok(check, f"orderId={order_id} status=NEW")

        check = "ws.order.status"
        resp = await self.ws_call(check, ws.order_status, symbol=a.symbol, order_id=order_id, recv_window=6000.346)
        self.shape(check, resp, "binance_ws_order_status_response", required=QUERY_ORDER_FIELDS)
        self.expect(check, resp["result"]["status"] == "NEW", "expected NEW")
        self.expect(check, resp["result"]["clientOrderId"] == "sdk-ws-limit-1", "clientOrderId differs")
        self.ok(check, f"orderId={order_id} status=NEW")

        check = "ws.openOrders.status"
        resp = await self.ws_call(check, ws.open_orders_status, symbol=a.symbol)
        self.expect(check, isinstance(resp["result"], list), "result is not a list")
        self.shape(check, resp["result"], "binance_spot_open_orders_response", required=QUERY_ORDER_FIELDS)
        self.expect(check, [o["orderId"] for o in resp["result"]] == [order_id], f"expected exactly order {order_id}")
        self.ok(check, f"1 open: {order_id}")

        check = "ws.order.cancel"
        resp = await self.ws_call(check, ws.order_cancel, symbol=a.symbol, order_id=order_id, new_client_order_id="sdk-ws-cancel-1")
        self.shape(check, resp, "binance_ws_order_cancel_response")
        canceled = resp["result"]
        self.expect(check, canceled["status"] == "CANCELED", "status is not CANCELED")
        self.expect(check, canceled["origClientOrderId"] == "sdk-ws-limit-1", "origClientOrderId is not the order's id")
        self.expect(check, canceled["clientOrderId"] == "sdk-ws-cancel-1", "clientOrderId is not the cancel's newClientOrderId")
        self.record(canceled | {"clientOrderId": "sdk-ws-limit-1"})
        self.ok(check, f"orderId={order_id} status=CANCELED")

        check = "ws.order.place MARKET"
        resp = await self.ws_call(
            check,
            ws.order_place,
            symbol=a.symbol,
            side=OrderPlaceSideEnum["BUY"].value,
            type=OrderPlaceTypeEnum["MARKET"].value,
            quantity=float(qty),
            new_client_order_id="sdk-ws-market-1",
        )
        self.shape(check, resp, "binance_ws_order_place_response")
        market = resp["result"]
        status = self.check_taker(check, market, qty, limit=None)
        self.record(market)
        self.ok(check, f"orderId={market['orderId']} status={status} executedQty={market['executedQty']} fills={len(market['fills'])}")

        await self.check_user_data(order_id, market)

        check = "ws.signature.rejected"
        self.complaints.expecting_errors = True
        try:
            raw = await self.send_badly_signed(ws)
        finally:
            self.complaints.expecting_errors = False
        err = raw.get("error") or {}
        self.expect(check, raw.get("status") != 200 and err.get("code") == -1022, "expected an error with code -1022")
        self.ok(check, "wrong secret -> -1022")

    async def send_badly_signed(self, ws):
        """order.place signed with the wrong secret, through the SDK."""
        secret = ws.configuration.api_secret
        ws.configuration.api_secret = secret + "x"
        try:
            await ws.order_place(
                symbol=self.args.symbol,
                side=OrderPlaceSideEnum["BUY"].value,
                type=OrderPlaceTypeEnum["MARKET"].value,
                quantity=float(self.qty),
                new_client_order_id="sdk-ws-badsig-1",
            )
        finally:
            ws.configuration.api_secret = secret
        return json.loads(self.wire.last_response or "{}")

    async def check_user_data(self, limit_id, market):
        """executionReports for the orders placed after the subscription:
        the resting LIMIT (NEW, then CANCELED) and the MARKET (NEW, then
        TRADEs ending FILLED that add up to the order response)."""
        check = "ws.userDataStream executionReport LIMIT"
        reports = lambda oid: [  # noqa: E731
            e for e in self.wire.events if e.get("e") == "executionReport" and e.get("i") == oid
        ]
        await self.wait_events(check, lambda e: e.get("e") == "executionReport" and e.get("i") == limit_id and e.get("X") == "CANCELED", "CANCELED report")
        lim = reports(limit_id)
        self.expect(check, [(e["x"], e["X"]) for e in lim] == [("NEW", "NEW"), ("CANCELED", "CANCELED")], f"expected NEW then CANCELED, got {[(e['x'], e['X']) for e in lim]}")
        self.shape(check, lim[0], "binance_spot_execution_report", optional=CONDITIONAL_EVENT_FIELDS)
        self.expect(check, lim[0]["c"] == "sdk-ws-limit-1" and lim[0]["C"] == "", "NEW report ids")
        self.expect(check, lim[1]["c"] == "sdk-ws-cancel-1" and lim[1]["C"] == "sdk-ws-limit-1", "CANCELED report: c must be the cancel's id and C the order's")
        for e in lim:
            same = (e["s"], e["S"], e["o"], e["f"], Decimal(e["q"]), Decimal(e["p"]))
            self.expect(check, same == (self.args.symbol, "BUY", "LIMIT", "GTC", self.qty, self.resting), f"order fields s/S/o/f/q/p differ: {same}")
        self.expect(check, lim[0]["w"] is True and lim[1]["w"] is False, "w: on the book after NEW, off it after CANCELED")
        self.ok(check, "NEW, CANCELED")

        check = "ws.userDataStream executionReport MARKET"
        oid = market["orderId"]
        final = market["status"]
        await self.wait_events(check, lambda e: e.get("e") == "executionReport" and e.get("i") == oid and e.get("X") == final, f"{final} report")
        mkt = reports(oid)
        self.expect(check, (mkt[0]["x"], mkt[0]["X"]) == ("NEW", "NEW"), "first report is not NEW")
        self.shape(check, mkt[0], "binance_spot_execution_report", optional=CONDITIONAL_EVENT_FIELDS)
        trades = [e for e in mkt[1:] if e["x"] == "TRADE"]
        # FILLED: NEW, TRADE.. (the last one FILLED). EXPIRED (too little
        # liquidity): NEW, TRADE.. PARTIALLY_FILLED, then EXPIRED.
        tail = [] if final == "FILLED" else [("EXPIRED", "EXPIRED")]
        statuses = ["PARTIALLY_FILLED"] * (len(trades) - 1) + ["FILLED" if final == "FILLED" else "PARTIALLY_FILLED"]
        seen = [(e["x"], e["X"]) for e in mkt[1:]]
        self.expect(check, seen == [("TRADE", x) for x in statuses] + tail, f"expected TRADEs then {final}, got {seen}")
        for e in trades:
            self.shape(check, e, "binance_spot_execution_report_trade", optional=CONDITIONAL_EVENT_FIELDS)
        if final == "EXPIRED":
            # As in the docs' MARKET order FAQ: no trade in the EXPIRED report.
            e = mkt[-1]
            self.shape(check, e, "binance_spot_execution_report", optional=CONDITIONAL_EVENT_FIELDS)
            self.expect(check, e["t"] == -1 and Decimal(e["l"]) == 0 and Decimal(e["L"]) == 0 and e["N"] is None, "the EXPIRED report carries a trade (t, l, L, N)")
            self.expect(check, e["w"] is False, "an expired order is not on the book (w)")
        self.expect(check, [e["t"] for e in trades] == [f["tradeId"] for f in market["fills"]], "trade ids differ from the response's fills")
        self.expect(check, [(Decimal(e["L"]), Decimal(e["l"])) for e in trades] == [(Decimal(f["price"]), Decimal(f["qty"])) for f in market["fills"]], "trade prices/quantities differ from the response's fills")
        running = Decimal(0)
        for e in trades:
            running += Decimal(e["l"])
            self.expect(check, Decimal(e["z"]) == running, f"z {e['z']} is not the running sum {running}")
            self.expect(check, Decimal(e["Y"]) == Decimal(e["L"]) * Decimal(e["l"]), "Y is not L x l")
        self.expect(check, Decimal(mkt[-1]["z"]) == Decimal(market["executedQty"]), "final z differs from executedQty")
        self.expect(check, Decimal(mkt[-1]["Z"]) == Decimal(market["cummulativeQuoteQty"]), "final Z differs from cummulativeQuoteQty")
        self.expect(check, all(e["c"] == "sdk-ws-market-1" for e in mkt), "c differs from the order's clientOrderId")
        self.ok(check, "NEW, " + ", ".join(f"{e['x']} {e['l']}@{e['L']} {e['X']}" for e in mkt[1:]))

        check = "ws.userDataStream SDK models"
        raw = [e for e in self.wire.events if e.get("e") == "executionReport"]
        models = [type(p.actual_instance).__name__ for p in self.parsed_events]
        self.expect(check, models.count("ExecutionReport") == len(raw), f"the SDK parsed {models} from {len(raw)} executionReports")
        self.ok(check, f"{len(raw)} executionReports parsed as ExecutionReport")

    # ---- main ------------------------------------------------------------

    def summary(self):
        for cid, (oid, status, executed, quote) in self.orders.items():
            print(f"order {cid} orderId={oid} status={status} executedQty={executed} cummulativeQuoteQty={quote}")


def _json_type(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    return type(v).__name__


def _compare(actual, sample, path, optional, problems):
    if sample is None:
        return  # null in a sample (e.g. N before any trade) fixes no type
    if isinstance(sample, dict):
        if not isinstance(actual, dict):
            problems.append(f"{path} is {_json_type(actual)}, sample has an object")
            return
        for key, value in sample.items():
            if key not in actual:
                if key not in optional:
                    problems.append(f"{path}.{key} missing")
                continue
            _compare(actual[key], value, f"{path}.{key}", optional, problems)
    elif isinstance(sample, list):
        if not isinstance(actual, list):
            problems.append(f"{path} is {_json_type(actual)}, sample has an array")
            return
        if sample:
            for i, item in enumerate(actual):
                _compare(item, sample[0], f"{path}[{i}]", optional, problems)
    elif _json_type(actual) != _json_type(sample):
        problems.append(f"{path} is {_json_type(actual)} {actual!r}, sample has {_json_type(sample)} {sample!r}")
    elif isinstance(sample, str) and DECIMAL_RE.match(sample) and not DECIMAL_RE.match(actual):
        problems.append(f"{path} is {actual!r}, not a plain decimal string")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("rest_url", help="REST base URL, e.g. http://127.0.0.1:8080")
    p.add_argument("ws_url", help="WebSocket API URL, e.g. ws://127.0.0.1:8080/ws-api/v3")
    p.add_argument("api_key")
    p.add_argument("api_secret")
    p.add_argument("--symbol", default="BTCUSDT")
    p.add_argument("--reference-price", default="30000", help="the symbol's current price on the venue")
    p.add_argument("--quantity", default="0.01", help="base quantity of every order")
    p.add_argument("--fixtures", help="directory of doc samples (tests/fixtures) to compare shapes with")
    p.add_argument(
        "--fills",
        choices=("full", "partial", "any"),
        default="any",
        help="how the venue fills taker orders: completely, partly (MARKET expires, LIMIT rests the rest), or either",
    )
    args = p.parse_args()

    checker = Checker(args)
    try:
        checker.run_rest()
        asyncio.run(checker.run_ws())
    except CheckFailed as e:
        print(f"FAIL {e.check}: {e.reason}", flush=True)
        print(f"  request:  {e.request}", flush=True)
        print(f"  response: {e.response}", flush=True)
        checker.summary()
        return 1
    checker.summary()
    print("all checks passed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
