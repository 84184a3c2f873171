//! Which hardware runs the network, and an up-front check that CUDA can work.
//!
//! cudarc (under Burn's CUDA backend) panics when it cannot load `libcuda.so` or `libnvrtc.so`,
//! and it loads them on first use of a CUDA device. [`check_cuda`] therefore looks for the
//! libraries *before* any CUDA device is touched and turns their absence into a
//! [`ModelError`]. It only looks at files (the workspace forbids `unsafe`, so no `dlopen` probe):
//! the loader's search path (`LD_LIBRARY_PATH`, the `ldconfig -p` cache) and the usual library
//! folders.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ModelError;

/// Where the network runs; chosen by configuration or `--device`: `cpu`, `cuda` (the first GPU)
/// or `cuda:N` (GPU number N as CUDA counts them, so that folds can run side by side on several
/// GPUs, one process each). Written in configurations and manifests as that same string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceKind {
    /// The CPU (Burn's Flex backend). The default.
    #[default]
    Cpu,
    /// An NVIDIA GPU by index (Burn's CUDA backend; builds with the `cuda` feature only).
    Cuda(usize),
}

impl DeviceKind {
    /// Checks that this device can be used by this build on this machine.
    pub fn check(self) -> Result<(), ModelError> {
        match self {
            DeviceKind::Cpu => Ok(()),
            DeviceKind::Cuda(_) => check_cuda(),
        }
    }

    /// Whether this is a GPU.
    pub fn is_cuda(self) -> bool {
        matches!(self, DeviceKind::Cuda(_))
    }
}

impl fmt::Display for DeviceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceKind::Cpu => f.write_str("cpu"),
            DeviceKind::Cuda(0) => f.write_str("cuda"),
            DeviceKind::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl FromStr for DeviceKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "cpu" => Ok(DeviceKind::Cpu),
            "cuda" | "gpu" => Ok(DeviceKind::Cuda(0)),
            other => match other.split_once(':') {
                Some(("cuda" | "gpu", index)) => index.parse().map(DeviceKind::Cuda).map_err(|_| {
                    format!("unknown device `{other}`: `{index}` is not a GPU number; expected `cuda:0`, `cuda:1`, …")
                }),
                _ => Err(format!("unknown device `{other}`; expected `cpu`, `cuda` or `cuda:N` (GPU number N)")),
            },
        }
    }
}

