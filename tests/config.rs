//! Config loading: every refusal names the key and the line.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use ordergate::config::{Config, ConfigError, Layout, WaitStrategy};
use ordergate::ids::VenueId;
use ordergate::instrument::Category;

/// A valid config; tests derive broken ones by replacing one line.
const BASE: &str = r#"state_dir = "/tmp/ordergate-test-state"
socket = "/tmp/ordergate-test.sock"
layout = "single"
wait = "park"

[[venue]]
id = "binance-spot"
preset = "testnet"
api_key = { env = "OG_TEST_KEY" }
api_secret = { env = "OG_TEST_SECRET" }

[[strategy]]
id = 1
name = "alpha"

[[instrument]]
id = 1
venue = "binance-spot"
symbol = "BTCUSDT"
category = "spot"
tick = "0.01"
lot = "0.00001"
min_qty = "0.00001"
min_notional = "5"
"#;

/// `BASE` with the line starting `from` replaced by `to`.
fn with(from: &str, to: &str) -> String {
    let mut found = false;
    let text: String = BASE
        .lines()
        .map(|l| {
            if !found && l.starts_with(from) {
                found = true;
                format!("{to}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert!(found, "no line starts with {from:?}");
    text
}

fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.starts_with(needle)).unwrap() + 1
}

/// Loads `text`, expects an error at the line starting with `line_start`,
/// and returns its message.
fn error_at(text: &str, line_start: &str) -> String {
    let err = Config::from_str(text, "test.toml").expect_err("config should be refused");
    let msg = err.to_string();
    let line = line_of(text, line_start);
    assert_eq!(err.line(), Some(line), "{msg}");
    assert!(msg.starts_with(&format!("test.toml:{line}: ")), "{msg}");
    msg
}

#[test]
fn base_config_loads_with_typed_values() {
    let c = Config::from_str(BASE, "test.toml").unwrap();
    assert_eq!(c.layout, Layout::Single);
    assert_eq!(c.wait, WaitStrategy::Park);
    assert_eq!(c.cores, None);
    assert_eq!(c.rings.command_capacity, 1024);
    assert_eq!(c.rings.event_capacity, 8192);
    assert_eq!(c.gateway.max_outbound_bytes, 1 << 20);
    assert_eq!(c.venues.len(), 1);
    assert_eq!(c.venues[0].id, VenueId::BinanceSpot);
    assert_eq!(c.venues[0].recv_window_ms, 5000);
    assert_eq!(c.strategies[0].name, "alpha");
    let i = &c.instruments[0];
    assert_eq!(
        (i.id, i.venue, i.category),
        (1, VenueId::BinanceSpot, Category::Spot)
    );
    assert_eq!((i.price_scale, i.qty_scale), (2, 5));
    assert_eq!((i.tick, i.lot, i.min_qty), (1, 1, 1));
    assert_eq!(i.min_notional, 5_0000000);
}

#[test]
fn example_config_is_valid() {
    let c = Config::load(std::path::Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/ordergate.toml"
    )))
    .unwrap();
    assert_eq!(c.venues[0].ws_url, "wss://ws-api.binance.com:443/ws-api/v3");
}

#[test]
fn sim_example_config_is_valid_and_stays_in_the_clone() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .canonicalize()
        .unwrap();
    let c = Config::load(&root.join("examples/sim.toml")).unwrap();
    // Relative paths are taken from examples/, so "../state" is the
    // repository's (git-ignored) state/ directory.
    assert_eq!(c.state_dir, root.join("state"));
    assert_eq!(c.socket, root.join("state/ordergate.sock"));
    let v = &c.venues[0];
    assert_eq!(v.ws_url, "ws://127.0.0.1:9443/ws-api/v3");
    assert_eq!(v.rest_url, "http://127.0.0.1:9443");
    assert_eq!(v.api_key.source.to_string(), "env OG_SIM_API_KEY");
    assert_eq!(v.api_secret.source.to_string(), "env OG_SIM_API_SECRET");
    assert!(c.strategy_by_name("quickstart").is_some());
    let symbols: Vec<&str> = c.instruments.iter().map(|i| i.symbol.as_str()).collect();
    assert_eq!(symbols, ["BTCUSDT", "ETHUSDT"]);
}

