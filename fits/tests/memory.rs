//! Memory stays bounded whatever the file's size: 400 MB tables (narrow rows plain and gzipped, wide rows) are scanned
//! while this test binary's allocator keeps the heap's high-water mark, which must stay far below the file's size. (Its own binary:
//! the allocator counts every thread of the process.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use datafusion::arrow::array::AsArray;
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};

mod common;

struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    PEAK.fetch_max(CURRENT.fetch_add(bytes, Relaxed) + bytes, Relaxed);
}

// SAFETY: every call goes to the system allocator unchanged; only the sizes are counted.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            match new_size.checked_sub(layout.size()) {
                Some(more) => grew(more),
                None => _ = CURRENT.fetch_sub(layout.size() - new_size, Relaxed),
            }
        }
        p
    }
}

#[global_allocator]
static HEAP: Counting = Counting;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scans_of_a_large_file_use_little_memory() {
    let dir = common::make_fits(&["--only", "huge"]);
    // Narrow rows, plain and gzipped; rows of 100 kB, of which only a 4-byte field is wanted.
    for (name, rows) in [("huge.fits", 25_000_000), ("huge.fits.gz", 25_000_000), ("huge-wide.fits", 4_000)] {
        let path = dir.path().join(name);
        let file_size = std::fs::metadata(&path).unwrap().len();
        let ctx = common::context(2, 8192);
        let before = CURRENT.load(Relaxed);
        PEAK.store(before, Relaxed);
        let batches = common::query(&ctx, &format!("SELECT count(id), max(id) FROM '{}'", path.display())).await.unwrap();
        let peak = PEAK.load(Relaxed) - before;
        let counts = batches[0].column(0).as_primitive::<Int64Type>().value(0);
        let max = cast(batches[0].column(1), &DataType::Int64).unwrap().as_primitive::<Int64Type>().value(0);
        assert_eq!((counts, max), (rows, 0), "{name}");
        println!("{name}: the heap grew by at most {:.1} MiB", peak as f64 / (1 << 20) as f64);
        // Two partitions of 8 MiB chunks, their batches, the decompressor's buffers.
        assert!(peak < 64 << 20, "{name}: the heap grew by {} MiB to scan 400 MB ({file_size} bytes on disk)", peak >> 20);
    }
}
