//! Where starflow finds its models and the ONNX Runtime library at run time. Nothing here depends on where the binary
//! was built, so an installed or unpacked binary behaves the same from any working directory.
//!
//! After the explicit settings (`--models`/`STARFLOW_MODELS`, `ORT_DYLIB_PATH`), these places are searched in order,
//! each for `models/` and for `libonnxruntime.so`:
//! 1. beside the executable (the release bundle);
//! 2. the source checkout holding the working directory (`models/` and `.ort/`, for builds run from the repository);
//! 3. the user data directory, `$XDG_DATA_HOME/starflow` or `~/.local/share/starflow` (`scripts/install.sh`).

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

/// The ONNX Runtime library's file name, in every place searched.
pub const LIBRARY: &str = "libonnxruntime.so";

/// Which rule found a file: said by `starflow models`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    Flag(&'static str),
    Env(&'static str),
    BesideExecutable,
    SourceCheckout,
    UserDataDir,
    /// A directory handed to the library directly (tests, embedding programs).
    Given,
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Flag(flag) => write!(f, "{flag}"),
            Self::Env(var) => write!(f, "${var}"),
            Self::BesideExecutable => write!(f, "beside the executable"),
            Self::SourceCheckout => write!(f, "the source checkout holding the working directory"),
            Self::UserDataDir => write!(f, "the user data directory ($XDG_DATA_HOME or ~/.local/share)/starflow"),
            Self::Given => write!(f, "given by the caller"),
        }
    }
}

/// A file or directory and the rule that found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub path: PathBuf,
    pub rule: Rule,
}

impl fmt::Display for Found {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (found by: {})", self.path.display(), self.rule)
    }
}

/// One place searched: where its models and its ONNX Runtime library would be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub rule: Rule,
    pub models: PathBuf,
    pub library: PathBuf,
}

/// What the search depends on, taken from the process (or given by tests).
pub struct Context {
    pub executable: Option<PathBuf>,
    pub working_dir: Option<PathBuf>,
    pub var: Box<dyn Fn(&str) -> Option<OsString>>,
}

impl Context {
    pub fn of_process() -> Self {
        Self {
            executable: std::env::current_exe().ok(),
            working_dir: std::env::current_dir().ok(),
            var: Box::new(|name| std::env::var_os(name).filter(|v| !v.is_empty())),
        }
    }

    /// The places searched after the explicit settings, in order (see the module documentation).
    pub fn places(&self) -> Vec<Place> {
        let mut places = Vec::new();
        let mut add = |rule, dir: PathBuf, library_dir: PathBuf| {
            places.push(Place { rule, models: dir.join("models"), library: library_dir.join(LIBRARY) })
        };
        if let Some(bin) = self.executable.as_deref().and_then(Path::parent) {
            add(Rule::BesideExecutable, bin.to_path_buf(), bin.to_path_buf());
        }
        if let Some(root) = self.working_dir.as_deref().and_then(source_checkout) {
            add(Rule::SourceCheckout, root.clone(), root.join(".ort"));
        }
        let data_home = (self.var)("XDG_DATA_HOME")
            .map(PathBuf::from)
            .filter(|d| d.is_absolute())
            .or_else(|| (self.var)("HOME").map(|home| Path::new(&home).join(".local").join("share")));
        if let Some(data) = data_home.map(|d| d.join("starflow")) {
            add(Rule::UserDataDir, data.clone(), data);
        }
        places
    }

    /// The models directory: `flag` (`--models`), else `$STARFLOW_MODELS`, else the first place with a `models/`
    /// directory. An explicit choice is returned even if it does not exist (loading it then says so); `None` when no
    /// place has models.
    pub fn models_dir(&self, flag: Option<&Path>) -> Option<Found> {
        if let Some(dir) = flag {
            return Some(Found { path: dir.to_path_buf(), rule: Rule::Flag("--models") });
        }
        if let Some(dir) = (self.var)("STARFLOW_MODELS") {
            return Some(Found { path: dir.into(), rule: Rule::Env("STARFLOW_MODELS") });
        }
        self.places().into_iter().find(|p| p.models.is_dir()).map(|p| Found { path: clean(p.models), rule: p.rule })
    }

    /// The ONNX Runtime libraries to try, in order: `$ORT_DYLIB_PATH` alone when it is set, else each place's.
    pub fn library_candidates(&self) -> Vec<Found> {
        if let Some(path) = (self.var)("ORT_DYLIB_PATH") {
            return vec![Found { path: path.into(), rule: Rule::Env("ORT_DYLIB_PATH") }];
        }
        self.places().into_iter().map(|p| Found { path: clean(p.library), rule: p.rule }).collect()
    }
}