#[test]
fn relative_paths_are_refused_without_a_file() {
    let text = with("state_dir", "state_dir = \"state\"");
    let msg = error_at(&text, "state_dir");
    assert!(
        msg.contains("`state_dir` must be an absolute path"),
        "{msg}"
    );
    assert!(msg.contains("never from the working directory"), "{msg}");

    let text = with("socket", "socket = \"og.sock\"");
    let msg = error_at(&text, "socket");
    assert!(msg.contains("`socket` must be an absolute path"), "{msg}");
}

#[test]
fn relative_paths_are_taken_from_the_config_files_directory() {
    let dir = tempfile::tempdir().unwrap();
    let conf_dir = dir.path().join("conf");
    std::fs::create_dir(&conf_dir).unwrap();
    let path = conf_dir.join("c.toml");
    let text = with("state_dir", "state_dir = \"./run/../state\"").replace(
        "socket = \"/tmp/ordergate-test.sock\"",
        "socket = \"../sock/og.sock\"",
    );
    std::fs::write(&path, &text).unwrap();
    let c = Config::load(&path).unwrap();
    let base = dir.path().canonicalize().unwrap();
    assert_eq!(c.state_dir, base.join("conf/state"));
    assert_eq!(c.socket, base.join("sock/og.sock"));

    // A relative path that resolves too long is refused at its line, with
    // the file's name.
    let long = format!("{}/og.sock", "d".repeat(110));
    let text = with("socket", &format!("socket = \"{long}\""));
    std::fs::write(&path, &text).unwrap();
    let err = Config::load(&path).unwrap_err();
    let msg = err.to_string();
    let line = line_of(&text, "socket");
    assert!(
        msg.starts_with(&format!("{}:{line}: `socket`", path.display())),
        "{msg}"
    );
    assert!(msg.contains("limited to 107"), "{msg}");
}

#[test]
fn misspelled_key_names_key_line_and_table() {
    let text = with("tick", "tcik = \"0.01\"");
    let msg = error_at(&text, "tcik");
    assert!(
        msg.contains("unknown key `tcik` in [[instrument]]"),
        "{msg}"
    );
    assert!(msg.contains("expected one of: id, venue, symbol"), "{msg}");
}

#[test]
fn wrong_type_names_the_key() {
    let text = with("id = 1", "id = \"one\"");
    let msg = error_at(&text, "id = \"one\"");
    assert!(msg.contains("`id` in [[strategy]]"), "{msg}");
    assert!(msg.contains("invalid type"), "{msg}");
}

#[test]
fn float_decimal_is_refused() {
    let text = with("tick", "tick = 0.01");
    let msg = error_at(&text, "tick");
    assert!(msg.contains("write decimals as strings"), "{msg}");
}

#[test]
fn missing_key_points_at_its_table() {
    let text = with("symbol", "");
    let msg = error_at(&text, "[[instrument]]");
    assert!(
        msg.contains("missing key `symbol` in [[instrument]]"),
        "{msg}"
    );
}

#[test]
fn duplicate_instrument_id() {
    let second = "\n[[instrument]]\nid = 1\nvenue = \"binance-spot\"\nsymbol = \"ETHUSDT\"\ncategory = \"spot\"\ntick = \"0.01\"\nlot = \"0.0001\"\nmin_qty = \"0.0001\"\nmin_notional = \"5\"\n";
    let text = format!("{BASE}{second}");
    let err = Config::from_str(&text, "test.toml").unwrap_err();
    let msg = err.to_string();
    // The second `id = 1` under [[instrument]]: the last such line.
    let lines: Vec<&str> = text.lines().collect();
    let line = lines.iter().rposition(|l| *l == "id = 1").unwrap() + 1;
    assert_eq!(err.line(), Some(line), "{msg}");
    let first = line_of(&text, "[[instrument]]") + 1;
    assert!(msg.contains("instrument id 1 is used twice"), "{msg}");
    assert!(msg.contains(&format!("first at line {first}")), "{msg}");
}

