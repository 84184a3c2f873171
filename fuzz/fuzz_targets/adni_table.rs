//! The ADNI metadata table reader (CSV through polars, validated row by row).
#![no_main]

use adni_relevance_fuzz::{CappedAlloc, put};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: CappedAlloc = CappedAlloc;

fuzz_target!(|data: &[u8]| {
    let path = put("ADNI_table.csv", data);
    if let Ok(table) = adni_data::table::read_adni_table(&path) {
        let _ = table.to_dataframe();
    }
});
