//! Weights interchange: safetensors round trip, PyTorch key names and shapes, `torch.save`
//! import from a fixture the test writes itself, and errors for bad files.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use burn::tensor::backend::Backend;
use burn::tensor::{Tensor, TensorData};
use model::network::PAPER_GRID_1MM;
use model::weights::{
    WeightsFile, export_safetensors, import_pytorch, import_safetensors, import_weights, state_dict_shapes,
};
use model::{ClassificationModel3D, Cpu, ModelError, NetworkConfig};

static SERIAL: Mutex<()> = Mutex::new(());

/// Model init draws from the CPU backend's process-wide generator; keep tests apart.
fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn small_config() -> NetworkConfig {
    NetworkConfig { channels: [2, 3, 4, 5], pools: [2, 2, 2, 2], kernel: 3, dense: [6, 4], dropout: 0.8, classes: 2 }
}

const GRID: [usize; 3] = [46, 50, 47];

fn values<B: Backend, const D: usize>(t: Tensor<B, D>) -> Vec<f32> {
    t.into_data().convert::<f32>().to_vec::<f32>().unwrap()
}

fn input(n: usize, seed: u32) -> Tensor<Cpu, 5> {
    let len = n * GRID.iter().product::<usize>();
    let v: Vec<f32> =
        (0..len).map(|i| (((i as u32).wrapping_mul(2654435761) ^ seed) % 1000) as f32 / 500.0 - 1.0).collect();
    Tensor::from_data(TensorData::new(v, [n, 1, GRID[0], GRID[1], GRID[2]]), &Default::default())
}

/// All parameters and running statistics, by PyTorch key, in PyTorch layout.
fn state_dict(model: &ClassificationModel3D<Cpu>) -> BTreeMap<String, Vec<f32>> {
    let mut out = BTreeMap::new();
    for (i, block) in model.blocks.iter().enumerate() {
        let n = i + 1;
        out.insert(format!("Conv_{n}.weight"), values(block.conv.weight.val()));
        out.insert(format!("Conv_{n}.bias"), values(block.conv.bias.as_ref().unwrap().val()));
        let (rm, rv) = block.bn.running_stats();
        out.insert(format!("Conv_{n}_bn.weight"), values(block.bn.weight.val()));
        out.insert(format!("Conv_{n}_bn.bias"), values(block.bn.bias.val()));
        out.insert(format!("Conv_{n}_bn.running_mean"), values(rm));
        out.insert(format!("Conv_{n}_bn.running_var"), values(rv));
    }
    for (j, dense) in [&model.dense_1, &model.dense_2, &model.dense_3].into_iter().enumerate() {
        let n = j + 1;
        // Burn keeps (in, out); PyTorch (out, in).
        out.insert(format!("dense_{n}.weight"), values(dense.weight.val().transpose()));
        out.insert(format!("dense_{n}.bias"), values(dense.bias.as_ref().unwrap().val()));
    }
    out
}

/// A model whose running statistics and BatchNorm affine parameters are not the defaults.
fn trained_model() -> ClassificationModel3D<Cpu> {
    let device = Default::default();
    let mut model = small_config().init::<Cpu>(GRID, &device).unwrap();
    let _ = model.forward_train(input(2, 1));
    let _ = model.forward_train(input(2, 2));
    for (i, block) in model.blocks.iter_mut().enumerate() {
        let c = block.bn.channels();
        let gamma: Vec<f32> = (0..c).map(|k| 0.5 + 0.1 * (k + i) as f32).collect();
        let beta: Vec<f32> = (0..c).map(|k| 0.05 * k as f32 - 0.1).collect();
        block.bn.weight = burn::module::Param::from_tensor(Tensor::from_data(TensorData::new(gamma, [c]), &device));
        block.bn.bias = burn::module::Param::from_tensor(Tensor::from_data(TensorData::new(beta, [c]), &device));
    }
    model
}

/// The safetensors header: key → (dtype, shape), and the metadata.
fn safetensors_header(path: &Path) -> (BTreeMap<String, (String, Vec<usize>)>, serde_json::Value) {
    let bytes = std::fs::read(path).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    let mut keys = BTreeMap::new();
    for (k, v) in header.as_object().unwrap() {
        if k == "__metadata__" {
            continue;
        }
        let shape = v["shape"].as_array().unwrap().iter().map(|d| d.as_u64().unwrap() as usize).collect();
        keys.insert(k.clone(), (v["dtype"].as_str().unwrap().to_string(), shape));
    }
    (keys, header["__metadata__"].clone())
}

