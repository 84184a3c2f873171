//! Weights interchange with PyTorch, under the state-dict key names of the paper's module.
//!
//! | PyTorch key | shape | here |
//! |---|---|---|
//! | `Conv_{i}.weight`, `Conv_{i}.bias` | (out, in, k, k, k), (out) | `blocks[i-1].conv` |
//! | `Conv_{i}_bn.{weight,bias,running_mean,running_var}` | (out) | `blocks[i-1].bn` |
//! | `dense_{j}.weight`, `dense_{j}.bias` | (out, in), (out) | `dense_j` (Burn stores (in, out): transposed on the way in and out) |
//!
//! `num_batches_tracked` is neither written nor required (it is ignored when present, as the
//! authors' released file has none).
//!
//! - [`export_safetensors`] writes a safetensors file (through burn-store's `SafetensorsStore`
//!   with the `BurnToPyTorchAdapter`, which transposes the dense weights, and key remapping). The
//!   header metadata records the input grid and the architecture so that
//!   [`import_safetensors`] needs nothing else; PyTorch reads the file with
//!   `safetensors.torch.load_file` + `load_state_dict`.
//! - [`import_pytorch`] reads a `torch.save` state dict (zip format of PyTorch ≥ 1.6 and the
//!   legacy format of older versions, through burn-store's `PytorchReader`), also when it is
//!   nested (`{"state_dict": …}`) or prefixed (`module.` from `DataParallel`).
//! - [`import_weights`] detects the format from the file's first bytes.
//!
//! Every import checks the key set and every shape against the architecture and the input grid
//! (the first dense layer's input size is the flatten size, which depends on the grid) and
//! reports the first problem as a [`ModelError`] naming the file, the key and both shapes.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use burn::module::{Param, RunningState};
use burn::tensor::backend::Backend;
use burn::tensor::{DType, Tensor, TensorData};
use burn_store::pytorch::PytorchReader;
use burn_store::{BurnToPyTorchAdapter, KeyRemapper, ModuleSnapshot, ModuleStore, SafetensorsStore, TensorSnapshot};

mod torch_save;

use crate::network::{ClassificationModel3D, NetworkConfig, PAPER_GRID_1MM};
use crate::{ModelError, format_grid};

/// Safetensors metadata key holding the input grid, e.g. `"97,115,97"`.
pub const META_INPUT_SHAPE: &str = "input_shape";
/// Safetensors metadata key holding the [`NetworkConfig`] as JSON.
pub const META_NETWORK_CONFIG: &str = "network_config";

/// The PyTorch state dict of `config` at `input`: keys in PyTorch's order with their shapes.
pub fn state_dict_shapes(config: &NetworkConfig, input: [usize; 3]) -> Result<Vec<(String, Vec<usize>)>, ModelError> {
    let flatten = config.flatten_size(input)?;
    let k = config.kernel;
    let mut keys = Vec::new();
    let mut in_channels = 1;
    for (i, &c) in config.channels.iter().enumerate() {
        let n = i + 1;
        keys.push((format!("Conv_{n}.weight"), vec![c, in_channels, k, k, k]));
        keys.push((format!("Conv_{n}.bias"), vec![c]));
        for p in ["weight", "bias", "running_mean", "running_var"] {
            keys.push((format!("Conv_{n}_bn.{p}"), vec![c]));
        }
        in_channels = c;
    }
    let dims = [flatten, config.dense[0], config.dense[1], config.classes];
    for j in 0..3 {
        keys.push((format!("dense_{}.weight", j + 1), vec![dims[j + 1], dims[j]]));
        keys.push((format!("dense_{}.bias", j + 1), vec![dims[j + 1]]));
    }
    Ok(keys)
}

