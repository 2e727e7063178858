//! Broken model directories are refused when the engine starts (`ModelRegistry::load`: the manifest is validated, the
//! ONNX file opened and probed), through the CLI as a user meets them: exit code 4 and one line naming the file, before
//! any query runs. Each case is a copy of the closed-form model (tests/data/gaussian) with one thing broken; the
//! valid-but-wrong ONNX files come from tests/data/make_broken_models.py. Without ONNX Runtime, models cannot be
//! checked: exit 1 with a message saying how to get it, while a models directory without models still serves SQL.

mod common;

use std::path::{Path, PathBuf};

use common::{repo_root, starflow};

/// A models directory with the closed-form model copied to `<dir>/age`, then changed by `edit`.
fn models_with(edit: impl FnOnce(&Path)) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("age");
    std::fs::create_dir(&model).unwrap();
    for file in ["manifest.json", "model.onnx"] {
        std::fs::copy(repo_root().join("tests/data/gaussian").join(file), model.join(file)).unwrap();
    }
    edit(&model);
    dir
}

fn edit_manifest(model: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = model.join("manifest.json");
    let mut manifest: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut manifest);
    std::fs::write(&path, serde_json::to_string_pretty(&manifest).unwrap()).unwrap();
}

fn edit_text(model: &Path, from: &str, to: &str) {
    let path = model.join("manifest.json");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{from} in the manifest");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

/// Replace the ONNX file; the manifest's sha256 is dropped so that the file itself is what gets checked.
fn replace_onnx(model: &Path, bytes: &[u8]) {
    std::fs::write(model.join("model.onnx"), bytes).unwrap();
    edit_manifest(model, |m| {
        m["onnx"].as_object_mut().unwrap().remove("sha256");
    });
}

/// The `inference` section of the closed-form v2 model.
fn v2_inference() -> serde_json::Value {
    let text = std::fs::read_to_string(repo_root().join("tests/data/gaussian_v2/manifest.json")).unwrap();
    serde_json::from_str::<serde_json::Value>(&text).unwrap()["inference"].clone()
}

fn gaussian_onnx() -> Vec<u8> {
    std::fs::read(repo_root().join("tests/data/gaussian/model.onnx")).unwrap()
}

fn broken_onnx(name: &str) -> Vec<u8> {
    std::fs::read(repo_root().join("tests/data/broken_onnx").join(name)).unwrap()
}

/// `n` pseudo-random bytes (xorshift, fixed seed).
fn noise(n: usize) -> Vec<u8> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 56) as u8
        })
        .collect()
}