/// Raw f32 values of one tensor in a safetensors file.
fn safetensors_values(path: &Path, key: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    let offsets = header[key]["data_offsets"].as_array().unwrap();
    let (start, end) =
        (8 + len + offsets[0].as_u64().unwrap() as usize, 8 + len + offsets[1].as_u64().unwrap() as usize);
    bytes[start..end].chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect()
}

#[test]
fn safetensors_round_trip_gives_identical_weights_and_outputs() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let model = trained_model();
    export_safetensors(&model, &path).unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left behind");

    let loaded: ClassificationModel3D<Cpu> = import_safetensors(&path, &small_config(), &Default::default()).unwrap();
    assert_eq!(loaded.input_shape(), GRID, "grid read from the metadata");
    assert_eq!(state_dict(&loaded), state_dict(&model));
    let x = input(2, 7);
    assert_eq!(values(loaded.forward_eval(x.clone())), values(model.forward_eval(x)));
    // Auto-detection reads the same file.
    let again: ClassificationModel3D<Cpu> = import_weights(&path, &small_config(), None, &Default::default()).unwrap();
    assert_eq!(state_dict(&again), state_dict(&model));
}

#[test]
fn the_same_model_is_written_as_the_same_bytes() {
    // The writer lays out its metadata in hash-map order (another in every map); the header is
    // rewritten sorted, so a fold's model file, and the digests of it that record which model a
    // stage's outputs came from, do not change between identical runs.
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let model = trained_model();
    let first = dir.path().join("0.safetensors");
    export_safetensors(&model, &first).unwrap();
    let bytes = std::fs::read(&first).unwrap();
    for i in 1..8 {
        let path = dir.path().join(format!("{i}.safetensors"));
        export_safetensors(&model, &path).unwrap();
        assert!(std::fs::read(&path).unwrap() == bytes, "export {i} differs from the first");
    }
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    assert_eq!(len % 8, 0, "header padded to 8 bytes");
    let loaded: ClassificationModel3D<Cpu> = import_safetensors(&first, &small_config(), &Default::default()).unwrap();
    assert_eq!(state_dict(&loaded), state_dict(&model));
}

/// Copies safetensors file `from` to `to` with every tensor key renamed by `rename` (the data
/// section is unchanged; the metadata is dropped, as PyTorch's `save_file` writes none).
fn renamed_safetensors(from: &Path, to: &Path, rename: impl Fn(&str) -> String) {
    let bytes = std::fs::read(from).unwrap();
    let len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&bytes[8..8 + len]).unwrap();
    let renamed: serde_json::Map<String, serde_json::Value> =
        header.into_iter().filter(|(k, _)| k != "__metadata__").map(|(k, v)| (rename(&k), v)).collect();
    let json = serde_json::to_vec(&renamed).unwrap();
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&json);
    out.extend_from_slice(&bytes[8 + len..]);
    std::fs::write(to, out).unwrap();
}

#[test]
fn a_safetensors_state_dict_with_a_wrapper_prefix_loads_and_foreign_keys_are_named() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    let model = trained_model();
    export_safetensors(&model, &path).unwrap();
    // DataParallel's `module.` prefix, without the metadata (a PyTorch-written file)
    let wrapped = dir.path().join("wrapped.safetensors");
    renamed_safetensors(&path, &wrapped, |k| format!("module.{k}"));
    let file = WeightsFile::open(&wrapped).unwrap();
    assert!(file.shapes().contains_key("Conv_1.weight"), "{:?}", file.shapes().keys());
    let loaded: ClassificationModel3D<Cpu> = file.into_model(&small_config(), Some(GRID), &Default::default()).unwrap();
    assert_eq!(state_dict(&loaded), state_dict(&model));
    // Another network's names: the error says what the file holds instead.
    let foreign = dir.path().join("foreign.safetensors");
    renamed_safetensors(&path, &foreign, |k| k.replace("Conv_", "conv").replace("dense_", "fc"));
    let msg = WeightsFile::open(&foreign).unwrap().inferred_config().unwrap_err().to_string();
    assert!(
        msg.contains("foreign.safetensors")
            && msg.contains("missing key `Conv_1.weight` (a 5-D tensor)")
            && msg.contains("`conv1.bias`")
            && msg.contains("in all)"),
        "{msg}"
    );
}