/// Writes the model's weights and BatchNorm running statistics as safetensors with the PyTorch
/// key names, plus the input grid and the architecture as metadata. The file appears under its
/// name only when complete (written to a temporary name in the same folder, then renamed).
pub fn export_safetensors<B: Backend>(model: &ClassificationModel3D<B>, path: &Path) -> Result<(), ModelError> {
    let io = |action, source| ModelError::Io { action, path: path.to_path_buf(), source };
    let config_json = serde_json::to_string(model.config())
        .map_err(|e| io("cannot serialise the config for", std::io::Error::other(e)))?;
    let grid = model.input_shape();
    let tmp = temporary_path(path);
    let mut store = SafetensorsStore::from_file(&tmp)
        .overwrite(true)
        .with_to_adapter(BurnToPyTorchAdapter)
        .remap(burn_to_pytorch_remapper(model.blocks.len()))
        .metadata(META_INPUT_SHAPE, format!("{},{},{}", grid[0], grid[1], grid[2]))
        .metadata(META_NETWORK_CONFIG, config_json);
    if let Err(e) = model.save_into(&mut store) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("cannot write", std::io::Error::other(e.to_string())));
    }
    if let Err(e) = canonical_safetensors_header(&tmp) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io("cannot write", e));
    }
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io("cannot move the finished file to", e)
    })
}

/// Rewrites the JSON header of the safetensors file at `path` with its keys sorted at every
/// level (padded with spaces to a multiple of 8 bytes, as the format allows). The writer lays out
/// the metadata in hash-map order, which differs from run to run, so the same weights would give
/// other bytes and another file digest; sorted, the same model is the same file.
fn canonical_safetensors_header(path: &Path) -> std::io::Result<()> {
    let bytes = std::fs::read(path)?;
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("safetensors {what}"));
    let len: [u8; 8] = bytes.get(..8).and_then(|b| b.try_into().ok()).ok_or_else(|| bad("file too short"))?;
    let len = usize::try_from(u64::from_le_bytes(len)).map_err(|_| bad("header length too large"))?;
    let end = 8usize.checked_add(len).filter(|&e| e <= bytes.len()).ok_or_else(|| bad("header past the end"))?;
    let mut header: serde_json::Value = serde_json::from_slice(&bytes[8..end]).map_err(|_| bad("header not JSON"))?;
    header.sort_all_objects();
    let mut text = serde_json::to_string(&header).map_err(std::io::Error::other)?;
    while text.len() % 8 != 0 {
        text.push(' ');
    }
    let mut out = Vec::with_capacity(8 + text.len() + bytes.len() - end);
    out.extend_from_slice(&(text.len() as u64).to_le_bytes());
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(&bytes[end..]);
    std::fs::write(path, out)
}

/// Reads a safetensors file written by [`export_safetensors`] (or by PyTorch with the same keys).
/// The input grid comes from the file's metadata; a file without it needs [`import_weights`]
/// with an explicit grid. `config` must describe the same architecture (checked).
pub fn import_safetensors<B: Backend>(
    path: &Path,
    config: &NetworkConfig,
    device: &B::Device,
) -> Result<ClassificationModel3D<B>, ModelError> {
    let file = WeightsFile::open_safetensors(path)?;
    file.into_model(config, None, device)
}

/// The deterministic batch the PyTorch cross-checks in `scripts/` feed to both frameworks
/// (`make_torch_fixture.py`, `lrp_zennit.py`): `n` scans on `grid`, flat element `i` of the
/// `[n, 1, D, H, W]` tensor equal to `sin(0.37 i) + 0.5 cos(0.011 i) + 0.1 (i mod 7)`, computed in
/// `f64` and rounded to `f32` (the scripts compute it in float64 and round likewise).
pub fn cross_check_input<B: Backend>(n: usize, grid: [usize; 3], device: &B::Device) -> Tensor<B, 5> {
    let len = n * grid.iter().product::<usize>();
    let values: Vec<f32> = (0..len)
        .map(|i| {
            let i = i as f64;
            ((0.37 * i).sin() + 0.5 * (0.011 * i).cos() + 0.1 * (i % 7.0)) as f32
        })
        .collect();
    Tensor::from_data(TensorData::new(values, [n, 1, grid[0], grid[1], grid[2]]), device)
}