#[test]
fn instrument_on_unconfigured_venue() {
    let text = with("venue = ", "venue = \"bybit-spot\"");
    let msg = error_at(&text, "venue = ");
    assert!(msg.contains("bybit-spot has no [[venue]] table"), "{msg}");
}

#[test]
fn unknown_venue_id() {
    let text = with("id = \"binance-spot\"", "id = \"kraken\"");
    let msg = error_at(&text, "id = \"kraken\"");
    assert!(msg.contains("unknown venue \"kraken\""), "{msg}");
}

#[test]
fn unknown_preset() {
    let text = with("preset", "preset = \"devnet\"");
    let msg = error_at(&text, "preset");
    assert!(msg.contains("unknown variant `devnet`"), "{msg}");
}

#[test]
fn bad_decimal() {
    let text = with("lot", "lot = \"0.0x1\"");
    let msg = error_at(&text, "lot");
    assert!(msg.contains("`lot` \"0.0x1\""), "{msg}");
    assert!(msg.contains("invalid character 'x'"), "{msg}");

    let text = with("min_qty", "min_qty = \"0.000001\"");
    let msg = error_at(&text, "min_qty");
    assert!(msg.contains("min_qty"), "{msg}");

    let text = with("tick", "tick = \"0\"");
    let msg = error_at(&text, "tick");
    assert!(msg.contains("must be positive"), "{msg}");
}

#[test]
fn category_must_match_venue() {
    let text = with("category", "category = \"linear\"");
    let msg = error_at(&text, "category");
    assert!(msg.contains("does not match venue binance-spot"), "{msg}");
}

#[test]
fn plain_http_only_to_loopback() {
    let text = with(
        "preset",
        "ws_url = \"ws://ws.example.com/ws\"\nrest_url = \"https://api.example.com\"",
    );
    let msg = error_at(&text, "ws_url");
    assert!(msg.contains("only to loopback hosts"), "{msg}");

    let text = with(
        "preset",
        "ws_url = \"wss://ws.example.com/ws\"\nrest_url = \"http://api.example.com\"",
    );
    let msg = error_at(&text, "rest_url");
    assert!(msg.contains("only to loopback hosts"), "{msg}");

    for host in ["127.0.0.1:9001", "localhost:9001", "[::1]:9001"] {
        let text = with(
            "preset",
            &format!("ws_url = \"ws://{host}/ws\"\nrest_url = \"http://{host}\""),
        );
        let c = Config::from_str(&text, "test.toml").unwrap();
        assert_eq!(c.venues[0].ws_url, format!("ws://{host}/ws"));
    }
}

#[test]
fn preset_fills_urls_and_explicit_urls_override() {
    let c = Config::from_str(BASE, "test.toml").unwrap();
    assert_eq!(
        c.venues[0].ws_url,
        "wss://ws-api.testnet.binance.vision/ws-api/v3"
    );
    assert_eq!(c.venues[0].rest_url, "https://testnet.binance.vision");

    let text = with(
        "preset",
        "preset = \"mainnet\"\nws_url = \"ws://127.0.0.1:9001/ws-api/v3\"",
    );
    let c = Config::from_str(&text, "test.toml").unwrap();
    assert_eq!(c.venues[0].ws_url, "ws://127.0.0.1:9001/ws-api/v3");
    assert_eq!(c.venues[0].rest_url, "https://api.binance.com");

    let text = with("preset", "");
    let msg = error_at(&text, "[[venue]]");
    assert!(msg.contains("missing key `ws_url`"), "{msg}");
}

