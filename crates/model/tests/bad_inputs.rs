//! The table of bad inputs (RELIABILITY.md), weights and checkpoints: each test builds one valid
//! file (a `torch.save` zip, a safetensors export, a fold folder), breaks one thing, and asserts
//! the exact message the user sees (the file, the key, both shapes or what was expected) and that
//! the loader returned an error instead of panicking. The messages are printed as `ROW | …` lines
//! (`--nocapture`), which is how the table in RELIABILITY.md was filled.

use std::fmt::Debug;
use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use adni_data::run_layout::FoldLayout;
use model::checkpoint::load_record;
use model::network::ClassificationModel3DRecord;
use model::train::{NetworkRecord, load_fold_model};
use model::weights::{export_safetensors, import_pytorch, import_safetensors, import_weights, state_dict_shapes};
use model::{ClassificationModel3D, Cpu, NetworkConfig};

static SERIAL: Mutex<()> = Mutex::new(());

/// Model init draws from the CPU backend's process-wide generator; keep tests apart.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn small_config() -> NetworkConfig {
    NetworkConfig { channels: [2, 3, 4, 5], pools: [2, 2, 2, 2], kernel: 3, dense: [6, 4], dropout: 0.8, classes: 2 }
}

const GRID: [usize; 3] = [46, 50, 47];

// ------------------------------------------------------------------ helpers

fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| panic!("{what}: the loader panicked"))
}

/// The message of the error `f` returns, with the temporary folder written `<tmp>`; fails the
/// test when `f` panics or succeeds.
fn refused<T, E: std::fmt::Display>(dir: &Path, f: impl FnOnce() -> Result<T, E>) -> String {
    let test = std::thread::current().name().unwrap_or("?").to_string();
    match no_panic(&test, f) {
        Ok(_) => panic!("{test}: accepted a bad input"),
        Err(e) => {
            let msg = e.to_string().replace(&dir.display().to_string(), "<tmp>");
            eprintln!("ROW | {test} | {msg}");
            msg
        }
    }
}

fn assert_refused<T, E: std::fmt::Display + Debug>(dir: &Path, want: &str, f: impl FnOnce() -> Result<T, E>) {
    assert_eq!(refused(dir, f), want);
}

type Entries = Vec<(String, Vec<usize>, Vec<f32>)>;

/// Every key of the small network's state dict, with distinct values.
fn entries() -> Entries {
    state_dict_shapes(&small_config(), GRID)
        .unwrap()
        .into_iter()
        .enumerate()
        .map(|(k, (key, shape))| {
            let n: usize = shape.iter().product();
            let mut data: Vec<f32> = (0..n).map(|i| k as f32 + i as f32 / 1000.0).collect();
            if key.ends_with("running_var") {
                data.iter_mut().for_each(|v| *v = 1.0 + *v / 100.0);
            }
            (key, shape, data)
        })
        .collect()
}

/// A PyTorch ≥ 1.6 `torch.save` zip of a float32 state dict (pickle protocol 2), as in
/// tests/weights.rs.
fn torch_save_zip(entries: &Entries) -> Vec<u8> {
    fn global(p: &mut Vec<u8>, module: &str, name: &str) {
        p.push(b'c');
        p.extend_from_slice(format!("{module}\n{name}\n").as_bytes());
    }
    fn string(p: &mut Vec<u8>, s: &str) {
        p.push(b'X');
        p.extend_from_slice(&(s.len() as u32).to_le_bytes());
        p.extend_from_slice(s.as_bytes());
    }
    fn int(p: &mut Vec<u8>, v: usize) {
        p.push(b'J');
        p.extend_from_slice(&(v as i32).to_le_bytes());
    }
    fn tuple(p: &mut Vec<u8>, items: &[usize]) {
        p.push(b'(');
        for &v in items {
            int(p, v);
        }
        p.push(b't');
    }
    let mut pickle = vec![0x80, 2];
    global(&mut pickle, "collections", "OrderedDict");
    pickle.extend_from_slice(b")R(");
    for (index, (key, shape, _)) in entries.iter().enumerate() {
        string(&mut pickle, key);
        global(&mut pickle, "torch._utils", "_rebuild_tensor_v2");
        pickle.push(b'(');
        pickle.push(b'(');
        string(&mut pickle, "storage");
        global(&mut pickle, "torch", "FloatStorage");
        string(&mut pickle, &index.to_string());
        string(&mut pickle, "cpu");
        int(&mut pickle, shape.iter().product());
        pickle.extend_from_slice(b"tQ");
        int(&mut pickle, 0);
        tuple(&mut pickle, shape);
        let strides: Vec<usize> = (0..shape.len()).map(|d| shape[d + 1..].iter().product()).collect();
        tuple(&mut pickle, &strides);
        pickle.push(0x89);
        global(&mut pickle, "collections", "OrderedDict");
        pickle.extend_from_slice(b")R");
        pickle.extend_from_slice(b"tR");
    }
    pickle.extend_from_slice(b"u.");
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("archive/data.pkl", options).unwrap();
    zip.write_all(&pickle).unwrap();
    zip.start_file("archive/byteorder", options).unwrap();
    zip.write_all(b"little").unwrap();
    for (index, (_, _, data)) in entries.iter().enumerate() {
        zip.start_file(format!("archive/data/{index}"), options).unwrap();
        for v in data {
            zip.write_all(&v.to_le_bytes()).unwrap();
        }
    }
    zip.start_file("archive/version", options).unwrap();
    zip.write_all(b"3\n").unwrap();
    zip.finish().unwrap().into_inner()
}

