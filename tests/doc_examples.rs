//! Every example a user can paste runs as written: the ```sql, ```sh and ```python blocks of README.md and docs/*.md,
//! and the SQL examples of `starflow functions`. Where they run is what the docs tell users:
//! - ```sql blocks at the prompt of `starflow --input examples/data/astraAllStarASPCAP_apokasc3.parquet shell` (the view
//!   `starflow_input`, the table `survey`), as README.md and the functions' preamble say;
//! - ```sh blocks with bash, `starflow` on PATH, in a scratch folder that holds the repository's `examples/` and
//!   `queries/` (the commands' relative paths), so their outputs land there and not in the checkout;
//! - ```python blocks with the scripts' Python (scripts/python-env.sh: pyarrow, pandas, matplotlib), after the ```sh
//!   blocks of the same file, in the same folder.
//!
//! A block that cannot run here says so in the line before it, `<!-- not run: REASON -->` (a real S3 bucket, hours of
//! training, the test suite itself); the test lists them, so none is skipped silently. A block that has not finished
//! after 15 minutes fails, its processes killed (a server left running must not hang the suite).

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use common::{bundled_catalogue, repo_root, starflow_std};

#[derive(Debug)]
struct Block {
    /// file:line of the opening fence.
    place: String,
    lang: String,
    code: String,
    /// `<!-- not run: REASON -->` before the fence.
    not_run: Option<String>,
}

/// The fenced blocks of a Markdown text in the languages we run.
fn blocks(name: &str, text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(lang) = lines[i].trim_start().strip_prefix("```").map(str::trim) else {
            i += 1;
            continue;
        };
        let start = i;
        let mut code = String::new();
        i += 1;
        while i < lines.len() && !lines[i].trim_start().starts_with("```") {
            code.push_str(lines[i]);
            code.push('\n');
            i += 1;
        }
        i += 1;
        if !matches!(lang, "sql" | "sh" | "python") {
            continue;
        }
        let before = lines[..start].iter().rev().find(|l| !l.trim().is_empty()).map(|l| l.trim()).unwrap_or_default();
        let not_run = before.strip_prefix("<!-- not run:").and_then(|r| r.strip_suffix("-->")).map(|r| r.trim().to_string());
        found.push(Block { place: format!("{name}:{}", start + 1), lang: lang.to_string(), code, not_run });
    }
    found
}

/// The function docs' examples start statements with a `> ` prompt and may show the result table after them, as
/// DataFusion's do: the statements alone.
fn without_prompts(code: &str) -> String {
    let statements = code.lines().take_while(|l| !l.starts_with("+-"));
    statements.map(|l| l.strip_prefix("> ").unwrap_or(l)).collect::<Vec<_>>().join("\n")
}

/// A scratch folder with the repository's examples and queries, where sh and python blocks run.
fn scratch() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["examples", "queries"] {
        std::os::unix::fs::symlink(repo_root().join(name), dir.path().join(name)).unwrap();
    }
    dir
}

/// The environment of a block's commands: `starflow` on PATH, the checkout's models and ONNX Runtime (the scratch
/// folder is not a checkout, so the rule that finds them there does not apply).
fn block_command(program: &str, dir: &Path) -> Command {
    let starflow = starflow_std();
    let bin = PathBuf::from(starflow.get_program()).parent().unwrap().to_path_buf();
    let mut cmd = Command::new(program);
    for (key, value) in starflow.get_envs() {
        match value {
            Some(value) => cmd.env(key, value),
            None => cmd.env_remove(key),
        };
    }
    let path = std::env::var("PATH").unwrap_or_default();
    cmd.env("PATH", format!("{}:{path}", bin.display()))
        .env("STARFLOW_MODELS", repo_root().join("models"))
        .env("ORT_DYLIB_PATH", repo_root().join(".ort/libonnxruntime.so"))
        .env("MPLBACKEND", "Agg")
        .current_dir(dir);
    cmd
}