#[test]
fn socket_path_too_long() {
    let long = format!("/tmp/{}.sock", "s".repeat(110));
    let text = with("socket", &format!("socket = \"{long}\""));
    let msg = error_at(&text, "socket");
    assert!(msg.contains("limited to 107"), "{msg}");
}

#[test]
fn pinned_layout_needs_cores() {
    let text = with("layout", "layout = \"pinned\"");
    let msg = error_at(&text, "layout");
    assert!(msg.contains("[cores]"), "{msg}");

    let text = with(
        "wait",
        "wait = \"spin\"\n[cores]\ngateway = 2\nsessions = { binance-spot = 3 }",
    )
    .replace("layout = \"single\"", "layout = \"pinned\"");
    let c = Config::from_str(&text, "test.toml").unwrap();
    assert_eq!(c.layout, Layout::Pinned);
    assert_eq!(c.wait, WaitStrategy::Spin);
    let cores = c.cores.as_ref().unwrap();
    assert_eq!(cores.session(VenueId::BinanceSpot), Some(3));
    assert_eq!(cores.session(VenueId::BybitSpot), None);

    let clash = text.replace("binance-spot = 3", "binance-spot = 2");
    let msg = error_at(&clash, "sessions");
    assert!(msg.contains("core 2 is used twice"), "{msg}");
}

#[test]
fn session_cores_are_keyed_by_venue_id() {
    let pinned = |sessions: &str| {
        with(
            "wait",
            &format!("wait = \"spin\"\n[cores]\ngateway = 2\nsessions = {sessions}"),
        )
        .replace("layout = \"single\"", "layout = \"pinned\"")
    };
    // The old positional form is refused, naming the key.
    let text = pinned("[3]");
    let msg = error_at(&text, "sessions");
    assert!(msg.contains("`sessions` in [cores]"), "{msg}");
    // A configured venue without a core.
    let text = pinned("{}");
    let msg = error_at(&text, "sessions");
    assert!(msg.contains("no core for venue binance-spot"), "{msg}");
    // A core for a venue that is not configured.
    let text = pinned("{ binance-spot = 3, bybit-spot = 4 }");
    let msg = error_at(&text, "sessions");
    assert!(
        msg.contains("bybit-spot, which has no [[venue]] table"),
        "{msg}"
    );
    // An id that is no venue at all.
    let text = pinned("{ kraken = 3 }");
    let msg = error_at(&text, "sessions");
    assert!(msg.contains("kraken"), "{msg}");
}

#[test]
fn inline_secret_is_refused_without_echo() {
    let text = with("api_key", "api_key = \"my-real-key\"");
    let msg = error_at(&text, "api_key");
    assert!(!msg.contains("my-real-key"), "{msg}");
    assert!(msg.contains("never written in the config"), "{msg}");
}

fn config_with_secret_file(mode: u32) -> (tempfile::TempDir, Config) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("secret");
    std::fs::write(&path, "s3cr3t\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
    let text = with(
        "api_secret",
        &format!("api_secret = {{ file = \"{}\" }}", path.display()),
    );
    (dir, Config::from_str(&text, "test.toml").unwrap())
}

#[test]
fn secret_file_readable_by_others_is_refused() {
    let (_dir, c) = config_with_secret_file(0o644);
    let err = c.venues[0].api_secret.resolve().unwrap_err();
    let msg = err.to_string();
    let line = line_of(BASE, "api_secret");
    assert!(msg.starts_with(&format!("test.toml:{line}: ")), "{msg}");
    assert!(msg.contains("mode 0644"), "{msg}");
    assert!(msg.contains("chmod 600"), "{msg}");
}

#[test]
fn secret_file_with_0600_is_read_without_its_newline() {
    let (_dir, c) = config_with_secret_file(0o600);
    let secret = c.venues[0].api_secret.resolve().unwrap();
    assert_eq!(secret.expose(), b"s3cr3t");
    assert_eq!(format!("{secret:?}"), "[redacted]");
}