#[test]
fn exported_keys_and_shapes_are_the_pytorch_state_dict() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("paper.safetensors");
    let model = NetworkConfig::default().init::<Cpu>(PAPER_GRID_1MM, &Default::default()).unwrap();
    export_safetensors(&model, &path).unwrap();
    let (keys, metadata) = safetensors_header(&path);

    // The original network's state-dict keys and shapes, written out independently of the library.
    let mut want: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, (c_out, c_in)) in [(8, 1), (16, 8), (32, 16), (64, 32)].into_iter().enumerate() {
        let n = i + 1;
        want.insert(format!("Conv_{n}.weight"), vec![c_out, c_in, 3, 3, 3]);
        want.insert(format!("Conv_{n}.bias"), vec![c_out]);
        for p in ["weight", "bias", "running_mean", "running_var"] {
            want.insert(format!("Conv_{n}_bn.{p}"), vec![c_out]);
        }
    }
    want.insert("dense_1.weight".into(), vec![128, 5120]);
    want.insert("dense_1.bias".into(), vec![128]);
    want.insert("dense_2.weight".into(), vec![64, 128]);
    want.insert("dense_2.bias".into(), vec![64]);
    want.insert("dense_3.weight".into(), vec![2, 64]);
    want.insert("dense_3.bias".into(), vec![2]);

    let got: BTreeMap<String, Vec<usize>> = keys.iter().map(|(k, (_, shape))| (k.clone(), shape.clone())).collect();
    assert_eq!(got, want);
    assert!(keys.values().all(|(dtype, _)| dtype == "F32"));
    assert_eq!(metadata["input_shape"], "193,229,193");
    assert_eq!(WeightsFile::open(&path).unwrap().inferred_config().unwrap(), NetworkConfig::default());
    let library: BTreeMap<String, Vec<usize>> =
        state_dict_shapes(&NetworkConfig::default(), PAPER_GRID_1MM).unwrap().into_iter().collect();
    assert_eq!(library, want);

    // The dense weights are stored transposed to PyTorch's (out, in): element [o][i] of the file
    // is Burn's weight[i][o].
    let file = safetensors_values(&path, "dense_2.weight");
    let burn_w = values(model.dense_2.weight.val()); // (in = 128, out = 64), row-major
    for (o, i) in [(0, 0), (0, 1), (1, 0), (63, 127), (5, 77)] {
        assert_eq!(file[o * 128 + i], burn_w[i * 64 + o], "[{o}][{i}]");
    }
    // Conv weights keep PyTorch's layout (out, in, kd, kh, kw): identical bytes.
    assert_eq!(safetensors_values(&path, "Conv_2.weight"), values(model.blocks[1].conv.weight.val()));
}

// ---------------------------------------------------------------- torch.save fixture

/// Pickle protocol 2 writer for a PyTorch ≥ 1.6 state dict: an `OrderedDict` of
/// `torch._utils._rebuild_tensor_v2(persistent storage id, offset, size, stride, False,
/// OrderedDict())`, each float32 storage in `archive/data/<n>`.
fn torch_save_zip(entries: &[(String, Vec<usize>, Vec<f32>)]) -> Vec<u8> {
    torch_save_zip_strided(entries, |shape| (0..shape.len()).map(|d| shape[d + 1..].iter().product()).collect())
}

/// [`torch_save_zip`] with each tensor's stride given by `stride_of(shape)` (the data are
/// written as given either way).
fn torch_save_zip_strided(
    entries: &[(String, Vec<usize>, Vec<f32>)],
    stride_of: impl Fn(&[usize]) -> Vec<usize>,
) -> Vec<u8> {
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
        if items.is_empty() {
            p.push(b')');
            return;
        }
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
        // Persistent id ('storage', torch.FloatStorage, '<index>', 'cpu', numel).
        pickle.push(b'(');
        string(&mut pickle, "storage");
        global(&mut pickle, "torch", "FloatStorage");
        string(&mut pickle, &index.to_string());
        string(&mut pickle, "cpu");
        int(&mut pickle, shape.iter().product());
        pickle.extend_from_slice(b"tQ");
        int(&mut pickle, 0);
        tuple(&mut pickle, shape);
        tuple(&mut pickle, &stride_of(shape));
        pickle.push(0x89); // NEWFALSE: requires_grad
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

/// Distinct, recognisable values for every key of the small network's state dict.
fn fixture_entries(prefix: &str) -> Vec<(String, Vec<usize>, Vec<f32>)> {
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
            (format!("{prefix}{key}"), shape, data)
        })
        .collect()
}