fn python() -> String {
    let out = Command::new(repo_root().join("scripts/python-env.sh")).output().unwrap();
    assert!(out.status.success(), "scripts/python-env.sh: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// A block still running after this long fails, and its processes are killed: a documented command that never returns
/// (a server, a process left in the background) must not hang the suite. The slowest examples take ~3 minutes here.
const BLOCK_TIMEOUT: Duration = Duration::from_secs(900);

/// Run one block; the failure's text if it fails.
fn run(block: &Block, dir: &Path, python: &str, timeout: Duration) -> Result<(), String> {
    let (mut cmd, stdin) = match block.lang.as_str() {
        "sql" => {
            let mut cmd = starflow_std();
            cmd.args(["--quiet", "--input"]).arg(bundled_catalogue()).arg("shell").current_dir(repo_root());
            (cmd, without_prompts(&block.code))
        }
        "sh" => {
            let mut cmd = block_command("bash", dir);
            cmd.args(["-euo", "pipefail", "-c", &block.code]);
            (cmd, String::new())
        }
        _ => {
            let mut cmd = block_command(python, dir);
            cmd.args(["-c", &block.code]);
            (cmd, String::new())
        }
    };
    // Its own process group, so that the watchdog's kill reaches what the block started in the background too.
    cmd.process_group(0);
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let group = format!("-{}", child.id());
    let (finished, done) = mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        let timed_out = matches!(done.recv_timeout(timeout), Err(mpsc::RecvTimeoutError::Timeout));
        if timed_out {
            let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        }
        timed_out
    });
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    drop(finished);
    let timed_out = watchdog.join().unwrap();
    match out.status.success() && !timed_out {
        true => Ok(()),
        false => Err(format!(
            "{} ({}) failed with {}{}:\n{}\n--- stdout\n{}\n--- stderr\n{}",
            block.place,
            block.lang,
            out.status,
            if timed_out { format!(" (killed: not finished after {} s)", timeout.as_secs()) } else { String::new() },
            block.code,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )),
    }
}

fn documents() -> Vec<(String, String)> {
    let root = repo_root();
    let mut docs = vec![("README.md".to_string(), std::fs::read_to_string(root.join("README.md")).unwrap())];
    let mut names: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    names.sort();
    for path in names {
        docs.push((format!("docs/{}", path.file_name().unwrap().to_string_lossy()), std::fs::read_to_string(&path).unwrap()));
    }
    let functions = starflow_std().arg("functions").output().unwrap();
    assert!(functions.status.success());
    docs.push(("starflow functions".to_string(), String::from_utf8(functions.stdout).unwrap()));
    docs
}

#[test]
fn every_documented_example_runs_as_pasted() {
    let python = python();
    let (mut ran, mut not_run, mut failures) = (0, Vec::new(), Vec::new());
    for (name, text) in documents() {
        let mut blocks = blocks(&name, &text);
        // python blocks read what the file's sh blocks wrote
        blocks.sort_by_key(|b| b.lang == "python");
        let dir = scratch();
        for block in blocks {
            match &block.not_run {
                Some(reason) => {
                    assert!(!reason.is_empty(), "{}: a block not run must say why", block.place);
                    not_run.push(format!("{}: {reason}", block.place));
                }
                None => {
                    ran += 1;
                    if let Err(e) = run(&block, dir.path(), &python, BLOCK_TIMEOUT) {
                        failures.push(e);
                    }
                }
            }
        }
    }
    eprintln!("{ran} examples ran; not run ({}):\n  {}", not_run.len(), not_run.join("\n  "));
    assert!(failures.is_empty(), "{} of {ran} examples failed:\n\n{}", failures.len(), failures.join("\n\n"));
    // The README's quick start and every function's example are among them.
    assert!(ran >= 20, "only {ran} examples ran");
}

#[test]
fn blocks_and_their_markers_are_found() {
    let text = "intro\n```sql\nSELECT 1;\n```\n<!-- not run: needs a bucket -->\n\n```sh\nstarflow sql \"SELECT 2\"\n```\n\
                ```text\nstarflow_age(...)\n```\n```python\nprint(3)\n```\n";
    let found = blocks("x.md", text);
    let summary: Vec<(&str, &str, Option<&str>)> =
        found.iter().map(|b| (b.place.as_str(), b.lang.as_str(), b.not_run.as_deref())).collect();
    assert_eq!(summary, vec![("x.md:2", "sql", None), ("x.md:7", "sh", Some("needs a bucket")), ("x.md:13", "python", None)]);
    assert_eq!(found[0].code, "SELECT 1;\n");
    assert_eq!(without_prompts("> SELECT 1\n  FROM t;\n+---+\n| 1 |\n+---+"), "SELECT 1\n  FROM t;");
}

#[test]
fn a_block_that_does_not_finish_is_killed_and_fails() {
    // A process left in the background keeps the block's output open: the watchdog ends both.
    let block = Block { place: "x.md:1".into(), lang: "sh".into(), code: "sleep 120 &\necho started".into(), not_run: None };
    let dir = scratch();
    let start = std::time::Instant::now();
    let err = run(&block, dir.path(), "python3", Duration::from_secs(2)).unwrap_err();
    assert!(err.contains("killed: not finished after 2 s"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(60), "{:?}", start.elapsed());
}
