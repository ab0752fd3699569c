//! Thread-to-core pinning for the `pinned` layout: a spinning thread that
//! the scheduler moves between cores loses its caches and its isolation.

use std::io;

/// Pins the calling thread to `core` (a logical CPU number as the kernel
/// counts them). Fails if the core does not exist or is not allowed to
/// this process (cgroup cpusets, `taskset`).
pub fn pin_current_thread(core: usize) -> io::Result<()> {
    if core >= libc::CPU_SETSIZE as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("core {core} is beyond CPU_SETSIZE ({})", libc::CPU_SETSIZE),
        ));
    }
    // SAFETY: `cpu_set_t` is a plain bit array, so all-zero is a valid
    // (empty) set; `CPU_SET` indexes inside it because `core` was checked
    // against CPU_SETSIZE above; `sched_setaffinity` reads exactly
    // `size_of::<cpu_set_t>()` bytes from a live reference, and pid 0 means
    // the calling thread. Nothing is retained past the call.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(core, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pins_to_an_allowed_core_and_refuses_absurd_ones() {
        // Run on a fresh thread so the test runner's threads keep their mask.
        std::thread::spawn(|| {
            // Which cores this process may use depends on the host (cgroups,
            // taskset); at least one of them must accept the pin.
            let pinned = (0..libc::CPU_SETSIZE as usize).find(|&c| pin_current_thread(c).is_ok());
            assert!(pinned.is_some());
            assert!(pin_current_thread(libc::CPU_SETSIZE as usize).is_err());
        })
        .join()
        .unwrap();
    }
}