/// Reads a PyTorch `torch.save` state dict (e.g. the authors' released weights) for a network
/// `config` on the grid `input` (the paper's weights: [`NetworkConfig::default`] and
/// [`PAPER_GRID_1MM`]).
pub fn import_pytorch<B: Backend>(
    path: &Path,
    config: &NetworkConfig,
    input: [usize; 3],
    device: &B::Device,
) -> Result<ClassificationModel3D<B>, ModelError> {
    let file = WeightsFile::open_pytorch(path)?;
    file.into_model(config, Some(input), device)
}

/// Reads safetensors or a PyTorch state dict, whichever the file is. `input` overrides the grid
/// recorded in a safetensors file; it is required when the file records none.
pub fn import_weights<B: Backend>(
    path: &Path,
    config: &NetworkConfig,
    input: Option<[usize; 3]>,
    device: &B::Device,
) -> Result<ClassificationModel3D<B>, ModelError> {
    WeightsFile::open(path)?.into_model(config, input, device)
}

/// Container format of a weights file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsFormat {
    /// safetensors.
    Safetensors,
    /// A PyTorch `torch.save` file (zip or legacy).
    Pytorch,
}

/// The tensors of a weights file, keyed by PyTorch state-dict name, read lazily.
pub struct WeightsFile {
    path: PathBuf,
    format: WeightsFormat,
    tensors: BTreeMap<String, TensorSnapshot>,
    metadata: BTreeMap<String, String>,
}