impl TryFrom<String> for DeviceKind {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DeviceKind> for String {
    fn from(d: DeviceKind) -> String {
        d.to_string()
    }
}

/// Whether this build includes the CUDA backend (the `cuda` cargo feature).
pub const CUDA_COMPILED: bool = cfg!(feature = "cuda");

/// Checks that CUDA can be used: the build has the `cuda` feature, and the NVIDIA driver
/// library (`libcuda.so.1`) and the runtime compiler (`libnvrtc.so*`) are present. Call it
/// before creating a CUDA device: without them Burn's CUDA backend panics.
pub fn check_cuda() -> Result<(), ModelError> {
    if !CUDA_COMPILED {
        return Err(ModelError::CudaNotCompiled);
    }
    check_cuda_libraries()
}

/// The library check of [`check_cuda`], independent of the build's features.
pub fn check_cuda_libraries() -> Result<(), ModelError> {
    let driver_loaded = Path::new("/proc/driver/nvidia/version").exists();
    match find_library(|name| name == "libcuda.so.1" || name == "libcuda.so") {
        Found::OnLoaderPath => {}
        Found::Elsewhere(path) => {
            return Err(ModelError::CudaUnavailable(format!(
                "the NVIDIA driver library {} is not on the loader's path; add its folder to \
                 LD_LIBRARY_PATH",
                path.display()
            )));
        }
        Found::Nowhere if driver_loaded => {
            return Err(ModelError::CudaUnavailable(
                "the NVIDIA kernel driver is loaded (/proc/driver/nvidia/version) but its \
                 user-space library libcuda.so.1 was not found (LD_LIBRARY_PATH, ldconfig -p, \
                 usual library folders)"
                    .to_string(),
            ));
        }
        Found::Nowhere => {
            return Err(ModelError::CudaUnavailable(
                "no NVIDIA driver was found (no /proc/driver/nvidia/version, and libcuda.so.1 is \
                 not in LD_LIBRARY_PATH, the ldconfig -p cache or the usual library folders)"
                    .to_string(),
            ));
        }
    }
    match find_library(|name| name.starts_with("libnvrtc.so")) {
        Found::OnLoaderPath => Ok(()),
        Found::Elsewhere(path) => Err(ModelError::CudaUnavailable(format!(
            "the CUDA runtime compiler {} is not on the loader's path; add its folder to \
             LD_LIBRARY_PATH",
            path.display()
        ))),
        Found::Nowhere => Err(ModelError::CudaUnavailable(
            "the CUDA runtime compiler libnvrtc.so (CUDA toolkit, or the nvidia-cuda-nvrtc \
             wheel) was not found (LD_LIBRARY_PATH, ldconfig -p, usual library folders)"
                .to_string(),
        )),
    }
}

/// Where a shared library was found.
enum Found {
    /// Where the dynamic loader looks (`LD_LIBRARY_PATH`, `ldconfig -p`, default folders).
    OnLoaderPath,
    /// Only in a folder the loader does not search by default.
    Elsewhere(PathBuf),
    /// Not found.
    Nowhere,
}

/// Looks for a file whose name satisfies `matches`, first where the loader looks, then in the
/// usual CUDA and NVIDIA folders.
fn find_library(matches: impl Fn(&str) -> bool) -> Found {
    let name_matches = |p: &Path| p.file_name().and_then(|n| n.to_str()).is_some_and(&matches);
    if ldconfig_entries().iter().any(|p| name_matches(p)) {
        return Found::OnLoaderPath;
    }
    let in_dir = |dir: &Path| -> Option<PathBuf> {
        std::fs::read_dir(dir).ok()?.flatten().map(|entry| entry.path()).find(|p| name_matches(p))
    };
    if loader_dirs().iter().any(|dir| in_dir(dir).is_some()) {
        return Found::OnLoaderPath;
    }
    match other_dirs().iter().find_map(|dir| in_dir(dir)) {
        Some(path) => Found::Elsewhere(path),
        None => Found::Nowhere,
    }
}

/// Paths listed by `ldconfig -p` (empty when ldconfig is missing or fails).
fn ldconfig_entries() -> Vec<PathBuf> {
    let run = |cmd: &str| std::process::Command::new(cmd).arg("-p").output().ok();
    let Some(output) = run("ldconfig").or_else(|| run("/sbin/ldconfig")) else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split(" => ").nth(1))
        .map(|p| PathBuf::from(p.trim()))
        .collect()
}

/// Folders the dynamic loader searches: `LD_LIBRARY_PATH` and the default system folders.
fn loader_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> =
        std::env::var_os("LD_LIBRARY_PATH").map(|v| std::env::split_paths(&v).collect()).unwrap_or_default();
    dirs.extend(["/lib", "/lib64", "/usr/lib", "/usr/lib64"].map(PathBuf::from));
    dirs
}

/// Usual CUDA / NVIDIA library folders outside the loader's default search.
fn other_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for var in ["CUDA_PATH", "CUDA_HOME", "CUDA_ROOT", "CUDA_TOOLKIT_ROOT_DIR"] {
        if let Some(root) = std::env::var_os(var) {
            let root = PathBuf::from(root);
            dirs.push(root.join("lib64"));
            dirs.push(root.join("lib"));
        }
    }
    dirs.extend(
        [
            "/usr/local/cuda/lib64",
            "/usr/local/cuda/targets/x86_64-linux/lib",
            "/usr/local/nvidia/lib64",
            "/usr/local/nvidia/lib",
            "/usr/lib/wsl/lib",
        ]
        .map(PathBuf::from),
    );
    dirs
}

/// The CUDA device with the given index, after [`check_cuda`] (only in `cuda` builds).
#[cfg(feature = "cuda")]
pub fn cuda_device(index: usize) -> Result<burn::backend::cuda::CudaDevice, ModelError> {
    check_cuda()?;
    Ok(burn::backend::cuda::CudaDevice::new(index))
}