#[test]
fn missing_env_secret_names_variable_and_line() {
    let text = with(
        "api_key",
        "api_key = { env = \"OG_TEST_SURELY_UNSET_VARIABLE\" }",
    );
    let c = Config::from_str(&text, "test.toml").unwrap();
    let err = c.venues[0].credentials().unwrap_err();
    let msg = err.to_string();
    let line = line_of(&text, "api_key");
    assert_eq!(err.line(), Some(line), "{msg}");
    assert!(msg.contains("OG_TEST_SURELY_UNSET_VARIABLE"), "{msg}");
    assert!(msg.contains("is not set"), "{msg}");
}

#[test]
fn unreadable_file_is_a_read_error() {
    let err = Config::load(std::path::Path::new("/nonexistent/ordergate.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err.to_string().contains("/nonexistent/ordergate.toml"));
}

#[test]
fn check_config_binary_reports_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    let text = with("tick", "tcik = \"0.01\"");
    std::fs::write(&path, &text).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ordergate"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = line_of(&text, "tcik");
    assert!(
        stderr.contains(&format!("bad.toml:{line}: unknown key `tcik`")),
        "{stderr}"
    );

    let good = dir.path().join("good.toml");
    std::fs::write(&good, BASE).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ordergate"))
        .arg("check-config")
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("BTCUSDT"), "{stdout}");
    assert!(stdout.contains("price scale 2"), "{stdout}");
}

