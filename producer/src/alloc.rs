//! The producer's memory allocator: jemalloc, for Rust and C alike.
//!
//! librdkafka allocates a copy of every message, plus one block per header,
//! on the thread that produces it and frees them on the thread that runs the
//! delivery reports. glibc's malloc handles that cross-thread churn badly:
//! in `perf`, `_int_malloc`, `malloc_consolidate` and friends took over a
//! quarter of the producer's samples at full speed. jemalloc is linked
//! *unprefixed*, so it also replaces `malloc`/`free` for librdkafka, not
//! just for Rust.
//!
//! [`CONF`] keeps the heap small: one arena (the producer has a handful of
//! threads, and every extra arena held ~7 MiB more at peak) and unused pages
//! returned after a second. `MALLOC_CONF` in the environment still overrides
//! it. Measured against an in-memory Kafka-protocol broker, 1M–3M ticks,
//! Kafka only: glibc 160–187k ticks/s at 7.1–8.3 µs of producer CPU per
//! tick and 52 MiB peak RSS; jemalloc with defaults 256k at 110 MiB;
//! jemalloc with [`CONF`] 289–325k at 4.0–4.8 µs and 42 MiB.
//!
//! A binary opts in with [`use_jemalloc!`](crate::use_jemalloc): the
//! `#[global_allocator]` and the exported `malloc_conf` symbol belong in the
//! final binary, not in this library.

pub use tikv_jemallocator::Jemalloc;

/// jemalloc options compiled into the binary (`malloc_conf`).
pub const CONF: &std::ffi::CStr = c"narenas:1,dirty_decay_ms:1000,muzzy_decay_ms:0";

/// Makes jemalloc, configured with [`CONF`], the allocator of the calling
/// binary. Call it once, at the top level of a binary crate.
#[macro_export]
macro_rules! use_jemalloc {
    () => {
        #[global_allocator]
        static GLOBAL: $crate::alloc::Jemalloc = $crate::alloc::Jemalloc;

        /// Read by jemalloc when it initializes, before `main`. An
        /// `AtomicPtr` has the layout of the C `const char *` it expects.
        #[export_name = "malloc_conf"]
        static MALLOC_CONF: ::std::sync::atomic::AtomicPtr<::std::ffi::c_char> =
            ::std::sync::atomic::AtomicPtr::new($crate::alloc::CONF.as_ptr().cast_mut());
    };
}