impl WeightsFile {
    /// Opens a weights file, detecting the format from its first bytes.
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        let mut head = [0u8; 9];
        let mut file = std::fs::File::open(path).map_err(|source| ModelError::Io {
            action: "cannot open",
            path: path.to_path_buf(),
            source,
        })?;
        let n = read_up_to(&mut file, &mut head).map_err(|source| ModelError::Io {
            action: "cannot read",
            path: path.to_path_buf(),
            source,
        })?;
        let head = &head[..n];
        // Zip (PyTorch ≥ 1.6), a raw pickle (legacy torch.save starts with protocol 2) or tar.
        if head.starts_with(b"PK\x03\x04") || head.first() == Some(&0x80) || is_tar(path) {
            Self::open_pytorch(path)
        } else if n == 9 && head[8] == b'{' {
            Self::open_safetensors(path)
        } else {
            Err(format_error(path, "neither safetensors nor a PyTorch torch.save file (zip or legacy pickle)"))
        }
    }

    /// Opens a safetensors file.
    pub fn open_safetensors(path: &Path) -> Result<Self, ModelError> {
        let metadata = read_safetensors_metadata(path)?;
        let mut store = SafetensorsStore::from_file(path);
        let tensors = store
            .get_all_snapshots()
            .map_err(|e| format_error(path, &format!("cannot read safetensors: {e} (a truncated or damaged file)")))?
            .clone();
        // A PyTorch state dict saved with safetensors may carry the same prefixes as a torch.save one.
        let tensors = strip_state_dict_prefix(tensors);
        Ok(Self { path: path.to_path_buf(), format: WeightsFormat::Safetensors, tensors, metadata })
    }

    /// Opens a PyTorch `torch.save` state dict.
    pub fn open_pytorch(path: &Path) -> Result<Self, ModelError> {
        if !path.exists() {
            return Err(ModelError::Io {
                action: "cannot open",
                path: path.to_path_buf(),
                source: std::io::Error::from(std::io::ErrorKind::NotFound),
            });
        }
        torch_save::check_torch_save(path)?;
        let reader = PytorchReader::new(path)
            .map_err(|e| format_error(path, &format!("cannot read as a torch.save file: {e}")))?;
        let tensors = strip_state_dict_prefix(reader.into_tensors().into_iter().collect());
        Ok(Self { path: path.to_path_buf(), format: WeightsFormat::Pytorch, tensors, metadata: BTreeMap::new() })
    }

    /// The container format.
    pub fn format(&self) -> WeightsFormat {
        self.format
    }

    /// Keys and shapes of all tensors in the file (after removing a common `state_dict.` or
    /// `module.` prefix).
    pub fn shapes(&self) -> BTreeMap<String, Vec<usize>> {
        self.tensors.iter().map(|(k, t)| (k.clone(), t.shape.to_vec())).collect()
    }

    /// The safetensors header metadata (empty for PyTorch files).
    pub fn metadata(&self) -> &BTreeMap<String, String> {
        &self.metadata
    }

    /// The input grid recorded in the metadata, if any.
    pub fn recorded_grid(&self) -> Result<Option<[usize; 3]>, ModelError> {
        let Some(text) = self.metadata.get(META_INPUT_SHAPE) else {
            return Ok(None);
        };
        let parts: Vec<Option<usize>> = text.split(',').map(|p| p.trim().parse().ok()).collect();
        match parts.as_slice() {
            [Some(d), Some(h), Some(w)] => Ok(Some([*d, *h, *w])),
            _ => Err(format_error(&self.path, &format!("metadata `{META_INPUT_SHAPE}` is `{text}`, expected `D,H,W`"))),
        }
    }

    /// The architecture these weights belong to: the recorded config of a file written by
    /// [`export_safetensors`]; otherwise channels, kernel, dense sizes and classes read from the
    /// tensor shapes, with the paper's pools and dropout (pools leave no trace in the shapes).
    pub fn inferred_config(&self) -> Result<NetworkConfig, ModelError> {
        if let Some(json) = self.metadata.get(META_NETWORK_CONFIG) {
            return serde_json::from_str(json).map_err(|e| {
                format_error(&self.path, &format!("metadata `{META_NETWORK_CONFIG}` is not a network config: {e}"))
            });
        }
        let shape = |key: &str, rank: usize| -> Result<Vec<usize>, ModelError> {
            let t = self.tensors.get(key).ok_or_else(|| {
                let keys: Vec<&str> = self.tensors.keys().map(String::as_str).collect();
                let shown = keys.iter().take(6).map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ");
                let more = if keys.len() > 6 { format!(", … ({} in all)", keys.len()) } else { String::new() };
                format_error(
                    &self.path,
                    &format!(
                        "missing key `{key}` (a {rank}-D tensor): not a state dict of the paper's network \
                         (Conv_1.weight … dense_3.bias); the file holds {}{more}",
                        if keys.is_empty() { "no tensors".to_string() } else { shown }
                    ),
                )
            })?;
            if t.shape.len() != rank {
                return Err(format_error(
                    &self.path,
                    &format!("key `{key}` has shape {:?}, expected {rank} dimensions", t.shape.to_vec()),
                ));
            }
            Ok(t.shape.to_vec())
        };
        let mut config = NetworkConfig::default();
        for i in 0..4 {
            config.channels[i] = shape(&format!("Conv_{}.weight", i + 1), 5)?[0];
        }
        config.kernel = shape("Conv_1.weight", 5)?[2];
        config.dense = [shape("dense_1.weight", 2)?[0], shape("dense_2.weight", 2)?[0]];
        config.classes = shape("dense_3.weight", 2)?[0];
        Ok(config)
    }

    /// Builds the network `config` on `input` (or the recorded grid) from these tensors,
    /// checking keys and shapes.
    pub fn into_model<B: Backend>(
        self,
        config: &NetworkConfig,
        input: Option<[usize; 3]>,
        device: &B::Device,
    ) -> Result<ClassificationModel3D<B>, ModelError> {
        config.validate()?;
        self.check_recorded_config(config)?;
        let grid = match (input, self.recorded_grid()?) {
            (Some(grid), _) | (None, Some(grid)) => grid,
            (None, None) => {
                let hint = self.dense_1_in_features().map(|f| fitting_grids_hint(config, f)).unwrap_or_default();
                return Err(format_error(
                    &self.path,
                    &format!(
                        "the file records no input grid (metadata `{META_INPUT_SHAPE}`); pass \
                         the grid the weights were trained on{hint}"
                    ),
                ));
            }
        };
        let expected = state_dict_shapes(config, grid)?;
        self.check_keys(&expected, config, grid)?;

        let mut model = config.init::<B>(grid, device)?;
        let take = |key: &str| self.load_f32(key);
        for (i, block) in model.blocks.iter_mut().enumerate() {
            let n = i + 1;
            let conv_w = take(&format!("Conv_{n}.weight"))?;
            block.conv.weight = Param::from_tensor(Tensor::from_data(conv_w, device));
            let conv_b = take(&format!("Conv_{n}.bias"))?;
            block.conv.bias = Some(Param::from_tensor(Tensor::from_data(conv_b, device)));
            let bn = &mut block.bn;
            bn.weight = Param::from_tensor(Tensor::from_data(take(&format!("Conv_{n}_bn.weight"))?, device));
            bn.bias = Param::from_tensor(Tensor::from_data(take(&format!("Conv_{n}_bn.bias"))?, device));
            bn.running_mean = RunningState::new(Tensor::from_data(take(&format!("Conv_{n}_bn.running_mean"))?, device));
            bn.running_var = RunningState::new(Tensor::from_data(take(&format!("Conv_{n}_bn.running_var"))?, device));
        }
        for (j, dense) in [&mut model.dense_1, &mut model.dense_2, &mut model.dense_3].into_iter().enumerate() {
            let n = j + 1;
            let weight = transpose_2d(take(&format!("dense_{n}.weight"))?);
            dense.weight = Param::from_tensor(Tensor::from_data(weight, device));
            let bias = take(&format!("dense_{n}.bias"))?;
            dense.bias = Some(Param::from_tensor(Tensor::from_data(bias, device)));
        }
        Ok(model)
    }

    /// The first of `candidates` on which `config` flattens to `dense_1`'s input size: the
    /// grid the weights can run on, for a file that records none (PyTorch's). `None` when no
    /// candidate fits (or the file has no 2-D `dense_1.weight`).
    pub fn fitting_grid(&self, config: &NetworkConfig, candidates: &[[usize; 3]]) -> Option<[usize; 3]> {
        let features = self.dense_1_in_features()?;
        candidates.iter().copied().find(|&g| config.flatten_size(g).ok() == Some(features))
    }

    fn dense_1_in_features(&self) -> Option<usize> {
        let shape = &self.tensors.get("dense_1.weight")?.shape;
        (shape.len() == 2).then(|| shape[1])
    }

    /// A file written by [`export_safetensors`] records its architecture; the pooling sizes are
    /// not visible in the tensor shapes, so compare them here.
    fn check_recorded_config(&self, config: &NetworkConfig) -> Result<(), ModelError> {
        let Some(json) = self.metadata.get(META_NETWORK_CONFIG) else {
            return Ok(());
        };
        let recorded: NetworkConfig = serde_json::from_str(json).map_err(|e| {
            format_error(&self.path, &format!("metadata `{META_NETWORK_CONFIG}` is not a network config: {e}"))
        })?;
        let same_weights = NetworkConfig { dropout: config.dropout, ..recorded.clone() };
        if &same_weights != config {
            return Err(format_error(
                &self.path,
                &format!(
                    "the weights were saved for a different network: recorded {recorded:?}, \
                     requested {config:?}"
                ),
            ));
        }
        Ok(())
    }

    fn check_keys(
        &self,
        expected: &[(String, Vec<usize>)],
        config: &NetworkConfig,
        grid: [usize; 3],
    ) -> Result<(), ModelError> {
        let expected_keys: BTreeSet<&str> = expected.iter().map(|(k, _)| k.as_str()).collect();
        let unexpected: Vec<String> = self
            .tensors
            .keys()
            .filter(|k| !expected_keys.contains(k.as_str()) && !k.ends_with("num_batches_tracked"))
            .cloned()
            .collect();
        for (key, shape) in expected {
            let Some(found) = self.tensors.get(key) else {
                let hint = if unexpected.is_empty() {
                    String::new()
                } else {
                    format!("; the file has unexpected keys {unexpected:?}")
                };
                return Err(ModelError::MissingKey {
                    path: self.path.clone(),
                    key: key.clone(),
                    expected: shape.clone(),
                    hint,
                });
            };
            if !is_float(found.dtype) {
                return Err(format_error(
                    &self.path,
                    &format!("key `{key}` holds {:?} values, expected floating point", found.dtype),
                ));
            }
            if found.shape.as_slice() != shape.as_slice() {
                let hint = if key == "dense_1.weight" && found.shape.len() == 2 {
                    fitting_grids_hint_for(config, grid, found.shape[1])
                } else {
                    String::new()
                };
                return Err(ModelError::ShapeMismatch {
                    path: self.path.clone(),
                    key: key.clone(),
                    expected: shape.clone(),
                    found: found.shape.to_vec(),
                    hint,
                });
            }
        }
        if !unexpected.is_empty() {
            return Err(ModelError::UnexpectedKeys { path: self.path.clone(), keys: unexpected });
        }
        Ok(())
    }

    fn load_f32(&self, key: &str) -> Result<TensorData, ModelError> {
        let snapshot = self.tensors.get(key).ok_or_else(|| ModelError::MissingKey {
            path: self.path.clone(),
            key: key.to_string(),
            expected: Vec::new(),
            hint: String::new(),
        })?;
        // burn-store sizes a legacy storage from the pickle's element count and can panic
        // (capacity overflow) on a lying one; an error here, not a crash. Found by fuzzing.
        let data = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| snapshot.to_data()))
            .map_err(|_| {
                format_error(&self.path, &format!("cannot read key `{key}`: its declared size is impossible"))
            })?
            .map_err(|e| format_error(&self.path, &format!("cannot read key `{key}`: {e:?}")))?;
        let data = if data.dtype == DType::F32 { data } else { data.convert::<f32>() };
        // A NaN or infinite weight makes every output NaN; refuse it here, naming the key.
        let values =
            data.as_slice::<f32>().map_err(|e| format_error(&self.path, &format!("cannot read key `{key}`: {e:?}")))?;
        if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(format_error(
                &self.path,
                &format!(
                    "key `{key}` holds {v} at flat index {i}, expected finite values (the model that wrote it \
                     diverged, or the file is damaged)"
                ),
            ));
        }
        Ok(data)
    }
}

