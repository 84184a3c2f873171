//! The NIfTI reader: the input as a `.nii` file, the same bytes gzip-compressed as a `.nii.gz`
//! (through the real decompression path), the raw input as a `.nii.gz` (fuzzing the gzip layer
//! itself) and as a `.hdr`/`.img` pair; header, inspection, 3-D volume and label loading.
#![no_main]

use adni_data::volume::{Grid, inspect_nifti, read_header, read_labels, read_volume, read_volume_on_grid};
use adni_relevance_fuzz::{CappedAlloc, gzip, put, remove};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: CappedAlloc = CappedAlloc;

fn exercise(path: &std::path::Path, labels: bool) {
    let _ = read_header(path);
    let _ = inspect_nifti(path);
    if let Ok((vol, _, _)) = read_volume(path) {
        let _ = read_volume_on_grid(path, &vol.grid());
        let _ = read_volume_on_grid(path, &Grid::mni152_1mm());
    }
    if labels {
        let _ = read_labels(path);
        let _ = adni_data::atlas::read_label_volume(path);
    }
    let _ = adni_data::nifti_header::read_raw(path);
}

fuzz_target!(|data: &[u8]| {
    // 1. As a plain .nii file.
    let nii = put("in.nii", data);
    exercise(&nii, true);
    // 2. The same bytes gzip-compressed, read as .nii.gz.
    let gz = put("in.nii.gz", &gzip(data));
    exercise(&gz, false);
    // 3. The raw input read as .nii.gz (real .nii.gz seeds reach the reader this way).
    let raw_gz = put("raw.nii.gz", data);
    exercise(&raw_gz, true);
    // 4. A .hdr/.img pair: the input is both the header file and the image file.
    let hdr = put("pair.hdr", data);
    let _img = put("pair.img", data);
    exercise(&hdr, false);
    remove("pair.img");
});
