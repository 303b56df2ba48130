//! The ring of Redis hosts, as the Python layers spread names over it: the configured list, and
//! which member carries a name.

/// Splits a comma-separated list of Redis URLs (`"redis://a:6379,redis://b:6379"`).
pub fn parse_host_list(urls: &str) -> Vec<String> {
    urls.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The index of the host responsible for `name` in a ring of `ring_size` hosts: the Python
/// layers' `consistent_hash` (`crc32(name) & 0xFFF`, scaled to the ring), so Rust and Python
/// processes agree on where each key lives.
pub fn consistent_hash(name: &str, ring_size: usize) -> usize {
    if ring_size <= 1 {
        return 0;
    }
    let bucket = crc32fast::hash(name.as_bytes()) & 0xFFF;
    // Python: int(bucket / (4096 / ring_size)). Integer arithmetic gives the same floor.
    let index = (u64::from(bucket) * ring_size as u64 / 4096) as usize;
    index.min(ring_size - 1)
}