/// Key remapping from Burn module paths (`blocks.0.conv.weight`) to PyTorch keys
/// (`Conv_1.weight`); `dense_j.*` and the BatchNorm parameter names are already PyTorch's.
fn burn_to_pytorch_remapper(blocks: usize) -> KeyRemapper {
    let patterns = (0..blocks).flat_map(|i| {
        [
            (format!(r"^blocks\.{i}\.conv\."), format!("Conv_{}.", i + 1)),
            (format!(r"^blocks\.{i}\.bn\."), format!("Conv_{}_bn.", i + 1)),
        ]
    });
    KeyRemapper::from_pattern_iter(patterns).expect("the remapping patterns are valid regexes")
}

/// Drops the prefix in front of the PyTorch keys of nested or wrapped state dicts
/// (`state_dict.Conv_1.weight`, `module.Conv_1.weight`), found from the `Conv_1.weight` key.
fn strip_state_dict_prefix(tensors: BTreeMap<String, TensorSnapshot>) -> BTreeMap<String, TensorSnapshot> {
    let anchor = "Conv_1.weight";
    let prefix = tensors
        .keys()
        .find(|k| k.ends_with(anchor) && (k.len() == anchor.len() || k.ends_with(&format!(".{anchor}"))))
        .map(|k| k[..k.len() - anchor.len()].to_string())
        .unwrap_or_default();
    if prefix.is_empty() {
        return tensors;
    }
    tensors.into_iter().filter_map(|(k, v)| k.strip_prefix(&prefix).map(|s| (s.to_string(), v))).collect()
}