#[test]
fn torch_save_state_dict_imports_the_values_written() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let entries = fixture_entries("");
    let path = dir.path().join("weights.pth");
    std::fs::write(&path, torch_save_zip(&entries)).unwrap();

    let model: ClassificationModel3D<Cpu> = import_pytorch(&path, &small_config(), GRID, &Default::default()).unwrap();
    let got = state_dict(&model);
    assert_eq!(got.len(), entries.len());
    for (key, _, data) in &entries {
        assert_eq!(&got[key], data, "{key}");
    }
    // dense_1 has (out = 6, in = 5 channels × 1×1×1) in the file; Burn holds (in, out).
    assert_eq!(model.dense_1.weight.dims(), [5, 6]);

    // Auto-detection, and a DataParallel-style `module.` prefix.
    let detected: ClassificationModel3D<Cpu> =
        import_weights(&path, &small_config(), Some(GRID), &Default::default()).unwrap();
    assert_eq!(state_dict(&detected), got);
    let prefixed = dir.path().join("prefixed.pt");
    std::fs::write(&prefixed, torch_save_zip(&fixture_entries("module."))).unwrap();
    let model: ClassificationModel3D<Cpu> =
        import_pytorch(&prefixed, &small_config(), GRID, &Default::default()).unwrap();
    assert_eq!(state_dict(&model), got);

    // What the file holds, for inspection; the architecture read from the shapes (pools are
    // invisible in them and default to the paper's).
    let file = WeightsFile::open(&path).unwrap();
    assert_eq!(file.shapes()["Conv_2.weight"], vec![3, 2, 3, 3, 3]);
    let inferred = file.inferred_config().unwrap();
    assert_eq!(inferred, NetworkConfig { pools: [2, 3, 2, 3], ..small_config() });
    // No grid is recorded in a torch.save file: the grid is found among candidates by dense_1's
    // input size (a 1 mm scan for a 2 mm model: the scan's grid, then its downsampled ones).
    let twice = GRID.map(|n| 2 * n);
    assert_eq!(file.fitting_grid(&small_config(), &[twice, GRID]), Some(GRID));
    assert_eq!(file.fitting_grid(&small_config(), &[twice]), None);
}

#[test]
fn a_tensor_saved_in_another_memory_layout_is_refused_not_read_scrambled() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    // `model.to(memory_format=torch.channels_last_3d).state_dict()`: 5-D weights get the stride
    // of [C_out, D, H, W, C_in] storage; burn-store would read them in storage order.
    let channels_last = |shape: &[usize]| -> Vec<usize> {
        match *shape {
            [_, c, d, h, w] => vec![c * d * h * w, 1, h * w * c, w * c, c],
            _ => (0..shape.len()).map(|k| shape[k + 1..].iter().product()).collect(),
        }
    };
    let path = dir.path().join("channels_last.pth");
    std::fs::write(&path, torch_save_zip_strided(&fixture_entries(""), channels_last)).unwrap();
    let msg = import_pytorch::<Cpu>(&path, &small_config(), GRID, &Default::default()).err().unwrap().to_string();
    assert!(
        msg.contains("channels_last.pth")
            && msg.contains("not stored C-contiguous (the first: `Conv_2.weight`")
            && msg.contains("`Conv_2.weight`")
            && msg.contains(".contiguous()"),
        "{msg}"
    );
    // Size-1 dimensions may have any stride (PyTorch calls such tensors contiguous): Conv_1's
    // weight has one input channel, so channels_last leaves it C-contiguous in effect.
    let one_input = fixture_entries("").into_iter().filter(|(k, _, _)| k == "Conv_1.weight").collect::<Vec<_>>();
    assert_eq!(one_input[0].1[1], 1);
    let path = dir.path().join("conv1.pth");
    std::fs::write(&path, torch_save_zip_strided(&one_input, channels_last)).unwrap();
    assert!(WeightsFile::open(&path).is_ok());
}

