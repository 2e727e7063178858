//! ONNX Runtime: finding the shared library, choosing the device, creating sessions.
//!
//! The library is loaded at run time (ort `load-dynamic`): from `ORT_DYLIB_PATH`, else the first `libonnxruntime.so` of
//! the places [`crate::locate`] searches (beside the executable, the source checkout's `.ort/` where
//! `scripts/fetch-onnxruntime.sh` puts it, the user data directory). Execution providers are registered with
//! `error_on_failure`, so a CUDA request is honoured or refused, never silently run on the CPU.

use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::OnceLock;

use ort::environment::Environment;
use ort::session::Session;
use ort::session::builder::{GraphOptimizationLevel, SessionBuilder};

use crate::locate::{Context, Found};

/// Where flows are evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Device {
    #[default]
    Cpu,
    Cuda(i32),
}

impl FromStr for Device {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "cpu" => Ok(Self::Cpu),
            "cuda" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse::<i32>().ok())
                .filter(|n| *n >= 0)
                .map(Self::Cuda)
                .ok_or_else(|| format!("unknown device '{s}' (cpu, cuda or cuda:N)")),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => write!(f, "cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

/// ONNX Runtime, loaded once per process.
pub struct Runtime {
    /// The library loaded, and the rule that found it.
    pub library: Found,
    environment: Environment,
}

/// Load ONNX Runtime once per process; returns it, or an error saying how to get it.
pub fn init() -> Result<&'static Runtime, String> {
    static RUNTIME: OnceLock<Result<Runtime, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let candidates = Context::of_process().library_candidates();
            let Some(library) = candidates.iter().find(|c| c.path.is_file()).cloned() else {
                let tried: Vec<String> = candidates.iter().map(|c| c.path.display().to_string()).collect();
                return Err(format!(
                    "the ONNX Runtime library (libonnxruntime.so 1.31) was not found (tried: {}); run \
                     scripts/fetch-onnxruntime.sh or set ORT_DYLIB_PATH",
                    tried.join(", ")
                ));
            };
            let builder =
                ort::init_from(&library.path).map_err(|e| format!("cannot load {}: {e}", library.path.display()))?;
            let environment =
                builder.with_name("starflow").build().map_err(|e| format!("cannot start ONNX Runtime: {e}"))?;
            Ok(Runtime { library, environment })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Session options on `device`: a single intra-op thread, since starflow parallelises across stars (measured on 2
/// cores: 1 thread per session beats 2 intra-op threads). Fails when ONNX Runtime cannot be loaded or the device used.
fn session_builder(device: Device) -> Result<SessionBuilder, String> {
    let runtime = init()?;
    let configure = |e: ort::Error| format!("cannot configure an ONNX Runtime session: {e}");
    let mut builder = Session::builder(&runtime.environment)
        .map_err(configure)?
        .with_optimization_level(GraphOptimizationLevel::Level3)
        .map_err(|e| configure(e.into()))?
        .with_intra_threads(1)
        .map_err(|e| configure(e.into()))?;
    if let Device::Cuda(id) = device {
        let cuda = ort::ep::CUDA::default().with_device_id(id).build().error_on_failure();
        builder = builder.with_execution_providers([cuda]).map_err(|e| {
            format!("device {device} was requested but cannot be used: {e}")
        })?;
    }
    Ok(builder)
}

/// Check that ONNX Runtime loads and `device` can be used: the machine's part of loading models, not the files'.
pub fn check_device(device: Device) -> Result<(), String> {
    session_builder(device).map(drop)
}

/// A session for one model on one thread.
pub fn create_session(model: &Path, device: Device) -> Result<Session, String> {
    session_builder(device)?.commit_from_file(model).map_err(|e| format!("{}: {e}", model.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn devices_parse() {
        assert_eq!("cpu".parse::<Device>().unwrap(), Device::Cpu);
        assert_eq!("CUDA".parse::<Device>().unwrap(), Device::Cuda(0));
        assert_eq!("cuda:1".parse::<Device>().unwrap(), Device::Cuda(1));
        assert!("cuda:-1".parse::<Device>().is_err());
        assert!("tpu".parse::<Device>().unwrap_err().contains("unknown device 'tpu'"));
        assert_eq!(Device::Cuda(2).to_string(), "cuda:2");
    }
}