/// `[rows, cols]` → `[cols, rows]` (PyTorch's dense weight (out, in) → Burn's (in, out)).
fn transpose_2d(data: TensorData) -> TensorData {
    let [rows, cols] = [data.shape[0], data.shape[1]];
    let values = data.to_vec::<f32>().expect("converted to f32 before the transpose");
    let mut out = vec![0.0f32; values.len()];
    for r in 0..rows {
        for c in 0..cols {
            out[c * rows + r] = values[r * cols + c];
        }
    }
    TensorData::new(out, [cols, rows])
}

fn is_float(dtype: DType) -> bool {
    matches!(dtype, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
}

/// The `__metadata__` object of a safetensors header (8-byte little-endian length + JSON).
fn read_safetensors_metadata(path: &Path) -> Result<BTreeMap<String, String>, ModelError> {
    let io = |source| ModelError::Io { action: "cannot read", path: path.to_path_buf(), source };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut len = [0u8; 8];
    file.read_exact(&mut len).map_err(io)?;
    let len = u64::from_le_bytes(len);
    let file_len = file.metadata().map_err(io)?.len();
    if len > file_len.saturating_sub(8) || len > 100_000_000 {
        return Err(format_error(
            path,
            &format!("safetensors header length {len} does not fit the file ({file_len} bytes)"),
        ));
    }
    let mut header = vec![0u8; len as usize];
    file.read_exact(&mut header).map_err(io)?;
    let header: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|e| format_error(path, &format!("safetensors header is not JSON: {e}")))?;
    let mut metadata = BTreeMap::new();
    if let Some(serde_json::Value::Object(map)) = header.get("__metadata__") {
        for (k, v) in map {
            if let Some(v) = v.as_str() {
                metadata.insert(k.clone(), v.to_string());
            }
        }
    }
    Ok(metadata)
}

fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read(&mut buf[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// A POSIX tar archive (the oldest `torch.save` format) has `ustar` at byte 257.
fn is_tar(path: &Path) -> bool {
    let Ok(mut file) = std::fs::File::open(path) else {
        return false;
    };
    let mut head = [0u8; 262];
    matches!(read_up_to(&mut file, &mut head), Ok(262)) && &head[257..262] == b"ustar"
}

fn format_error(path: &Path, message: &str) -> ModelError {
    ModelError::WeightsFormat { path: path.to_path_buf(), message: message.to_string() }
}

fn temporary_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "weights".to_string());
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Explains, for a dense_1 with `features` inputs, what the chosen `grid` gives instead and
/// which grids fit.
fn fitting_grids_hint_for(config: &NetworkConfig, grid: [usize; 3], features: usize) -> String {
    let got = match config.output_grid(grid) {
        Ok(out) => format!(
            "; grid {} gives {} × {}×{}×{} = {} features",
            format_grid(grid),
            config.channels[3],
            out[0],
            out[1],
            out[2],
            config.flatten_size(grid).unwrap_or(0)
        ),
        Err(_) => String::new(),
    };
    format!("{got}{}", fitting_grids_hint(config, features))
}

/// Which input grids give `features` flatten features with this architecture.
fn fitting_grids_hint(config: &NetworkConfig, features: usize) -> String {
    let channels = config.channels[3];
    if features == 0 || !features.is_multiple_of(channels) {
        return format!(
            "; {features} features is not a multiple of the last block's {channels} channels: \
             the file is for a different architecture"
        );
    }
    let voxels = features / channels;
    let mut triples = Vec::new();
    for a in 1..=voxels {
        if !voxels.is_multiple_of(a) {
            continue;
        }
        for b in 1..=voxels / a {
            if (voxels / a).is_multiple_of(b) {
                triples.push([a, b, voxels / a / b]);
            }
        }
    }
    let shown: Vec<String> = triples
        .iter()
        .take(6)
        .map(|t| {
            let r = t.map(|n| config.input_range_for_output(n));
            format!(
                "{}×{}×{} voxels after the blocks (grid axes in {}..={}, {}..={}, {}..={})",
                t[0],
                t[1],
                t[2],
                r[0].start(),
                r[0].end(),
                r[1].start(),
                r[1].end(),
                r[2].start(),
                r[2].end()
            )
        })
        .collect();
    let more =
        if triples.len() > shown.len() { format!(" and {} more", triples.len() - shown.len()) } else { String::new() };
    let paper = if config.flatten_size(PAPER_GRID_1MM).ok() == Some(features) {
        format!("; the paper's 1 mm grid {} fits", format_grid(PAPER_GRID_1MM))
    } else {
        String::new()
    };
    format!(
        "; the file needs {features} = {channels} channels × {voxels} voxels after the blocks: \
         grids that fit end with {}{more}{paper}",
        shown.join(" or ")
    )
}