/// `starflow --models DIR sql 'SELECT 1'` fails with `code` and one line naming `file` and containing `message`.
fn assert_refused(models: &Path, code: i32, file: &Path, message: &str) -> String {
    let out = starflow().args(["--models", models.to_str().unwrap(), "sql", "SELECT 1"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(&file.display().to_string()), "names {}: {stderr}", file.display());
    assert!(stderr.contains(message), "expected '{message}' in: {stderr}");
    assert!(out.stdout.is_empty(), "no query ran");
    stderr
}

type Edit = Box<dyn FnOnce(&Path)>;

#[test]
fn broken_models_are_refused_at_load_naming_the_file() {
    let cases: Vec<(&str, &str, &str, Edit)> = vec![
        // The ONNX file.
        ("truncated, sha256 recorded", "model.onnx", "does not match the manifest's", Box::new(|m: &Path| {
            std::fs::write(m.join("model.onnx"), &gaussian_onnx()[..gaussian_onnx().len() / 2]).unwrap()
        })),
        ("truncated", "model.onnx", "Protobuf parsing failed", Box::new(|m: &Path| {
            replace_onnx(m, &gaussian_onnx()[..gaussian_onnx().len() / 2])
        })),
        ("random bytes", "model.onnx", "Protobuf parsing failed", Box::new(|m: &Path| replace_onnx(m, &noise(4096)))),
        ("empty", "model.onnx", "No graph was found in the protobuf", Box::new(|m: &Path| replace_onnx(m, b""))),
        ("missing", "model.onnx", "model file missing", Box::new(|m: &Path| std::fs::remove_file(m.join("model.onnx")).unwrap())),
        ("input width 5", "model.onnx", "expected input 'x' float32[N, 6]", Box::new(|m: &Path| {
            replace_onnx(m, &broken_onnx("width5.onnx"))
        })),
        ("NaN log_prob", "model.onnx", "the log-density at the centre of the training data", Box::new(|m: &Path| {
            replace_onnx(m, &broken_onnx("nan_log_prob.onnx"))
        })),
        ("output name", "model.onnx", "must have input 'x' and output 'logp'", Box::new(|m: &Path| {
            edit_manifest(m, |v| v["onnx"]["output"] = "logp".into())
        })),
        // The manifest: syntax, missing keys, wrong shapes and types, bad constants.
        ("not JSON", "manifest.json", "invalid manifest: EOF while parsing", Box::new(|m: &Path| {
            std::fs::write(m.join("manifest.json"), "").unwrap()
        })),
        ("1e999 (JSON has no inf)", "manifest.json", "invalid manifest: number out of range", Box::new(|m: &Path| {
            edit_text(m, "\"mean\": 4700.0", "\"mean\": 1e999")
        })),
        ("NaN as a string", "manifest.json", "invalid manifest: invalid type: string \"NaN\", expected f64", Box::new(|m: &Path| {
            edit_manifest(m, |v| v["labels"][0]["std"] = "NaN".into())
        })),
        ("null constant", "manifest.json", "invalid manifest: invalid type: null, expected f64", Box::new(|m: &Path| {
            edit_manifest(m, |v| v["density"]["scale"] = serde_json::Value::Null)
        })),
        ("missing key", "manifest.json", "invalid manifest: missing field `train_max`", Box::new(|m: &Path| {
            edit_manifest(m, |v| {
                v["labels"][2].as_object_mut().unwrap().remove("train_max");
            })
        })),
        ("missing section", "manifest.json", "invalid manifest: missing field `density`", Box::new(|m: &Path| {
            edit_manifest(m, |v| {
                v.as_object_mut().unwrap().remove("density");
            })
        })),
        ("four labels", "manifest.json", "labels must be [\"teff\", \"logg\", \"fe_h\", \"c_fe\", \"n_fe\"]", Box::new(|m: &Path| {
            edit_manifest(m, |v| {
                v["labels"].as_array_mut().unwrap().pop();
            })
        })),
        ("labels not a list", "manifest.json", "invalid manifest: invalid type: map, expected a sequence", Box::new(|m: &Path| {
            edit_manifest(m, |v| v["labels"] = serde_json::json!({"teff": 1}))
        })),
        ("zero std", "manifest.json", "dimension 'logg': mean, std, train_min, train_max must be finite", Box::new(|m: &Path| {
            edit_manifest(m, |v| v["labels"][1]["std"] = 0.0.into())
        })),
        ("min above max", "manifest.json", "dimension 'n_fe'", Box::new(|m: &Path| {
            edit_manifest(m, |v| v["labels"][4]["train_min"] = 9.0.into())
        })),
        ("one grid point", "manifest.json", "target grid needs finite start < stop and num >= 2", Box::new(|m: &Path| {
            edit_manifest(m, |v| v["target"]["grid"]["num"] = 1.into())
        })),
        ("10^12 grid points", "manifest.json", "draws x grid points must be between 1 and 10000000", Box::new(|m: &Path| {
            edit_manifest(m, |v| v["target"]["grid"]["num"] = 1_000_000_000_000u64.into())
        })),
        ("negative threshold", "manifest.json", "density scale must be finite and > 0, threshold finite and >= 0", Box::new(|m: &Path| {
            edit_manifest(m, |v| v["density"]["threshold"] = (-1.0).into())
        })),
        ("a format 1 manifest (no method)", "manifest.json", "unsupported format_version 1 (this starflow reads version 2)", Box::new(|m: &Path| {
            edit_manifest(m, |v| {
                v["format_version"] = 1.into();
                v.as_object_mut().unwrap().remove("method");
            })
        })),
        // Method v2's constants (tests/data/gaussian_v2's inference section, then broken).
        ("v2 without inference", "manifest.json", "method 'v2' needs an 'inference' section", Box::new(|m: &Path| {
            edit_manifest(m, |v| v["method"] = "v2".into())
        })),
        ("inference in a paper manifest", "manifest.json", "method 'paper' takes no 'inference' section", Box::new(|m: &Path| {
            edit_manifest(m, |v| v["inference"] = v2_inference())
        })),
        ("zero error scale", "manifest.json", "release 'dr17': offset, error_scale, sigma_sys must be finite with error_scale > 0", Box::new(|m: &Path| {
            edit_manifest(m, |v| {
                v["method"] = "v2".into();
                v["inference"] = v2_inference();
                v["inference"]["releases"]["dr17"]["error_scale"][2] = 0.0.into();
            })
        })),
        ("default release missing", "manifest.json", "inference.default_release 'dr20' is not among the releases", Box::new(|m: &Path| {
            edit_manifest(m, |v| {
                v["method"] = "v2".into();
                v["inference"] = v2_inference();
                v["inference"]["default_release"] = "dr20".into();
            })
        })),
    ];
    let count = cases.len();
    for (name, file, message, edit) in cases {
        let models = models_with(edit);
        let path = models.path().join("age").join(file);
        let stderr = assert_refused(models.path(), 4, &path, message);
        assert!(stderr.starts_with("starflow: data error: "), "{name}: {stderr}");
    }
    assert_eq!(count, 26);
}

#[test]
fn one_broken_model_refuses_the_whole_directory() {
    // A good `age` and a broken `mass`: nothing is served, not the good model alone.
    let models = models_with(|_| {});
    let mass = models.path().join("mass");
    std::fs::create_dir(&mass).unwrap();
    std::fs::copy(repo_root().join("tests/data/gaussian/manifest.json"), mass.join("manifest.json")).unwrap();
    edit_manifest(&mass, |v| v["name"] = "mass".into());
    replace_onnx(&mass, &broken_onnx("width5.onnx"));
    assert_refused(models.path(), 4, &mass.join("model.onnx"), "expected input 'x' float32[N, 6]");
    // The same directory with the broken model fixed is served.
    std::fs::copy(repo_root().join("tests/data/gaussian/model.onnx"), mass.join("model.onnx")).unwrap();
    let out = starflow().args(["--models", models.path().to_str().unwrap(), "models"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(common::stdout_of(&out).matches("session:   ok on cpu").count(), 2);
}

#[test]
fn without_onnx_runtime_models_are_refused_with_directions_and_plain_sql_still_runs() {
    let models = models_with(|_| {});
    let missing = PathBuf::from("/nonexistent/libonnxruntime.so");
    let out = starflow().env("ORT_DYLIB_PATH", &missing).args(["--models", models.path().to_str().unwrap(), "sql", "SELECT 1"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    for part in [
        "the ONNX Runtime library (libonnxruntime.so 1.31) was not found (tried: /nonexistent/libonnxruntime.so)",
        "run scripts/fetch-onnxruntime.sh or set ORT_DYLIB_PATH",
        &format!("needed for the models in {}", models.path().display()),
    ] {
        assert!(stderr.contains(part), "expected '{part}' in: {stderr}");
    }
    // A file that is not a library.
    let not_a_library = models.path().join("age/manifest.json");
    let out = starflow().env("ORT_DYLIB_PATH", &not_a_library).args(["--models", models.path().to_str().unwrap(), "sql", "SELECT 1"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&format!("cannot load {}", not_a_library.display())), "{stderr}");
    // No models, no need for ONNX Runtime.
    let empty = tempfile::tempdir().unwrap();
    let out = starflow().env("ORT_DYLIB_PATH", &missing).args(["--models", empty.path().to_str().unwrap(), "--format-out", "csv", "sql", "SELECT 41 + 1 AS x"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(common::stdout_of(&out), "x\n42\n");
}
