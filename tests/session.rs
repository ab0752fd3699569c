//! The session driver on its own: a test-only adapter with two
//! connections, a WebSocket and an HTTP/1.1 keep-alive one, against small
//! loopback servers. One connection ends; the other keeps working, and the
//! ended one is retried on its own policy.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use ordergate::doorbell::{Doorbell, WaitStrategy};
use ordergate::ids::{ClientId, Namespace, OrderKey, VenueId};
use ordergate::model::{OrdType, Side, TimeInForce, VenueState};
use ordergate::ring;
use ordergate::session::{
    CommandInputs, EventOutput, LimitsConfig, ReconnectPolicy, Session, SessionConfig, Taken,
};
use ordergate::venue::{
    Command, ConnId, ConnRole, ConnSpec, Cost, ExecEvent, HttpMethod, HttpRequest, HttpResponse,
    Lane, Now, OrderRequest, Outbox, Payload, Report, Transmit, Transport, VenueError, VenueOutput,
    VenueProtocol, VenueStatus,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

const WAIT: Duration = Duration::from_secs(10);
const WS: ConnId = ConnId(0);
const HTTP: ConnId = ConnId(1);

/// What the adapter saw, in order, for the test to read.
type Log = Arc<Mutex<Vec<String>>>;

/// A test-only adapter: orders go out as a WebSocket text and as an HTTP
/// GET; the echo of either is reported.
struct Echo {
    ws_url: String,
    http_url: String,
    log: Log,
    ws_open: bool,
    next_id: u64,
}

impl Echo {
    fn note(&self, s: String) {
        self.log.lock().unwrap().push(s);
    }

    fn status(state: VenueState, text: &str, out: &mut Outbox) {
        out.events.push(VenueOutput::Status(VenueStatus {
            venue: VenueId::BybitSpot,
            state,
            text: text.into(),
        }));
    }
}

impl VenueProtocol for Echo {
    fn adopt(&mut self, order: ordergate::venue::Adopted, _: Now) {
        unreachable!("nothing to adopt in these tests: {order:?}")
    }

    fn venue(&self) -> VenueId {
        VenueId::BybitSpot
    }

    fn connections(&self) -> Vec<ConnSpec> {
        vec![
            ConnSpec {
                url: self.ws_url.clone(),
                transport: Transport::WebSocket,
                role: ConnRole::OrderEntry,
            },
            ConnSpec {
                url: self.http_url.clone(),
                transport: Transport::Http,
                role: ConnRole::Rest,
            },
        ]
    }

    fn on_connecting(&mut self, conn: ConnId, _now: Now, _out: &mut Outbox) {
        self.note(format!("connecting {}", conn.0));
    }

    fn on_open(&mut self, conn: ConnId, _now: Now, out: &mut Outbox) {
        self.note(format!("open {}", conn.0));
        if conn == WS {
            self.ws_open = true;
            Self::status(VenueState::Up, "ws open", out);
        }
    }

    fn on_close(&mut self, conn: ConnId, _why: &str, _now: Now, out: &mut Outbox) {
        self.note(format!("close {}", conn.0));
        if conn == WS && self.ws_open {
            self.ws_open = false;
            Self::status(VenueState::Down, "ws closed", out);
        }
    }

    fn on_drained(&mut self, conn: ConnId, _now: Now, _out: &mut Outbox) {
        self.note(format!("drained {}", conn.0));
    }

    fn cost(&self, _cmd: &Command) -> Cost {
        Cost {
            weight: 1,
            orders: 1,
        }
    }

    fn submit(&mut self, cmd: &Command, _now: Now, out: &mut Outbox) -> Result<(), VenueError> {
        let Command::Place(o) = cmd else {
            return Ok(());
        };
        let n = o.client_id.key.order_id;
        if self.ws_open {
            out.transmits.push(Transmit {
                conn: WS,
                payload: Payload::Text(format!("order-{n}")),
                cost: self.cost(cmd),
                request: 0,
            });
        }
        self.next_id += 1;
        out.transmits.push(Transmit {
            conn: HTTP,
            payload: Payload::Http(HttpRequest {
                id: n,
                method: HttpMethod::Get,
                path: format!("/q/{n}"),
                headers: vec![("x-order".into(), n.to_string())],
                body: String::new(),
            }),
            cost: Cost {
                weight: 1,
                orders: 0,
            },
            request: 0,
        });
        Ok(())
    }

    fn on_frame(
        &mut self,
        conn: ConnId,
        frame: &mut [u8],
        _now: Now,
        _out: &mut Outbox,
    ) -> Result<(), VenueError> {
        self.note(format!(
            "frame {} {}",
            conn.0,
            String::from_utf8_lossy(frame)
        ));
        Ok(())
    }

    fn on_http(
        &mut self,
        conn: ConnId,
        r: &mut HttpResponse,
        _now: Now,
        out: &mut Outbox,
    ) -> Result<(), VenueError> {
        self.note(format!(
            "http {} {} {} {} {}",
            conn.0,
            r.id,
            r.status,
            r.header("x-echo-order").unwrap_or("-"),
            String::from_utf8_lossy(&r.body)
        ));
        out.events.push(VenueOutput::Exec(ExecEvent::Accepted {
            client_id: order_id(r.id),
            venue_order_id: r.id.to_string(),
            time_ms: 0,
        }));
        Ok(())
    }

    fn on_timer(&mut self, _now: Now, _out: &mut Outbox) {}

    fn next_timer(&self) -> Option<u64> {
        None
    }
}

fn order_id(n: u64) -> ClientId {
    ClientId::order(
        Namespace::new(1, 1),
        OrderKey {
            strategy: 1,
            order_id: n,
        },
    )
}

fn place(n: u64) -> Command {
    Command::Place(OrderRequest {
        queued_ns: 0,
        client_id: order_id(n),
        instrument: 1,
        side: Side::Buy,
        ord_type: OrdType::Limit,
        tif: TimeInForce::Gtc,
        flags: 0,
        price: 1,
        qty: 1,
    })
}

/// A WebSocket server echoing text frames; the first connection is closed
/// by the server when `close_first` is notified.
async fn ws_server(listener: TcpListener, close_first: Arc<tokio::sync::Notify>) {
    let mut first = true;
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let close = first.then(|| close_first.clone());
        first = false;
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            loop {
                tokio::select! {
                    m = ws.next() => match m {
                        Some(Ok(Message::Text(t))) => {
                            let _ = ws.send(Message::text(format!("echo:{}", t.as_str()))).await;
                        }
                        Some(Ok(_)) => {}
                        _ => return,
                    },
                    _ = async { match &close { Some(n) => n.notified().await, None => std::future::pending().await } } => {
                        let _ = ws.close(None).await;
                        return;
                    }
                }
            }
        });
    }
}

