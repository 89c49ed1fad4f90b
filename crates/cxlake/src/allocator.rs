//! The allocator of the programs cxlake ships, the `cxlake` command and the Python module (the
//! `mimalloc` feature; a program that embeds the library keeps its own allocator without it).
//!
//! Why not the system's: a grouping by a high-cardinality key (retention or a funnel by user)
//! holds tables of tens of MiB per partition. glibc's malloc gives such blocks back to the kernel
//! when they are freed, so every query faults them in again, page by page, and page faults
//! serialize the threads of a process. With 16 partitions, retention by user spent more time in
//! the kernel than in the grouping (`benches/results/2026-11-25-cores.md`). mimalloc keeps freed
//! memory for reuse.

use std::ffi::c_long;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (between `eager_commit_delay`, 14, and
/// `use_numa_nodes`, 16, which the bindings name).
const PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// How long freed memory stays with the process before it goes back to the kernel. mimalloc's
/// default (1 s) returns a query's tables between two queries of a script, and the next query
/// faults them in again; 10 s is what jemalloc keeps by default.
const PURGE_DELAY_MS: c_long = 10_000;

/// Sets cxlake's allocator options at start-up; a `MIMALLOC_PURGE_DELAY` set in the environment
/// wins. Transparent huge pages are off at build time (`no_thp`): zeroing 2 MiB pages whenever a
/// large block is touched again cost more than their TLB savings in the benchmarks.
pub fn keep_freed_memory() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: sets one integer option; mimalloc reads options atomically.
        unsafe { libmimalloc_sys::mi_option_set(PURGE_DELAY, PURGE_DELAY_MS) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_option_set_is_the_purge_delay() {
        if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
            return; // the environment's value wins; nothing of ours to check
        }
        // SAFETY: reads one integer option.
        let read = || unsafe { libmimalloc_sys::mi_option_get(PURGE_DELAY) };
        // 1000 ms is mimalloc v3's default purge delay (its options.c) and no neighbouring
        // option's, so the index names that option.
        assert_eq!(read(), 1000);
        keep_freed_memory();
        assert_eq!(read(), PURGE_DELAY_MS);
    }
}