#[test]
fn bad_weights_files_are_errors_naming_key_and_shapes() {
    let _guard = serial();
    let dir = tempfile::tempdir().unwrap();
    let config = small_config();
    let device = Default::default();
    let import = |path: &Path, grid| import_pytorch::<Cpu>(path, &config, grid, &device);

    // Missing key.
    let mut entries = fixture_entries("");
    entries.retain(|(k, _, _)| k != "Conv_3_bn.running_var");
    let path = dir.path().join("missing.pt");
    std::fs::write(&path, torch_save_zip(&entries)).unwrap();
    let err = import(&path, GRID).err().unwrap();
    let msg = err.to_string();
    assert!(matches!(err, ModelError::MissingKey { .. }), "{msg}");
    assert!(msg.contains("Conv_3_bn.running_var") && msg.contains("missing.pt"), "{msg}");

    // Wrong conv shape.
    let mut entries = fixture_entries("");
    let conv = entries.iter_mut().find(|(k, _, _)| k == "Conv_2.weight").unwrap();
    conv.1 = vec![3, 2, 3, 3, 2];
    conv.2.truncate(3 * 2 * 3 * 3 * 2);
    let path = dir.path().join("shape.pt");
    std::fs::write(&path, torch_save_zip(&entries)).unwrap();
    let msg = import(&path, GRID).err().unwrap().to_string();
    assert!(
        msg.contains("Conv_2.weight") && msg.contains("[3, 2, 3, 3, 2]") && msg.contains("[3, 2, 3, 3, 3]"),
        "{msg}"
    );

    // Weights for another grid: the error says what the grid gives and which grids fit.
    let path = dir.path().join("grid.pt");
    std::fs::write(&path, torch_save_zip(&fixture_entries(""))).unwrap();
    let err = import(&path, [94, 94, 94]).err().unwrap();
    let msg = err.to_string();
    assert!(matches!(err, ModelError::ShapeMismatch { .. }), "{msg}");
    assert!(msg.contains("dense_1.weight") && msg.contains("[6, 5]") && msg.contains("[6, 320]"), "{msg}");
    assert!(msg.contains("grid 94×94×94 gives"), "{msg}");
    assert!(msg.contains("46..="), "{msg}");

    // Extra keys.
    let mut entries = fixture_entries("");
    entries.push(("dense_4.weight".into(), vec![2, 2], vec![0.0; 4]));
    let path = dir.path().join("extra.pt");
    std::fs::write(&path, torch_save_zip(&entries)).unwrap();
    let msg = import(&path, GRID).err().unwrap().to_string();
    assert!(msg.contains("dense_4.weight"), "{msg}");

    // Not a weights file at all, and no file.
    let path = dir.path().join("garbage.pt");
    std::fs::write(&path, b"this is not a tensor file").unwrap();
    let err = import_weights::<Cpu>(&path, &config, Some(GRID), &device).err().unwrap();
    assert!(matches!(err, ModelError::WeightsFormat { .. }), "{err}");
    let err = import_weights::<Cpu>(&dir.path().join("nope.pt"), &config, Some(GRID), &device).err().unwrap();
    assert!(err.to_string().contains("nope.pt"), "{err}");

    // A safetensors file for another architecture (pools are recorded in the metadata).
    let model = config.init::<Cpu>(GRID, &device).unwrap();
    let path = dir.path().join("other.safetensors");
    export_safetensors(&model, &path).unwrap();
    let other = NetworkConfig { pools: [2, 2, 2, 1], ..config.clone() };
    let msg = import_safetensors::<Cpu>(&path, &other, &device).err().unwrap().to_string();
    assert!(msg.contains("different network"), "{msg}");
}

/// The cross-check with real PyTorch, when a fixture exists:
/// `python3 scripts/make_torch_fixture.py make DIR` then
/// `MODEL_TORCH_FIXTURE_DIR=DIR cargo test --release -p model --test weights -- --ignored`.
#[test]
#[ignore = "needs MODEL_TORCH_FIXTURE_DIR made by scripts/make_torch_fixture.py (PyTorch)"]
fn pytorch_written_state_dict_gives_pytorch_probabilities() {
    let _guard = serial();
    let dir = std::path::PathBuf::from(
        std::env::var("MODEL_TORCH_FIXTURE_DIR")
            .expect("set MODEL_TORCH_FIXTURE_DIR to a folder made by make_torch_fixture.py"),
    );
    let reference: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).unwrap()).unwrap();
    let config: NetworkConfig = serde_json::from_value(reference["config"].clone()).unwrap();
    let grid: Vec<usize> = serde_json::from_value(reference["grid"].clone()).unwrap();
    let grid = [grid[0], grid[1], grid[2]];
    let want: Vec<Vec<f32>> = serde_json::from_value(reference["probabilities"].clone()).unwrap();
    let model: ClassificationModel3D<Cpu> =
        import_pytorch(&dir.join("weights.pth"), &config, grid, &Default::default()).unwrap();
    let n = 2 * grid.iter().product::<usize>();
    let x: Vec<f32> = (0..n)
        .map(|i| {
            let i = i as f64;
            ((0.37 * i).sin() + 0.5 * (0.011 * i).cos() + 0.1 * (i % 7.0)) as f32
        })
        .collect();
    let x = Tensor::<Cpu, 5>::from_data(TensorData::new(x, [2, 1, grid[0], grid[1], grid[2]]), &Default::default());
    let probs = values(burn::tensor::activation::softmax(model.forward_eval(x), 1));
    for (got, want) in probs.iter().zip(want.concat()) {
        assert!((got - want).abs() < 1e-4, "{probs:?} vs {want}");
    }
}