#[test]
fn check_config_reads_secrets_only_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(&path, BASE).unwrap();
    let check = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_ordergate"))
            .arg("check-config")
            .args(extra)
            .arg(&path)
            .env_remove("OG_TEST_KEY")
            .env("OG_TEST_SECRET", "s")
            .output()
            .unwrap()
    };
    assert!(check(&[]).status.success());
    let out = check(&["--secrets"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = line_of(BASE, "api_key");
    assert!(stderr.contains(&format!("c.toml:{line}: ")), "{stderr}");
    assert!(stderr.contains("OG_TEST_KEY is not set"), "{stderr}");
}

/// `[venue.limits]`: defaults without it, every key read with it, and each
/// refusal names the key and the line.
#[test]
fn venue_limits_table() {
    use ordergate::limiter::{Counts, Rule};
    let c = Config::from_str(BASE, "base.toml").unwrap();
    let l = &c.venues[0].limits;
    assert_eq!(
        (l.reserve_permille, l.max_in_flight, l.pass_through),
        (200, 16, false)
    );
    assert!(l.stale_ms < c.venues[0].recv_window_ms as u64);

    let text = with(
        "api_secret",
        r#"api_secret = { env = "OG_TEST_SECRET" }
[venue.limits]
critical_reserve_percent = 30
window_margin_ms = 250
stale_order_ms = 1500
max_in_flight = 4
pass_through = true
[[venue.limits.rule]]
counts = "orders"
window_ms = 10000
limit = 7"#,
    );
    let c = Config::from_str(&text, "limits.toml").unwrap();
    let l = &c.venues[0].limits;
    assert_eq!(l.reserve_permille, 300);
    assert_eq!((l.margin_ms, l.stale_ms, l.max_in_flight), (250, 1500, 4));
    assert!(l.pass_through);
    assert_eq!(l.overrides, vec![Rule::new(Counts::Orders, 10_000, 7)]);

    let bad = |line: &str| {
        with(
            "api_secret",
            &format!("api_secret = {{ env = \"OG_TEST_SECRET\" }}\n[venue.limits]\n{line}"),
        )
    };
    let e = error_at(&bad("stale_order_ms = 9000"), "stale_order_ms");
    assert!(e.contains("below recv_window_ms"), "{e}");
    let e = error_at(
        &bad("critical_reserve_percent = 95"),
        "critical_reserve_percent",
    );
    assert!(e.contains("at most 90"), "{e}");
    let e = error_at(&bad("max_in_flight = 0"), "max_in_flight");
    assert!(e.contains("at least 1"), "{e}");
    let e = error_at(
        &bad("[[venue.limits.rule]]\ncounts = \"weights\"\nwindow_ms = 1\nlimit = 1"),
        "counts",
    );
    assert!(e.contains("expected one of weight, orders"), "{e}");
    let text = bad("reserve = 1");
    let e = Config::from_str(&text, "x.toml").unwrap_err().to_string();
    assert!(e.contains("reserve"), "{e}");
}

#[test]
fn venue_liveness_keys_default_and_are_checked() {
    let c = Config::from_str(BASE, "test.toml").unwrap();
    let l = c.venues[0].liveness;
    assert_eq!(
        (l.ping_interval, l.pong_timeout),
        (
            std::time::Duration::from_secs(10),
            std::time::Duration::from_secs(10)
        )
    );
    let text = with(
        "api_secret",
        "api_secret = { env = \"OG_TEST_SECRET\" }\nping_interval_ms = 2500\npong_timeout_ms = 4000",
    );
    let l = Config::from_str(&text, "test.toml").unwrap().venues[0].liveness;
    assert_eq!(l.ping_interval.as_millis(), 2500);
    assert_eq!(l.pong_timeout.as_millis(), 4000);
    let text = with(
        "api_secret",
        "api_secret = { env = \"OG_TEST_SECRET\" }\npong_timeout_ms = 0",
    );
    let e = error_at(&text, "pong_timeout_ms");
    assert!(
        e.contains("`pong_timeout_ms` is 0; it must be from 10 to 600000"),
        "{e}"
    );
}

#[test]
fn shutdown_disconnect_and_journal_settings() {
    use ordergate::config::OnShutdown;
    use ordergate::journal::Durability;
    let c = Config::from_str(BASE, "t.toml").unwrap();
    assert_eq!(c.gateway.on_shutdown, OnShutdown::Leave);
    assert_eq!(c.strategies[0].cancel_after_disconnect_ms, None);
    assert_eq!(
        c.journal.durability,
        Durability::Group {
            interval: std::time::Duration::from_millis(1)
        }
    );
    let text = format!(
        "{}\n[gateway]\non_shutdown = \"cancel\"\n\n[journal]\ndurability = \"every-record\"\nsegment_mb = 8\n",
        with("name = \"alpha\"", "name = \"alpha\"\ncancel_on_disconnect = true\ndisconnect_grace_ms = 250")
    );
    let c = Config::from_str(&text, "t.toml").unwrap();
    assert_eq!(c.gateway.on_shutdown, OnShutdown::Cancel);
    assert_eq!(c.strategies[0].cancel_after_disconnect_ms, Some(250));
    assert_eq!(c.journal.durability, Durability::EveryRecord);
    assert_eq!(c.journal.segment_bytes, 8 << 20);

    let bad = format!("{BASE}\n[journal]\ndurability = \"sometimes\"\n");
    let e = error_at(&bad, "durability");
    assert!(e.contains("sometimes") && e.contains("every-record"), "{e}");
    let bad = format!("{BASE}\n[gateway]\non_shutdown = \"flee\"\n");
    let e = error_at(&bad, "on_shutdown");
    assert!(e.contains("flee") && e.contains("leave"), "{e}");
    // Settings that would do nothing are refused, not ignored.
    let bad = format!("{BASE}\n[journal]\ndurability = \"every-record\"\ngroup_commit_us = 500\n");
    let e = error_at(&bad, "group_commit_us");
    assert!(e.contains("only to durability"), "{e}");
    let bad = with(
        "name = \"alpha\"",
        "name = \"alpha\"\ndisconnect_grace_ms = 250",
    );
    let e = error_at(&bad, "disconnect_grace_ms");
    assert!(e.contains("cancel_on_disconnect = true"), "{e}");
    let bad = format!("{BASE}\n[journal]\nsegment_mb = 0\n");
    error_at(&bad, "segment_mb");
}