/// A safetensors file written by hand: `tensors` as (key, dtype, shape, raw bytes), `metadata`
/// as given.
fn safetensors(tensors: &[(String, &str, Vec<usize>, Vec<u8>)], metadata: &[(&str, &str)]) -> Vec<u8> {
    let mut header = serde_json::Map::new();
    if !metadata.is_empty() {
        let m: serde_json::Map<String, serde_json::Value> =
            metadata.iter().map(|(k, v)| (k.to_string(), serde_json::Value::from(*v))).collect();
        header.insert("__metadata__".into(), m.into());
    }
    let mut data = Vec::new();
    for (key, dtype, shape, bytes) in tensors {
        let start = data.len();
        data.extend_from_slice(bytes);
        header.insert(
            key.clone(),
            serde_json::json!({ "dtype": dtype, "shape": shape, "data_offsets": [start, data.len()] }),
        );
    }
    let json = serde_json::to_vec(&header).unwrap();
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.extend_from_slice(&data);
    out
}

/// The state dict as safetensors float32 tensors.
fn f32_tensors(entries: &Entries) -> Vec<(String, &'static str, Vec<usize>, Vec<u8>)> {
    entries
        .iter()
        .map(|(k, s, d)| (k.clone(), "F32", s.clone(), d.iter().flat_map(|v| v.to_le_bytes()).collect()))
        .collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn import(path: &Path, grid: [usize; 3]) -> Result<ClassificationModel3D<Cpu>, model::ModelError> {
    import_pytorch::<Cpu>(path, &small_config(), grid, &Default::default())
}

fn import_any(path: &Path, grid: Option<[usize; 3]>) -> Result<ClassificationModel3D<Cpu>, model::ModelError> {
    import_weights::<Cpu>(path, &small_config(), grid, &Default::default())
}

/// An exported safetensors file of the small network.
fn exported(dir: &Path) -> PathBuf {
    let model = small_config().init::<Cpu>(GRID, &Default::default()).unwrap();
    let p = dir.join("model.safetensors");
    export_safetensors(&model, &p).unwrap();
    p
}

#[test]
fn the_valid_fixtures_load() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "w.pt", &torch_save_zip(&entries()));
    assert_eq!(import(&p, GRID).unwrap().input_shape(), GRID);
    let s = write(dir.path(), "w.safetensors", &safetensors(&f32_tensors(&entries()), &[("input_shape", "46,50,47")]));
    assert_eq!(import_any(&s, None).unwrap().input_shape(), GRID);
    let e = exported(dir.path());
    assert_eq!(import_safetensors::<Cpu>(&e, &small_config(), &Default::default()).unwrap().input_shape(), GRID);
}

// ------------------------------------------------------------------ weights: keys and shapes

#[test]
fn weights_missing_key() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut e = entries();
    e.retain(|(k, _, _)| k != "Conv_3_bn.running_var");
    let p = write(dir.path(), "missing.pt", &torch_save_zip(&e));
    let want = "weights file <tmp>/missing.pt: missing key `Conv_3_bn.running_var` (expected shape [4])";
    assert_refused(dir.path(), want, || import(&p, GRID));
}

#[test]
fn weights_renamed_key() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut e = entries();
    e.iter_mut().find(|(k, _, _)| k == "dense_2.bias").unwrap().0 = "fc2.bias".into();
    let p = write(dir.path(), "renamed.pt", &torch_save_zip(&e));
    let want = "weights file <tmp>/renamed.pt: missing key `dense_2.bias` (expected shape [4]); the file has \
                unexpected keys [\"fc2.bias\"]";
    assert_refused(dir.path(), want, || import(&p, GRID));
}

#[test]
fn weights_wrong_shape() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut e = entries();
    let conv = e.iter_mut().find(|(k, _, _)| k == "Conv_2.weight").unwrap();
    conv.1 = vec![3, 2, 3, 3, 2];
    conv.2.truncate(3 * 2 * 3 * 3 * 2);
    let p = write(dir.path(), "shape.pt", &torch_save_zip(&e));
    let want = "weights file <tmp>/shape.pt: key `Conv_2.weight` has shape [3, 2, 3, 3, 2], expected [3, 2, 3, 3, 3]";
    assert_refused(dir.path(), want, || import(&p, GRID));
}