/// The nearest directory at or above `dir` whose Cargo.toml is starflow's own (`name = "starflow"`).
fn source_checkout(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| {
            std::fs::read_to_string(d.join("Cargo.toml"))
                .is_ok_and(|toml| toml.lines().any(|line| line.trim() == r#"name = "starflow""#))
        })
        .map(Path::to_path_buf)
}

/// The real path where it exists (e.g. the versioned library a `libonnxruntime.so` link names), for messages.
fn clean(path: PathBuf) -> PathBuf {
    path.canonicalize().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(executable: &Path, working_dir: &Path, vars: &[(&str, &Path)]) -> Context {
        let vars: Vec<(String, OsString)> = vars.iter().map(|(k, v)| (k.to_string(), v.as_os_str().to_owned())).collect();
        Context {
            executable: Some(executable.to_path_buf()),
            working_dir: Some(working_dir.to_path_buf()),
            var: Box::new(move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())),
        }
    }

    fn mkdirs(root: &Path, dirs: &[&str]) {
        for d in dirs {
            std::fs::create_dir_all(root.join(d)).unwrap();
        }
    }

    #[test]
    fn places_are_searched_in_order_and_the_first_with_models_wins() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        mkdirs(&root, &["bundle", "repo/models", "repo/udfs/src", "home/.local/share/starflow/models", "elsewhere"]);
        std::fs::write(root.join("repo/Cargo.toml"), "[package]\nname = \"starflow\"\n").unwrap();
        let home = root.join("home");

        let in_repo = context(&root.join("bundle/starflow"), &root.join("repo/udfs/src"), &[("HOME", &home)]);
        let rules: Vec<Rule> = in_repo.places().iter().map(|p| p.rule).collect();
        assert_eq!(rules, [Rule::BesideExecutable, Rule::SourceCheckout, Rule::UserDataDir]);
        // inside the checkout, its models come before the user's installed ones; its library is in .ort/
        assert_eq!(in_repo.models_dir(None).unwrap(), Found { path: root.join("repo/models"), rule: Rule::SourceCheckout });
        let library = in_repo.library_candidates().into_iter().find(|f| f.rule == Rule::SourceCheckout).unwrap();
        assert_eq!(library.path, root.join("repo/.ort").join(LIBRARY));
        // a bundle's own models win everywhere
        mkdirs(&root, &["bundle/models"]);
        let bundled = Found { path: root.join("bundle/models"), rule: Rule::BesideExecutable };
        assert_eq!(in_repo.models_dir(None).unwrap(), bundled);

        // outside any checkout: the user data directory; without HOME, nothing
        let installed = context(&root.join("cargo/bin/starflow"), &root.join("elsewhere"), &[("HOME", &home)]);
        let user = Found { path: home.join(".local/share/starflow/models"), rule: Rule::UserDataDir };
        assert_eq!(installed.models_dir(None).unwrap(), user);
        let nowhere = context(&root.join("cargo/bin/starflow"), &root.join("elsewhere"), &[]);
        assert_eq!(nowhere.models_dir(None), None);
        assert_eq!(nowhere.library_candidates().len(), 1);
    }

    #[test]
    fn a_checkout_is_starflows_own_cargo_toml() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap();
        mkdirs(&root, &["other/models", "other/sub"]);
        std::fs::write(root.join("other/Cargo.toml"), "[package]\nname = \"starflow-udfs\"\n").unwrap();
        assert_eq!(source_checkout(&root.join("other/sub")), None);
    }

    #[test]
    fn explicit_settings_come_first_and_alone() {
        let ort = Path::new("/opt/ort/libonnxruntime.so.1.31.1");
        let vars = [("STARFLOW_MODELS", Path::new("/from/env")), ("ORT_DYLIB_PATH", ort), ("HOME", Path::new("/home/x"))];
        let ctx = context(Path::new("/usr/bin/starflow"), Path::new("/"), &vars);
        let flag = ctx.models_dir(Some(Path::new("/from/flag"))).unwrap();
        assert_eq!(flag, Found { path: "/from/flag".into(), rule: Rule::Flag("--models") });
        assert_eq!(ctx.models_dir(None).unwrap(), Found { path: "/from/env".into(), rule: Rule::Env("STARFLOW_MODELS") });
        let libraries = ctx.library_candidates();
        assert_eq!(libraries, [Found { path: ort.into(), rule: Rule::Env("ORT_DYLIB_PATH") }]);
        assert_eq!(libraries[0].to_string(), "/opt/ort/libonnxruntime.so.1.31.1 (found by: $ORT_DYLIB_PATH)");
    }

    #[test]
    fn the_user_data_directory_follows_xdg() {
        let user_dir = |vars: &[(&str, &Path)]| {
            let ctx = context(Path::new("/usr/bin/starflow"), Path::new("/"), vars);
            ctx.places().into_iter().find(|p| p.rule == Rule::UserDataDir).unwrap()
        };
        let home = ("HOME", Path::new("/home/x"));
        let place = user_dir(&[("XDG_DATA_HOME", Path::new("/xdg")), home]);
        assert_eq!((place.models, place.library), ("/xdg/starflow/models".into(), Path::new("/xdg/starflow").join(LIBRARY)));
        // a relative XDG_DATA_HOME is ignored, as the XDG specification says
        let place = user_dir(&[("XDG_DATA_HOME", Path::new("not/absolute")), home]);
        assert_eq!(place.models, Path::new("/home/x/.local/share/starflow/models"));
    }
}
