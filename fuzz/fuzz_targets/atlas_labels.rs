//! The atlas label tables: CerebrA CSV, AAL txt and the generic `label,name` CSV.
#![no_main]

use adni_data::atlas::{read_aal_table, read_cerebra_table, read_label_table};
use adni_relevance_fuzz::{CappedAlloc, put};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: CappedAlloc = CappedAlloc;

fuzz_target!(|data: &[u8]| {
    let csv = put("labels.csv", data);
    let _ = read_cerebra_table(&csv);
    let _ = read_label_table(&csv);
    let txt = put("labels.txt", data);
    let _ = read_aal_table(&txt);
});