#[test]
fn weights_grid_does_not_fit() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "grid.pt", &torch_save_zip(&entries()));
    let want = "weights file <tmp>/grid.pt: key `dense_1.weight` has shape [6, 5], expected [6, 320]; grid 94×94×94 \
                gives 5 × 4×4×4 = 320 features; the file needs 5 = 5 channels × 1 voxels after the blocks: grids that \
                fit end with 1×1×1 voxels after the blocks (grid axes in 46..=61, 46..=61, 46..=61)";
    assert_refused(dir.path(), want, || import(&p, [94, 94, 94]));
}

#[test]
fn weights_unexpected_key() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut e = entries();
    e.push(("dense_4.weight".into(), vec![2, 2], vec![0.0; 4]));
    let p = write(dir.path(), "extra.pt", &torch_save_zip(&e));
    let want = "weights file <tmp>/extra.pt: unexpected keys [\"dense_4.weight\"]; expected only the PyTorch \
                state-dict keys of ClassificationModel3D";
    assert_refused(dir.path(), want, || import(&p, GRID));
}

#[test]
fn weights_integer_tensor() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut t = f32_tensors(&entries());
    let bias = t.iter_mut().find(|(k, ..)| k == "Conv_1.bias").unwrap();
    bias.1 = "I32";
    let p = write(dir.path(), "int.safetensors", &safetensors(&t, &[("input_shape", "46,50,47")]));
    let want = "weights file <tmp>/int.safetensors: key `Conv_1.bias` holds I32 values, expected floating point";
    assert_refused(dir.path(), want, || import_any(&p, None));
}

#[test]
fn weights_nan_values() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let mut e = entries();
    e.iter_mut().find(|(k, _, _)| k == "Conv_4_bn.running_var").unwrap().2[3] = f32::NAN;
    let p = write(dir.path(), "nan.pt", &torch_save_zip(&e));
    let want = "weights file <tmp>/nan.pt: key `Conv_4_bn.running_var` holds NaN at flat index 3, expected finite \
                values (the model that wrote it diverged, or the file is damaged)";
    assert_refused(dir.path(), want, || import(&p, GRID));
}

#[test]
fn weights_for_a_different_network() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let p = exported(dir.path());
    let other = NetworkConfig { pools: [2, 2, 2, 1], ..small_config() };
    let msg = refused(dir.path(), || import_safetensors::<Cpu>(&p, &other, &Default::default()));
    assert!(
        msg.starts_with(
            "weights file <tmp>/model.safetensors: the weights were saved for a different network: recorded "
        ),
        "{msg}"
    );
    assert!(msg.contains("pools: [2, 2, 2, 2]") && msg.contains("pools: [2, 2, 2, 1]"), "{msg}");
}

// ------------------------------------------------------------------ weights: the container

#[test]
fn weights_not_a_weights_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "notes.pt", b"these are my notes, not a tensor file");
    let want = "weights file <tmp>/notes.pt: neither safetensors nor a PyTorch torch.save file (zip or legacy pickle)";
    assert_refused(dir.path(), want, || import_any(&p, Some(GRID)));
}

#[test]
fn weights_empty_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "empty.safetensors", b"");
    let want = "weights file <tmp>/empty.safetensors: neither safetensors nor a PyTorch torch.save file (zip or legacy pickle)";
    assert_refused(dir.path(), want, || import_any(&p, Some(GRID)));
}

#[test]
fn weights_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("absent.safetensors");
    let want = "cannot open <tmp>/absent.safetensors: No such file or directory (os error 2)";
    assert_refused(dir.path(), want, || import_any(&p, Some(GRID)));
}

#[test]
fn weights_truncated_torch_zip() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let bytes = torch_save_zip(&entries());
    let p = write(dir.path(), "cut.pt", &bytes[..bytes.len() / 2]);
    let want = "weights file <tmp>/cut.pt: cannot read as a torch.save file: Pickle parsing error: Invalid pickle \
                opcode: 0x50. The file may be corrupted or use an unsupported pickle protocol.. This may indicate an \
                unsupported PyTorch file format or corrupted file.";
    assert_refused(dir.path(), want, || import(&p, GRID));
}

#[test]
fn safetensors_header_length_past_the_end() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let bytes = std::fs::read(exported(dir.path())).unwrap();
    let p = write(dir.path(), "cut.safetensors", &bytes[..200]);
    let msg = refused(dir.path(), || import_any(&p, None));
    assert!(
        msg.starts_with("weights file <tmp>/cut.safetensors: safetensors header length ")
            && msg.ends_with(" does not fit the file (200 bytes)"),
        "{msg}"
    );
}