/// A keep-alive HTTP/1.1 server answering every GET with its path and an
/// echo of the `x-order` header; counts the connections it accepted.
async fn http_server(listener: TcpListener, accepted: Arc<Mutex<u32>>) {
    loop {
        let Ok((mut tcp, _)) = listener.accept().await else {
            return;
        };
        *accepted.lock().unwrap() += 1;
        tokio::spawn(async move {
            let mut buf = Vec::new();
            loop {
                let end = loop {
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                    let mut chunk = [0u8; 1024];
                    match tcp.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                buf.drain(..end);
                let path = head.split(' ').nth(1).unwrap_or("").to_owned();
                let order = head
                    .lines()
                    .find_map(|l| l.strip_prefix("x-order: "))
                    .unwrap_or("-")
                    .to_owned();
                let resp = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nX-Echo-Order: {order}\r\n\r\n{path}",
                    path.len()
                );
                if tcp.write_all(resp.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn wait_for(log: &Log, what: &str, pred: impl Fn(&[String]) -> bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        if pred(&log.lock().unwrap()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {WAIT:?}; log {:?}",
            log.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn has(log: &[String], s: &str) -> bool {
    log.iter().any(|l| l == s)
}

fn run_two_connections(wait: WaitStrategy) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ws_l = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let http_l = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
    let ws_url = format!("ws://{}/ws", ws_l.local_addr().unwrap());
    let http_url = format!("http://{}", http_l.local_addr().unwrap());
    let close_first = Arc::new(tokio::sync::Notify::new());
    let http_conns = Arc::new(Mutex::new(0));
    let log: Log = Arc::default();

    let bell = Doorbell::new().unwrap();
    let ringer = bell.ringer();
    let (mut cmd_tx, cmd_rx) = ring::channel(16);
    let mut inputs = CommandInputs::new();
    inputs.add(Lane::Normal, cmd_rx);
    let desk_bell = Doorbell::new().unwrap();
    let (rep_tx, mut rep_rx) = ring::channel::<Report>(64);
    let session = Session::new(
        Box::new(Echo {
            ws_url,
            http_url,
            log: log.clone(),
            ws_open: false,
            next_id: 0,
        }),
        inputs,
        bell,
        EventOutput::new(rep_tx, desk_bell.ringer()),
        SessionConfig {
            tls: None,
            wait,
            reconnect: ReconnectPolicy::default(),
            // The order connection is not retried within the test: what
            // works meanwhile works without it.
            per_role: vec![(
                ConnRole::OrderEntry,
                ReconnectPolicy {
                    min: Duration::from_secs(3600),
                    max: Duration::from_secs(3600),
                },
            )],
            limits: LimitsConfig::default(),
        },
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let cf = close_first.clone();
    let hc = http_conns.clone();
    let thread = std::thread::spawn(move || {
        rt.block_on(async move {
            tokio::spawn(ws_server(ws_l, cf));
            tokio::spawn(http_server(http_l, hc));
            session.run(stop_rx).await
        })
    });

    wait_for(&log, "both connections open", |l| {
        has(l, "open 0") && has(l, "open 1")
    });
    cmd_tx.push(place(1)).unwrap();
    ringer.ring();
    wait_for(&log, "order 1 answered on both", |l| {
        has(l, "frame 0 echo:order-1") && has(l, "http 1 1 200 1 /q/1")
    });

    // The server ends the WebSocket; the HTTP connection keeps working.
    close_first.notify_one();
    wait_for(&log, "the WebSocket closed", |l| has(l, "close 0"));
    for n in 2..=4 {
        cmd_tx.push(place(n)).unwrap();
        ringer.ring();
        let want = format!("http 1 {n} 200 {n} /q/{n}");
        wait_for(&log, "an order answered over HTTP", |l| has(l, &want));
    }
    {
        let l = log.lock().unwrap();
        assert!(
            !has(&l, "close 1"),
            "the HTTP connection never ended: {l:?}"
        );
        assert_eq!(
            l.iter().filter(|x| *x == "open 1").count(),
            1,
            "HTTP was not reopened: {l:?}"
        );
        assert_eq!(l.iter().filter(|x| *x == "open 0").count(), 1, "{l:?}");
    }
    assert_eq!(*http_conns.lock().unwrap(), 1, "one keep-alive connection");

    // The desk heard the adapter's status once per change, and the answers.
    let mut reports = Vec::new();
    while let Some(r) = rep_rx.pop() {
        reports.push(r);
    }
    let states: Vec<VenueState> = reports
        .iter()
        .filter_map(|r| match r {
            Report::Venue(v) => Some(v.state),
            Report::Exec(_) => None,
        })
        .collect();
    assert_eq!(states, [VenueState::Up, VenueState::Down], "{reports:?}");
    let accepted = reports
        .iter()
        .filter(|r| matches!(r, Report::Exec(ExecEvent::Accepted { .. })))
        .count();
    assert_eq!(accepted, 4);

    stop_tx.send(true).unwrap();
    thread.join().unwrap().unwrap();
}

#[test]
fn one_connection_ends_and_the_other_keeps_working() {
    run_two_connections(WaitStrategy::Park);
}

#[test]
fn one_connection_ends_and_the_other_keeps_working_spinning() {
    run_two_connections(WaitStrategy::Spin);
}

/// The rings as the gate drains them, no sockets: a held order whose
/// cancel arrives behind it later is taken out and answered in the queue,
/// its cancel is dropped when it comes up, and a held order past the stale
/// bound comes back as stale.
#[test]
fn held_orders_are_canceled_in_the_queue_or_go_stale() {
    let (mut tx, rx) = ring::channel::<Command>(8);
    let mut inputs = CommandInputs::new();
    inputs.add(Lane::Normal, rx);
    let cancel = |n: u64| Command::Cancel {
        cancel_id: ClientId::cancel(
            Namespace::new(1, 1),
            OrderKey {
                strategy: 1,
                order_id: n,
            },
            1,
        ),
        orig: order_id(n),
        instrument: 1,
    };
    tx.push(place(1)).unwrap();
    tx.push(place(2)).unwrap();
    // Held, no cancel yet: nothing comes out.
    assert_eq!(inputs.pop_admitted(0, u64::MAX, |_, _| false), None);
    // The cancel arrives after the first look.
    tx.push(cancel(1)).unwrap();
    assert_eq!(
        inputs.pop_admitted(1, u64::MAX, |_, _| false),
        Some(Taken::CanceledInQueue(place(1)))
    );
    // Order 2 is admitted; the cancel of order 1 is dropped, never sent.
    assert_eq!(
        inputs.pop_admitted(2, u64::MAX, |_, _| true),
        Some(Taken::Admitted(place(2)))
    );
    assert_eq!(inputs.pop_admitted(3, u64::MAX, |_, _| true), None);
    assert!(inputs.is_empty());
    // A held order with no cancel behind it goes stale by its queue time.
    tx.push(place(3)).unwrap();
    assert_eq!(inputs.pop_admitted(100, 50, |_, _| false), None);
    assert_eq!(
        inputs.pop_admitted(151, 50, |_, _| false),
        Some(Taken::Stale(place(3)))
    );
}
