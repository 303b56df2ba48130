//! A server process's resident memory and CPU time, read from `/proc` (Linux only).
//!
//! Memory per connection is the growth of `VmRSS` while connections are held, over a baseline
//! taken before they were opened; CPU time (`utime + stime`) over a run shows how much of the
//! machine the server used for its throughput, which matters on a small machine where the load
//! generator competes for the same cores.

use std::io;

/// Clock ticks per second of `/proc/<pid>/stat`. Linux fixes `USER_HZ` at 100 on every
/// mainstream architecture; reading it would need `sysconf`, which needs unsafe code.
const TICKS_PER_SECOND: f64 = 100.0;

/// `VmRSS` of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
        .ok_or_else(|| io::Error::other(format!("no VmRSS in /proc/{pid}/status")))
}

/// The sum of `VmRSS` over `pids`, in KiB (several service processes on one machine).
pub fn total_rss_kib(pids: &[u32]) -> io::Result<u64> {
    pids.iter().map(|&pid| rss_kib(pid)).sum()
}

/// User plus system CPU time `pid` has used so far, in seconds.
pub fn cpu_seconds(pid: u32) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: count from after it.
    let after_name = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| io::Error::other("malformed /proc/<pid>/stat"))?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of the whole line are utime and stime; here field 3 is the first.
    let ticks = |i: usize| -> io::Result<f64> {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .ok_or_else(|| io::Error::other("malformed /proc/<pid>/stat"))
    };
    Ok((ticks(11)? + ticks(12)?) / TICKS_PER_SECOND)
}

/// The sum of [`cpu_seconds`] over `pids`.
pub fn total_cpu_seconds(pids: &[u32]) -> io::Result<f64> {
    pids.iter().map(|&pid| cpu_seconds(pid)).sum()
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(super::rss_kib(pid).is_ok_and(|kib| kib > 0));
        assert!(super::cpu_seconds(pid).is_ok_and(|s| s >= 0.0));
    }
}
