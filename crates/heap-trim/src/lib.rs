//! Give freed heap memory back to the operating system, behind one safe function.
//!
//! glibc's allocator keeps pages it has freed inside its heaps (and in every per-thread arena) for
//! reuse; only pages at the very top of the main heap go back on their own. A server that parses a
//! few large requests at once therefore keeps their peak for good: `medscreen serve` measured 818 MB
//! resident three seconds after 16 concurrent 4.5 MB requests (BENCHMARKS.md). `malloc_trim(0)` walks
//! every arena and returns each whole free page with `madvise`. This crate is the only place in
//! medscreen with `unsafe`, so the main crate keeps `#![forbid(unsafe_code)]`.
//!
//! ```
//! // Safe to call at any time, from any thread; a no-op off glibc.
//! let _returned_memory = heap_trim::trim();
//! ```

#![deny(unsafe_op_in_unsafe_fn)]

#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod imp {
    unsafe extern "C" {
        // int malloc_trim(size_t pad); glibc <malloc.h>
        fn malloc_trim(pad: usize) -> std::ffi::c_int;
    }

    pub fn trim() -> bool {
        // SAFETY: `malloc_trim` takes a plain integer and has no preconditions; it works on the
        // allocator's own state under the allocator's locks and is MT-Safe (glibc manual, "Memory
        // Allocation Tunables" / malloc_trim(3)). Pages it returns are free, so no live allocation
        // is touched.
        unsafe { malloc_trim(0) != 0 }
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod imp {
    pub fn trim() -> bool {
        false
    }
}

/// Return whole free pages of every allocator arena to the operating system. True when some memory
/// was returned. Takes the allocator's locks while it runs (milliseconds per GB of free heap), so
/// call it after a burst, not per allocation.
pub fn trim() -> bool {
    imp::trim()
}

#[cfg(test)]
mod tests {
    #[test]
    fn trimming_after_freeing_is_safe_and_can_be_repeated() {
        let blocks: Vec<Vec<u8>> = (0..64).map(|i| vec![i as u8; 64 << 10]).collect();
        drop(blocks);
        let _ = super::trim();
        let _ = super::trim();
    }
}
