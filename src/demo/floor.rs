//! The latency floor: what the bare transports cost on this machine, in
//! the same run as the measurement they bound. A Unix-socket echo (the
//! strategy's hop) and a loopback WebSocket echo (the venue's hop) of
//! frames the size ordergate really sends.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio_tungstenite::tungstenite::{self, Message};

/// A histogram of nanoseconds from 1 ns to 60 s, 3 significant figures.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("static histogram bounds are valid")
}

/// Round trips of a `size`-byte frame over a Unix socket pair.
pub fn unix_echo(rounds: usize, size: usize) -> std::io::Result<Histogram<u64>> {
    let (mut a, mut b) = UnixStream::pair()?;
    let echo = std::thread::spawn(move || -> std::io::Result<()> {
        let mut buf = vec![0u8; size];
        for _ in 0..rounds {
            b.read_exact(&mut buf)?;
            b.write_all(&buf)?;
        }
        Ok(())
    });
    let clock = quanta::Clock::new();
    let mut hist = new_histogram();
    let frame = vec![7u8; size];
    let mut back = vec![0u8; size];
    for _ in 0..rounds {
        let t0 = clock.raw();
        a.write_all(&frame)?;
        a.read_exact(&mut back)?;
        hist.saturating_record(clock.delta_as_nanos(t0, clock.raw()).max(1));
    }
    echo.join()
        .map_err(|_| std::io::Error::other("echo thread panicked"))??;
    Ok(hist)
}

/// Round trips of a `size`-byte text message over a loopback WebSocket.
pub fn websocket_echo(rounds: usize, size: usize) -> std::io::Result<Histogram<u64>> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = std::thread::spawn(move || -> Result<(), String> {
        let (tcp, _) = listener.accept().map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).map_err(|e| e.to_string())?;
        let mut ws = tungstenite::accept(tcp).map_err(|e| e.to_string())?;
        loop {
            match ws.read() {
                Ok(m @ Message::Text(_)) => ws.send(m).map_err(|e| e.to_string())?,
                Ok(Message::Close(_)) | Err(_) => return Ok(()),
                Ok(_) => {}
            }
        }
    });
    let tcp = std::net::TcpStream::connect(addr)?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(Duration::from_secs(10)))?;
    let url = format!("ws://{addr}/");
    let (mut ws, _) = tungstenite::client(url.as_str(), tcp).map_err(std::io::Error::other)?;
    let clock = quanta::Clock::new();
    let mut hist = new_histogram();
    let text = "x".repeat(size);
    for _ in 0..rounds {
        let t0 = clock.raw();
        ws.send(Message::text(text.clone()))
            .map_err(std::io::Error::other)?;
        loop {
            match ws.read().map_err(std::io::Error::other)? {
                Message::Text(_) => break,
                _ => continue,
            }
        }
        hist.saturating_record(clock.delta_as_nanos(t0, clock.raw()).max(1));
    }
    let _ = ws.close(None);
    let _ = ws.flush();
    let _ = server.join();
    Ok(hist)
}

#[cfg(test)]
mod tests {
    #[test]
    fn floors_measure_every_round() {
        assert_eq!(super::unix_echo(50, 64).unwrap().len(), 50);
        assert_eq!(super::websocket_echo(50, 300).unwrap().len(), 50);
    }
}