#[test]
fn safetensors_header_not_json() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = safetensors(&f32_tensors(&entries()), &[("input_shape", "46,50,47")]);
    bytes[9] = b'#'; // `{"Conv_1.bias": …` becomes `{#Conv_1.bias": …`
    let p = write(dir.path(), "json.safetensors", &bytes);
    let msg = refused(dir.path(), || import_any(&p, None));
    assert!(msg.starts_with("weights file <tmp>/json.safetensors: safetensors header is not JSON: "), "{msg}");
}

#[test]
fn safetensors_data_truncated() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let bytes = safetensors(&f32_tensors(&entries()), &[("input_shape", "46,50,47")]);
    let p = write(dir.path(), "short.safetensors", &bytes[..bytes.len() - 40]);
    let want = "weights file <tmp>/short.safetensors: cannot read safetensors: SafeTensors error: incomplete metadata, \
                file not fully covered (a truncated or damaged file)";
    assert_refused(dir.path(), want, || import_any(&p, None));
}

#[test]
fn safetensors_bad_input_shape_metadata() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "meta.safetensors", &safetensors(&f32_tensors(&entries()), &[("input_shape", "46,50")]));
    let want = "weights file <tmp>/meta.safetensors: metadata `input_shape` is `46,50`, expected `D,H,W`";
    assert_refused(dir.path(), want, || import_any(&p, None));
}

#[test]
fn safetensors_without_a_grid() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "nogrid.safetensors", &safetensors(&f32_tensors(&entries()), &[]));
    let want = "weights file <tmp>/nogrid.safetensors: the file records no input grid (metadata `input_shape`); pass \
                the grid the weights were trained on; the file needs 5 = 5 channels × 1 voxels after the blocks: grids \
                that fit end with 1×1×1 voxels after the blocks (grid axes in 46..=61, 46..=61, 46..=61)";
    assert_refused(dir.path(), want, || import_any(&p, None));
}

// ------------------------------------------------------------------ checkpoints

/// A fold folder as training leaves it: `network.json` and `model.safetensors`.
fn fold_folder(dir: &Path) -> PathBuf {
    let fold = dir.join("fold1");
    std::fs::create_dir_all(&fold).unwrap();
    let model = small_config().init::<Cpu>(GRID, &Default::default()).unwrap();
    export_safetensors(&model, &FoldLayout::new(&fold).model()).unwrap();
    let net = NetworkRecord { network: small_config(), input_grid: GRID };
    std::fs::write(fold.join("network.json"), serde_json::to_vec_pretty(&net).unwrap()).unwrap();
    fold
}

#[test]
fn the_valid_fold_folder_loads() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let fold = fold_folder(dir.path());
    assert_eq!(load_fold_model::<Cpu>(&fold, &Default::default()).unwrap().input_shape(), GRID);
}

#[test]
fn checkpoint_damaged_network_json() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let fold = fold_folder(dir.path());
    std::fs::write(fold.join("network.json"), "{\"network\": {\"channels\": [2, 3, 4, 5]").unwrap();
    let want = "<tmp>/fold1/network.json: cannot read (EOF while parsing an object at line 1 column 37); it was not \
                written by this version, or is damaged";
    assert_refused(dir.path(), want, || load_fold_model::<Cpu>(&fold, &Default::default()));
}

#[test]
fn checkpoint_network_json_for_another_grid() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let fold = fold_folder(dir.path());
    let net = NetworkRecord { network: small_config(), input_grid: [97, 115, 97] };
    std::fs::write(fold.join("network.json"), serde_json::to_vec_pretty(&net).unwrap()).unwrap();
    let want = "<tmp>/fold1/model.safetensors: the weights are for grid [46, 50, 47], network.json says [97, 115, 97]";
    assert_refused(dir.path(), want, || load_fold_model::<Cpu>(&fold, &Default::default()));
}

#[test]
fn checkpoint_missing_model_file() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let fold = fold_folder(dir.path());
    std::fs::remove_file(FoldLayout::new(&fold).model()).unwrap();
    let want = "cannot read <tmp>/fold1/model.safetensors: No such file or directory (os error 2)";
    assert_refused(dir.path(), want, || load_fold_model::<Cpu>(&fold, &Default::default()));
}

#[test]
fn checkpoint_garbage_record() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "model-epoch0003.mpk", b"\x93\x01\x02 not a record");
    let want = "<tmp>/model-epoch0003.mpk: not a readable Burn record of this network \
                (Unknown(\"invalid type: integer `1`, expected struct BurnMetadata\")); delete the file's fold \
                folder to retrain";
    assert_refused(dir.path(), want, || load_record::<Cpu, ClassificationModel3DRecord<Cpu>>(&p, &Default::default()));
}
